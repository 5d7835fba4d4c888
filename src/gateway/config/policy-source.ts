/**
 * The gateway's policy, loaded from the config repo named by the `policy:` block of its
 * configuration: opened at start (no valid commit, no gateway), pulled on an interval, swapped
 * atomically for new sessions while open sessions keep the commit they started with. A commit
 * whose secret references are not all admitted by `policy.allowedSecrets` is refused (none are
 * admitted by default), so the config repo cannot make the gateway send it a secret it holds.
 *
 * Per session, {@link GatewayPolicySource.forSession} decides access with the bundle's `access`
 * rules (deny by default) and builds what the engine enforces: a {@link StatementJudge}, read-only
 * upstream sessions, masking with its resolved key, and the maximum session length.
 *
 * @see docs/internals.md (§4)
 * @see https://git-scm.com/docs/git-fetch
 */
import { realClock } from '../../clock.js';
import { listNames } from '../../glob.js';
import { ErrorCode, HoopError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { accessFor, admits, type AccessGrant, type TemporaryAccess } from '../../policy/access.js';
import { judgeOptionsOf, StatementJudge } from '../../policy/decide.js';
import { sshJudgeFor, type SshJudge } from '../../policy/ssh.js';
import { mcpJudgeFor, type McpJudge } from '../../policy/mcp.js';
import { httpJudgeFor, type HttpJudge } from '../../policy/http.js';
import { PolicyRepo, type RefreshResult, type RefusedCommit } from '../../policy/repo.js';
import { looksLikeGitUrl } from '../../config/repo-path.js';
import type { DatabaseAccess } from '../../policy/database-access.js';
import type { SessionLimits } from '../../policy/limits.js';
import type { Policy, Runbook, Who } from '../../policy/schema.js';
import { runbookGrant } from '../../policy/runbooks.js';
import { loadSqlParser } from '../../policy/sql/analyze.js';
import type { ConnectionConfig } from '../../config/connection.js';
import { resolveSecret } from '../../config/secrets.js';
import type { PolicySourceConfig } from './config.js';
import type { SessionMasking } from '../../session/engine.js';
import type { Identity } from '../../identity.js';
import { principalOf } from '../../policy/principal.js';
import { maskingFor, type Principal } from '../../policy/principal.js';

/** The policy in force and when it was swapped in. */
export interface PolicySnapshot {
  policy: Policy;
  commit: string;
  loadedAt: Date;
}

/** What one session gets from the policy in force when it opened. */
export interface PolicySession {
  snapshot: PolicySnapshot;
  connection: ConnectionConfig;
  grant: AccessGrant;
  judge: StatementJudge;
  readOnly: boolean;
  masking?: SessionMasking;
  maxSessionSeconds?: number;
  /** Sessions the identity may have open at once on this gateway. */
  maxSessions: number;
  /** Server timeouts of the access (also known to the judge, which refuses raising them). */
  limits: SessionLimits;
  /** For an SSH connection: what the session may do. */
  ssh?: SshJudge;
  /** For an MCP connection: what the session may call, read and see. */
  mcp?: McpJudge;
  /** For an HTTP connection: what the session may request. */
  http?: HttpJudge;
  /** For a PostgreSQL connection: the database roles and databases the session may pick. */
  databaseAccess?: DatabaseAccess;
}

/** Options of {@link GatewayPolicySource.open}. */
export interface PolicySourceOptions {
  log: Logger;
  /** The gateway's environment: git runs with it, and the bundle's secrets resolve in it. */
  env: NodeJS.ProcessEnv;
}

/** True when a masking section has any rule (columns, names or detectors). */
export function hasMaskingRules(m: Policy['masking']): boolean {
  return m.columns.length > 0 || m.names.length > 0 || m.detectors.length > 0;
}

/** The identity as the policy sees it, with the principal of its session (by default its credential's: a run's, or the person's own). */
export function whoOf(identity: Identity, principal: Principal = principalOf(identity)): Who {
  return { subject: identity.subject, ...(identity.email !== undefined ? { email: identity.email } : {}), groups: identity.groups, principal };
}

/** A gateway's view of its config repo. */
export class GatewayPolicySource {
  #snapshot: PolicySnapshot;
  readonly #repo: PolicyRepo;
  readonly #env: NodeJS.ProcessEnv;

  private constructor(repo: PolicyRepo, options: PolicySourceOptions) {
    this.#repo = repo;
    this.#env = options.env;
    this.#snapshot = { policy: repo.current(), commit: repo.commit, loadedAt: new Date(realClock.now()) };
    const applied = (policy: Policy, previous?: Policy): void => {
      options.log.info('policy.applied', { commit: policy.commit, ...(previous ? { previous: previous.commit ?? null } : {}), connections: policy.connections.map((c) => c.name) });
      for (const c of policy.connections) if (c.unavailable) options.log.warn('policy.connection_unavailable', { commit: policy.commit, connection: c.name, lacks: c.unavailable });
    };
    applied(repo.current());
    repo.on('change', (policy: Policy, previous: Policy | undefined) => {
      this.#snapshot = { policy, commit: policy.commit!, loadedAt: new Date(realClock.now()) };
      applied(policy, previous);
    });
  }

  /**
   * Loads the SQL parser, opens the repo (fetch, verify, load) and starts pulling. Without
   * `allowedSignersFile` it logs once (warn, `policy.unsigned_accepted`) that unsigned commits are
   * applied, and how to require signatures.
   *
   * @throws HoopError CONFIG_INVALID when no acceptable commit can be loaded (one error, the reason in it).
   */
  static async open(config: PolicySourceConfig, options: PolicySourceOptions): Promise<GatewayPolicySource> {
    await loadSqlParser();
    let repo: PolicyRepo;
    try {
      repo = await PolicyRepo.open({
        ...(looksLikeGitUrl(config.repo) ? { url: config.repo } : { path: config.repo }),
        ref: config.ref,
        workDir: config.workDir,
        ...(config.allowedSignersFile !== undefined ? { allowedSignersFile: config.allowedSignersFile } : {}),
        pullIntervalMs: config.pullIntervalSeconds * 1000,
        log: options.log,
        env: options.env,
        checkSecrets: true,
        allowedSecrets: config.allowedSecrets,
        allowedCommands: config.allowedCommands,
      });
    } catch (err) {
      if (err instanceof HoopError && err.code === ErrorCode.CONFIG_INVALID) {
        throw new HoopError(ErrorCode.CONFIG_INVALID, `the gateway cannot start without a policy: ${err.message}`, err.hint === undefined ? { cause: err } : { hint: err.hint, cause: err });
      }
      throw err;
    }
    const source = new GatewayPolicySource(repo, options);
    if (config.allowedSignersFile === undefined) {
      options.log.warn('policy.unsigned_accepted', {
        ref: config.ref,
        message: `policy.allowedSigners is not set: every commit on ${config.ref} of the config repo is applied without a signature check`,
        hint: 'to accept only signed commits, set policy.allowedSigners in the gateway configuration to an allowed-signers file (lines of "<principal> <ssh public key>", see ssh-keygen(1) ALLOWED SIGNERS) and sign commits with git commit -S',
      });
    }
    repo.start();
    return source;
  }

  /** The policy in force for new sessions. */
  current(): PolicySnapshot {
    return this.#snapshot;
  }

  /** The newest commit the repo refused (since this gateway started), with why; undefined when none was. */
  lastRefused(): RefusedCommit | undefined {
    return this.#repo.lastRefused();
  }

  /** Pulls now (as the interval would); the policy in force stays when the new commit is refused. */
  refresh(): Promise<RefreshResult> {
    return this.#repo.refresh();
  }

  /** Stops pulling. */
  async close(): Promise<void> {
    await this.#repo.stop();
  }

  /** The connections of the current policy `identity` may use, with the access mode of each. */
  connectionsFor(identity: Identity, temporary: readonly TemporaryAccess[] = []): { connection: ConnectionConfig; grant: AccessGrant }[] {
    const { policy } = this.#snapshot;
    const who = whoOf(identity);
    return policy.connections.flatMap((connection) => {
      if (identity.run && !identity.run.connections.includes(connection.name)) return [];
      const grant = accessFor(policy, who, connection.name, temporary);
      return grant ? [{ connection, grant }] : [];
    });
  }

  /**
   * Access to `name` under the current policy.
   *
   * @throws HoopError CONNECTION_UNKNOWN (no such connection), ACCESS_DENIED (no access rule admits)
   */
  lookup(
    identity: Identity,
    name: string,
    temporary: readonly TemporaryAccess[] = [],
    snapshot: PolicySnapshot = this.#snapshot,
    principal: Principal = principalOf(identity),
  ): { connection: ConnectionConfig; grant: AccessGrant } {
    const connection = snapshot.policy.connections.find((c) => c.name === name);
    if (!connection) {
      throw new HoopError(ErrorCode.CONNECTION_UNKNOWN, `the gateway has no connection named "${name}"`, {
        hint: 'run `hoop connections` to list the ones you may use (or ask your administrator)',
      });
    }
    checkRunConnection(identity, name);
    const who = whoOf(identity, principal);
    const grant = accessFor(snapshot.policy, who, name, temporary);
    if (!grant) {
      const requestable = snapshot.policy.access.some((r) => r.requestable && listNames(r.connections, name) && admits(r, who));
      const as = principal.agent !== undefined ? `${identity.subject}'s agent ${principal.agent} (via ${principal.via})` : identity.subject;
      throw new HoopError(ErrorCode.ACCESS_DENIED, `${as} may not use the connection "${name}"${requestable ? ' without an approved request' : ''}`, {
        hint: requestable
          ? `ask for temporary access: hoop request ${name} --for 1h --reason "…"`
          : `ask an administrator to grant you access in the policy repo (policy commit ${snapshot.commit.slice(0, 12)})`,
      });
    }
    // Only to someone who may use it: what it lacks (a secret's name, a file's path) stays in the log.
    if (connection.unavailable) {
      throw new HoopError(ErrorCode.UPSTREAM_UNAVAILABLE, `the connection "${name}" is unavailable on this gateway: the gateway lacks a secret or file it needs`, {
        hint: `tell the gateway operator (policy commit ${snapshot.commit.slice(0, 12)}; its log says what is missing, and an auditor sees it in hoop policy status); the rest of the policy is in force`,
      });
    }
    return { connection, grant };
  }

  /**
   * Everything a new session on `name` enforces, from the policy in force now (the session keeps
   * it even when a newer commit is applied later).
   *
   * @throws HoopError CONNECTION_UNKNOWN, ACCESS_DENIED, SECRET_UNRESOLVED (the masking key)
   */
  async forSession(identity: Identity, name: string, temporary: readonly TemporaryAccess[] = [], principal: Principal = principalOf(identity)): Promise<PolicySession> {
    const snapshot = this.#snapshot;
    const { connection, grant } = this.lookup(identity, name, temporary, snapshot, principal);
    const { policy } = snapshot;
    const key = maskingFor(policy.masking, principal).key;
    const resolved = key ? await resolveSecret(key, this.#env) : undefined;
    return { snapshot, connection, grant, ...enforcedFor(policy, whoOf(identity, principal), connection, grant, resolved) };
  }

  /**
   * What a run of `runbook` (of `snapshot`, the policy a caller found it in) enforces: its own
   * grant (./../../policy/runbooks.ts, {@link runbookGrant}), which needs no access rule on its
   * connection, and the policy's statement rules and masking for `identity` as `principal`.
   *
   * @throws HoopError UPSTREAM_UNAVAILABLE when the connection lacks a secret or file on this gateway
   */
  async forRunbook(identity: Identity, runbook: Runbook, snapshot: PolicySnapshot, principal: Principal): Promise<PolicySession> {
    const { policy } = snapshot;
    const connection = policy.connections.find((c) => c.name === runbook.connection)!;
    if (connection.unavailable) {
      throw new HoopError(
        ErrorCode.UPSTREAM_UNAVAILABLE,
        `the connection "${connection.name}" of runbook ${runbook.name} is unavailable on this gateway: the gateway lacks a secret or file it needs`,
        {
          hint: `tell the gateway operator (policy commit ${snapshot.commit.slice(0, 12)}); its log says what is missing`,
        },
      );
    }
    const grant = runbookGrant(runbook);
    const key = maskingFor(policy.masking, principal).key;
    const resolved = key ? await resolveSecret(key, this.#env) : undefined;
    return { snapshot, connection, grant, ...enforcedFor(policy, whoOf(identity, principal), connection, grant, resolved, runbook.bypass) };
  }
}

/**
 * What a session of `who` on `connection` under `policy` and `grant` enforces (with the masking
 * key, resolved, when the policy hashes): its statement judge, read-only mode, masking, limits,
 * SSH judge. One function for the gateway's sessions and `hoop policy test`'s, so the two judge
 * and mask alike. A runbook's run is `exempt` from the statement rules it names (`bypass`).
 */
export function enforcedFor(
  policy: Policy,
  who: Who,
  connection: ConnectionConfig,
  grant: AccessGrant,
  maskingKey?: string,
  exempt?: readonly string[],
): Omit<PolicySession, 'snapshot' | 'connection' | 'grant'> {
  const mine = maskingFor(policy.masking, who.principal);
  const masking: SessionMasking | undefined = hasMaskingRules(mine) ? { policy: mine, ...(maskingKey !== undefined ? { key: maskingKey } : {}) } : undefined;
  return {
    judge: new StatementJudge(policy, who, connection.name, grant.mode, { ...judgeOptionsOf(grant), changedTables: connection.type === 'postgres', ...(exempt?.length ? { exempt } : {}) }),
    limits: grant.limits,
    maxSessions: grant.maxSessions,
    readOnly: grant.mode === 'read-only',
    ...(connection.type === 'ssh' ? { ssh: sshJudgeFor(policy, who, connection.name, grant.mode) } : {}),
    ...(connection.type === 'mcp' ? { mcp: mcpJudgeFor(policy, who, connection.name, grant.mode) } : {}),
    ...(connection.type === 'http' ? { http: httpJudgeFor(policy, who, connection.name, grant.mode) } : {}),
    ...(masking ? { masking } : {}),
    ...(grant.maxSessionSeconds !== undefined ? { maxSessionSeconds: grant.maxSessionSeconds } : {}),
    ...(grant.databaseAccess ? { databaseAccess: grant.databaseAccess } : {}),
  };
}

/**
 * Refuses a connection a run credential was not issued for: a run reaches the connections it named
 * when it began, and no others. @throws HoopError ACCESS_DENIED
 */
export function checkRunConnection(identity: Identity, name: string): void {
  const run = identity.run;
  if (!run || run.connections.includes(name)) return;
  throw new HoopError(ErrorCode.ACCESS_DENIED, `run ${run.id} may use only ${run.connections.map((c) => `"${c}"`).join(', ')}, not "${name}"`, {
    hint: `name every connection the command needs when the run begins: hoop run --connect ${name} …`,
  });
}
