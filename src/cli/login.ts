// `tsko login` and `tsko logout`, as `docker login`/`docker logout` behave: the credentials are
// checked against the registry first (GET /v2/ with them, Basic or through its token server),
// then saved where docker saves them (config.json `auths`, or the configured credential helper),
// so docker, skopeo, ko and tsko all use them. "Login Succeeded" goes to stdout as docker prints
// it; warnings and --verbose request lines go to stderr, never a password.
// Registration only: the registry client and the credential store load when a command runs
// (login-action.ts).
import type { Command } from 'commander';

export interface LoginFlags {
  username?: string;
  password?: string;
  passwordStdin?: boolean;
  insecureRegistry?: boolean;
  config?: string;
}

/** docker's default when no server is named. */
const DEFAULT_SERVER = 'docker.io';

export function registerLoginCommand(program: Command): void {
  program
    .command('login')
    .description('check credentials against a registry and save them where `docker login` does')
    .argument('[server]', 'registry host[:port]', DEFAULT_SERVER)
    .option('-u, --username <user>', 'user name')
    .option('-p, --password <password>', 'password (visible to other users of this machine; prefer --password-stdin)')
    .option('--password-stdin', 'read the password from stdin')
    .option('--insecure-registry', 'talk plain http (or unverified https) to the registry')
    .option('--config <path>', 'config file whose registry.caFile/insecure apply (default: the nearest tsko.config.ts above the working directory)')
    .action(async (server: string, flags: LoginFlags) => {
      const { login } = await import('./login-action.js');
      await login(server, flags, Boolean(program.opts().verbose));
    });
}

export function registerLogoutCommand(program: Command): void {
  program
    .command('logout')
    .description('remove the credentials `tsko login`/`docker login` saved for a registry')
    .argument('[server]', 'registry host[:port]', DEFAULT_SERVER)
    .action(async (server: string) => {
      const { logout } = await import('./login-action.js');
      await logout(server);
    });
}
