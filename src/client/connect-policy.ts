/**
 * Early statement checks of `hoop connect`: the CLI's copy of the policy bundle (a checked-out
 * directory, or a config repo pulled as `hoop policy pull` does), the caller's identity from
 * `GET /v1/whoami`, and per tunnel the decision whether its statements are judged here first.
 *
 * The gateway stays the authority: early checks must never refuse what the gateway would allow.
 * So every tunnel's `Hoop-Policy-Commit` is compared with the local commit:
 * - equal: judged here with the local policy;
 * - different, with a config repo: pulled (at most once per distinct gateway commit every
 *   {@link PULL_AGAIN_MS}) and judged here when the pull reaches the gateway's commit;
 * - still different (or a `--policy-dir` at another commit): no early checks for that session,
 *   said once per distinct gateway commit; they come back when a later tunnel's commit matches;
 * - a `--policy-dir` that is not a clean git work tree (no commit): judged here with the working
 *   tree anyway, said once per distinct gateway commit. A working tree is what a policy author
 *   tests with, so it is not second-guessed; the gateway still decides.
 *
 * When `/v1/whoami` fails (an older gateway, a network hiccup) early checks are off, said once.
 *
 * @see docs/internals.md (§2)
 */
import { realClock } from '../clock.js';
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { getWhoAmI } from '../api-client/identity.js';
import type { GatewayEndpoint } from '../api-client/request.js';
import { configDir } from '../auth/paths.js';
import { ErrorCode, HoopError, describeError } from '../errors.js';
import { checkTreeDir } from '../tree-file.js';
import { treePlaces } from '../agent/sandbox.js';
import { loadStatementGate, StatementGate, type Refusal } from '../postgres/pipeline/statement-gate.js';
import type { CliIo } from '../io.js';
import type { Logger } from '../log.js';
import { accessFor } from '../policy/access.js';
import { judgeOptionsOf, StatementJudge } from '../policy/decide.js';
import { loadPolicyDir } from '../policy/load.js';
import { PolicyRepo, cliPolicyWorkDir, displayRemote } from '../policy/repo.js';
import { looksLikeGitUrl } from '../config/repo-path.js';
import type { Policy, Who } from '../policy/schema.js';
import { loadSqlParser, type Analysis } from '../policy/sql/analyze.js';
import type { OpenedTunnel } from '../tunnel/transport.js';
import type { StatementVerdict } from '../session/engine.js';

/** A gateway commit already pulled for is pulled for again only after this long. */
export const PULL_AGAIN_MS = 30_000;

/** The options of `hoop connect` that name the CLI's policy bundle. */
export interface LocalPolicyOptions {
  policyDir?: string;
  policyRepo?: string;
  policyRef?: string;
  policyAllowedSigners?: string;
}

/** The CLI's policy bundle and where it came from. */
interface LocalPolicy {
  current(): { policy: Policy; commit: string | undefined };
  /** Set when the bundle was pulled from a config repo (it can be pulled again). */
  repo?: PolicyRepo;
  /** For messages (passwords of URLs masked). */
  source: string;
}

/** The commit of a clean git work tree at `dir` (undefined when it is not one, or has changes). */
async function cleanCommit(dir: string): Promise<string | undefined> {
  const run = promisify(execFile);
  try {
    const opts = { cwd: dir, timeout: 10_000, env: { PATH: process.env.PATH ?? '' } };
    const [{ stdout: head }, { stdout: status }] = await Promise.all([run('git', ['rev-parse', 'HEAD'], opts), run('git', ['status', '--porcelain'], opts)]);
    return status.trim() === '' ? head.trim() : undefined;
  } catch {
    return undefined;
  }
}

async function loadLocalPolicy(io: CliIo, opts: LocalPolicyOptions, log: Logger): Promise<LocalPolicy | undefined> {
  if (opts.policyDir !== undefined && opts.policyRepo !== undefined) throw new HoopError(ErrorCode.USAGE, 'give --policy-dir or --policy-repo, not both');
  if (opts.policyDir !== undefined) {
    const dir = await checkTreeDir(opts.policyDir, treePlaces(io.env, io.cwd));
    const policy = await loadPolicyDir(dir);
    const fixed = { policy, commit: policy.commit ?? (await cleanCommit(dir)) };
    return { current: () => fixed, source: dir };
  }
  const repo = opts.policyRepo ?? io.env.HOOP_POLICY_REPO?.trim();
  if (!repo) return undefined;
  const isUrl = looksLikeGitUrl(repo);
  const remote = isUrl ? repo : resolve(io.cwd, repo);
  const signers = opts.policyAllowedSigners ?? io.env.HOOP_POLICY_ALLOWED_SIGNERS?.trim();
  const pr = await PolicyRepo.open({
    ...(isUrl ? { url: remote } : { path: remote }),
    ref: opts.policyRef ?? (io.env.HOOP_POLICY_REF?.trim() || 'main'),
    workDir: cliPolicyWorkDir(configDir(io.env, io.cwd), remote),
    ...(signers ? { allowedSignersFile: resolve(io.cwd, signers) } : {}),
    log,
    env: io.env,
    checkSecrets: false,
  });
  return { current: () => ({ policy: pr.current(), commit: pr.commit }), repo: pr, source: displayRemote(repo) };
}

/** What {@link EarlyChecks.start} needs. */
export interface EarlyChecksOptions {
  io: CliIo;
  options: LocalPolicyOptions;
  log: Logger;
  endpoint: GatewayEndpoint;
  token: () => Promise<string>;
  /** The connection `hoop connect` serves. */
  connection: string;
  /** Prints one `hoop: ...` line on stderr. */
  say: (line: string) => void;
}

