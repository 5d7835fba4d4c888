/**
 * One MySQL session at the gateway, in named steps: the server is reached and greets first
 * ({@link MysqlSessionRelay.start}); the client is greeted in its name (its version and
 * connection id, hoop's own nonce and the capabilities hoop relays) and answers
 * ({@link #accept}); the gateway signs in with the credential only it holds, asking for what the
 * client agreed to, so both hops read the command phase alike ({@link #signIn}); then packets are
 * relayed both ways ({@link #relay}), the client's command by command, each recorded as it
 * crossed. The session ends once ({@link #end}).
 *
 * A session the policy governs has each statement judged by the policy's own judge, on the MySQL
 * reading of it (src/policy/mysql/analyze.ts: as the server lexes it under the session's
 * `sql_mode` and character set, read at sign-in); read-only access also opens the server's session
 * read-only; a statement held for review waits, the client's later commands behind it, until
 * reviewers decide. What hoop cannot apply to MySQL yet (a row limit, masking of results, server
 * timeouts) refuses the statement with the reason: nothing is relayed unjudged.
 *
 * @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { MysqlConnection } from '../../config/connection.js';
import type { SecretRef } from '../../config/secrets.js';
import { describeError } from '../../errors.js';
import { sessionEndOf, type CloseReason, type PendingReview, type ReviewAsk, type SessionOutcome, type TunnelSession } from '../../session/engine.js';
import { analyzeMysql, loadMysqlParser, UNSAFE_CHARSETS } from '../../policy/mysql/analyze.js';
import type { PrepassOptions } from '../../policy/mysql/prepass.js';
import { CAPABILITIES, CLIENT_PACKET, SERVER_PACKET } from '../pipeline/records.js';
import { NATIVE_PASSWORD } from '../wire/auth.js';
import { Cap, greeting, isSslRequest, parseHandshakeResponse, type HandshakeResponse } from '../wire/handshake.js';
import { packet, PacketReader, type MySqlPacket } from '../wire/packets.js';
import { Command, errPacket, okPacket, type ErrPacket } from '../wire/results.js';
import type { MySqlClient, MySqlGreeted } from '../wire/client.js';
import { greetedUpstream, signInUpstream, UpstreamMysqlError } from './upstream.js';

/** Options of the MySQL engine (./engine.ts). */
export interface MysqlEngineOptions {
  resolveSecret: (ref: SecretRef) => Promise<string>;
  /** Deadline for the client to answer the greeting (default 30 s). */
  handshakeTimeoutMs?: number;
  /** Deadline for reaching the server and signing in (default 15 s). */
  upstreamTimeoutMs?: number;
}

/**
 * The capabilities hoop relays: what shapes the command phase the same on both hops. Left out:
 * TLS (the tunnel's own), compression, LOAD DATA LOCAL INFILE (a server could ask for any file of
 * the client's), query attributes and optional metadata (other packet layouts), MariaDB's own.
 */
export const RELAYED_CAPABILITIES =
  Cap.LONG_PASSWORD |
  Cap.FOUND_ROWS |
  Cap.LONG_FLAG |
  Cap.CONNECT_WITH_DB |
  Cap.IGNORE_SPACE |
  Cap.PROTOCOL_41 |
  Cap.INTERACTIVE |
  Cap.TRANSACTIONS |
  Cap.SECURE_CONNECTION |
  Cap.MULTI_STATEMENTS |
  Cap.MULTI_RESULTS |
  Cap.PS_MULTI_RESULTS |
  Cap.PLUGIN_AUTH |
  Cap.CONNECT_ATTRS |
  Cap.PLUGIN_AUTH_LENENC_CLIENT_DATA |
  Cap.SESSION_TRACK |
  Cap.DEPRECATE_EOF;

/** Commands refused whatever the policy: another sign-in on the session, replication, the server's own administration. */
const REFUSED_COMMANDS: ReadonlyMap<number, string> = new Map([
  [Command.CHANGE_USER, 'COM_CHANGE_USER (the gateway signed in; another user is another connection)'],
  [0x08, 'COM_SHUTDOWN'],
  [0x0d, 'COM_DEBUG'],
  [0x12, 'COM_BINLOG_DUMP'],
  [0x13, 'COM_TABLE_DUMP'],
  [0x15, 'COM_REGISTER_SLAVE'],
  [0x1e, 'COM_BINLOG_DUMP_GTID'],
]);

