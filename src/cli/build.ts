// `tsko build IMPORTPATH|./DIR ...` (alias `publish`): build each main package into an image and
// publish it; stdout gets exactly one reference per argument, in argument order (an index's
// reference for a multi-platform build; --image-refs also lists its per-platform images).
import type { Command } from 'commander';
import { addBuildFlags, type BuildCommandFlags } from './common.js';
import { openCommandSession, printedLine, writeImageRefs } from './session.js';

export function registerBuildCommand(program: Command): void {
  const command = program
    .command('build')
    .alias('publish')
    .description('build Go main packages into images and publish them (as `ko build`)')
    .argument('[importpaths...]', 'import paths or ./dirs of main packages', ['.']);
  addBuildFlags(command).action(async (targets: string[], flags: BuildCommandFlags) => {
    await runBuild(targets.length > 0 ? targets : ['.'], flags, Boolean(program.opts().verbose));
  });
}

async function runBuild(targets: string[], { config: configFile, ...build }: BuildCommandFlags, verbose: boolean): Promise<void> {
  const session = await openCommandSession({ command: 'build', ...(configFile ? { configFile } : {}), build }, verbose);
  const { pipeline, config, events, signal } = session;
  try {
    // Every argument at once: the pipeline's --jobs slots bound the go builds.
    const results = await Promise.all(
      targets.map((target) =>
        pipeline.publish(target, { events, signal }).catch((err: unknown) => {
          session.abort(err);
          throw err;
        }),
      ),
    );
    // The same lines as stdout, in argument order, each followed by its platforms' images.
    if (config.build.imageRefs) await writeImageRefs(config.build.imageRefs, results, config);
    process.stdout.write(results.map((result) => `${printedLine(result, config)}\n`).join(''));
  } finally {
    await session.close();
  }
}