/** Per tunnel, whether and with which policy statements are judged before they leave the machine. */
export class EarlyChecks {
  readonly #local: LocalPolicy;
  readonly #who: Who;
  readonly #connection: string;
  readonly #log: Logger;
  readonly #say: (line: string) => void;
  /** The policy each tunnel's statements are judged with (absent: the gateway's checks only). */
  readonly #decided = new WeakMap<OpenedTunnel, Policy>();
  /** Per gateway commit: when the repo was last pulled for it, and that pull. */
  readonly #pulls = new Map<string, { at: number; done: Promise<unknown> }>();
  /** Gateway commits already announced (a commit, or '' for none). */
  readonly #told = new Set<string>();
  #off = false;

  private constructor(local: LocalPolicy, who: Who, o: EarlyChecksOptions) {
    this.#local = local;
    this.#who = who;
    this.#connection = o.connection;
    this.#log = o.log;
    this.#say = o.say;
  }

  /**
   * Loads the bundle named by the options and asks the gateway who the caller is. Undefined when
   * no bundle is named, or when `/v1/whoami` fails (said once: early checks are off).
   *
   * @throws HoopError when the named bundle cannot be loaded (USAGE, CONFIG_INVALID, ...)
   */
  static async start(o: EarlyChecksOptions): Promise<EarlyChecks | undefined> {
    const local = await loadLocalPolicy(o.io, o.options, o.log);
    if (!local) return undefined;
    await Promise.all([loadSqlParser(), loadStatementGate()]);
    let who: Who;
    try {
      const me = await getWhoAmI(o.endpoint, await o.token());
      who = { subject: me.subject, groups: me.groups, ...(me.email !== undefined ? { email: me.email.toLowerCase() } : {}) };
    } catch (err) {
      o.say(`cannot ask the gateway who you are (${err instanceof Error ? err.message : String(err)}); statements are judged by the gateway only`);
      return undefined;
    }
    const checks = new EarlyChecks(local, who, o);
    if (!accessFor(local.current().policy, who, o.connection)) {
      o.say(`the policy of ${local.source} grants ${who.subject} no access to "${o.connection}"; statements are judged by the gateway only`);
    }
    return checks;
  }

  /** Decides, for a tunnel just opened, whether its statements are judged here. Never throws. */
  async admit(tunnel: OpenedTunnel): Promise<void> {
    try {
      const policy = await this.#decide(tunnel.policyCommit);
      if (policy) this.#decided.set(tunnel, policy);
    } catch (err) {
      this.#log.warn('early-checks.failed', { error: describeError(err) });
    }
  }

  /** The gate for a session on an admitted tunnel; undefined: the gateway's checks only. */
  gate(session: string, tunnel: OpenedTunnel, onRefusal?: (r: Refusal) => void): StatementGate | undefined {
    const policy = this.#decided.get(tunnel);
    const grant = policy && accessFor(policy, this.#who, this.#connection);
    if (!policy || !grant) return undefined;
    const local = new StatementJudge(policy, this.#who, this.#connection, grant.mode, judgeOptionsOf(grant));
    // A statement a review rule holds goes on: the gateway holds it and asks the reviewers.
    const judge = {
      judge: (sql: string, analysis?: Analysis): StatementVerdict => {
        const v = local.judge(sql, analysis);
        return v.action === 'review' ? { ...v, action: 'allow' } : v;
      },
    };
    return new StatementGate(judge, {
      connection: this.#connection,
      onRefusal: (r) => {
        this.#log.info('statement.refused', { session, rule: r.rule, action: r.action, message: r.message });
        onRefusal?.(r);
      },
    });
  }

  async #decide(gateway: string | undefined): Promise<Policy | undefined> {
    let { policy, commit } = this.#local.current();
    if (gateway === commit) return this.#on(policy, commit);
    const repo = this.#local.repo;
    if (repo && gateway !== undefined) {
      await this.#pullFor(gateway, repo);
      ({ policy, commit } = this.#local.current());
      if (gateway === commit) return this.#on(policy, commit);
    }
    const theirs = gateway !== undefined ? `commit ${gateway}` : 'no policy commit';
    const first = !this.#told.has(gateway ?? '');
    if (first) {
      this.#told.add(gateway ?? '');
      if (this.#told.size > 100) this.#told.delete(this.#told.values().next().value!);
    }
    if (commit === undefined) {
      if (first) this.#say(`early statement checks use the working tree of ${this.#local.source} while the gateway uses ${theirs}; the gateway still decides`);
      return policy;
    }
    this.#off = true;
    if (first) this.#say(`the gateway uses ${theirs} but early statement checks have commit ${commit} of ${this.#local.source}; statements are now judged by the gateway only`);
    return undefined;
  }

  #on(policy: Policy, commit: string | undefined): Policy {
    if (this.#off) {
      this.#off = false;
      this.#say(`statements are judged here first again: early checks and the gateway both use commit ${commit ?? 'unknown'}`);
    }
    return policy;
  }

  /** Pulls for `gateway` unless that was done less than {@link PULL_AGAIN_MS} ago; waits for a pull in progress. */
  async #pullFor(gateway: string, repo: PolicyRepo): Promise<void> {
    const last = this.#pulls.get(gateway);
    if (last && realClock.now() - last.at < PULL_AGAIN_MS) {
      await last.done;
      return;
    }
    const done = repo.refresh().catch(() => undefined);
    this.#pulls.delete(gateway);
    this.#pulls.set(gateway, { at: realClock.now(), done });
    if (this.#pulls.size > 100) this.#pulls.delete(this.#pulls.keys().next().value!);
    await done;
  }
}
