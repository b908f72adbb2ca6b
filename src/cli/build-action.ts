// What `tsko build` does once its flags are parsed (build.ts registers it): one command session,
// every argument published at once, the references printed in argument order.
import type { BuildCommandFlags } from './common.js';
import { openCommandSession, printedLine, writeImageRefs } from './session.js';

export async function runBuild(targets: string[], { config: configFile, ...build }: BuildCommandFlags, verbose: boolean): Promise<void> {
  const session = await openCommandSession({ command: 'build', targets, ...(configFile ? { configFile } : {}), build }, verbose);
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
