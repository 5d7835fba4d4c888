/**
 * A SQL session on a connection of the gateway with no local port: one tunnel, signed in, for
 * `hoop exec` and `hoop mcp`. The gateway applies its policy, masking and recording as to any
 * session; with a run's credential (inside `hoop run`, or `hoop mcp`'s own run) the session is
 * the run's, as the gateway knows from the credential.
 */
import { getConnection } from '../api-client/connections.js';
import type { ConnectionInfo } from '../api/answers.js';
import type { ResolvedTokenProvider } from '../auth/token-provider.js';
import { describeError, ErrorCode, HoopError } from '../errors.js';
import { mysqlRecordHook, type CommandRecords, type SessionRecord } from './client-records.js';
import type { Logger } from '../log.js';
import { MySqlGreeted, type MySqlClient } from '../mysql/wire/client.js';
import { Command, NUMERIC_COLUMN_TYPES, type ColumnDefinition, type ErrPacket } from '../mysql/wire/results.js';
import { packet } from '../mysql/wire/packets.js';
import { PgClient, QueryError, type ResultHandler } from '../postgres/wire/client.js';
import type { RowDescriptionField } from '../postgres/wire/rows.js';
import { recorderTap } from '../postgres/pipeline/recording/stage.js';
import type { PgErrorFields } from '../postgres/wire/messages.js';
import { TunnelTokenRenewal } from '../auth/token-renewal.js';
import { newSessionId, openTunnel, type OpenedTunnel } from '../tunnel/transport.js';
import type { ControlMessage } from '../tunnel/frames.js';
import type { TunnelStream } from '../tunnel/stream.js';
import { VERSION } from '../version.js';

/** What the client says about why it runs what it runs; the gateway records it as the client's claim (`context` events). */
export type ClientContext = Record<string, string>;

/** A statement the gateway holds for review, as its `review` control message says (`id`, `rule`, `groups`, `approvals`, `timeoutMs`). */
export type HeldForReview = { held: ControlMessage & { id: string } };

/** A signed-in session and the tunnel under it. */
export interface GatewaySql {
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
  /** Ends the session; resolves once the gateway has ended it too (its end being written: `sessions … last` names it), or after {@link END_WAIT_MS}. */
  close(): Promise<void>;
}

/** How long {@link GatewaySql.close} waits for the gateway to end the session. */
const END_WAIT_MS = 5_000;

/** Resolves once the gateway has ended its side of `channel` (it does when the session's relay finished), or after {@link END_WAIT_MS}. */
function gatewayEnded(channel: TunnelStream): Promise<void> {
  if (channel.peerHasGone || channel.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(wait);
      resolve();
    };
    const wait = setTimeout(done, END_WAIT_MS);
    channel.once('peer-gone', done).once('close', done);
  });
}

/**
 * Opens an exec session's tunnel on connection `name`, as `provider`'s, when its type is one
 * `refuse` takes (else its error); `detach`: the session does not wait for reviews. Its connection,
 * tunnel, and the token it was opened with.
 */