/** The SQL a command asks the server to run, as the policy judges it; undefined for a command that carries none. */
function sqlOf(code: number, payload: Buffer): string | undefined {
  const rest = (): string => payload.toString('utf8', 1);
  const quoted = (name: string): string => `\`${name.replace(/`/g, '``')}\``;
  if (code === Command.QUERY || code === Command.STMT_PREPARE) return rest();
  if (code === Command.INIT_DB) return `USE ${quoted(rest())}`;
  if (code === Command.FIELD_LIST) {
    const end = payload.indexOf(0, 1);
    return `SHOW COLUMNS FROM ${quoted(payload.toString('utf8', 1, end < 0 ? payload.length : end))}`;
  }
  return undefined;
}

/** The longest SQL text the gateway judges (a longer one is refused, not analysed on the event loop). */
const MAX_JUDGED_SQL = 1024 * 1024;

/** What the policy makes of a command: a refusal, a review to hold it for, or nothing (it runs). */
type Judged = { rule: string; reason: string } | { ask: ReviewAsk } | undefined;

/** sql_mode flags under which MariaDB reads SQL another way than hoop's pre-pass does. */
const UNREADABLE_MODES = ['MSSQL', 'ORACLE', 'DB2', 'MAXDB', 'POSTGRESQL'];

/** Every command hoop knows to be one; anything else is refused. */
const KNOWN_COMMANDS = new Set<number>([...Object.values(Command), Command.STATISTICS]);

/** ER_SPECIFIC_ACCESS_DENIED_ERROR: what a refusal is to a client. */
const REFUSED: Pick<ErrPacket, 'code' | 'sqlState'> = { code: 1227, sqlState: '42000' };
/** ER_CONNECTION_KILLED: the gateway ends the session. */
const KILLED: Pick<ErrPacket, 'code' | 'sqlState'> = { code: 1927, sqlState: '70100' };
/** ER_UNKNOWN_ERROR: the server could not be reached. */
const UNAVAILABLE: Pick<ErrPacket, 'code' | 'sqlState'> = { code: 1105, sqlState: 'HY000' };

/** How long a client has to close its side once the gateway ended the session; then the tunnel is cut. */
const END_GRACE_MS = 5_000;

/** A nonce of 20 printable bytes (clients treat the nonce as a C string). */
function nonce(): Buffer {
  const b = randomBytes(20);
  for (let i = 0; i < b.length; i++) b[i] = 0x21 + (b[i]! % 94);
  return b;
}

/** See the module documentation. */
export class MysqlSessionRelay {
  readonly #session: TunnelSession<MysqlConnection>;
  readonly #o: MysqlEngineOptions;
  readonly #who: { session: string; connection: string };
  readonly #counts = { fromClient: 0, toClient: 0 };
  readonly #clientPackets = new PacketReader();
  readonly #serverPackets = new PacketReader();
  #upstream: Duplex | undefined;
  #reason: CloseReason | undefined;
  #detail: string | undefined;
  #resolve: (outcome: SessionOutcome) => void = () => undefined;
  #finished = false;
  /** A command held for review, and the client's packets that came after it. */
  #held: { pending: PendingReview; queued: MySqlPacket[] } | undefined;
  /** How the session's SQL is read, when the policy governs it (else statements relay unjudged); `unreadable` when it cannot be. */
  #governed: { options: PrepassOptions; unreadable?: string } | undefined;
  readonly #onAbort = (): void => this.#aborted();

  constructor(session: TunnelSession<MysqlConnection>, o: MysqlEngineOptions) {
    this.#session = session;
    this.#o = o;
    this.#who = { session: session.id, connection: session.connection.name };
  }

