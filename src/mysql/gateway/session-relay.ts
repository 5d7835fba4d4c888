/**
 * One MySQL session at the gateway, in named steps: the server is reached and greets first
 * ({@link MysqlSessionRelay.start}); the client is greeted in its name (its version and
 * connection id, hoop's own nonce and the capabilities hoop relays) and answers
 * ({@link #accept}); the gateway signs in with the credential only it holds, asking for what the
 * client agreed to, so both hops read the command phase alike ({@link #signIn}); then packets are
 * relayed both ways ({@link #relay}), the client's command by command, each recorded as it
 * crossed. The session ends once ({@link #end}).
 *
 * Each command is judged (./command-judge.ts: the policy's judge on the MySQL reading of its
 * SQL); a refused one is answered with an ERR, and one held for review waits, the client's later
 * commands behind it, until reviewers decide.
 *
 * @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html
 */
import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { MysqlConnection } from '../../config/connection.js';
import type { SecretRef } from '../../config/secrets.js';
import { describeError } from '../../errors.js';
import { sessionEndOf, type CloseReason, type PendingReview, type ReviewAsk, type SessionOutcome, type StatementRows, type TunnelSession } from '../../session/engine.js';
import type { StatementFacts } from '../../policy/sql/analyze/facts.js';
import { Conversation, type ServerPacket } from '../pipeline/conversation.js';
import { MysqlPacketRecorder } from '../pipeline/record-tap.js';
import { NATIVE_PASSWORD, newNonce } from '../wire/auth.js';
import { Cap, greeting, isSslRequest, parseHandshakeResponse, type HandshakeResponse } from '../wire/handshake.js';
import { MAX_PACKET_PAYLOAD, packet, PacketReader, type MySqlPacket } from '../wire/packets.js';
import { Command, errPacket, okPacket, parseErr, parseOk, parseTextRow, Status, withStatus, type ErrPacket } from '../wire/results.js';
import { WRITE_GUARD_RULE } from '../../policy/write-limit.js';
import type { MySqlGreeted } from '../wire/client.js';
import { CommandJudge, type GuardedWrite } from './command-judge.js';
import type { MysqlResultMasker } from './result-masker.js';
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

/** ER_SPECIFIC_ACCESS_DENIED_ERROR: what a refusal is to a client. */
const REFUSED: Pick<ErrPacket, 'code' | 'sqlState'> = { code: 1227, sqlState: '42000' };
/** ER_CONNECTION_KILLED: the gateway ends the session. */
const KILLED: Pick<ErrPacket, 'code' | 'sqlState'> = { code: 1927, sqlState: '70100' };
/** ER_UNKNOWN_ERROR: the server could not be reached. */
const UNAVAILABLE: Pick<ErrPacket, 'code' | 'sqlState'> = { code: 1105, sqlState: 'HY000' };

/** An ERR packet, as the recorder reads what the gateway answers for the server. */
const ERR: ServerPacket = { kind: 'err' };

/** The savepoint behind a write under a row limit in the client's transaction. */
const GUARD_SAVEPOINT = 'hoop_row_limit';
/** MariaDB's statement id for the statement prepared last on the session. */
const LAST_STATEMENT = 0xffffffff;
/** Most bytes of a guarded write's answer held until its rows are counted. */
const MAX_HELD_BYTES = 16 * 1024 * 1024;

/**
 * The gateway's own statement, in its transaction before a guarded write: how many of the
 * `tables` it names (`db.table`, lower-case) are not InnoDB now. The names go in as hex, whatever
 * the session's quoting rules.
 */
function engineCheck(tables: readonly string[]): string {
  const names = tables.map((t) => `CONVERT(X'${Buffer.from(t, 'utf8').toString('hex')}' USING utf8mb4)`).join(', ');
  return `SELECT COUNT(*) FROM information_schema.TABLES WHERE LOWER(CONCAT(TABLE_SCHEMA, '.', TABLE_NAME)) IN (${names}) AND (ENGINE IS NULL OR ENGINE <> 'InnoDB')`;
}

