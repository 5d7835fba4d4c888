/**
 * A throwaway config repo for policy tests: a real `git init` in a temp directory with its own
 * HOME and author, so the machine's git configuration never leaks in.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A git repo holding `hoop.yaml`. */
export class PolicyGitRepo {
  /** The temp directory that holds the repo (`repo`) and its HOME. */
  readonly base: string;
  /** The repo's work tree. */
  readonly dir: string;
  readonly env: NodeJS.ProcessEnv;

  constructor(prefix: string) {
    this.base = mkdtempSync(join(tmpdir(), prefix));
    this.dir = join(this.base, 'repo');
    mkdirSync(this.dir);
    mkdirSync(join(this.base, 'home'));
    this.env = {
      PATH: process.env.PATH,
      HOME: join(this.base, 'home'),
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_AUTHOR_NAME: 'Policy Author',
      GIT_AUTHOR_EMAIL: 'author@example.org',
      GIT_COMMITTER_NAME: 'Policy Author',
      GIT_COMMITTER_EMAIL: 'author@example.org',
    };
    this.git('init', '-q', '-b', 'main');
  }

  /** Runs git in the repo and returns its trimmed stdout. */
  git(...args: string[]): string {
    return execFileSync('git', args, { cwd: this.dir, env: this.env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  }

  /**
   * Commits `text` as `hoop.yaml` and returns the commit id; with `signingKey` (a private key
   * file, see {@link PolicyGitRepo.sshKey}) the commit carries that key's SSH signature.
   *
   * @see https://git-scm.com/docs/git-config#Documentation/git-config.txt-gpgformat
   */
  commit(text: string, signingKey?: string): string {
    writeFileSync(join(this.dir, 'hoop.yaml'), text);
    this.git('add', '-A');
    const sign = signingKey ? ['-c', 'gpg.format=ssh', '-c', `user.signingkey=${signingKey}`] : [];
    this.git(...sign, 'commit', '-q', ...(signingKey ? ['-S'] : []), '-m', 'policy change');
    return this.git('rev-parse', 'HEAD');
  }

  /**
   * Makes an ed25519 key pair (no passphrase) next to the repo; returns the private key's path
   * (the public key is `<path>.pub`).
   *
   * @see https://man.openbsd.org/ssh-keygen
   */
  sshKey(name: string): string {
    const file = join(this.base, name);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', file], { stdio: 'ignore' });
    return file;
  }

  /**
   * The gateway config's `policy:` block for this repo at `main`, pulled hourly (tests pull with
   * `refresh()`), admitting `allowedSecrets`.
   */
  gatewayBlock(allowedSecrets: string[], allowedSigners?: string): string {
    return [
      'policy:',
      `  repo: ${this.dir}`,
      '  ref: main',
      ...(allowedSigners ? [`  allowedSigners: ${allowedSigners}`] : []),
      '  allowedSecrets:',
      ...allowedSecrets.map((s) => `    - ${JSON.stringify(s)}`),
      '  pullIntervalSeconds: 3600',
      '',
    ].join('\n');
  }

  remove(): void {
    rmSync(this.base, { recursive: true, force: true });
  }
}
