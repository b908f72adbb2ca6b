// `tsko build IMPORTPATH|./DIR ...` (alias `publish`): build each main package into an image and
// publish it; stdout gets exactly one reference per argument, in argument order (an index's
// reference for a multi-platform build; --image-refs also lists its per-platform images).
import type { Command } from 'commander';
import { buildAndPublish } from '../publish/build-and-publish.js';
import { addBuildFlags, normaliseBuildFlags, type BuildFlags } from './common.js';
import { openPublishSession, printedLine, writeImageRefs } from './publish-session.js';

export function registerBuildCommand(program: Command): void {
  const command = program
    .command('build')
    .alias('publish')
    .description('build Go main packages into images and publish them (as `ko build`)')
    .argument('[importpaths...]', 'import paths or ./dirs of main packages', ['.']);
  addBuildFlags(command).action(async (targets: string[], raw: Partial<BuildFlags>) => {
    const verbose = Boolean(program.opts().verbose);
    await runBuild(targets.length > 0 ? targets : ['.'], normaliseBuildFlags(raw), verbose);
  });
}

async function runBuild(targets: string[], flags: BuildFlags, verbose: boolean): Promise<void> {
  const session = await openPublishSession(flags, verbose);
  try {
    // Every argument at once: the pipeline's --jobs slots bound the go builds.
    const results = await Promise.all(
      targets.map((target) =>
        buildAndPublish(session.pipeline, target, session.request, session.events, session.signal).catch((err: unknown) => {
          session.abort(err);
          throw err;
        }),
      ),
    );
    const entries = results.map((result) => ({ line: printedLine(result, flags), result }));
    if (flags.imageRefs) await writeImageRefs(flags.imageRefs, entries);
    process.stdout.write(entries.map(({ line }) => `${line}\n`).join(''));
  } finally {
    await session.close();
  }
}
