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
 * commands behind it, until reviewers decide. A write under a row limit runs between the
 * gateway's own statements, its answer held until its rows are counted (./write-guard.ts); after a
 * statement that may run stored code, an access's timeouts are set again.
 *
 * @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html
 */
import type { Duplex } from 'node:stream';
import type { MysqlConnection } from '../../config/connection.js';
import type { SecretRef } from '../../config/secrets.js';
import { describeError, hoopSays } from '../../errors.js';
import { sessionEndOf, type CloseReason, type PendingReview, type ReviewAsk, type SessionOutcome, type StatementRows, type TunnelSession } from '../../session/engine.js';
import { RelayEnd } from '../../session/relay-end.js';
import type { StatementFacts } from '../../policy/sql/analyze/facts.js';
import { Conversation, type ServerPacket } from '../pipeline/conversation.js';
import { MysqlPacketRecorder } from '../pipeline/record-tap.js';
import { NATIVE_PASSWORD, newNonce } from '../wire/auth.js';
import { Cap, greeting, isSslRequest, MariaCap, parseHandshakeResponse, type Greeting, type HandshakeResponse } from '../wire/handshake.js';
import { MAX_PACKET_PAYLOAD, packet, PacketReader, type MySqlPacket } from '../wire/packets.js';
import { Command, errPacket, okPacket, parseOk, type ErrPacket } from '../wire/results.js';
import type { MySqlGreeted } from '../wire/client.js';
import { CommandJudge, type GuardedWrite } from './command-judge.js';
import { GuardedWriteRun, type GuardStep } from './write-guard.js';
import type { MysqlResultMasker } from './result-masker.js';
import { greetedUpstream, signInUpstream, UpstreamMysqlError } from './upstream.js';

/** Options of the MySQL engine (./engine.ts). */
export interface MysqlEngineOptions {
  resolveSecret: (ref: SecretRef) => Promise<string>;
  /** Deadline for the client to answer the greeting (default 30 s). */
  handshakeTimeoutMs?: number;
  /** Deadline for reaching the server and signing in (default 15 s). */
  upstreamTimeoutMs?: number;
  /** Told each server's greeting as it arrives (the gateway's MySQL port greets in the name of the last). */
  greeted?: (g: Greeting) => void;
}

/** A client's answer to a greeting already made: its sign-in, the sequence id of the answer due, and the capabilities it was offered (MariaDB's too). */
export interface SignedInAtPort {
  hello: HandshakeResponse;
  seq: number;
  offered: number;
  offeredMariadb: number;
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

/** The capabilities only signing in reads (MariaDB leaves LONG_PASSWORD out of its greeting, to say it is MariaDB): the command phase is the same without them. */
const SIGN_IN_CAPABILITIES = Cap.LONG_PASSWORD | Cap.CONNECT_WITH_DB | Cap.SECURE_CONNECTION | Cap.PLUGIN_AUTH | Cap.PLUGIN_AUTH_LENENC_CLIENT_DATA | Cap.CONNECT_ATTRS;

/** MariaDB's capabilities hoop relays: its extended metadata (a JSON column says it is JSON), which its column definitions carry and hoop reads. */
export const RELAYED_MARIADB_CAPABILITIES = MariaCap.EXTENDED_METADATA;

/** ER_SPECIFIC_ACCESS_DENIED_ERROR: what a refusal is to a client. */
const REFUSED: Pick<ErrPacket, 'code' | 'sqlState'> = { code: 1227, sqlState: '42000' };
/** ER_CONNECTION_KILLED: the gateway ends the session. */
const KILLED: Pick<ErrPacket, 'code' | 'sqlState'> = { code: 1927, sqlState: '70100' };
/** ER_UNKNOWN_ERROR: the server could not be reached. */
const UNAVAILABLE: Pick<ErrPacket, 'code' | 'sqlState'> = { code: 1105, sqlState: 'HY000' };

/** An ERR packet, as the recorder reads what the gateway answers for the server. */
const ERR: ServerPacket = { kind: 'err' };

/** MariaDB's statement id for the statement prepared last on the session. */
const LAST_STATEMENT = 0xffffffff;

/** The tables each statement's facts name, kept while the facts live (texts of one shape share theirs). */
const TABLES = new WeakMap<readonly StatementFacts[], readonly string[]>();

/** The tables `facts` name, each once. */
function tablesOf(facts: readonly StatementFacts[] | undefined): readonly string[] {
  if (!facts) return [];
  let tables = TABLES.get(facts);
  if (!tables) TABLES.set(facts, (tables = [...new Set(facts.flatMap((f) => f.tables))]));
  return tables;
}

/** See the module documentation. */
export class MysqlSessionRelay {
  readonly #session: TunnelSession<MysqlConnection>;
  readonly #o: MysqlEngineOptions;
  readonly #who: { session: string; connection: string };
  readonly #clientPackets = new PacketReader();
  readonly #serverPackets = new PacketReader();
  #upstream: Duplex | undefined;
  /** How the session ends (src/session/relay-end.ts). */
  readonly #relayEnd: RelayEnd;
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
  #guarded: GuardedWriteRun | undefined;
  /** The access's timeouts, to set again once the command in flight has ended (it may have run stored code), and whether they are being set. */
  #reset: string | undefined;
  #resetting = false;
  /** Writes the session's records (set once signed in, when it is recorded). */
  #recorder: MysqlPacketRecorder | undefined;
  /** While the server's chunk is read: what it becomes for the client, written once at its end. */
  #batch: Buffer[] | undefined;
  /** The table the query in flight makes (a CREATE TABLE of columns alone), known to the masker once the server answers OK. */
  #creating: { table: string; columns: string[] } | undefined;
  /** The statement in flight (a query or an execute): what the index and the audit stream are told when its answer ends. */
  #running: StatementRows | undefined;

