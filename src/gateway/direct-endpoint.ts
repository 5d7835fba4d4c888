/**
 * Direct clients: PostgreSQL's and HTTP's at the gateway's port (./front/front-door.ts hands them
 * over, TLS done), MySQL's at its MySQL port (./front/mysql-door.ts); their sign-in with a direct
 * credential (../postgres/gateway/direct-front.ts, ../mysql/gateway/direct-front.ts,
 * ../http/gateway/direct-front.ts), their admission
 * as any session's (./sessions/admission.ts: the policy, the identity's bound, the recording, the index,
 * the audit stream), and their CancelRequests, which carry no credential and are honoured by key
 * for direct sessions only.
 */
import { realClock } from '../clock.js';
import type { Socket } from 'node:net';
import type { SecureContext } from 'node:tls';
import type { HttpConnection, MysqlConnection, PostgresConnection } from '../config/connection.js';
import type { HttpEngine } from '../http/gateway/engine.js';
import { serveDirectHttpClient } from '../http/gateway/direct-front.js';
import { serveDirectMysqlClient } from '../mysql/gateway/direct-front.js';
import type { MysqlEngine } from '../mysql/gateway/engine.js';
import { packet as mysqlPacket } from '../mysql/wire/packets.js';
import { errPacket } from '../mysql/wire/results.js';
import type { PostgresEngine } from '../postgres/gateway/engine.js';
import { serveDirectClient } from '../postgres/gateway/direct-front.js';
import { errorResponse } from '../postgres/wire/messages.js';
import type { TunnelSession } from '../session/engine.js';
import type { TlsSessionChannel } from '../session/tls-channel.js';
import type { TunnelErrorBody } from '../tunnel/accept.js';
import type { SessionAdmission } from './sessions/admission.js';
import type { ConnectionGuard } from './front/connection-guard.js';
import { directSecret, type DirectRecord } from './credentials/direct-credentials.js';
import type { GatewayParts } from './parts/parts.js';
import { peerOf, peerText, tellPeer } from './front/peer-address.js';
import { hoopSays } from '../errors.js';
import { lingerEnd } from '../session/relay-end.js';
import { randomBytes } from 'node:crypto';
import { makeScramSecret, scramPasswordMatches } from '../postgres/wire/scram.js';

/** CancelRequests honoured per source address and second. */
const CANCELS_PER_SECOND = 20;

/** The SQLSTATE a refused direct session gets for the status a tunnel would. @see https://www.postgresql.org/docs/current/errcodes-appendix.html */
function sqlstateOf(status: number): string {
  if (status === 401 || status === 403) return '28000'; // invalid_authorization_specification
  if (status === 404) return '3D000'; // invalid_catalog_name: no such connection
  if (status === 429) return '53300'; // too_many_connections
  return '57P03'; // cannot_connect_now
}

/** Says a refusal to a direct client as PostgreSQL says a refused connection: a FATAL ErrorResponse. */
function refuseDirect(channel: TlsSessionChannel, status: number, body: TunnelErrorBody): void {
  const { message, hint } = body.error;
  if (!channel.destroyed && !channel.writableEnded) channel.end(errorResponse({ severity: 'FATAL', code: sqlstateOf(status), message: hoopSays(message), ...(hint ? { hint } : {}) }));
}

/** The MySQL error a refused direct session gets for the status a tunnel would. @see https://mariadb.com/kb/en/mariadb-error-code-reference/ */
function mysqlCodeOf(status: number): { code: number; sqlState: string } {
  if (status === 401 || status === 403) return { code: 1045, sqlState: '28000' }; // ER_ACCESS_DENIED_ERROR
  if (status === 429) return { code: 1040, sqlState: '08004' }; // ER_CON_COUNT_ERROR
  return { code: 1105, sqlState: 'HY000' }; // ER_UNKNOWN_ERROR
}

