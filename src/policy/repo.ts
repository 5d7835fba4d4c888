/**
 * The config repo as the gateway (and `hoop policy pull`) uses it: a bare mirror under a work
 * directory, fetched from a git URL or path, a ref resolved to a commit, that commit checked out
 * into a fresh worktree, loaded and validated, and only then swapped in. A commit that fails
 * validation (or, with an allowed-signers file, whose SSH signature does not verify or that does not
 * descend from the commit in force; or, for the gateway, that uses a secret reference outside its
 * allow-list) is refused and the policy in force stays.
 *
 * Two backends ({@link PolicyGit}): the real `git` CLI (no shell), whenever `git` runs; and, on a
 * host without git, isomorphic-git reading a local repository (a path or a `file://` URL) in
 * place (./git-js.ts). Without git, a remote URL, and allowed signers (signatures are verified by
 * git and ssh-keygen), are refused at open with a message saying so.
 *
 * Work directory layout: `mirror.git/` (CLI only; bare; `refs/heads/*` and `refs/tags/*` of the
 * remote), `trees/` (short-lived checkouts), `accepted.json` (the last commit accepted, used when
 * the remote is unreachable or its head is refused at start-up, and the commit a new one must
 * descend from at start; shared by both backends).
 *
 * @see https://git-scm.com/docs/git-fetch
 * @see https://git-scm.com/docs/git-worktree
 * @see https://git-scm.com/docs/git-verify-commit
 * @see https://git-scm.com/docs/git-config#Documentation/git-config.txt-gpgsshallowedSignersFile
 * @see https://man.openbsd.org/ssh-keygen#ALLOWED_SIGNERS
 * @see ./git-js.ts (the backend without git)
 */
import { realClock } from '../clock.js';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { access, mkdir, readFile, rm, writeFile, rename } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describeError, ErrorCode, HoopError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { localRepoPath } from '../config/repo-path.js';
import { parseSecretPatterns, type SecretPattern } from '../config/secrets.js';
import { JsPolicyGit, type PolicyGit } from './git-js.js';
import { PolicyInvalidError, loadPolicyDir } from './load.js';
import type { Policy } from './schema.js';

/** Options of {@link PolicyRepo.open}. Give exactly one of `url` and `path`. */
export interface PolicyRepoOptions {
  /** A git URL (https, ssh, file). */
  url?: string;
  /** A local git repository. */
  path?: string;
  /** Branch, tag or commit to follow. */
  ref: string;
  /** Where the mirror and checkouts live; created if missing. */
  workDir: string;
  /** Only commits signed (git SSH signing) by a key in this file are accepted. */
  allowedSignersFile?: string;
  /** How often {@link PolicyRepo.start} pulls; default 60 s. */
  pullIntervalMs?: number;
  log?: Logger;
  /** Environment for git, and for checking that secret references resolve. */
  env?: NodeJS.ProcessEnv;
  /**
   * Check the bundle's secret references: each must be admitted by `allowedSecrets` and resolve
   * in `env` (the gateway: yes, default; the CLI, which never resolves them: no).
   */
  checkSecrets?: boolean;
  /**
   * With `checkSecrets`, the references the bundle may use, as in the gateway's
   * `policy.allowedSecrets` (`${env:PROD_DB_*}`, `${file:/run/secrets/hoop/*}`). Absent or empty:
   * none, so a bundle that references any secret is refused.
   */
  allowedSecrets?: readonly string[];
  /** With `checkSecrets`, the MCP server commands the bundle may make the gateway run, as in the gateway's `policy.allowedCommands`; absent or empty: none. */
  allowedCommands?: readonly string[];
  /**
   * With `checkSecrets`, whether the references must also resolve in `env` (default: yes, the
   * gateway's own; no for the CLI checking a bundle against the gateway's `allowedSecrets`).
   */
  resolveSecrets?: boolean;
  /** The git executable; default `git`. */
  git?: string;
  /**
   * Which backend reads the repo (internal; not in the gateway config): `auto` (default) the git
   * CLI when `git` runs, else isomorphic-git for a local repo; `cli` or `js` to force one (tests).
   */
  backend?: 'auto' | 'cli' | 'js';
}