  /** Serves the session until it ends; never rejects. */
  start(): Promise<SessionOutcome> {
    const done = new Promise<SessionOutcome>((resolve) => (this.#resolve = resolve));
    const { channel, signal } = this.#session;
    signal.addEventListener('abort', this.#onAbort, { once: true });
    channel.on('error', (err: Error) => this.#end('client-disconnected', describeError(err)));
    channel.on('close', () => this.#end('client-disconnected'));
    channel.on('end', () => this.#end('client-disconnected'));
    this.#open().catch((err: unknown) => {
      this.#session.log.warn('mysql.session-failed', { ...this.#who, error: describeError(err) });
      this.#end('protocol-violation', describeError(err));
    });
    return done;
  }

  /** Reaches the server, greets the client, signs in, then relays. */
  async #open(): Promise<void> {
    const { connection } = this.#session;
    let greeted: MySqlGreeted;
    try {
      greeted = await greetedUpstream(connection, this.#o.upstreamTimeoutMs ?? 15_000);
    } catch (err) {
      return this.#refuseStart(0, err as Error);
    }
    const g = greeted.greeting;
    const offered = (g.capabilities & RELAYED_CAPABILITIES) >>> 0;
    this.#write(packet(0, greeting({ ...g, nonce: nonce(), capabilities: offered, mariadbCapabilities: 0, authPlugin: NATIVE_PASSWORD, serverVersion: g.serverVersion })));
    const answer = await this.#accept();
    if (!answer) return;
    const [response, seq] = answer;
    if (isSslRequest(response.raw)) return this.#refuse(seq, 'hoop: the tunnel to the gateway is TLS already; the local port asks for TLS, not the gateway', 'protocol-violation');
    const hello = parseHandshakeResponse(response.raw);
    if (hello.database && hello.database !== connection.database) {
      return this.#refuse(seq, `hoop: ${connection.name} serves the database ${connection.database}, not ${hello.database}`, 'startup-refused', { code: 1044, sqlState: '42000' });
    }
    const agreed = (hello.capabilities & offered) >>> 0;
    const signedIn = await this.#signIn(greeted, hello, agreed).catch((err: Error) => err);
    if (signedIn instanceof Error) return this.#refuseStart(seq, signedIn);
    this.#upstream = signedIn;
    this.#write(packet(seq, okPacket({ status: g.status })));
    this.#relay(agreed);
  }

  /** The client's answer to the greeting, under the handshake deadline; undefined when the session ended first. */
  async #accept(): Promise<[{ raw: Buffer }, number] | undefined> {
    const { channel } = this.#session;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#end('handshake-timeout', 'the client did not answer the greeting in time');
        resolve(undefined);
      }, this.#o.handshakeTimeoutMs ?? 30_000);
      timer.unref();
      const onData = (chunk: Buffer): void => {
        this.#counts.fromClient += chunk.length;
        let got: MySqlPacket | undefined;
        try {
          got = this.#clientPackets.push(chunk)[0];
        } catch (err) {
          stop();
          this.#end('protocol-violation', describeError(err));
          return resolve(undefined);
        }
        if (!got) return;
        stop();
        resolve([{ raw: got.payload }, got.next]);
      };
      const onEnd = (): void => {
        stop();
        resolve(undefined);
      };
      const stop = (): void => {
        clearTimeout(timer);
        channel.off('data', onData);
        channel.off('close', onEnd);
      };
      channel.on('data', onData);
      channel.once('close', onEnd);
    });
  }