export async function openExecTunnel(
  provider: ResolvedTokenProvider,
  name: string,
  detach: boolean,
  refuse: (type: string) => HoopError | undefined,
): Promise<{ info: ConnectionInfo; tunnel: OpenedTunnel; token: string }> {
  const { gateway, ca } = provider;
  const { token } = await provider.current();
  const info = await getConnection({ gateway, ca }, token, name);
  const refused = refuse(info.type);
  if (refused) throw refused;
  const tunnel = await openTunnel({
    gateway,
    connection: name,
    token,
    sessionId: newSessionId(),
    clientVersion: VERSION,
    via: 'exec',
    ...(ca ? { ca } : {}),
    ...(detach ? { detachReviews: true } : {}),
  });
  return { info, tunnel, token };
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
  const { info, tunnel, token } = await openExecTunnel(o.provider, o.name, o.detachReviews === true, (type) =>
    type === 'postgres' || type === 'mysql' ? undefined : new HoopError(ErrorCode.USAGE, `"${o.name}" is a ${type} connection; SQL runs on postgres and mysql connections`),
  );
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
  if (info.type === 'mysql') return mysqlSession(o, tunnel, database, renewal, o.detachReviews ? (resolve) => (held = resolve) : undefined);
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
        return gatewayEnded(channel);
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

/**
 * A MySQL session on `tunnel`, signed in (the tunnel is authenticated: no password), its results
 * handed to a PostgreSQL-shaped handler (the printer and the MCP tools read those), its errors as
 * PostgreSQL's fields: a refusal of the policy keeps hoop's words and takes SQLSTATE 42501, as on
 * PostgreSQL. The gateway records the session, and the CLI keeps its own record of it when the gateway takes one.
 */
async function mysqlSession(
  o: { provider: ResolvedTokenProvider; records?: CommandRecords; name: string; say: (line: string) => void },
  tunnel: OpenedTunnel,
  database: string,
  renewal: TunnelTokenRenewal,
  onHeld?: (resolve: (m: HeldForReview) => void) => void,
): Promise<GatewaySql> {
  const { channel } = tunnel;
  let client: MySqlClient;
  try {
    client = await (await MySqlGreeted.read(channel)).signIn({ user: 'hoop', password: '', database, attributes: { program_name: 'hoop' } });
  } catch (err) {
    renewal.close();
    channel.destroy();
    throw new HoopError(ErrorCode.UPSTREAM_UNAVAILABLE, `the gateway could not open the session: ${describeError(err)}`);
  }
  // The CLI's own record, when the gateway takes it: what this client sends, and the bytes it reads.
  const record =
    o.records?.keeps && tunnel.clientRecord
      ? await mysqlRecordHook(o.records, { connection: o.name, gateway: o.provider.gateway, say: o.say })?.(tunnel.sessionId, tunnel.clientRecord, {
          lower: client.capabilities,
          mariadb: client.mariadbCapabilities,
        })
      : undefined;
  if (record) {
    channel.on('data', (chunk: Buffer) => record.tap.serverBytes(chunk));
    channel.once('close', () => record.close({ reason: 'client-terminated' }));
  }
  return {
    sessionId: tunnel.sessionId,
    run: (sql, handler) => {
      record?.tap.clientBytes(packet(0, Buffer.concat([Buffer.from([Command.QUERY]), Buffer.from(sql, 'utf8')])));
      let rows = 0;
      const ran = client
        .run(sql, {
          columns: (columns) => {
            rows = 0;
            return handler.columns(columns.map(asField));
          },
          row: (values) => {
            rows++;
            return handler.row(values);
          },
          end: (ok) => handler.complete(ok ? `OK ${ok.affectedRows}` : `SELECT ${rows}`),
        })
        .then((e) => (e ? errorFields(e) : undefined));
      if (!onHeld) return ran;
      ran.catch(() => undefined);
      return Promise.race([ran, new Promise<HeldForReview>((resolve) => onHeld(resolve))]);
    },
    context: (fields) => channel.sendControl({ type: 'context', fields }),
    close: () => {
      renewal.close();
      client.close();
      record?.close({ reason: 'client-terminated' });
      return gatewayEnded(channel);
    },
  };
}

/** A MySQL column as the PostgreSQL-shaped printer reads it: its name, and a numeric type when it is one. */
function asField(c: ColumnDefinition): RowDescriptionField {
  return { name: c.name, tableOid: 0, attnum: 0, typeOid: NUMERIC_COLUMN_TYPES.has(c.type) ? 1700 : 25, typlen: -1, typmod: -1, format: 0 };
}

/** A MySQL error as PostgreSQL's fields: hoop's refusals (1227, `hoop: …`) as SQLSTATE 42501, the rest with their SQLSTATE and code. */
function errorFields(e: ErrPacket): PgErrorFields {
  const refusal = e.code === 1227 && e.message.startsWith('hoop: ');
  return { severity: 'ERROR', code: refusal ? '42501' : e.sqlState, message: refusal ? e.message : `${e.message} (MySQL error ${e.code})` };
}

/** The CLI's own record of a session with no local port, when the gateway takes one; a failure to open it never stops the session. */
async function openSessionRecord(o: { records?: CommandRecords; name: string; say: (line: string) => void }, tunnel: OpenedTunnel, database: string): Promise<SessionRecord | undefined> {
  if (!o.records?.keeps || !tunnel.clientRecord) return undefined;
  const stopped = (err: unknown): void => o.say(`this machine's record of session ${tunnel.sessionId} stopped: ${describeError(err)} (the gateway records it)`);
  return o.records.session(tunnel.sessionId, tunnel.clientRecord, { connection: o.name, database }, stopped).catch((err: unknown) => {
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