/** A commit the repo refused: which, when, and every problem (`file:line:col: field: what` where it has a place). */
export interface RefusedCommit {
  commit: string;
  at: Date;
  problems: string[];
}

/** The outcome of one {@link PolicyRepo.refresh}. */
export interface RefreshResult {
  /** True when a new commit was accepted and is now in force. */
  changed: boolean;
  /** The commit in force afterwards (undefined only before any was accepted). */
  commit: string | undefined;
  /** Why the fetched commit was not taken (fetch failure, unknown ref, refused commit). */
  error?: string;
  /** The commit the ref pointed to, when it could be resolved. */
  candidate?: string;
}

const DEFAULT_PULL_INTERVAL_MS = 60_000;
/** A refused commit is tried again after this long (a secret file may have appeared meanwhile). */
const REFUSAL_RETRY_MS = 10 * 60_000;
const GIT_TIMEOUT_MS = 120_000;
const SHA = /^[0-9a-f]{40}([0-9a-f]{24})?$/;
const GIT_ENV_DROP = [
  'GIT_DIR',
  'GIT_WORK_TREE',
  'GIT_INDEX_FILE',
  'GIT_OBJECT_DIRECTORY',
  'GIT_ALTERNATE_OBJECT_DIRECTORIES',
  'GIT_COMMON_DIR',
  'GIT_NAMESPACE',
  'GIT_CONFIG_PARAMETERS',
  'GIT_CONFIG_COUNT',
];

/** A git command on the policy repository failed: what it said, and its whole stderr. */
class GitError extends HoopError {
  constructor(
    message: string,
    readonly stderr: string,
  ) {
    super(ErrorCode.CONFIG_INVALID, message);
  }
}

/** The first meaningful line of git's stderr, for messages (git never prints secrets there, but keep it short). */
function firstLine(stderr: string): string {
  const line =
    stderr
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l !== '' && !l.startsWith('hint:')) ?? '';
  return line.length > 300 ? `${line.slice(0, 300)}...` : line;
}

/**
 * Checks a ref name the user gave: a branch, tag, `refs/...` or a commit id; never an option.
 *
 * @see https://git-scm.com/docs/git-check-ref-format
 */
