/**
 * The connections a caller may use: `GET /v1/connections` and `GET /v1/connections/{name}` (with a
 * policy repo: what its access rules and the caller's grants admit, each with its `mode` and, for
 * a temporary grant, `until`; an SSH connection with the gateway's host keys, which `hoop connect`
 * pins; `clientRecords` when the gateway records sessions and takes the CLI's record of each), and `GET /v1/policy`: `{ commit, loadedAt }` of the policy in force.
 */
import type { ConnectionConfig } from '../../config/connection.js';
import type { Identity } from '../../identity.js';
import type { ConnectionInfo, MaskingInfo, PolicyStatus } from '../../api/answers.js';
import { displayRemote } from '../../policy/repo.js';
import { maskingFor, principalOf } from '../../policy/principal.js';
import type { Policy } from '../../policy/schema.js';
import type { AccessGrant } from '../../policy/access.js';
import { hasMaskingRules } from '../config/policy-source.js';
import { mayUse } from '../identity/access.js';
import type { Callers } from '../sessions/callers.js';
import { HttpError } from '../http/http-error.js';
import { cancelBody } from '../../api/bodies.js';
import { sessionOwnerOf } from '../../session/owner.js';
import { checkBody } from '../http/respond.js';
import type { GatewayParts } from '../parts/parts.js';

/** The connection endpoints; `sshHostKey`: this replica's, when there are no others. */
export function connectionsApi(parts: GatewayParts, callers: Callers, sshHostKey: string) {
  const { policySource, reviews, replica, config, recordings, clientRecords, cancels, log } = parts;
  // A PostgreSQL connection's database is the first the caller's access allows: the one its sessions get when the client names none.
  const describe = async (c: ConnectionConfig, grant?: Pick<AccessGrant, 'mode' | 'until' | 'databaseAccess'>): Promise<ConnectionInfo> => ({
    name: c.name,
    type: c.type,
    ...(c.type === 'postgres' ? { database: grant?.databaseAccess?.databases[0] ?? c.database } : c.type === 'mysql' ? { database: c.database } : c.type === 'ssh' ? { user: c.user } : {}),
    ...(grant ? { mode: grant.mode } : {}),
    ...(grant?.until !== undefined ? { until: new Date(grant.until).toISOString() } : {}),
    ...(c.type === 'ssh' ? { hostKeys: replica ? await replica.sshHostKeys() : [sshHostKey] } : {}),
    ...(c.type === 'http' ? { url: c.url } : {}),
    ...(recordings && clientRecords ? { clientRecords: true as const } : {}),
    ...(c.unavailable ? { unavailable: UNAVAILABLE_FOR_USERS } : {}),
  });
  return {
    /** `GET /v1/connections` */
    async list(identity: Identity): Promise<{ connections: ConnectionInfo[] }> {
      if (!policySource) return { connections: await Promise.all(config.connections.filter((c) => mayUse(identity, c)).map((c) => describe(c))) };
      return { connections: await Promise.all(policySource.connectionsFor(identity, reviews.grantsOf(identity)).map(({ connection, grant }) => describe(connection, grant))) };
    },
    /** `GET /v1/connections/{name}`: with a SQL connection, the masking the caller's sessions get. */
    async one(identity: Identity, name: string): Promise<ConnectionInfo> {
      if (!policySource) return describe(callers.lookup(identity, name));
      const { connection, grant } = policySource.lookup(identity, name, reviews.grantsOf(identity));
      const masking = connection.type !== 'ssh' ? maskingInfo(policySource.current().policy.masking, identity) : undefined;
      return { ...(await describe(connection, grant)), ...(masking ? { masking } : {}) };
    },
    /**
     * `POST /v1/connections/{name}/cancel`: a client's CancelRequest, as `hoop connect` hands it on
     * with no session of its own; honoured when the key is one of the caller's live sessions (here
     * or on another replica), which then records it. Answers what became of it, as PostgreSQL does
     * not.
     */
    async cancel(identity: Identity, name: string, body: unknown): Promise<{ outcome: string }> {
      const key = checkBody(cancelBody, body);
      if (policySource) policySource.lookup(identity, name, reviews.grantsOf(identity));
      else callers.lookup(identity, name);
      const outcome = await cancels.cancel(key, sessionOwnerOf(identity, name));
      log.info('cancel.request', { subject: identity.subject, connection: name, processId: key.processId, outcome });
      return { outcome };
    },
    /**
     * `GET /v1/policy` (not to a run's credential): what connections lack, for an auditor; for anyone
     * else only which of the connections they may use are unavailable, not what they lack.
     */
    policy(identity: Identity): PolicyStatus {
      if (!policySource || !config.policy) throw new HttpError(404, 'this gateway does not load its policy from a config repo');
      const { commit, loadedAt, policy } = policySource.current();
      const refused = policySource.lastRefused();
      const auditor = callers.isAuditor(identity);
      const theirs = new Set(policySource.connectionsFor(identity, reviews.grantsOf(identity)).map((c) => c.connection.name));
      return {
        commit,
        loadedAt: loadedAt.toISOString(),
        repo: displayRemote(config.policy.repo),
        ref: config.policy.ref,
        allowedSecrets: config.policy.allowedSecrets,
        signedCommitsOnly: config.policy.allowedSignersFile !== undefined,
        unavailable: policy.connections.flatMap((c) => (!c.unavailable || !(auditor || theirs.has(c.name)) ? [] : [{ connection: c.name, lacks: auditor ? c.unavailable : [UNAVAILABLE_FOR_USERS] }])),
        ...(refused ? { refused: { commit: refused.commit, at: refused.at.toISOString(), problems: refused.problems } } : {}),
      };
    },
  };
}

/** What a user is told of a connection the gateway cannot open (what it lacks, its secret's name or a file's path, is an operator's to see). */
export const UNAVAILABLE_FOR_USERS = "the gateway lacks a secret or file this connection needs (an auditor sees which in hoop policy status; the gateway's log names it)";

/** The masking rules `identity`'s sessions get (its principal's entries), without the key; undefined when there are none. */
function maskingInfo(m: Policy['masking'], identity: Identity): MaskingInfo | undefined {
  const mine = maskingFor(m, principalOf(identity));
  if (!hasMaskingRules(mine)) return undefined;
  return {
    columns: mine.columns.map(({ table, column, strategy }) => ({ table, column, strategy })),
    names: mine.names.map(({ pattern, strategy }) => ({ pattern, strategy })),
    detectors: mine.detectors.map(({ detector, strategy }) => ({ detector, strategy })),
    derived: mine.derived,
  };
}
