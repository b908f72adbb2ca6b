// README documents every flag the CLI accepts (issue 15): each command's `tsko <command> --help`,
// run through the real CLI, lists exactly the flags README's "Every command" section gives that
// command, so a flag added without docs (or docs left for a removed flag) fails here. Hidden
// options (--debounce) are not in --help and need no docs; `tsko delete` is kubectl's.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { configKeyPaths } from '../../src/config/validate.js';
import { repoRoot, runTsko } from '../support/tsko-cli.js';

/** A flag spec (`-B, --base-import-paths`, `--push [bool]`, `--tags <tags>`) → its names. */
function flagNames(spec: string): string[] {
  return spec
    .split(/[ ,]+/)
    .filter((token) => /^--?[A-Za-z][\w-]*$/.test(token));
}

/** The flags `--help` shows for a command, under Options: and Global Options:. */
function helpFlags(help: string): Set<string> {
  const names = new Set<string>();
  let inOptions = false;
  for (const line of help.split('\n')) {
    if (/^(Global )?Options:$/.test(line)) inOptions = true;
    else if (/^\S/.test(line)) inOptions = false;
    else if (inOptions) {
      const spec = /^ {2}(-[^ ].*?)(?: {2,}|$)/.exec(line)?.[1];
      if (spec) for (const name of flagNames(spec)) names.add(name);
    }
  }
  return names;
}

/** The command names `--help` lists under Commands: (help itself aside). */
function helpCommands(help: string): string[] {
  const section = /^Commands:\n([\s\S]*?)(?:\n\S|(?![\s\S]))/m.exec(help)?.[1] ?? '';
  return section
    .split('\n')
    .map((line) => /^ {2}([a-z][\w-]*)/.exec(line)?.[1])
    .filter((name): name is string => name !== undefined && name !== 'help');
}

interface FlagGroup {
  title: string;
  /** undefined: every command. */
  commands: string[] | undefined;
  flags: string[];
}

/** README's "Every command" groups: `- **Title** (`cmd`, `cmd`):` then `  - `flags`: text` bullets. */
function readmeGroups(): FlagGroup[] {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const section = /^## Every command\n([\s\S]*?)^## /m.exec(readme)?.[1];
  assert.ok(section, 'README has an "Every command" section');
  const groups: FlagGroup[] = [];
  for (const line of section.split('\n')) {
    const group = /^- \*\*(.+?)\*\* \(([^)]*)\)/.exec(line);
    if (group) {
      const within = group[2] ?? '';
      const commands = within.startsWith('every command') ? undefined : [...within.matchAll(/`([^`]+)`/g)].map((match) => match[1] ?? '');
      groups.push({ title: group[1] ?? '', commands, flags: [] });
      continue;
    }
    const flag = /^ {2}- `([^`]+)`/.exec(line);
    const current = groups.at(-1);
    if (flag && current) current.flags.push(...flagNames(flag[1] ?? ''));
  }
  return groups;
}

function readmeFlags(groups: FlagGroup[], command: string): Set<string> {
  return new Set(groups.filter((group) => group.commands === undefined || group.commands.includes(command)).flatMap((group) => group.flags));
}

describe('README documents every flag', () => {
  it("lists, for every command, exactly the flags of its --help, -v/--verbose included", { timeout: 180_000 }, async () => {
    const groups = readmeGroups();
    assert.ok(groups.some((group) => group.commands === undefined && group.flags.includes('--verbose') && group.flags.includes('-v')), 'README gives -v/--verbose to every command');

    const top = await runTsko(['--help'], { timeoutMs: 30_000 });
    assert.equal(top.code, 0, top.stderr);
    const commands: string[] = [];
    for (const name of helpCommands(top.stdout)) {
      if (name === 'delete') continue; // kubectl delete's own flags, passed through
      const help = await runTsko([name, '--help'], { timeoutMs: 30_000 });
      assert.equal(help.code, 0, `tsko ${name} --help: ${help.stderr}`);
      const subcommands = helpCommands(help.stdout);
      if (subcommands.length > 0) commands.push(...subcommands.map((sub) => `${name} ${sub}`));
      else commands.push(name);
    }
    assert.ok(commands.includes('build') && commands.includes('dev') && commands.includes('registry serve'), `found the commands: ${commands.join(', ')}`);

    const documented = new Set(groups.flatMap((group) => group.commands ?? []));
    for (const command of commands) {
      const help = await runTsko([...command.split(' '), '--help'], { timeoutMs: 30_000 });
      assert.equal(help.code, 0, `tsko ${command} --help: ${help.stderr}`);
      const shown = helpFlags(help.stdout);
      assert.ok(shown.has('--verbose') && shown.has('-v'), `tsko ${command} --help shows -v, --verbose`);
      const readme = readmeFlags(groups, command);
      assert.deepEqual(
        { undocumented: [...shown].filter((flag) => !readme.has(flag)).sort(), notInHelp: [...readme].filter((flag) => !shown.has(flag)).sort() },
        { undocumented: [], notInHelp: [] },
        `tsko ${command}: README's flags against --help`,
      );
      documented.delete(command);
    }
    assert.deepEqual([...documented], [], 'README names no command the CLI lacks');
  });

  it("README's Configuration section names every key the config checker accepts, and no other", () => {
    const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
    const section = /^## Configuration\n([\s\S]*?)^## /m.exec(readme)?.[1] ?? '';
    const list = section.slice(section.indexOf('Every key'));
    const spans = new Set([...list.matchAll(/`([A-Za-z][\w.[\]]*)`/g)].map((match) => match[1] ?? ''));
    const keys = configKeyPaths();
    assert.ok(keys.includes('dev.port') && keys.includes('dev.services[].port'), 'the schema lists nested keys');
    assert.deepEqual(
      keys.filter((key) => !spans.has(key)),
      [],
      'keys README does not document',
    );
    // Every bullet's leading key is a real one (a renamed key leaves no stale docs).
    const bullets = [...list.matchAll(/^\s*- `([^`]+)`(?:, `([^`]+)`)*(?:, `([^`]+)`)?:/gm)].flatMap((match) => match.slice(1).filter((key): key is string => key !== undefined));
    assert.ok(bullets.length > 10, `README's key bullets: ${bullets.join(', ')}`);
    assert.deepEqual(
      bullets.filter((key) => !keys.includes(key)),
      [],
      'README documents keys the checker rejects',
    );
  });

  it('the checker sees a flag README lacks', () => {
    // The parsers on a made-up help and README group, so the comparison above cannot pass vacuously.
    const help = 'Usage: tsko x\n\nOptions:\n  --alpha <n>     text\n  -b, --beta      more\n                  text --not-a-flag\n  -h, --help      help\n\nGlobal Options:\n  -v, --verbose   logs\n';
    assert.deepEqual([...helpFlags(help)].sort(), ['--alpha', '--beta', '--help', '--verbose', '-b', '-h', '-v']);
    assert.deepEqual(flagNames('-B, --base-import-paths'), ['-B', '--base-import-paths']);
    assert.deepEqual(flagNames('--push [bool]'), ['--push']);
  });
});