  /** Signs in upstream asking for exactly what the client agreed to (and what signing in needs). */
  async #signIn(greeted: MySqlGreeted, hello: HandshakeResponse, agreed: number): Promise<Duplex> {
    const { connection, id } = this.#session;
    const password = await this.#o.resolveSecret(connection.password);
    const passed = Object.fromEntries(hello.attributes.filter(([k]) => k === 'program_name' || k === '_client_name' || k === '_client_version'));
    const client = await signInUpstream(greeted, connection, {
      password,
      capabilities: agreed,
      charset: hello.charset,
      attributes: { ...passed, hoop_session: id },
    });
    const { judge, masking, readOnly, limits } = this.#session;
    if (judge || masking || readOnly || limits) await this.#govern(client, agreed);
    this.#session.recording?.stream.event({ t: 'sign-in', at: Date.now(), role: connection.user, database: connection.database });
    this.#session.report?.signedIn({ role: connection.user, database: connection.database });
    return client.release();
  }

  /**
   * Reads how the server will lex the session's SQL (its `sql_mode` and the client's character
   * set), and opens read-only access's session read-only, before the client's first command.
   */
  async #govern(client: MySqlClient, agreed: number): Promise<void> {
    await loadMysqlParser();
    const [state] = await client.query('SELECT @@SESSION.sql_mode, @@SESSION.character_set_client');
    const [mode = '', charset = ''] = state && 'rows' in state ? (state.rows[0] ?? []).map((v) => (v ?? '').toLowerCase()) : [];
    const modes = mode.toUpperCase().split(',');
    const odd = UNREADABLE_MODES.find((m) => modes.includes(m));
    this.#governed = {
      options: {
        ansiQuotes: modes.includes('ANSI_QUOTES') || modes.includes('ANSI'),
        noBackslashEscapes: modes.includes('NO_BACKSLASH_ESCAPES'),
        singleByte: !charset.startsWith('utf8'),
        multiStatements: (agreed & Cap.MULTI_STATEMENTS) !== 0,
      },
      ...(odd ? { unreadable: `the server's sql_mode has ${odd}, under which it reads SQL another way` } : {}),
      ...(UNSAFE_CHARSETS.has(charset) ? { unreadable: `the client's character set ${charset} can hide a quote in a character` } : {}),
    };
    if (this.#session.readOnly) await client.query('SET SESSION TRANSACTION READ ONLY');
  }

  /** The command phase: the client's packets judged command by command, the server's relayed as they come; both recorded. */
  #relay(capabilities: number): void {
    const { channel } = this.#session;
    const up = this.#upstream!;
    const stream = this.#session.recording?.stream;
    const caps = Buffer.alloc(4);
    caps.writeUInt32LE(capabilities >>> 0);
    stream?.record(CAPABILITIES, Date.now(), caps, 0, 4);
    channel.on('data', (chunk: Buffer) => {
      this.#counts.fromClient += chunk.length;
      try {
        for (const p of this.#clientPackets.push(chunk)) {
          if (this.#held) this.#held.queued.push(p);
          else this.#command(p);
        }
      } catch (err) {
        this.#end('protocol-violation', describeError(err));
      }
    });
    up.on('data', (chunk: Buffer) => {
      this.#write(chunk);
      if (!stream) return;
      try {
        for (const p of this.#serverPackets.push(chunk)) stream.record(SERVER_PACKET, Date.now(), p.payload, 0, p.payload.length);
      } catch (err) {
        this.#end('protocol-violation', describeError(err));
      }
    });
    up.on('error', (err: Error) => this.#end('upstream-closed', describeError(err)));
    up.on('close', () => this.#end('upstream-closed'));
    this.#flow(channel, up);
    this.#flow(up, channel);
  }

  /** Pauses `from` while `to` is full, or the recording behind. */
  #flow(to: NodeJS.WritableStream & { writableNeedDrain?: boolean }, from: NodeJS.ReadableStream): void {
    to.on('drain', () => from.resume());
    from.on('data', () => {
      if (to.writableNeedDrain) from.pause();
      const behind = this.#session.recording?.stream.behind;
      if (behind) {
        from.pause();
        void behind.then(() => from.resume());
      }
    });
  }

  /** One packet of the client's: a command relayed or refused (recorded either way). */
  #command(p: MySqlPacket): void {
    const { recording } = this.#session;
    const code = p.payload[0] ?? -1;
    if (p.seq !== 0) throw new Error(`a client packet of sequence ${p.seq} where a command was due`);
    if (code === Command.QUIT) return this.#end('client-terminated');
    recording?.stream.record(CLIENT_PACKET, Date.now(), p.payload, 0, p.payload.length);
    const judged = this.#refusalOf(code, p.payload);
    if (judged && 'ask' in judged) return this.#hold(p, judged.ask);
    if (judged) return this.#refuseCommand(p, judged, 'deny');
    if (code === Command.QUERY) recording?.notes?.sql(p.payload.toString('utf8', 1));
    this.#upstream!.write(packet(p.seq, p.payload));
  }

  /** Answers command `p` with an ERR saying why hoop did not relay it (recorded and reported as the refusal it is). */
  #refuseCommand(p: MySqlPacket, refusal: { rule: string; reason: string }, action: 'deny' | 'review'): void {
    const { recording } = this.#session;
    recording?.stream.event({ t: 'decision', at: Date.now(), action, rule: refusal.rule, reason: refusal.reason });
    recording?.notes?.refused();
    this.#session.report?.refused({ action, rule: refusal.rule, reason: refusal.reason, message: '' });
    const err = errPacket({ ...REFUSED, message: `hoop: ${refusal.reason}` });
    recording?.stream.record(SERVER_PACKET, Date.now(), err, 0, err.length);
    this.#write(packet(p.next, err));
  }

  /**
   * Holds command `p` for the review the policy asks for: nothing reaches the server, and the
   * client's later packets wait behind it, until reviewers decide; approved, it runs as it was
   * sent; otherwise the client hears why.
   */
  #hold(p: MySqlPacket, ask: ReviewAsk): void {
    const { channel, recording } = this.#session;
    recording?.stream.event({ t: 'decision', at: Date.now(), action: 'review', rule: ask.rule ?? 'policy', reason: ask.reason });
    const pending = this.#session.reviews!.request(ask);
    this.#held = { pending, queued: [] };
    const said = { id: pending.id, ...(ask.rule !== undefined ? { rule: ask.rule } : {}), groups: ask.settings.groups, approvals: ask.settings.approvals };
    if (!pending.reused) channel.sendControl({ type: 'review', state: 'pending', ...said, timeoutMs: ask.settings.timeoutMs });
    void pending.decided.then((o) => {
      if (this.#finished) return;
      channel.sendControl({
        type: 'review',
        state: o.state,
        ...said,
        ...(o.state === 'denied' ? { by: o.by, ...(o.reason ? { reason: o.reason } : {}) } : o.state === 'approved' ? { by: o.by } : {}),
      });
      if (o.state === 'approved') this.#upstream!.write(packet(p.seq, p.payload));
      else {
        const why = o.state === 'denied' ? `denied by ${o.by}${o.reason ? ` (${o.reason})` : ''}` : o.state === 'expired' ? 'no reviewer decided in time' : 'withdrawn';
        this.#refuseCommand(p, { rule: ask.rule ?? 'policy', reason: `the review ${pending.id} ended: ${why}` }, 'review');
      }
      const queued = this.#held?.queued ?? [];
      this.#held = undefined;
      try {
        for (const [i, q] of queued.entries()) {
          if (this.#held) {
            (this.#held as { queued: MySqlPacket[] }).queued.push(...queued.slice(i));
            break;
          }
          this.#command(q);
        }
      } catch (err) {
        this.#end('protocol-violation', describeError(err));
      }
    });
  }

  /** Why command `code` may not run on this session, or the review it waits for; undefined when it may run. */
  #refusalOf(code: number, payload: Buffer): Judged {
    const named = REFUSED_COMMANDS.get(code);
    if (named) return { rule: 'hoop:mysql-command', reason: `${named} is not relayed` };
    if (!KNOWN_COMMANDS.has(code)) return { rule: 'hoop:mysql-command', reason: `command 0x${code.toString(16)} is not one hoop relays` };
    const governed = this.#governed;
    if (!governed) return undefined;
    if (code === Command.SET_OPTION && payload.length >= 3) governed.options.multiStatements = payload.readUInt16LE(1) === 0;
    if (code === Command.RESET_CONNECTION) {
      // The session would take the server's sql_mode as it is now, which the judge has not read.
      return { rule: 'hoop:mysql-reset', reason: 'COM_RESET_CONNECTION is not relayed on a session the policy governs (reconnect instead)' };
    }
    const sql = sqlOf(code, payload);
    if (sql !== undefined && sql.length > MAX_JUDGED_SQL) return { rule: 'unparseable', reason: `a statement of ${sql.length} characters, longer than the ${MAX_JUDGED_SQL} the gateway judges` };
    if (sql !== undefined && code === Command.STMT_PREPARE) {
      // A prepared statement runs as often as the client executes it: one a rule holds for review is sent as a query, to run once.
      const judged = this.#judged(sql, payload, governed);
      return judged && 'ask' in judged
        ? { rule: judged.ask.rule ?? 'policy', reason: `held for review: send it as a query (COM_QUERY), not a prepared statement, to wait for reviewers: ${judged.ask.message ?? judged.ask.reason}` }
        : judged;
    }
    return sql === undefined ? undefined : this.#judged(sql, payload, governed);
  }

  /** The policy's verdict on `sql` (sent as `payload`): a refusal, a review to hold it for, or undefined when it may run. */
  #judged(sql: string, payload: Buffer, governed: { options: PrepassOptions; unreadable?: string }): Judged {
    const { judge, masking, limits } = this.#session;
    if (governed.unreadable) return { rule: 'hoop:mysql-unreadable', reason: `${governed.unreadable}; no statement is judged on this session` };
    if (limits && Object.keys(limits).length > 0) return { rule: 'hoop:mysql-limits', reason: 'the access sets server timeouts, which hoop does not yet apply to MySQL sessions' };
    const analysis = analyzeMysql(sql, governed.options);
    const verdict = judge ? judge.judge(sql, analysis) : undefined;
    if (verdict && verdict.action !== 'allow') {
      const by = verdict.rule ? `by rule "${verdict.rule}"` : 'by the policy';
      if (verdict.action === 'deny' || !verdict.review || !this.#session.reviews || !analysis.ok) {
        return { rule: verdict.rule ?? 'policy', reason: `denied ${by}: ${verdict.message ?? verdict.reason}${verdict.action === 'review' ? ' (held for review, and no reviewer can be asked)' : ''}` };
      }
      const digest = createHash('sha256').update(payload).update('\0').update(sql).digest('hex');
      return {
        ask: {
          sql,
          digest,
          ...(verdict.rule !== undefined && { rule: verdict.rule }),
          ...(verdict.message !== undefined && { message: verdict.message }),
          reason: verdict.reason,
          settings: verdict.review,
        },
      };
    }
    // Unparseable SQL the policy allows (its `unparseable: allow`) runs, as on PostgreSQL, unless something must read it.
    if (!analysis.ok && !verdict) return { rule: 'unparseable', reason: `the statement could not be read as MySQL (${analysis.error})` };
    if (verdict?.guard) return { rule: 'hoop:mysql-row-limit', reason: 'the access limits the rows a write may change, which hoop does not yet count on MySQL' };
    if (masking && (!analysis.ok || analysis.statements.some((s) => s.kinds.some((k) => k === 'select' || k === 'explain' || k === 'call')))) {
      return { rule: 'hoop:mysql-masking', reason: 'the policy masks results for you, and hoop does not yet mask MySQL results' };
    }
    return undefined;
  }

  /** The server could not be reached or refused the gateway: the client hears why in an ERR packet, then the session ends. */
  #refuseStart(seq: number, err: Error): void {
    const reason = err instanceof UpstreamMysqlError ? err.reason : 'upstream-unavailable';
    this.#session.log.warn('mysql.upstream-failed', { ...this.#who, reason, message: err.message });
    this.#refuse(seq, `hoop: the gateway could not open ${this.#session.connection.name}: ${err.message}`, reason, UNAVAILABLE);
  }

  #refuse(seq: number, message: string, why: CloseReason, code = REFUSED): void {
    this.#write(packet(seq, errPacket({ ...code, message })));
    this.#end(why, message);
  }

  /** The gateway ends the session (its token, its run, a shutdown): the client hears why, then it ends. */
  #aborted(): void {
    const e = sessionEndOf(this.#session.signal);
    this.#write(packet(0, errPacket({ ...KILLED, message: `${e.message}${e.hint ? ` (${e.hint})` : ''}` })));
    this.#session.channel.sendControl({ type: 'close', reason: e.reason, message: e.message, ...(e.hint ? { hint: e.hint } : {}) });
    this.#end(e.reason, e.message);
  }

  #write(bytes: Buffer): void {
    const { channel } = this.#session;
    if (channel.destroyed || channel.writableEnded) return;
    this.#counts.toClient += bytes.length;
    channel.write(bytes);
  }

  /** Ends both connections, keeping the first reason given, and tells the engine once. */
  #end(why: CloseReason, what?: string): void {
    this.#reason ??= why;
    this.#detail ??= what;
    this.#held?.pending.withdraw('session-ended');
    const up = this.#upstream;
    if (up && !up.destroyed) {
      up.end(packet(0, Buffer.from([Command.QUIT])));
      setTimeout(() => up.destroy(), END_GRACE_MS).unref();
    }
    const { channel } = this.#session;
    if (!channel.destroyed) {
      channel.end();
      setTimeout(() => channel.destroy(), END_GRACE_MS).unref();
    }
    if (this.#finished) return;
    this.#finished = true;
    this.#session.signal.removeEventListener('abort', this.#onAbort);
    const { fromClient, toClient } = this.#counts;
    this.#resolve({ reason: this.#reason, bytesFromClient: fromClient, bytesToClient: toClient, ...(this.#detail !== undefined ? { detail: this.#detail } : {}) });
  }
}