/** What the gateway's ports call for direct clients: PostgreSQL's at the main port, MySQL's at the MySQL port. */
export function directEndpoint(
  parts: GatewayParts,
  admission: SessionAdmission,
  engines: { postgres: PostgresEngine; mysql: MysqlEngine | undefined; http: HttpEngine },
  o: { guard: ConnectionGuard; handshakeTimeoutMs: { postgres: number; mysql: number }; secureContext: SecureContext },
) {
  const { guard, handshakeTimeoutMs, secureContext } = o;
  const { postgres: engine, mysql, http } = engines;
  const { directs, cancels, log } = parts;
  // A CancelRequest carries no credential, only a 32-bit secret: one source address sends a few a second, not a guessing run.
  const recent = new Map<string, { since: number; count: number }>();
  const cancelByKey = (key: { processId: number; secretKey: number }, remote: string): void => {
    const now = realClock.now();
    const seen = recent.get(remote);
    if (!seen || now - seen.since > 1000) {
      if (recent.size > 10_000) recent.clear();
      recent.set(remote, { since: now, count: 1 });
    } else if (++seen.count > CANCELS_PER_SECOND) {
      if (seen.count === CANCELS_PER_SECOND + 1) log.warn('cancel.throttled', { remote, perSecond: CANCELS_PER_SECOND });
      return;
    }
    void cancels.cancel(key, { direct: true }).then(
      (outcome) => log.info('cancel.request', { direct: true, processId: key.processId, outcome }),
      (err: unknown) => log.warn('cancel.failed', { error: String(err) }),
    );
  };
  return {
    postgres(channel: TlsSessionChannel): void {
      void serveDirectClient<DirectRecord>(channel, {
        handshakeTimeoutMs: handshakeTimeoutMs.postgres,
        remote: peerOf(channel).address,
        log,
        credential: async (user) => {
          const record = await directs.find(user);
          if (!record) return undefined;
          const refused = directs.refusal(record);
          return { secret: directSecret(record), value: record, ...(refused ? { refused: { message: refused, hint: `ask for a new one: hoop connect --direct ${record.connection}` } } : {}) };
        },
        admit: (record, start, ch) => {
          admission.admitDirect(record, 'postgres', peerText(ch), { refuse: (status, body) => refuseDirect(ch, status, body), accept: () => ch }, (session) =>
            engine.serveStarted(session as TunnelSession<PostgresConnection>, start),
          );
        },
        cancel: (key) => cancelByKey(key, peerOf(channel).address ?? ''),
        spoke: (ch) => guard.spoke(ch),
        signedIn: (ch) => guard.trust(ch),
      });
    },
    /** A client at the gateway's MySQL port (./front/mysql-door.ts), its address known. */
    mysql(raw: Socket): void {
      void serveDirectMysqlClient<DirectRecord>(raw, {
        secureContext,
        handshakeTimeoutMs: handshakeTimeoutMs.mysql,
        remote: peerOf(raw).address,
        log,
        lastGreeting: () => mysql?.lastGreeting,
        credential: async (user) => {
          const record = await directs.find(user);
          if (!record) return undefined;
          const refused = directs.refusal(record);
          const verifier = record.mysqlNative ? Buffer.from(record.mysqlNative, 'base64') : undefined;
          return { verifier, value: record, ...(refused ? { refused: { message: refused, hint: `ask for a new one: hoop connect --direct ${record.connection}` } } : {}) };
        },
        admit: (record, answered, ch) => {
          const refuse = (status: number, body: TunnelErrorBody): void => {
            const { message, hint } = body.error;
            // The channel was paused for the session: what the client sends is dropped, so that its close is seen, and it is cut after a grace.
            lingerEnd(ch, mysqlPacket(answered.seq, errPacket({ ...mysqlCodeOf(status), message: `hoop: ${message}${hint ? ` (${hint})` : ''}` })), true);
          };
          admission.admitDirect(record, 'mysql', peerText(ch), { refuse, accept: () => ch }, (session) => {
            if (!mysql) throw new Error('the gateway has no MySQL engine');
            return mysql.serveSignedIn(session as TunnelSession<MysqlConnection>, answered);
          });
        },
        spoke: (ch) => {
          guard.alias(ch, raw);
          tellPeer(ch, peerOf(raw));
          guard.spoke(ch);
        },
        signedIn: (ch) => guard.trust(ch),
      });
    },
    /** An HTTPS client whose first request names a direct credential (`/direct/<user>/<password>/…`), with the bytes read to tell. */
    http: (channel: TlsSessionChannel, seen: Buffer): void => serveHttpDirect(channel, seen, directs, admission, http, guard),
    /** A CancelRequest that came in the clear (libpq before 17). */
    cancel: (key: { processId: number; secretKey: number }, remote: string): void => cancelByKey(key, remote),
  };
}

/** A verifier nobody holds the password of: a name that is no credential is checked against it, as long as a real one takes. */
const NOBODYS = makeScramSecret(randomBytes(32).toString('base64url'));

/** A direct HTTP client (../http/gateway/direct-front.ts): its credential checked, then admitted as any direct session, its requests under the credential's path. */
function serveHttpDirect(channel: TlsSessionChannel, seen: Buffer, directs: GatewayParts['directs'], admission: SessionAdmission, engine: HttpEngine, guard: ConnectionGuard): void {
  void serveDirectHttpClient<DirectRecord>(channel, seen, {
    credential: async (user, password) => {
      const record = await directs.find(user);
      // A name that is no credential costs the same check (against a verifier nobody holds): the answer's time does not say which names exist.
      const matches = await scramPasswordMatches(record ? directSecret(record) : NOBODYS, password);
      if (!record || !matches) return { refused: 'the direct credential in the URL is not valid', hint: 'ask for a new one with hoop connect --direct' };
      const refused = directs.refusal(record);
      if (refused) return { refused, hint: `ask for a new one: hoop connect --direct ${record.connection}` };
      return { value: record };
    },
    admit: (record, prefix, answer) =>
      admission.admitDirect(
        record,
        'http',
        peerText(channel),
        answer,
        (session) => {
          // Trusted (past the guard's deadline and count of strangers) once admitted; a refused one stays a stranger until cut.
          guard.trust(channel);
          const served = engine.serve(session as TunnelSession<HttpConnection>);
          channel.resume();
          return served;
        },
        prefix,
      ),
    spoke: () => guard.spoke(channel),
  });
}
