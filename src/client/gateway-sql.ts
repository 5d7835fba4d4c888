/**
 * A SQL session on a connection of the gateway with no local port: one tunnel, signed in, for
 * `hoop exec` and `hoop mcp`. The gateway applies its policy, masking and recording as to any
 * session; with a run's credential (inside `hoop run`, or `hoop mcp`'s own run) the session is
 * the run's, as the gateway knows from the credential.
 */
import { getConnection } from '../api-client/connections.js';
import type { ResolvedTokenProvider } from '../auth/token-provider.js';
import { describeError, ErrorCode, HoopError } from '../errors.js';
import type { CommandRecords, SessionRecord } from './client-records.js';
import type { Logger } from '../log.js';
import { PgClient, QueryError, type ResultHandler } from '../postgres/wire/client.js';
import { recorderTap } from '../postgres/pipeline/recording/stage.js';
import type { PgErrorFields } from '../postgres/wire/messages.js';
import { TunnelTokenRenewal } from '../auth/token-renewal.js';
import { newSessionId, openTunnel, type OpenedTunnel } from '../tunnel/transport.js';
import type { ControlMessage } from '../tunnel/frames.js';
import { VERSION } from '../version.js';

/** What the client says about why it runs what it runs; the gateway records it as the client's claim (`context` events). */
export type ClientContext = Record<string, string>;

/** A statement the gateway holds for review, as its `review` control message says (`id`, `rule`, `groups`, `approvals`, `timeoutMs`). */
export type HeldForReview = { held: ControlMessage & { id: string } };

/** A signed-in session and the tunnel under it. */
export interface GatewaySql {
  session: PgClient;
  /** The session's id, as the gateway names it (its recording's). */
  sessionId: string;
  /**
   * Runs `sql` as {@link PgClient.run} does; opened with `detachReviews`, resolves
   * `{ held }` as soon as the gateway holds a statement for review (the session is then of no
   * more use: close it; the review goes on without it).
   */
  run(sql: string, handler: ResultHandler): Promise<PgErrorFields | undefined | HeldForReview>;
  /** Records `fields` in the session's recording, before what runs next. */
  context(fields: ClientContext): void;
  close(): void;
}

/** Opens a session on connection `name` as `application` (its `application_name`). */
export async function openGatewaySql(o: {
  provider: ResolvedTokenProvider;
  name: string;
  application: string;
  log: Logger;
  say: (line: string) => void;
  /** The command's own records: the session is recorded by the CLI too, when the gateway takes it. */
  records?: CommandRecords;
  /** Told of each `review` control message: a statement held for review, and how its review ended. */
  onReview?: (review: ControlMessage) => void;
  /** Does not wait for reviews: a held statement's review outlives the session (see openTunnel's `detachReviews`). */
  detachReviews?: boolean;
}): Promise<GatewaySql> {
  const { gateway, ca } = o.provider;
  const { token } = await o.provider.current();
  const info = await getConnection({ gateway, ca }, token, o.name);
  if (info.type !== 'postgres') throw new HoopError(ErrorCode.USAGE, `"${o.name}" is a ${info.type} connection; SQL runs on postgres connections`);
  const tunnel = await openTunnel({
    gateway,
    connection: o.name,
    token,
    sessionId: newSessionId(),
    clientVersion: VERSION,
    via: 'exec',
    ...(ca ? { ca } : {}),
    ...(o.detachReviews ? { detachReviews: true } : {}),
  });
  const { channel } = tunnel;
  let held: ((m: HeldForReview) => void) | undefined;
  channel.on('control', (m: ControlMessage) => {
    if (m.type !== 'review') return;
    if (o.detachReviews && m.state === 'pending' && typeof m.id === 'string') held?.({ held: m as HeldForReview['held'] });
    else o.onReview?.(m);
  });
  // A long result outlives a token: renewed ones go to the gateway, as for hoop connect.
  const renewal = new TunnelTokenRenewal(o.provider, o.log, o.say);
  renewal.track(channel, token);
  const database = info.database ?? '';
  const record = await openSessionRecord(o, tunnel, database);
  try {
    const session = await PgClient.start(
      channel,
      [
        ['user', 'hoop'],
        ['database', database],
        ['application_name', o.application],
      ],
      record && recorderTap(record.stage),
    );
    return {
      session,
      sessionId: tunnel.sessionId,
      run: (sql, handler) => {
        const ran = session.run(sql, handler);
        if (!o.detachReviews) return ran;
        ran.catch(() => undefined); // abandoned when the statement is held
        return Promise.race([ran, new Promise<HeldForReview>((resolve) => (held = resolve))]);
      },
      context: (fields) => {
        record?.context(fields);
        channel.sendControl({ type: 'context', fields });
      },
      close: () => {
        renewal.close();
        session.close();
        record?.close({ reason: 'client-terminated' });
      },
    };
  } catch (err) {
    renewal.close();
    channel.destroy();
    record?.close({ reason: 'tunnel-closed' });
    if (err instanceof QueryError) throw new HoopError(ErrorCode.UPSTREAM_UNAVAILABLE, `the gateway could not open the session: ${err.message}`);
    throw err;
  }
}

/** The CLI's own record of a session with no local port, when the gateway takes one; a failure to open it never stops the session. */
async function openSessionRecord(o: { records?: CommandRecords; name: string; say: (line: string) => void }, tunnel: OpenedTunnel, database: string): Promise<SessionRecord | undefined> {
  if (!o.records?.keeps || !tunnel.clientRecord) return undefined;
  const stopped = (err: unknown): void => o.say(`this machine's record of session ${tunnel.sessionId} stopped: ${describeError(err)} (the gateway records it)`);
  return o.records.session(tunnel.sessionId, tunnel.clientRecord.rows, { connection: o.name, database }, stopped).catch((err: unknown) => {
    stopped(err);
    return undefined;
  });
}

/** The exit code (and MCP answer) for the error that stopped the statements: a refusal by the policy, a review, or the database's. */
export function refusalOf(f: { code: string; message: string }): 'denied' | 'review' | undefined {
  if (f.code !== '42501') return undefined;
  if (f.message.startsWith('hoop: denied')) return 'denied';
  if (f.message.startsWith('hoop: approval required')) return 'review';
  return undefined;
}
