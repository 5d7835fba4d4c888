/**
 * Who is calling the gateway and what they may reach, for the API and the tunnel endpoint alike:
 * a bearer token verified (an issuer's token, or a run credential this gateway issued), the
 * connections without a policy repo (the configuration's `allow` lists), and whether a caller
 * audits every session.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750 (bearer tokens)
 */
import type { ConnectionConfig } from '../../config/connection.js';
import { ErrorCode, HoopError } from '../../errors.js';
import type { Identity } from '../../identity.js';
import { mayUse } from '../identity/access.js';
import type { AuthRefusals, RefusedAt } from '../identity/auth-refusals.js';
import type { GatewayParts } from '../parts/parts.js';
import { checkRunConnection } from '../config/policy-source.js';
import { isRunToken } from '../runs/runs.js';
import type { SessionSummary } from '../../api/answers.js';
import { TokenRejectedError, TokenVerifier } from '../identity/verify-token.js';

/** What the API areas and the session admission share. */
export interface Callers {
  /**
   * Who a bearer token (the Authorization header) stands for; a refusal is put on record
   * (`auth.refused`, ../identity/auth-refusals.ts) with `from`: the caller's address and where it called.
   * @throws TokenRejectedError
   */
  authenticate(authorization: string | undefined, from: { remote: string; at: RefusedAt; path?: string }): Promise<Identity>;
  /** The record of refused credentials (a run's control endpoint reports to it too). */
  readonly refusals: AuthRefusals;
  /** A connection of the configuration that `identity` may use (without a policy repo). @throws HoopError CONNECTION_UNKNOWN, ACCESS_DENIED */
  lookup(identity: Identity, name: string): ConnectionConfig;
  /** Members of the policy's `recording.auditors` groups see every session. */
  isAuditor(identity: Identity): boolean;
  /** Sessions of this replica as `GET /v1/sessions` lists them from memory: running, then as they ended until the index has them. */
  readonly running: Map<string, () => SessionSummary>;
}

/** Whether `of` (a session, a run, a record) is `identity`'s own. */
export function owns(identity: Identity, of: { issuer: string; subject: string }): boolean {
  return of.issuer === identity.issuer && of.subject === identity.subject;
}

export function callers(parts: GatewayParts, refusals: AuthRefusals): Callers {
  const { verifier, runs, policySource, config } = parts;
  const connections = new Map(config.connections.map((c) => [c.name, c]));
  return {
    running: new Map(),
    refusals,
    async authenticate(authorization, from) {
      try {
        const bearer = TokenVerifier.bearerFromHeader(authorization);
        if (!isRunToken(bearer)) return await verifier.verify(bearer);
        const identity = await runs.verify(bearer!);
        // A run stands for its person only while the gateway trusts their issuer.
        if (!verifier.issuerConfig(identity.issuer)) throw new TokenRejectedError('untrusted-issuer', `the run's person was signed in by ${identity.issuer}, which this gateway no longer trusts`);
        return identity;
      } catch (err) {
        refusals.report(err, from.remote, from.at, from.path);
        throw err;
      }
    },
    lookup(identity, name) {
      checkRunConnection(identity, name);
      const connection = connections.get(name);
      if (!connection) {
        throw new HoopError(ErrorCode.CONNECTION_UNKNOWN, `the gateway has no connection named "${name}"`, {
          hint: 'run `hoop connections` to list the ones you may use (or ask your administrator)',
        });
      }
      if (!mayUse(identity, connection)) {
        throw new HoopError(ErrorCode.ACCESS_DENIED, `${identity.subject} may not use the connection "${name}"`, {
          hint: 'ask an administrator to grant you access in the gateway configuration',
        });
      }
      return connection;
    },
    isAuditor(identity) {
      const auditors = policySource?.current().policy.recording.auditors ?? [];
      return identity.groups.some((g) => auditors.includes(g));
    },
  };
}