/** A write under a row limit in flight (see MysqlSessionRelay's #guard). */
interface GuardedRun {
  p: MySqlPacket;
  limit: GuardedWrite;
  /** `open`: the gateway's SAVEPOINT or START TRANSACTION; `write`: the client's command; `close`: the gateway's keeping or rolling back. */
  step: 'open' | 'check' | 'write' | 'close';
  /** Tables the write names that are not InnoDB now (the `check`'s count), and the refusal it makes. */
  foreign?: number;
  refused?: string;
  /** In the client's transaction: behind a savepoint (else in the gateway's own transaction). */
  savepoint: boolean;
  /** The answer's payloads, held, and what each is. */
  held: Buffer[];
  kinds: ServerPacket[];
  bytes: number;
  /** Rows of a result (MariaDB's RETURNING). */
  rows: number;
  /** The answer was more than {@link MAX_HELD_BYTES}: it cannot be held, and the write is rolled back. */
  tooBig?: boolean;
  /** Rows over the limit (set when it is rolled back). */
  over?: number;
  /** The write's own error (its answer, whatever the gateway's RELEASE or ROLLBACK after it says). */
  error?: Buffer;
}

/** How long a client has to close its side once the gateway ended the session; then the tunnel is cut. */
const END_GRACE_MS = 5_000;

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
  readonly #judge: CommandJudge;
  /** A command held for review. */
  #held: { pending: PendingReview } | undefined;
  /** The client's packets waiting for the command in flight to end. */
  readonly #queued: MySqlPacket[] = [];
  /** What the command in flight's answer looks like (set once signed in). */
  #conversation: Conversation | undefined;
  /** Masked sessions: packets written minus packets received in the answer in flight. */
  #seqShift = 0;
  /** Masked sessions: what each prepared statement runs, by its id, and the one being prepared. */
  readonly #prepared = new Map<number, readonly StatementFacts[] | undefined>();
  #preparing: readonly StatementFacts[] | undefined;
  /** The capabilities both hops agreed (set once signed in). */
  #capabilities = 0;
  /** The row limit of each prepared statement that writes under one, by its id, and of the one being prepared. */
  readonly #guards = new Map<number, GuardedWrite>();
  #preparingGuard: GuardedWrite | undefined;
  /** The id of the statement prepared last, which MariaDB's statement id {@link LAST_STATEMENT} names; undefined when there is none. */
  #lastPrepared: number | undefined;
  /** The write under a row limit in flight: the gateway's own commands around it, its answer held until its rows are counted. */
  #guarded: GuardedRun | undefined;
  /** The access's timeouts, to set again once the command in flight has ended (it may have run stored code), and whether they are being set. */
  #reset: string | undefined;
  #resetting = false;
  /** Writes the session's records (set once signed in, when it is recorded). */
  #recorder: MysqlPacketRecorder | undefined;
  /** While the server's chunk is read: what it becomes for the client, written once at its end. */
  #batch: Buffer[] | undefined;
  /** The statement in flight (a query or an execute): what the index and the audit stream are told when its answer ends. */
  #running: StatementRows | undefined;
  readonly #onAbort = (): void => this.#aborted();

  constructor(session: TunnelSession<MysqlConnection>, o: MysqlEngineOptions) {
    this.#session = session;
    this.#o = o;
    this.#who = { session: session.id, connection: session.connection.name };
    this.#judge = new CommandJudge(session);
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
    this.#write(packet(0, greeting({ ...g, nonce: newNonce(), capabilities: offered, mariadbCapabilities: 0, authPlugin: NATIVE_PASSWORD, serverVersion: g.serverVersion })));
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
    if (this.#judge.governs) await this.#judge.govern(client, agreed);
    this.#session.recording?.stream.event({ t: 'sign-in', at: Date.now(), role: connection.user, database: connection.database });
    this.#session.report?.signedIn({ role: connection.user, database: connection.database });
    return client.release();
  }

  /** The command phase: the client's packets judged command by command, the server's relayed as they come; both recorded. */
  #relay(capabilities: number): void {
    const { channel } = this.#session;
    const up = this.#upstream!;
    const recording = this.#session.recording;
    if (recording) this.#recorder = new MysqlPacketRecorder(recording.stream, recording.results === 'none' ? 0 : recording.rowCap, capabilities);
    this.#conversation = new Conversation(capabilities);
    this.#capabilities = capabilities;
    channel.on('data', (chunk: Buffer) => {
      this.#counts.fromClient += chunk.length;
      this.#safely(() => {
        this.#queued.push(...this.#clientPackets.push(chunk));
        this.#next();
      });
    });
    const masker = this.#judge.masker;
    up.on('data', (chunk: Buffer) => {
      // Unmasked and unguarded, the server's bytes go on as they came; else each packet as the masker makes it, or held.
      const asCame = !masker && !this.#guarded && !this.#resetting;
      if (asCame) this.#write(chunk);
      // What the chunk's packets become goes to the client in one write (one tunnel frame), not one per packet.
      const batch: Buffer[] = [];
      this.#batch = batch;
      this.#safely(() => {
        for (const p of this.#serverPackets.push(chunk)) {
          const kind = this.#conversation!.server(p.payload);
          if (this.#resetting) {
            if (this.#conversation!.answering) continue;
            this.#resetting = false;
            if (kind.kind !== 'ok') return this.#end('protocol-violation', "the access's server timeouts could not be set again");
            continue;
          }
          if (kind.kind === 'prepared') {
            this.#lastPrepared = kind.statement;
            if (this.#preparingGuard) this.#guards.set(kind.statement, this.#preparingGuard);
          }
          if (this.#running) this.#tally(this.#running, kind, p.payload);
          if (this.#guarded && this.#guarded.step !== 'write') {
            this.#guardStep(this.#guarded, kind, p.payload);
            continue;
          }
          const payload = masker ? this.#masked(masker, p, kind) : p.payload;
          if (!asCame && !masker) this.#out(packet(p.seq, payload));
          const g = this.#guarded;
          if (!g) this.#record(kind, payload);
          else {
            if (kind.kind === 'row') g.rows++;
            if (!g.tooBig) g.kinds.push(kind);
          }
          if (g && !this.#conversation!.answering) this.#wrote(g, kind, payload);
        }
        this.#next();
      });
      this.#batch = undefined;
      if (batch.length > 0) this.#write(batch.length === 1 ? batch[0]! : Buffer.concat(batch));
    });
    up.on('error', (err: Error) => this.#end('upstream-closed', describeError(err)));
    up.on('close', () => this.#end('upstream-closed'));
    this.#flow(channel, up, () => up.resume());
    this.#flow(up, channel, () => this.#resumeClient());
  }

  /** Pauses `from` while `to` is full, or the recording behind; `resume` resumes it when it may. */
  #flow(to: Duplex, from: Duplex, resume: () => void): void {
    to.on('drain', resume);
    from.on('data', () => {
      if (to.writableNeedDrain) from.pause();
      const behind = this.#session.recording?.stream.behind;
      if (behind) {
        from.pause();
        void behind.then(resume);
      }
    });
  }

  /** Resumes reading the client unless a command waits, or the server or the recording is behind. */
  #resumeClient(): void {
    if (this.#queued.length > 0 || this.#held || this.#guarded || this.#resetting || this.#upstream?.writableNeedDrain || this.#session.recording?.stream.behind) return;
    this.#session.channel.resume();
  }

  /**
   * Writes server packet `p` (read as `kind`) as the masker makes it, and returns it. Its
   * sequence id follows the packets written before it in the same answer: a payload that masking
   * made shorter or longer than 16 MiB is one packet fewer or more.
   */
  #masked(masker: MysqlResultMasker, p: MySqlPacket, kind: ServerPacket): Buffer {
    if (kind.kind === 'prepared' && this.#preparing) this.#prepared.set(kind.statement, this.#preparing);
    const payload = masker.server(kind, p.payload);
    const out = packet((p.seq + this.#seqShift) & 0xff, payload);
    const received = (p.next - p.seq) & 0xff;
    const sent = Math.floor(payload.length / MAX_PACKET_PAYLOAD) + 1;
    this.#seqShift += sent - received;
    this.#out(out);
    return payload;
  }

  /** Runs `step`; what a peer sends that breaks the protocol ends this one session. */
  #safely(step: () => void): void {
    try {
      step();
    } catch (err) {
      this.#end('protocol-violation', describeError(err));
    }
  }

  /**
   * Takes the client's next command when none is in flight (its answer not yet ended, or held for
   * review): one at a time, so a refusal answers in turn and the recording pairs each command with
   * its answer. While commands wait, the client's stream is paused (what it pipelines waits in its
   * socket, not in the gateway's memory).
   */
  #next(): void {
    const { channel } = this.#session;
    if (this.#reset && !this.#guarded && !this.#resetting && !this.#conversation!.answering && !this.#finished) {
      // What ran may have run stored code that changed the access's timeouts: they are set again before the next command.
      this.#resetting = true;
      this.#own(this.#reset);
      this.#reset = undefined;
    }
    while (this.#queued.length > 0 && !this.#held && !this.#guarded && !this.#resetting && !this.#conversation!.answering && !this.#finished) this.#command(this.#queued.shift()!);
    if (this.#queued.length > 0 || this.#held) channel.pause();
    else this.#resumeClient();
  }

  /** One packet of the client's: a command relayed or refused (recorded either way). */
  #command(p: MySqlPacket): void {
    const { recording } = this.#session;
    const code = p.payload[0] ?? -1;
    if (p.seq !== 0) throw new Error(`a client packet of sequence ${p.seq} where a command was due`);
    if (code === Command.QUIT) return this.#end('client-terminated');
    this.#recorder?.client(p.payload);
    const judged = this.#judge.judge(code, p.payload);
    if (judged && 'ask' in judged) return this.#hold(p, judged.ask);
    if (judged) return this.#refuseCommand(p, judged, 'deny');
    if (code === Command.QUERY) recording?.notes?.sql(p.payload.toString('utf8', 1));
    const statement = this.#statementOf(p.payload);
    if (code === Command.STMT_EXECUTE && statement === undefined && p.payload.length >= 5 && this.#judge.governs) {
      return this.#refuseCommand(p, { rule: 'hoop:mysql-command', reason: 'COM_STMT_EXECUTE of the statement prepared last (id -1), and none is' }, 'deny');
    }
    if (code === Command.STMT_PREPARE) {
      this.#preparingGuard = this.#judge.lastGuard;
      // MariaDB forgets its last statement when a prepare fails: hoop learns the new one from the server's answer.
      this.#lastPrepared = undefined;
    }
    if (code === Command.STMT_CLOSE && statement !== undefined) {
      this.#guards.delete(statement);
      if (statement === this.#lastPrepared) this.#lastPrepared = undefined;
    }
    const guard = code === Command.QUERY ? this.#judge.lastGuard : code === Command.STMT_EXECUTE && statement !== undefined ? this.#guards.get(statement) : undefined;
    if (guard) return this.#guard(p, guard);
    this.#forward(p);
  }

  /**
   * The prepared statement a COM_STMT_* command `payload` names: its id, or, for MariaDB's
   * {@link LAST_STATEMENT}, the statement prepared last (undefined when there is none).
   * @see https://mariadb.com/kb/en/com_stmt_execute/
   */
  #statementOf(payload: Buffer): number | undefined {
    if (payload.length < 5) return undefined;
    const id = payload.readUInt32LE(1);
    return id === LAST_STATEMENT ? this.#lastPrepared : id;
  }

  /**
   * Runs command `p`, a write under row limit `limit`, so that the server counts its rows before
   * they commit: in a transaction (or with autocommit off) behind a SAVEPOINT, else in a
   * transaction of the gateway's own; its answer is held until the count is in, then the write is
   * kept (RELEASE, COMMIT) and the client gets its answer as from autocommit, or, over the limit,
   * rolled back and refused or held for review. The gateway's own commands' answers never reach
   * the client.
   */
  #guard(p: MySqlPacket, limit: GuardedWrite): void {
    const status = this.#conversation!.status;
    const inTransaction = (status & Status.IN_TRANS) !== 0 || (status & Status.AUTOCOMMIT) === 0;
    this.#guarded = { p, limit, step: 'open', savepoint: inTransaction, held: [], kinds: [], bytes: 0, rows: 0 };
    this.#own(inTransaction ? `SAVEPOINT ${GUARD_SAVEPOINT}` : 'START TRANSACTION');
  }

  /** Sends the gateway's own statement `sql`; its answer goes to {@link #guardStep}, not the client. */
  #own(sql: string): void {
    const payload = Buffer.concat([Buffer.from([Command.QUERY]), Buffer.from(sql, 'utf8')]);
    this.#conversation!.command(payload);
    this.#upstream!.write(packet(0, payload));
  }

  /** The answer to one of the gateway's own commands around guarded write `g`. */
  #guardStep(g: GuardedRun, kind: ServerPacket, payload: Buffer): void {
    if (g.step === 'check' && kind.kind === 'row') g.foreign = Number(parseTextRow(payload, 1)[0]?.toString('latin1') ?? 0);
    if (this.#conversation!.answering) return;
    const failed = kind.kind === 'err' ? parseErr(payload) : undefined;
    const rollback = (): void => this.#own(g.savepoint ? `ROLLBACK TO SAVEPOINT ${GUARD_SAVEPOINT}` : 'ROLLBACK');
    if (g.step === 'check') {
      // A table renamed or altered since the session opened may be one no rollback undoes.
      if (failed || g.foreign !== 0) {
        g.refused = failed
          ? `the write is under a row limit (rule "${g.limit.rule}"), and hoop could not check that its tables can be rolled back: ${failed.message}`
          : `the write is under a row limit (rule "${g.limit.rule}"), and a table it names is no InnoDB table now, so its rows could not be rolled back`;
        g.step = 'close';
        return rollback();
      }
      g.step = 'write';
      this.#forward(g.p);
      return;
    }
    if (g.step === 'open') {
      if (failed) return this.#guardEnded(g, errPacket({ ...failed, message: `hoop: the write under a row limit could not be guarded: ${failed.message}` }));
      // The client's transaction can end unseen (an ERR carries no status: a DDL that failed after its implicit commit, a
      // deadlock): outside a transaction, in autocommit, a SAVEPOINT makes none, and the write would commit as it runs.
      const status = this.#conversation!.status;
      if (g.savepoint && (status & Status.AUTOCOMMIT) !== 0 && (status & Status.IN_TRANS) === 0) {
        g.savepoint = false;
        this.#own('START TRANSACTION');
        return;
      }
      g.step = 'check';
      this.#own(engineCheck(g.limit.tables));
      return;
    }
    // `close`: the write kept (RELEASE, COMMIT) or rolled back (ROLLBACK).
    if (g.refused) {
      this.#guarded = undefined;
      return this.#refuseCommand(g.p, { rule: WRITE_GUARD_RULE, reason: g.refused }, 'deny');
    }
    const over = g.over;
    if (over !== undefined) {
      const lost = !failed && kind.kind === 'ok' && parseOk(payload, this.#capabilities).warnings > 0 ? '; the server warned that some of it could not be rolled back' : '';
      const verb = g.limit.sql.trim().split(/\s+/, 1)[0]!.toUpperCase();
      const what = g.tooBig
        ? `the ${verb}'s result was more than the ${MAX_HELD_BYTES >> 20} MiB hoop holds while it counts rows`
        : `the ${verb} changed ${over} rows, over the limit of ${g.limit.maxRows}`;
      const reason = `${what} (rule "${g.limit.rule}"); it was rolled back${lost}`;
      if (g.limit.overLimit === 'review' && g.limit.review && this.#session.reviews && !failed && !g.tooBig) {
        this.#guarded = undefined;
        const digest = createHash('sha256').update(g.p.payload).update('\0').update(g.limit.sql).digest('hex');
        return this.#hold(g.p, { sql: g.limit.sql, digest, rule: g.limit.rule, reason, settings: g.limit.review });
      }
      this.#guarded = undefined;
      return this.#refuseCommand(g.p, { rule: g.limit.rule, reason: failed ? `${reason}, but the rollback failed: ${failed.message}` : reason }, 'deny');
    }
    // A write that failed answers with its own error (a deadlock rolled back the client's transaction, and the savepoint
    // with it: the RELEASE fails too); a COMMIT that fails is the write's failure; else the client gets its answer, its
    // status as the server's now.
    if (g.error && g.tooBig) return this.#guardEnded(g, g.error);
    if (failed && !g.error) return this.#guardEnded(g, payload);
    const last = g.held.length - 1;
    if (last >= 0 && !g.savepoint && !g.error) g.held[last] = withStatus(g.held[last]!, this.#conversation!.status, this.#capabilities);
    this.#guarded = undefined;
    for (const [i, held] of g.held.entries()) {
      this.#record(g.kinds[i]!, held);
      this.#write(packet((g.p.next + i) & 0xff, held));
    }
    this.#safely(() => this.#next());
  }

  /** The guarded write's answer is in (`kind`, `payload` its last packet): its rows counted, the gateway keeps it or rolls it back. */
  #wrote(g: GuardedRun, kind: ServerPacket, payload: Buffer): void {
    const changed = kind.kind === 'ok' ? parseOk(payload, this.#capabilities).affectedRows : 0n;
    const rows = changed > BigInt(g.rows) ? changed : BigInt(g.rows);
    g.step = 'close';
    if (kind.kind === 'err') g.error = payload;
    else if (rows > BigInt(g.limit.maxRows) || g.tooBig) g.over = Number(rows);
    if (g.savepoint) this.#own(g.over !== undefined ? `ROLLBACK TO SAVEPOINT ${GUARD_SAVEPOINT}` : `RELEASE SAVEPOINT ${GUARD_SAVEPOINT}`);
    else this.#own(g.over !== undefined || kind.kind === 'err' ? 'ROLLBACK' : 'COMMIT');
  }

  /** Ends guarded write `g` with the server's or hoop's error `err` as the client's answer. */
  #guardEnded(g: GuardedRun, err: Buffer): void {
    this.#guarded = undefined;
    this.#recorder?.server(ERR, err);
    this.#write(packet(g.p.next, err));
    this.#safely(() => this.#next());
  }

  /** Records server packet `payload` (read as `kind`) as the client got it (./../pipeline/record-tap.ts keeps rows up to the policy's cap). */
  #record(kind: ServerPacket, payload: Buffer): void {
    this.#recorder?.server(kind, payload);
  }

  /** Writes a server packet to the client, or holds it while a guarded write's rows are counted. */
  #out(bytes: Buffer): void {
    const g = this.#guarded;
    if (!g) return this.#write(bytes);
    // Held as payloads, at most MAX_HELD_BYTES: written with the sequence ids of the client's command once its rows are counted.
    g.bytes += bytes.length;
    if (g.bytes > MAX_HELD_BYTES || bytes.length - 4 >= MAX_PACKET_PAYLOAD) {
      g.tooBig = true;
      g.held = [];
      g.kinds = [];
    } else if (!g.tooBig) g.held.push(bytes.subarray(4));
  }

  /** Sends command `p` to the server, which answers it next. */
  #forward(p: MySqlPacket): void {
    this.#conversation!.command(p.payload);
    this.#seqShift = 0;
    const code = p.payload[0];
    const statement = code === Command.STMT_EXECUTE ? this.#statementOf(p.payload) : undefined;
    const facts = code === Command.STMT_EXECUTE ? (statement === undefined ? undefined : this.#prepared.get(statement)) : this.#judge.lastFacts;
    const masker = this.#judge.masker;
    if (masker) {
      // What the command runs decides how its results' computed columns are masked: a prepared statement's, its own.
      this.#preparing = code === Command.STMT_PREPARE ? this.#judge.lastFacts : undefined;
      masker.statement(facts);
    }
    this.#reset = code === Command.QUERY ? this.#judge.lastReset : code === Command.STMT_EXECUTE ? this.#judge.timeoutsSql : undefined;
    if (code === Command.QUERY || code === Command.STMT_EXECUTE) {
      this.#session.recording?.notes?.statement();
      const verb = code === Command.QUERY ? (/^\s*([A-Za-z]+)/.exec(p.payload.toString('latin1', 1, 41))?.[1] ?? '').toUpperCase() : 'EXECUTE';
      this.#running = { verb, rows: 0, changed: 0, tables: [...new Set(facts?.flatMap((f) => f.tables) ?? [])], failed: false };
    }
    this.#upstream!.write(packet(p.seq, p.payload));
  }

  /** Counts server packet `payload` (read as `kind`) into statement `st`: rows sent, rows changed, failure; told once its answer ends. */
  #tally(st: StatementRows, kind: ServerPacket, payload: Buffer): void {
    if (kind.kind === 'row') st.rows++;
    else if (kind.kind === 'ok') st.changed += Number(parseOk(payload, this.#capabilities).affectedRows);
    else if (kind.kind === 'err') st.failed = true;
    if (this.#conversation!.answering) return;
    this.#running = undefined;
    this.#session.report?.statement(st);
  }

  /** Answers command `p` with an ERR saying why hoop did not relay it (recorded and reported as the refusal it is). */
  #refuseCommand(p: MySqlPacket, refusal: { rule: string; reason: string }, action: 'deny' | 'review'): void {
    const { recording } = this.#session;
    recording?.stream.event({ t: 'decision', at: Date.now(), action, rule: refusal.rule, reason: refusal.reason });
    recording?.notes?.refused();
    this.#session.report?.refused({ action, rule: refusal.rule, reason: refusal.reason, message: '' });
    const err = errPacket({ ...REFUSED, message: `hoop: ${refusal.reason}` });
    this.#recorder?.server(ERR, err);
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
    this.#held = { pending };
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
      if (o.state === 'approved') this.#forward(p);
      else {
        const why = o.state === 'denied' ? `denied by ${o.by}${o.reason ? ` (${o.reason})` : ''}` : o.state === 'expired' ? 'no reviewer decided in time' : 'withdrawn';
        this.#refuseCommand(p, { rule: ask.rule ?? 'policy', reason: `the review ${pending.id} ended: ${why}` }, 'review');
      }
      this.#held = undefined;
      this.#safely(() => this.#next());
    });
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
    if (this.#batch) {
      this.#batch.push(bytes);
      return;
    }
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
