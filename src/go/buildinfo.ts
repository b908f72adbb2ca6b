// What a Go binary says it was built from (`go version -m`): the main module, every dependency
// module with its version and go.sum checksum (h1:), replacements, and build settings. Works on a
// binary of any platform, so an arm64 image's SBOM is read on an amd64 host. The parser is pure.
import { TskoError } from '../errors.js';
import { runGo, type GoRunOptions } from './toolchain.js';

export interface GoModule {
  path: string;
  version: string;
  /** go.sum checksum (`h1:<base64 sha256>`); absent for the main module and local replacements. */
  sum?: string;
  replace?: GoModule;
}

export interface GoBuildInfo {
  goVersion: string;
  /** The main package's import path. */
  path: string;
  main: GoModule;
  deps: GoModule[];
  settings: Array<{ key: string; value: string }>;
}

export async function readBuildInfo(binary: string, options: GoRunOptions): Promise<GoBuildInfo> {
  const result = await runGo(['version', '-m', binary], options);
  if (result.exitCode !== 0) {
    throw new TskoError('GO_BUILD', `go version -m ${binary} failed: ${result.stderr.trim().split('\n')[0] ?? ''}`, { detail: result.stderr.trim() || undefined });
  }
  return parseBuildInfo(result.stdout, binary);
}

/** Parses `go version -m` output: `<file>: go1.x` then tab-separated `path|mod|dep|=>|build` lines. */
export function parseBuildInfo(text: string, what = 'binary'): GoBuildInfo {
  const lines = text.split('\n');
  const header = /:\s+(go\S+)\s*$/.exec(lines[0] ?? '');
  if (!header) throw new TskoError('GO_BUILD', `${what} has no Go build information`);
  const info: GoBuildInfo = { goVersion: header[1] as string, path: '', main: { path: '', version: '' }, deps: [], settings: [] };
  let last: GoModule | undefined;
  for (const line of lines.slice(1)) {
    if (!line.startsWith('\t')) continue;
    const [kind, ...fields] = line.slice(1).split('\t');
    switch (kind) {
      case 'path':
        info.path = fields[0] ?? '';
        break;
      case 'mod':
        info.main = moduleOf(fields);
        last = info.main;
        break;
      case 'dep':
        last = moduleOf(fields);
        info.deps.push(last);
        break;
      case '=>':
        if (last) last.replace = moduleOf(fields);
        break;
      case 'build': {
        const setting = fields.join('\t');
        const eq = setting.indexOf('=');
        info.settings.push(eq > 0 ? { key: setting.slice(0, eq), value: setting.slice(eq + 1) } : { key: setting, value: '' });
        break;
      }
      default:
        break;
    }
  }
  if (!info.path) throw new TskoError('GO_BUILD', `${what} has no Go build information (no main package path)`);
  return info;
}

function moduleOf(fields: string[]): GoModule {
  const [path = '', version = '', sum = ''] = fields;
  return { path, version, ...(sum ? { sum } : {}) };
}