export function refProblem(ref: string): string | undefined {
  if (ref === '' || ref.startsWith('-')) return 'must be a branch, tag or commit (and not start with "-")';
  if (/[\x00-\x20\x7f~^:?*[\\]|\.\.|@\{|\/\/|\/$|\.lock$|^\/|\.$/.test(ref)) return 'is not a valid git ref name';
  return undefined;
}

function remoteProblem(url: string): string | undefined {
  if (url === '' || url.startsWith('-')) return 'must be a git URL or path (and not start with "-")';
  if (/^ext::/i.test(url)) return 'the ext:: transport is not allowed';
  return undefined;
}

/**
 * The `git` CLI backend: a bare mirror in the work directory, fetched from the remote; checkouts
 * are detached worktrees of it; SSH signatures are verified by `git verify-commit` (ssh-keygen).
 */
class CliPolicyGit implements PolicyGit {
  readonly kind = 'cli' as const;
  private readonly mirror: string;

  constructor(
    private readonly program: string,
    private readonly workDir: string,
    private readonly remote: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {
    this.mirror = join(workDir, 'mirror.git');
  }

  private git(args: string[]): Promise<string> {
    return new Promise((resolvePromise, reject) => {
      execFile(
        this.program,
        ['-c', 'core.hooksPath=/dev/null', '-c', 'protocol.ext.allow=never', ...args],
        { cwd: this.workDir, env: this.env, timeout: GIT_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' },
        (err, stdout, stderr) => {
          if (err) reject(new GitError(firstLine(stderr) || describeError(err), stderr));
          else resolvePromise(stdout);
        },
      );
    });
  }

  async init(): Promise<void> {
    try {
      await access(join(this.mirror, 'HEAD'));
    } catch {
      await this.git(['init', '--bare', '--quiet', this.mirror]);
    }
    await this.git(['--git-dir', this.mirror, 'worktree', 'prune']).catch(() => undefined);
  }

  async update(): Promise<void> {
    await this.git(['--git-dir', this.mirror, 'fetch', '--quiet', '--prune', '--force', '--no-tags', '--', this.remote, '+refs/heads/*:refs/heads/*', '+refs/tags/*:refs/tags/*']);
  }

  async resolveCommit(ref: string): Promise<string | undefined> {
    try {
      return (await this.git(['--git-dir', this.mirror, 'rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`])).trim();
    } catch {
      return undefined;
    }
  }

  async hasCommit(sha: string): Promise<boolean> {
    try {
      await this.git(['--git-dir', this.mirror, 'cat-file', '-e', `${sha}^{commit}`]);
      return true;
    } catch {
      return false;
    }
  }

  async isAncestor(ancestor: string, descendant: string): Promise<boolean> {
    return this.git(['--git-dir', this.mirror, 'merge-base', '--is-ancestor', ancestor, descendant]).then(
      () => true,
      () => false,
    );
  }

  async checkout(sha: string, dest: string): Promise<void> {
    await this.git(['--git-dir', this.mirror, 'worktree', 'add', '--detach', '--force', '--quiet', dest, sha]);
  }

  async release(dest: string): Promise<void> {
    await this.git(['--git-dir', this.mirror, 'worktree', 'remove', '--force', dest]).catch(() => undefined);
    await rm(dest, { recursive: true, force: true });
  }

  /**
   * Accepts only commits carrying an SSH signature that verifies against the allowed signers.
   * The signature's kind is checked first: git would hand an OpenPGP signature to gpg and its
   * keyring, whatever `gpg.format` says.
   */
  async verifySshSignature(sha: string, file: string): Promise<string | undefined> {
    let raw: string;
    try {
      raw = await this.git(['--git-dir', this.mirror, 'cat-file', 'commit', sha]);
    } catch (err) {
      return `cannot read commit ${sha.slice(0, 12)}: ${(err as Error).message}`;
    }
    const header = raw.slice(0, raw.indexOf('\n\n') >= 0 ? raw.indexOf('\n\n') : raw.length);
    const sig = /^gpgsig(?:-sha256)? (.*)$/m.exec(header);
    if (!sig) return `commit ${sha.slice(0, 12)} is not signed (signatures are required by ${file})`;
    if (sig[1]!.trim() !== '-----BEGIN SSH SIGNATURE-----') return `commit ${sha.slice(0, 12)} is not signed with an SSH key (only SSH signatures are accepted)`;
    try {
      await this.git(['--git-dir', this.mirror, '-c', 'gpg.format=ssh', '-c', `gpg.ssh.allowedSignersFile=${file}`, '-c', 'gpg.ssh.program=ssh-keygen', 'verify-commit', sha]);
      return undefined;
    } catch (err) {
      const detail = (err as GitError).stderr ? firstLine((err as GitError).stderr.replace(/^Good "git" signature.*$/m, '')) : (err as Error).message;
      return `commit ${sha.slice(0, 12)} is not signed by a key in ${file}${detail ? ` (${detail})` : ''}`;
    }
  }
}

/** Whether a program could be started: undefined when it could, else why not. */
type ProbeResult = undefined | { missing: boolean; detail: string };
const probes = new Map<string, Promise<ProbeResult>>();

/**
 * Starts `program args` once per program and PATH (the answer is cached for the process); any
 * exit status counts as started. Lookup uses `env.PATH`, as the later runs do.
 */
function probe(program: string, args: string[], env: NodeJS.ProcessEnv): Promise<ProbeResult> {
  const key = `${program}\0${env.PATH ?? ''}\0${env.Path ?? ''}`;
  let result = probes.get(key);
  if (!result) {
    result = new Promise((resolvePromise) => {
      execFile(program, args, { env, timeout: 10_000, windowsHide: true }, (err) => {
        const code = (err as NodeJS.ErrnoException | null)?.code;
        if (!err || typeof code === 'number' || (err as { killed?: boolean }).killed) resolvePromise(undefined);
        else resolvePromise({ missing: code === 'ENOENT', detail: describeError(err) });
      }).stdin?.end();
    });
    probes.set(key, result);
  }
  return result;
}

/**
 * A policy kept in sync with a config repo. Emits `change` (new policy, previous) after a swap
 * and `refused` (commit, problems) when a commit is not taken.
 */
export class PolicyRepo extends EventEmitter {
  private policy: Policy | undefined;
  private readonly remote: string;
  private readonly log: Logger;
  private readonly gitEnv: NodeJS.ProcessEnv;
  /** Undefined when secrets are not checked (the CLI). */
  private readonly allowedSecrets: readonly SecretPattern[] | undefined;
  /** Commits refused, with when: not retried (nor logged again) for REFUSAL_RETRY_MS. */
  private readonly refused = new Map<string, { error: string; at: number }>();
  private readonly shown: string;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<RefreshResult> | undefined;
  private stopped = false;
  private last: RefreshResult | undefined;
  private refusedLast: RefusedCommit | undefined;
  /** Set by {@link PolicyRepo.open} before the first pull. */
  private backend!: PolicyGit;

  private constructor(private readonly options: PolicyRepoOptions) {
    super();
    this.remote = options.url ?? resolve(options.path!);
    this.shown = displayRemote(this.remote);
    this.log = (options.log ?? silentLogger).child({ component: 'policy' });
    const env: NodeJS.ProcessEnv = { ...(options.env ?? process.env), GIT_TERMINAL_PROMPT: '0', GCM_INTERACTIVE: 'never', LC_ALL: 'C' };
    for (const k of GIT_ENV_DROP) delete env[k];
    this.gitEnv = env;
    this.allowedSecrets = options.checkSecrets === false ? undefined : parseSecretPatterns(options.allowedSecrets ?? []);
  }

  /**
   * Fetches the repo, loads the commit `ref` points to and returns a repo with that policy in
   * force. When that commit is refused (or the remote is unreachable) the last commit accepted
   * in `workDir` is used instead, if there is one.
   *
   * @throws HoopError USAGE for bad options; CONFIG_INVALID when no acceptable policy exists.
   */
  static async open(options: PolicyRepoOptions): Promise<PolicyRepo> {
    if ((options.url === undefined) === (options.path === undefined)) {
      throw new HoopError(ErrorCode.USAGE, 'give the policy repo as a URL or as a path (one of them)');
    }
    const remote = options.url ?? options.path!;
    const rp = remoteProblem(remote);
    if (rp) throw new HoopError(ErrorCode.USAGE, `policy repo ${JSON.stringify(displayRemote(remote))}: ${rp}`);
    const refp = refProblem(options.ref);
    if (refp) throw new HoopError(ErrorCode.USAGE, `policy ref ${JSON.stringify(options.ref)}: ${refp}`);
    if (options.allowedSignersFile !== undefined) {
      try {
        await access(options.allowedSignersFile);
      } catch {
        throw new HoopError(ErrorCode.CONFIG_INVALID, `allowed signers file ${options.allowedSignersFile} cannot be read`, {
          hint: 'give a file in ssh-keygen ALLOWED SIGNERS format (principal namespaces="git" key)',
        });
      }
    }
    const repo = new PolicyRepo({ ...options, workDir: resolve(options.workDir), ...(options.allowedSignersFile ? { allowedSignersFile: resolve(options.allowedSignersFile) } : {}) });
    repo.backend = await repo.chooseBackend();
    await repo.init();
    const result = await repo.refresh();
    if (!repo.policy) await repo.fallback();
    if (!repo.policy) {
      throw new HoopError(ErrorCode.CONFIG_INVALID, `no acceptable policy at ${options.ref} of ${displayRemote(remote)}: ${result.error ?? 'unknown error'}`, {
        hint: `fix the policy repo (see the problems above), or check the ref${options.checkSecrets === false ? ' and the allowed signers' : ', the allowed signers and the allowed secrets'}`,
      });
    }
    return repo;
  }

  /** The policy in force, with its `commit`. */
  current(): Policy {
    return this.policy!;
  }

  /** The commit in force. */
  get commit(): string {
    return this.policy!.commit!;
  }

  /** The outcome of the latest pull (at open: says why the head was refused when a fallback is in force). */
  lastRefresh(): RefreshResult | undefined {
    return this.last;
  }

  /** The newest commit refused since it opened (one the policy in force replaced later is still told). */
  lastRefused(): RefusedCommit | undefined {
    return this.refusedLast;
  }

  /** How the repo is read: the git CLI, or isomorphic-git (no git on this host). */
  get backendKind(): 'cli' | 'js' {
    return this.backend.kind;
  }

  /** Pulls every `pullIntervalMs` until {@link PolicyRepo.stop}. */
  start(): void {
    if (this.timer || this.stopped) return;
    const every = this.options.pullIntervalMs ?? DEFAULT_PULL_INTERVAL_MS;
    const tick = (): void => {
      this.timer = setTimeout(() => {
        void this.refresh().finally(() => {
          if (!this.stopped) tick();
        });
      }, every);
      this.timer.unref();
    };
    tick();
  }

  /** Stops pulling and waits for a pull in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }

  /**
   * Fetches, resolves the ref and, when it points to a new commit, verifies, loads and swaps it
   * in. Never throws: failures are in the result (and logged); the policy in force stays.
   * Concurrent calls share one pull.
   */
  refresh(): Promise<RefreshResult> {
    if (!this.running) {
      this.running = this.pull()
        .then((result) => (this.last = result))
        .finally(() => {
          this.running = undefined;
        });
    }
    return this.running;
  }

  /**
   * The backend for this host and remote: the git CLI when `git` runs (and, with allowed
   * signers, `ssh-keygen` too); else isomorphic-git for a local repo without allowed signers.
   *
   * @throws HoopError CONFIG_INVALID when neither can serve (no git and a remote URL, or allowed signers).
   */
  private async chooseBackend(): Promise<PolicyGit> {
    const { backend = 'auto', allowedSignersFile, workDir } = this.options;
    const program = this.options.git ?? 'git';
    const cli = (): PolicyGit => new CliPolicyGit(program, workDir, this.remote, this.gitEnv);
    if (backend === 'cli') return cli();
    const noGit = backend === 'js' ? undefined : await probe(program, ['--version'], this.gitEnv);
    if (backend === 'auto' && noGit === undefined) {
      if (allowedSignersFile !== undefined) {
        const noKeygen = await probe('ssh-keygen', ['-?'], this.gitEnv);
        if (noKeygen) {
          throw new HoopError(
            ErrorCode.CONFIG_INVALID,
            `allowed signers are set (${allowedSignersFile}), but verifying signed commits needs the ssh-keygen program, which ${noKeygen.missing ? 'was not found on PATH' : `could not be run (${noKeygen.detail})`}`,
            {
              hint: 'install OpenSSH (ssh-keygen) on this host; unsigned commits are never accepted while allowed signers are set',
            },
          );
        }
      }
      return cli();
    }
    const why =
      backend === 'js'
        ? 'the JS backend was chosen'
        : noGit!.missing
          ? `${program === 'git' ? 'git was not found on PATH' : `git (${program}) was not found`}`
          : `git (${program}) could not be run: ${noGit!.detail}`;
    if (allowedSignersFile !== undefined) {
      throw new HoopError(ErrorCode.CONFIG_INVALID, `allowed signers are set (${allowedSignersFile}), but verifying signed commits needs the git and ssh-keygen programs, and ${why}`, {
        hint: 'install git and OpenSSH (ssh-keygen) on this host; unsigned commits are never accepted while allowed signers are set',
      });
    }
    const local = localRepoPath(this.remote, workDir);
    if (local === undefined) {
      throw new HoopError(
        ErrorCode.CONFIG_INVALID,
        `fetching ${this.shown} needs the git program, which ${noGit?.missing === false ? `could not be run (${noGit.detail})` : 'was not found on PATH'}`,
        {
          hint: 'install git on this host, or give the policy repo as a local path',
        },
      );
    }
    if (backend === 'auto') this.log.info('policy.git_missing', { remote: this.shown, message: `${why}: reading the local repo without it (isomorphic-git)` });
    return new JsPolicyGit(local);
  }

  private async init(): Promise<void> {
    await mkdir(this.options.workDir, { recursive: true });
    await rm(join(this.options.workDir, 'trees'), { recursive: true, force: true });
    await this.backend.init();
  }

  private async pull(): Promise<RefreshResult> {
    const commit = this.policy?.commit;
    try {
      await this.backend.update();
    } catch (err) {
      const error = `cannot ${this.backend.kind === 'cli' ? 'fetch' : 'read'} ${this.shown}: ${displayRemote((err as Error).message)}`;
      this.log.warn('policy.fetch_failed', { remote: this.shown, error });
      return { changed: false, commit, error };
    }
    let candidate: string | undefined;
    try {
      candidate = await this.backend.resolveCommit(this.options.ref);
    } catch (err) {
      const error = `cannot resolve ref ${this.options.ref} in ${this.shown}: ${displayRemote(describeError(err))}`;
      this.log.warn('policy.ref_unreadable', { remote: this.shown, ref: this.options.ref, error });
      return { changed: false, commit, error };
    }
    if (candidate === undefined) {
      const error = `ref ${this.options.ref} not found in ${this.shown}`;
      this.log.warn('policy.ref_missing', { remote: this.shown, ref: this.options.ref });
      return { changed: false, commit, error };
    }
    if (candidate === commit) {
      // A connection that lacked a secret file or CA file may have it now: the same commit is loaded again to see.
      const lacking = this.policy?.connections.some((c) => c.unavailable);
      const again = lacking ? await this.accept(candidate, { onlyIfAvailabilityChanged: true }) : undefined;
      return { changed: again !== undefined && 'ok' in again && again.swapped, commit, candidate };
    }
    const known = this.refused.get(candidate);
    if (known !== undefined && realClock.now() - known.at < REFUSAL_RETRY_MS) return { changed: false, commit, candidate, error: known.error };
    this.refused.delete(candidate);
    const outcome = await this.accept(candidate);
    if ('error' in outcome) {
      this.refused.set(candidate, { error: outcome.error, at: realClock.now() });
      if (this.refused.size > 100) this.refused.delete(this.refused.keys().next().value!);
      return { changed: false, commit, candidate, error: outcome.error };
    }
    return { changed: true, commit: candidate, candidate };
  }

  /**
   * Verifies and loads `sha`; on success swaps it in (with `onlyIfAvailabilityChanged`, the commit in
   * force loaded again: only when which of its connections are unavailable changed).
   */
  private async accept(sha: string, o: { onlyIfAvailabilityChanged?: boolean } = {}): Promise<{ ok: true; swapped: boolean } | { error: string }> {
    const refuse = (error: string, problems: string[] = [error]): { error: string } => {
      this.log.warn('policy.refused', { commit: sha, ref: this.options.ref, kept: this.policy?.commit ?? null, errors: problems });
      this.refusedLast = { commit: sha, at: new Date(realClock.now()), problems };
      this.emit('refused', sha, problems);
      return { error };
    };
    if (!SHA.test(sha)) return refuse(`git answered ${JSON.stringify(sha.slice(0, 80))} for the ref, not a commit id`);
    if (this.options.allowedSignersFile) {
      // chooseBackend never picks a backend that cannot verify when signers are set; fail closed anyway.
      const problem = this.backend.verifySshSignature
        ? await this.backend.verifySshSignature(sha, this.options.allowedSignersFile)
        : `commit ${sha.slice(0, 12)} cannot be verified without the git program`;
      if (problem) return refuse(problem);
    }
    const back = await this.rewound(sha);
    if (back !== undefined) return refuse(back);
    const tree = join(this.options.workDir, 'trees', `${sha.slice(0, 12)}-${randomBytes(4).toString('hex')}`);
    let policy: Policy;
    try {
      await mkdir(join(this.options.workDir, 'trees'), { recursive: true });
      await this.backend.checkout(sha, tree);
      policy =
        this.allowedSecrets === undefined
          ? await loadPolicyDir(tree)
          : await loadPolicyDir(tree, this.options.resolveSecrets === false ? undefined : this.gitEnv, { allowedSecrets: this.allowedSecrets, allowedCommands: this.options.allowedCommands ?? [] });
    } catch (err) {
      if (err instanceof PolicyInvalidError) return refuse(`commit ${sha.slice(0, 12)} has an invalid policy:\n${err.problems.map((p) => `  ${p}`).join('\n')}`, err.problems);
      return refuse(`commit ${sha.slice(0, 12)} cannot be loaded: ${describeError(err)}`);
    } finally {
      await this.backend.release(tree).catch(() => undefined);
      await rm(tree, { recursive: true, force: true });
    }
    policy.commit = sha;
    const previous = this.policy;
    const unavailable = (p: Policy | undefined): string => JSON.stringify(p?.connections.map((c) => c.unavailable ?? null));
    if (o.onlyIfAvailabilityChanged && unavailable(previous) === unavailable(policy)) return { ok: true, swapped: false };
    this.policy = policy;
    await this.remember(sha);
    this.log.info('policy.loaded', { commit: sha, ref: this.options.ref, previous: previous?.commit ?? null });
    this.emit('change', policy, previous);
    return { ok: true, swapped: true };
  }

  /**
   * Why `sha` may not replace the commit in force (or, at start, the one last accepted): signed policy only moves forward,
   * so with allowed signers a commit that does not descend from it is refused; without them it is taken, with a warning.
   */
  private async rewound(sha: string): Promise<string | undefined> {
    const held = this.policy?.commit ?? (await this.lastAccepted());
    if (held === undefined || (await this.backend.isAncestor(held, sha))) return undefined;
    const was = `${held.slice(0, 12)}, ${this.policy ? 'in force' : 'the last accepted'}`;
    if (this.options.allowedSignersFile) return `commit ${sha.slice(0, 12)} does not descend from ${was}; a rollback is a new signed commit that reverts`;
    this.log.warn('policy.rewound', {
      commit: sha,
      ref: this.options.ref,
      previous: held,
      message: `commit ${sha.slice(0, 12)} does not descend from ${was}: the ref was moved back or its history rewritten`,
    });
    return undefined;
  }

  private async remember(sha: string): Promise<void> {
    const file = join(this.options.workDir, 'accepted.json');
    const tmp = `${file}.${randomBytes(4).toString('hex')}`;
    try {
      await writeFile(tmp, `${JSON.stringify({ remote: this.shown, ref: this.options.ref, commit: sha, acceptedAt: new Date(realClock.now()).toISOString() })}\n`);
      await rename(tmp, file);
    } catch (err) {
      this.log.warn('policy.state_unwritable', { file, error: describeError(err) });
      await rm(tmp, { force: true });
    }
  }

  /** The commit `accepted.json` says was last accepted from this remote and ref, if any. */
  private async lastAccepted(): Promise<string | undefined> {
    let state: { remote?: unknown; ref?: unknown; commit?: unknown };
    try {
      state = JSON.parse(await readFile(join(this.options.workDir, 'accepted.json'), 'utf8')) as typeof state;
    } catch {
      return undefined;
    }
    if (state.remote !== this.shown || state.ref !== this.options.ref || typeof state.commit !== 'string' || !SHA.test(state.commit)) return undefined;
    return state.commit;
  }

  /** Loads the last accepted commit of this remote and ref, if the mirror (or, JS backend, the repo) still has it. */
  private async fallback(): Promise<void> {
    const commit = await this.lastAccepted();
    if (commit === undefined || !(await this.backend.hasCommit(commit))) return;
    this.log.warn('policy.fallback', { commit, ref: this.options.ref });
    await this.accept(commit);
  }
}

/**
 * `text` (a remote, or a message holding URLs) with the user-info of every `scheme://…@host` URL
 * replaced by `***`, for logs and messages: a token is as often the user name (`https://<token>@
 * github.com/…`) as the password, and a password may hold an `@`.
 *
 * @see https://www.rfc-editor.org/rfc/rfc3986#section-3.2.1 (userinfo; passwords in URIs are deprecated)
 */
export function displayRemote(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/\s]*@/gi, '$1***@');
}

/**
 * The CLI's own copy of a config repo: `<configDir>/policy/<hash of the remote>`.
 */
export function cliPolicyWorkDir(configDir: string, remote: string): string {
  return join(configDir, 'policy', createHash('sha256').update(remote).digest('hex').slice(0, 16));
}
