// The dashboard's `o` key: hand a service URL to the desktop's opener (xdg-open, or open on
// macOS) when there is one, detached and silent so it cannot scribble on the dashboard. It never
// fails: without an opener, or if it will not start, the answer is the URL to open by hand. The
// URL comes first in every answer, so a narrow terminal that cuts the line still shows it.
import { spawn } from 'node:child_process';
import { findOnPath } from './which.js';

export interface OpenUrlOptions {
  path: string | undefined;
  platform: NodeJS.Platform;
}

/** Resolves with what to tell the user; never rejects. */
export function openUrl(url: string, options: OpenUrlOptions): Promise<string> {
  // Only what a target reports as its address; never a file or a custom scheme.
  if (!/^https?:\/\//.test(url)) return Promise.resolve(`not opening ${url}`);
  const name = options.platform === 'darwin' ? 'open' : 'xdg-open';
  const opener = findOnPath(name, options.path);
  if (!opener) return Promise.resolve(`open ${url} in a browser (no ${name} here)`);
  return new Promise((resolve) => {
    try {
      const child = spawn(opener, [url], { stdio: 'ignore', detached: true });
      child.once('error', () => resolve(`open ${url} in a browser (${name} failed)`));
      child.once('spawn', () => {
        child.unref();
        resolve(`opened ${url}`);
      });
    } catch {
      resolve(`open ${url} in a browser (${name} failed)`);
    }
  });
}