  /** A client that signed in at the gateway's MySQL port: its answer to that greeting. */
  readonly #signedInAtPort: SignedInAtPort | undefined;

  constructor(session: TunnelSession<MysqlConnection>, o: MysqlEngineOptions, signedInAtPort?: SignedInAtPort) {
    this.#session = session;
    this.#signedInAtPort = signedInAtPort;
    this.#o = o;
    this.#who = { session: session.id, connection: session.connection.name };
    this.#judge = new CommandJudge(session);
    this.#relayEnd = new RelayEnd(session, () => this.#aborted());
  }

  /** Serves the session until it ends; never rejects. */
  start(): Promise<SessionOutcome> {
    const { channel } = this.#session;
    channel.on('error', (err: Error) => this.#end('client-disconnected', describeError(err)));
    channel.on('close', () => this.#end('client-disconnected'));
    channel.on('end', () => this.#end('client-disconnected'));
    // While a command is held for review the client's side is not read: its leaving is the tunnel's word, and withdraws the review.
    channel.once('peer-gone', () => {
      if (this.#held) this.#end('client-disconnected');
    });
    this.#open().catch((err: unknown) => {
      this.#session.log.warn('mysql.session-failed', { ...this.#who, error: describeError(err) });
      this.#end('protocol-violation', describeError(err));
    });
    return this.#relayEnd.outcome;
  }

  /** Reaches the server, greets the client (unless it signed in at the gateway's MySQL port), signs in, then relays. */
  async #open(): Promise<void> {
    const { connection } = this.#session;
    let greeted: MySqlGreeted;
    try {
      greeted = await greetedUpstream(connection, this.#o.upstreamTimeoutMs ?? 15_000);
    } catch (err) {
      return this.#refuseStart(this.#signedInAtPort?.seq ?? 0, err as Error);
    }
    const g = greeted.greeting;
    this.#o.greeted?.(g);
    const answered = this.#signedInAtPort ?? (await this.#greet(g));
    if (!answered) return;
    const { hello, seq, offered, offeredMariadb } = answered;
    if (hello.database && hello.database !== connection.database) {
      return this.#refuse(seq, `hoop: ${connection.name} serves the database ${connection.database}, not ${hello.database}`, 'startup-refused', { code: 1044, sqlState: '42000' });
    }
    // A client greeted at the gateway's MySQL port agreed before the server was known: what only signing in reads may go, the rest must be the server's too.
    const agreed = (hello.capabilities & offered & g.capabilities) >>> 0;
    // A client asks for MariaDB's capabilities by leaving out CLIENT_MYSQL (LONG_PASSWORD).
    const askedMariadb = hello.capabilities & Cap.LONG_PASSWORD ? 0 : hello.mariadbCapabilities & offeredMariadb;
    if ((hello.capabilities & offered & ~g.capabilities & ~SIGN_IN_CAPABILITIES) >>> 0 !== 0 || (askedMariadb & ~g.mariadbCapabilities) !== 0) {
      return this.#refuse(
        seq,
        `hoop: ${connection.name}'s server does not offer every capability the gateway's MySQL port greeted the client with; connect through hoop connect ${connection.name}`,
        'startup-refused',
        UNAVAILABLE,
      );
    }
    const signedIn = await this.#signIn(greeted, hello, agreed, askedMariadb).catch((err: Error) => err);
    if (signedIn instanceof Error) return this.#refuseStart(seq, signedIn);
    this.#upstream = signedIn;
    this.#write(packet(seq, okPacket({ status: g.status })));
    this.#relay(agreed, askedMariadb);
  }

  /** Greets the client in the server's name and reads its answer; undefined when the session ended or was refused. */
  async #greet(g: Greeting): Promise<SignedInAtPort | undefined> {
    const offered = (g.capabilities & RELAYED_CAPABILITIES) >>> 0;
    const offeredMariadb = g.mariadbCapabilities & RELAYED_MARIADB_CAPABILITIES;
    this.#write(packet(0, greeting({ ...g, nonce: newNonce(), capabilities: offered, mariadbCapabilities: offeredMariadb, authPlugin: NATIVE_PASSWORD, serverVersion: g.serverVersion })));
    const answer = await this.#accept();
    if (!answer) return undefined;
    const [response, seq] = answer;
    if (isSslRequest(response.raw)) {
      this.#refuse(seq, 'hoop: the tunnel to the gateway is TLS already; the local port asks for TLS, not the gateway', 'protocol-violation');
      return undefined;
    }
    return { hello: parseHandshakeResponse(response.raw), seq, offered, offeredMariadb };
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
        this.#relayEnd.bytes.fromClient += chunk.length;
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
  async #signIn(greeted: MySqlGreeted, hello: HandshakeResponse, agreed: number, mariadbCapabilities: number): Promise<Duplex> {
    const { connection, id } = this.#session;
    const password = await this.#o.resolveSecret(connection.password);
    const passed = Object.fromEntries(hello.attributes.filter(([k]) => k === 'program_name' || k === '_client_name' || k === '_client_version'));
    const client = await signInUpstream(greeted, connection, {
      password,
      capabilities: agreed,
      mariadbCapabilities,
      charset: hello.charset,
      attributes: { ...passed, hoop_session: id },
    });
    if (this.#judge.governs) await this.#judge.govern(client, agreed);
    this.#session.recording?.stream.event({ t: 'sign-in', at: Date.now(), role: connection.user, database: connection.database });
    this.#session.report?.signedIn({ role: connection.user, database: connection.database });
    return client.release();
  }

  /** The command phase: the client's packets judged command by command, the server's relayed as they come; both recorded. */
  #relay(capabilities: number, mariadbCapabilities: number): void {
    const { channel } = this.#session;
    const up = this.#upstream!;
    const recording = this.#session.recording;
    if (recording) {
      // SQL is written down with its secrets as keyed hashes (src/policy/sql/redact.ts), never as typed.
      const redact = { ...(recording.redactionKey ? { key: recording.redactionKey } : {}), detectors: this.#session.masking?.policy.detectors.map((d) => d.detector) ?? [] };
      this.#recorder = new MysqlPacketRecorder(recording.stream, recording.results === 'none' ? 0 : recording.rowCap, capabilities, mariadbCapabilities, redact);
    }
    this.#conversation = new Conversation(capabilities);
    this.#capabilities = capabilities;
    channel.on('data', (chunk: Buffer) => {
      this.#relayEnd.bytes.fromClient += chunk.length;
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
          if (this.#creating && !this.#conversation!.answering) {
            if (kind.kind === 'ok') masker?.tableCreated(this.#creating.table, this.#creating.columns);
            this.#creating = undefined;
          }
          if (kind.kind === 'prepared') {
            this.#lastPrepared = kind.statement;
            if (this.#preparingGuard) this.#guards.set(kind.statement, this.#preparingGuard);
          }
          if (this.#running) this.#tally(this.#running, kind, p.payload);
          const g = this.#guarded;
          if (g && !g.writing) {
            this.#guardStep(g.answered(kind, p.payload, this.#conversation!.answering, this.#conversation!.status));
            continue;
          }
          const payload = masker ? this.#masked(masker, p, kind) : p.payload;
          if (!g) {
            this.#recorder?.server(kind, payload);
            continue;
          }
          g.hold(kind, payload);
          if (!this.#conversation!.answering) this.#guardStep(g.wrote(kind, payload));
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
    // A client that signed in at the gateway's MySQL port waits paused until now.
    channel.resume();
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
    if (!this.#guarded) this.#write(out);
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
    const waiting = this.#queued[0];
    if (this.#reset && waiting && !this.#judge.readsDiagnostics(waiting.payload) && !this.#guarded && !this.#resetting && !this.#conversation!.answering && !this.#relayEnd.finished) {
      // What ran may have run stored code that changed the access's timeouts: they are set again before the next command
      // (after a read of what the client's statement left, ROW_COUNT() and the like, which the gateway's own SET would change).
      this.#resetting = true;
      this.#own(this.#reset);
      this.#reset = undefined;
    }
    while (this.#queued.length > 0 && !this.#held && !this.#guarded && !this.#resetting && !this.#conversation!.answering && !this.#relayEnd.finished) this.#command(this.#queued.shift()!);
    if (this.#queued.length > 0 || this.#held) channel.pause();
    else this.#resumeClient();
  }

  /** One packet of the client's: a command relayed or refused (recorded either way). */
  #command(p: MySqlPacket): void {
    const code = p.payload[0] ?? -1;
    if (p.seq !== 0) throw new Error(`a client packet of sequence ${p.seq} where a command was due`);
    if (code === Command.QUIT) return this.#end('client-terminated');
    const recorded = this.#recorder?.client(p.payload);
    const judged = this.#judge.judge(code, p.payload);
    if (judged && 'ask' in judged) return this.#hold(p, judged.ask);
    if (judged) return this.#refuseCommand(p, judged, 'deny');
    if (code === Command.QUERY && recorded !== undefined) this.#session.report?.sql(recorded);
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

  /** Runs command `p`, a write under row limit `limit`, so that the server counts its rows before they commit (./write-guard.ts). */
  #guard(p: MySqlPacket, limit: GuardedWrite): void {
    this.#guarded = new GuardedWriteRun(p, limit, { status: this.#conversation!.status, capabilities: this.#capabilities, mayReview: this.#session.reviews !== undefined });
    this.#guardStep(this.#guarded.start());
  }

  /** Does what the guarded write in flight needs next: the gateway's own statement, the client's command, or its end. */
  #guardStep(step: GuardStep | undefined): void {
    const g = this.#guarded;
    if (!step || !g) return;
    if (step.do === 'own') return this.#own(step.sql);
    if (step.do === 'write') return this.#forward(g.p);
    this.#guarded = undefined;
    if (step.do === 'review') return this.#hold(g.p, step.ask);
    if (step.do === 'refuse') this.#refuseCommand(g.p, { rule: step.rule, reason: step.reason }, 'deny');
    else if (step.do === 'error') {
      this.#recorder?.server(ERR, step.err);
      this.#write(packet(g.p.next, step.err));
    } else {
      for (const [i, held] of step.held.entries()) {
        this.#recorder?.server(step.kinds[i]!, held);
        this.#write(packet((g.p.next + i) & 0xff, held));
      }
    }
    this.#safely(() => this.#next());
  }

  /** Sends the gateway's own statement `sql` (its answer is read by what sent it, never the client's). */
  #own(sql: string): void {
    const payload = Buffer.concat([Buffer.from([Command.QUERY]), Buffer.from(sql, 'utf8')]);
    this.#conversation!.command(payload);
    this.#upstream!.write(packet(0, payload));
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
      // A table the session alters or drops is unknown from now on; one it makes of columns alone is known once the server made it.
      const changed = (facts ?? []).filter((f) => f.kinds.some((k) => k === 'alter' || k === 'drop')).flatMap((f) => f.tables);
      if (changed.length > 0) masker.tablesChanged(changed);
      this.#creating = (code === Command.QUERY || code === Command.STMT_EXECUTE) && facts?.length === 1 ? facts[0]!.createsTable : undefined;
    }
    this.#reset = code === Command.QUERY ? this.#judge.lastReset : code === Command.STMT_EXECUTE ? this.#judge.timeoutsSql : undefined;
    if (code === Command.QUERY || code === Command.STMT_EXECUTE) {
      this.#session.report?.ran();
      const verb = code === Command.QUERY ? (/^\s*([A-Za-z]+)/.exec(p.payload.toString('latin1', 1, 41))?.[1] ?? '').toUpperCase() : 'EXECUTE';
      this.#running = { verb, rows: 0, changed: 0, tables: tablesOf(facts), failed: false };
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
    this.#session.report?.refused({ action, rule: refusal.rule, reason: refusal.reason, message: '' });
    const err = errPacket({ ...REFUSED, message: hoopSays(refusal.reason) });
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
      if (this.#relayEnd.finished) return;
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
    this.#relayEnd.bytes.toClient += bytes.length;
    channel.write(bytes);
  }

  /** Ends both connections, keeping the first reason given, and tells the engine once. */
  #end(why: CloseReason, what?: string): void {
    this.#relayEnd.begin(why, what);
    this.#held?.pending.withdraw('session-ended');
    if (this.#upstream) this.#relayEnd.linger(this.#upstream, packet(0, Buffer.from([Command.QUIT])));
    this.#relayEnd.linger(this.#session.channel);
    this.#relayEnd.finish();
  }
}
