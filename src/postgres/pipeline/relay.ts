/**
 * The two directions of a PostgreSQL relay, each read once: a {@link FrontendPath} (client ->
 * server) and a {@link BackendPath} (server -> client), each over one {@link MessageReader}. The
 * concerns of a session are stages that see that one read, in a fixed order:
 *
 * - client -> server: framing and limits (reader), then for a Query or Parse the SQL analysis
 *   (in a worker thread for long texts), the lexing guard, the statement gate (judge; refusals
 *   replace the message), masking (records what the server receives, may add a Describe before
 *   an Execute), and the {@link ServerState} (what the server has yet to answer);
 * - server -> client: framing (a message no stage needs to see is passed on as its bytes arrive,
 *   never held), the {@link ServerState} (ReadyForQuery), the statement gate (its refusals'
 *   errors, the server's settings), masking, and the cut at a message boundary when the session
 *   ends.
 *
 * Both the gateway's engine and `hoop connect`'s local listener build their relay from these, with
 * the stages they have.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
import { ANALYSIS_CACHE_MAX_TEXT, analyzeSql, type Analysis } from '../../policy/sql/analyze.js';
import { analyzeLongSql } from '../../policy/sql/worker.js';
import type { Ask, AskOutcome } from './answers.js';
import type { PumpOutput } from '../../tunnel/pump.js';
import { BIND_HELD_MAX, BindDecoder, decodeFrontend, type FrontendMessage, type SqlMessage } from '../wire/frontend-messages.js';
import { PgProtocolError } from '../wire/protocol-error.js';
import { SqlState } from '../wire/messages.js';
import { TOO_LONG_HINT, tooLongMessage } from './gate/responses.js';
import type { Framing, MessageReader, PgMessage, StreamPart } from '../wire/reader.js';
import type { GateDecision, GateStage, GuardStage, MaskingStage, RecorderStage } from './stages.js';
import type { ServerState } from './server-state.js';
import { StatementNote, type StatementTally } from './tally.js';
import { Backend, Frontend } from '../wire/codes.js';

const { QUERY, PARSE, BIND, TERMINATE, COPY_DATA } = Frontend;
const { DATA_ROW, READY_FOR_QUERY: READY, ERROR, PARAMETER_STATUS } = Backend;
const BACKSLASH = 0x5c;
const NO_TABLES: readonly string[] = [];

/** Options of a {@link FrontendPath}. */
export interface FrontendPathOptions {
  /** The reader of the client's messages; may already hold bytes (those that came with the startup). */
  reader: MessageReader;
  gate?: GateStage;
  masking?: MaskingStage;
  state?: ServerState;
  /** Records each message the gate judges, as the client sent it. */
  recorder?: RecorderStage;
  /** Runs writes under a row limit so that their rows are counted before they commit. */
  guard?: GuardStage;
  /**
   * Hold a Query or Parse whose text has a backslash until the server has answered what came
   * before it (see {@link FrontendPath}); for sessions whose statements are judged.
   */
  guardLexing?: boolean;
  /** Longest SQL text (bytes) of a Query or Parse the gate reads; longer ones are refused unread. Default: the reader's limit. */
  maxStatementBytes?: number;
  /** Follows each Query and Execute the client runs (with the tables the gate saw it name) for what it reads and changes; needs `state`. */
  tally?: StatementTally;
  /** The client's Terminate is not handed on: the server connection outlives the session (kept warm for the next). */
  keepServer?: boolean;
}

/**
 * The client -> server direction. For each message, in order:
 * 1. framing: type and length limits; a CopyData, and everything when no stage looks, passes as
 *    it arrives; a Bind over 1 MiB is decoded as it streams (its parameters are never held); a
 *    Query or Parse over `maxStatementBytes` is refused unread;
 * 2. a Query's or Parse's SQL is analysed once for every stage: above `LONG_SQL` (64 KiB) its
 *    bytes go to a worker thread that checks, decodes and analyses them off the event loop;
 *    below, stages use the per-text cache;
 * 3. the lexing guard: a Query or Parse with a backslash is only forwarded once the server has
 *    answered everything before it, so that a DO block or function that turned
 *    `standard_conforming_strings` off is seen (its ParameterStatus comes with ReadyForQuery)
 *    before the text is judged; behind an unsynced Bind or Execute it is refused;
 * 4. the recorder (the message as the client sent it);
 * 5. the statement gate (a message held for a review holds everything behind it, in order,
 *    until it is decided: the source is paused, so the client's bytes wait in the tunnel's
 *    window); 6. the write guard; 7. masking; 8. the server state.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-PIPELINING
 * @see https://www.postgresql.org/docs/current/runtime-config-compatible.html#GUC-STANDARD-CONFORMING-STRINGS
 */
export class FrontendPath {
  readonly reader: MessageReader;
  readonly #gate: GateStage | undefined;
  readonly #masking: MaskingStage | undefined;
  readonly #state: ServerState | undefined;
  readonly #recorder: RecorderStage | undefined;
  readonly #guard: GuardStage | undefined;
  readonly #guardLexing: boolean;
  readonly #tally: boolean;
  readonly #maxStatement: number;
  readonly #looks: boolean;
  readonly #keepServer: boolean;
  /** The streamed message in progress: a Bind being decoded, or a message being dropped (and what ends the session at its end, with no gate to refuse it). */
  #stream: { bind?: BindDecoder; forward: boolean; held: Buffer[]; fatal?: PgProtocolError } | undefined;
  #terminated = false;
  #stopped = false;

  constructor(o: FrontendPathOptions) {
    this.reader = o.reader;
    this.#gate = o.gate;
    this.#masking = o.masking;
    this.#state = o.state;
    this.#recorder = o.recorder;
    this.#guard = o.guard;
    this.#guardLexing = o.guardLexing === true && o.gate !== undefined;
    this.#tally = o.tally !== undefined && o.state !== undefined;
    this.#maxStatement = o.maxStatementBytes ?? Number.POSITIVE_INFINITY;
    this.#looks = o.gate !== undefined || o.masking !== undefined || o.recorder !== undefined;
    this.#keepServer = o.keepServer === true;
  }

  /** True once the client sent Terminate. */
  get terminated(): boolean {
    return this.#terminated;
  }

  /** Stops forwarding: whatever the client sends from now on (or is held) is dropped. */
  stop(): void {
    this.#stopped = true;
  }

  /** The pump step: reads `chunk` and adds what to send upstream to `out`. */
  readonly step = (chunk: Buffer, out: PumpOutput): void | Promise<void> => {
    if (this.#stopped) return;
    this.reader.push(chunk);
    return this.#drain(out);
  };

  readonly #decide = (type: number, length: number): Framing => {
    if (type === TERMINATE) {
      this.#terminated = true;
      if (this.#keepServer) return 'whole';
    }
    if (!this.#looks) {
      this.#state?.forwarded(type);
      return 'pass';
    }
    switch (type) {
      case COPY_DATA:
        return 'run';
      case QUERY:
      case PARSE:
        return length - 4 > this.#maxStatement ? 'stream' : 'whole';
      case BIND:
        return length > BIND_HELD_MAX ? 'stream' : 'whole';
      default:
        return 'whole';
    }
  };

  #drain(out: PumpOutput): void | Promise<void> {
    for (;;) {
      if (this.#stopped) {
        out.run.take();
        return;
      }
      const f = this.reader.frame(this.#decide, out.run);
      if (!f) return;
      if ('part' in f) {
        this.#part(f, out);
        continue;
      }
      // The server connection is kept (see FrontendPathOptions.keepServer): the client's goodbye is its own.
      if (f.type === TERMINATE && this.#keepServer) continue;
      const m = decodeFrontend(f);
      if (m.kind === 'query' || m.kind === 'parse') {
        const waiting = this.#sql(m, out);
        if (waiting) return waiting.then(() => this.#drain(out));
        continue;
      }
      const held = this.#pass(m, out, undefined);
      if (held) return held.then(() => this.#drain(out));
    }
  }

  /**
   * A Query or Parse: analysed once (a long text off the event loop), held behind unanswered
   * messages when it could lex differently, then passed on. A Promise when it must wait.
   */
  #sql(m: SqlMessage, out: PumpOutput): Promise<void> | undefined {
    if (this.#gate?.discarding) return this.#pass(m, out, undefined);
    const guarding = this.#guardLexing && this.#state !== undefined && !this.#state.idle;
    if (!m.long && !(guarding && m.msg.body.includes(BACKSLASH))) {
      return this.#pass(m, out, m.sql.length > ANALYSIS_CACHE_MAX_TEXT ? analyzeSql(m.sql) : undefined);
    }
    out.flush();
    return (async () => {
      let msg = m;
      let analysis: Analysis | undefined;
      let backslash = true;
      if (m.long) {
        const facts = await analyzeLongSql(m.msg.raw, m.long.from);
        if (!facts.terminated) throw new PgProtocolError(`${m.kind === 'query' ? 'Query' : 'Parse'} message has an unterminated string`);
        msg = { ...m, msg: { type: m.msg.type, body: facts.raw.subarray(5), raw: facts.raw }, utf8: m.utf8 && facts.utf8 };
        analysis = facts.analysis;
        backslash = facts.backslash;
      }
      if (this.#guardLexing && this.#state && backslash) {
        if (this.#state.unsynced > 0 && this.#state.batchRunsCode) {
          this.#send(this.#gate!.refuseLexingPending(msg), out);
          return;
        }
        await this.#state.answered();
      }
      if (!this.#stopped) await this.#pass(msg, out, analysis);
    })();
  }

  /**
   * Passes one whole message through the gate and masking into `out`; a Promise while the gate
   * holds it for a review (what was gathered before it is written first). A decision that comes
   * after the session stopped sends nothing.
   */
  #pass(m: FrontendMessage, out: PumpOutput, analysis: Analysis | undefined): Promise<void> | undefined {
    this.#recorder?.client(m);
    const decision = this.#gate?.frontend(m, analysis);
    if (decision instanceof Promise) {
      out.flush();
      return decision.then((decided) => {
        if (!this.#stopped) return this.#sendFor(m, decided, out, analysis);
      });
    }
    return this.#sendFor(m, decision, out, analysis);
  }

  /**
   * Sends `m` when the gate passed it, else its replacement. A write under a row limit goes to
   * the write guard: a Promise until what the client sent after it may follow.
   */
  #sendFor(m: FrontendMessage, decision: GateDecision | undefined, out: PumpOutput, analysis: Analysis | undefined): Promise<void> | undefined {
    // Without a gate, every message passes as it came.
    if (decision && !decision.passed) {
      this.#send(decision.send, out);
      return undefined;
    }
    const passed = decision?.passed;
    const done = passed?.answered;
    const guarded = this.#guard ? passed?.guard : undefined;
    const runs = m.kind === 'query' || m.kind === 'execute';
    const note = this.#tally && runs ? new StatementNote(passed?.touched ?? NO_TABLES) : undefined;
    if (guarded && runs) {
      // The guard may send the message twice (rolled back for a review, then run again on approval): the note goes with the first, so it is counted once.
      let unsent = note;
      const io = {
        send: (g: FrontendMessage, tag?: object, onDone?: (outcome: AskOutcome) => void): void => {
          if (this.#stopped) return;
          const noted = g === m ? unsent : undefined;
          if (g === m) unsent = undefined;
          this.#forward(g, out, g === m ? analysis : undefined, onDone, tag, noted);
        },
        sendAll: (messages: readonly FrontendMessage[]): void => {
          if (!this.#stopped) this.#send(messages, out);
        },
        flush: (): void => out.flush(),
      };
      return this.#guard!.run(m, guarded.guard, guarded.sql, io, done);
    }
    if (m.kind === 'bind' && this.#guard) this.#guard.bound(m.portal, m.msg?.raw, guarded?.guard);
    this.#forward(m, out, analysis, done, undefined, note);
    return undefined;
  }

  #send(messages: readonly FrontendMessage[], out: PumpOutput): void {
    for (const s of messages) this.#forward(s, out, undefined);
  }

  /** One message the server will receive: masking first (it may put a Describe before it), then the state (told who waits on its answer, and who else must see it). */
  #forward(m: FrontendMessage, out: PumpOutput, analysis: Analysis | undefined, done?: (outcome: AskOutcome) => void, tag?: object, note?: StatementNote): void {
    const before = this.#masking?.frontend(m, analysis);
    if (before) for (const b of before) this.#emit(b.msg!, out, undefined, tag);
    this.#emit(m.msg!, out, done, tag, note);
  }

  #emit(msg: PgMessage, out: PumpOutput, done?: (outcome: AskOutcome) => void, tag?: object, note?: StatementNote): void {
    if (this.#state) this.#state.forwarded(msg.type, done, tag, note);
    else done?.('skipped');
    out.run.add(msg.raw);
  }

  /** A part of a streamed message: a Bind decoded on the fly, or a message refused unread. */
  #part(p: StreamPart, out: PumpOutput): void {
    if (p.first) {
      if (p.type === BIND) this.#stream = { bind: new BindDecoder(), forward: false, held: [] };
      else {
        this.#stream = { forward: false, held: [] };
        const gate = this.#gate;
        if (gate && !gate.discarding) this.#send(gate.refuseUnread(p.type, p.length, this.#maxStatement), out);
        // No gate to answer in its place: the session ends once the client has sent it all, so that the client reads why.
        else if (!gate) this.#stream.fatal = new PgProtocolError(tooLongMessage(p.length, this.#maxStatement), { sqlstate: SqlState.PROGRAM_LIMIT_EXCEEDED, hint: TOO_LONG_HINT });
      }
    }
    const s = this.#stream!;
    if (s.bind) this.#bindPart(p, s as Required<typeof s>, out);
    if (p.last) {
      this.#stream = undefined;
      if (s.fatal) throw s.fatal;
    }
  }

  /**
   * A streamed Bind: its first bytes are held until both names are in and the gate has decided;
   * then its bytes go on as they come (or are dropped), and masking records it at its end.
   */
  #bindPart(p: StreamPart, s: { bind: BindDecoder; forward: boolean; held: Buffer[] }, out: PumpOutput): void {
    const body = p.first ? p.bytes.subarray(5) : p.bytes;
    const hadNames = s.bind.head !== undefined;
    s.bind.push(body);
    if (!hadNames) {
      s.held.push(p.bytes);
      const head = s.bind.head;
      if (!head) return;
      this.#recorder?.client(head);
      // A streamed Bind cannot be held, so the gate decides at once.
      const decision = this.#gate?.frontend(head, undefined, false) as GateDecision | undefined;
      if (decision && !decision.passed) {
        this.#send(decision.send, out);
        s.held = [];
        return;
      }
      s.forward = true;
      this.#state?.forwarded(BIND);
      for (const b of s.held.splice(0)) out.run.add(b);
    } else if (s.forward) out.run.add(p.bytes);
    if (p.last && s.forward) this.#masking?.frontend(s.bind.finish());
  }
}

/** Options of a {@link BackendPath}. */
export interface BackendPathOptions {
  /** The reader of the server's messages. */
  reader: MessageReader;
  gate?: GateStage;
  masking?: MaskingStage;
  state?: ServerState;
  /** Records what the client receives (after masking). */
  recorder?: RecorderStage;
  /** Holds the results of writes under a row limit until their rows are counted, and drops the answers to its own messages. */
  guard?: GuardStage;
  /** Counts what the client's statements read and changed (the same tally as the frontend path's). */
  tally?: StatementTally;
}

/**
 * The server -> client direction. For each message, in order: framing (a message no stage must
 * see passes as it arrives: DataRow and CopyData unless masking must change them, everything
 * without stages), the {@link ServerState} on ReadyForQuery, the statement gate (the server's
 * answer to a refused message becomes the refusal; ParameterStatus is watched), masking, the
 * write guard (results held until a write's rows are counted), the recorder (what the client
 * receives), and the cut: when the session is ending, nothing after the next message boundary is
 * handed on.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html
 */
export class BackendPath {
  readonly reader: MessageReader;
  readonly #gate: GateStage | undefined;
  readonly #masking: MaskingStage | undefined;
  readonly #state: ServerState | undefined;
  readonly #recorder: RecorderStage | undefined;
  readonly #guard: GuardStage | undefined;
  readonly #tally: StatementTally | undefined;
  /** The client message the server message being read answers (for the write guard). */
  #ask: Ask | undefined;
  /** A step is waiting (a catalog lookup): the stream is not at a boundary the client has seen. */
  #busy = false;
  #cut: (() => void) | undefined;
  #stopped = false;
  /** The gateway's own messages waiting for a message boundary (see {@link inject}). */
  readonly #injected: Buffer[] = [];
  /** No stage reads the stream (a `hoop connect` without early checks). */
  readonly #plain: boolean;

  constructor(o: BackendPathOptions) {
    this.reader = o.reader;
    this.#gate = o.gate;
    this.#masking = o.masking;
    this.#state = o.state;
    this.#recorder = o.recorder;
    this.#guard = o.guard;
    this.#tally = o.state ? o.tally : undefined;
    this.#plain = !o.gate && !o.masking && !o.state && !o.recorder;
  }

  /** True when the client has been handed whole messages only (no step is waiting, no message is half read). */
  get atBoundary(): boolean {
    return !this.#busy && this.reader.atBoundary;
  }

  /** True once the cut was made: nothing more is handed on. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /**
   * Ends the stream at the next message boundary: `onCut` runs once the client has been handed
   * the bytes up to it (at once when already there), and nothing after it is handed on.
   */
  cut(onCut: () => void): void {
    if (this.#cut || this.#stopped) return;
    this.#cut = onCut;
    if (this.atBoundary) this.#stop();
  }

  /**
   * Hands the client whole messages of the gateway's own (a NoticeResponse) between two of the
   * server's: through `write` at once when the stream is at a message boundary, else with the
   * next one.
   */
  inject(bytes: Buffer, write: (b: Buffer) => void): void {
    if (this.#stopped || this.#cut) return;
    if (this.atBoundary && this.#injected.length === 0) write(bytes);
    else this.#injected.push(bytes);
  }

  /** Adds what waits to be injected, when the stream is at a message boundary. */
  #addInjected(out: PumpOutput): void {
    if (this.#injected.length > 0 && this.reader.atBoundary) for (const b of this.#injected.splice(0)) out.run.add(b);
  }

  /** The pump step: reads `chunk` and adds what to hand to the client to `out`. */
  readonly step = (chunk: Buffer, out: PumpOutput): void | Promise<void> => {
    if (this.#stopped) return;
    if (this.#plain) {
      // No stage and no cut: the bytes go on as they came, unread.
      out.run.add(chunk);
      return;
    }
    this.reader.push(chunk);
    return this.#drain(out);
  };

  readonly #decide = (type: number, length: number): Framing => {
    if (this.#cut) {
      // A new message begins: the boundary the cut waits for.
      this.#stopped = true;
      return 'stream';
    }
    const ask = this.#state?.serverSent(type);
    this.#ask = ask;
    const framing = this.#framingFor(type, length, ask);
    return ask?.note && this.#tally ? this.#tally.framing(type, framing) : framing;
  };

  #framingFor(type: number, length: number, ask: Ask | undefined): Framing {
    let framing = this.#framing(type, length);
    if (framing === 'pass' && this.#guard?.wants(ask)) framing = 'whole';
    if (framing !== 'pass') return framing;
    if (this.#recorder?.wants(type)) return 'whole';
    // Rows that pass now pass until the next message of another kind (nothing above changes
    // between two rows): the rest of the received rows go on without asking.
    return type === DATA_ROW || type === COPY_DATA ? 'run' : 'pass';
  }

  /** A run of rows passed unread (see {@link #decide}): the recording and the tally count them. */
  readonly #ran = (type: number, count: number): void => {
    this.#recorder?.passed(type, count);
    const note = this.#ask?.note;
    if (note) this.#tally?.rows(note, type, count);
  };

  #framing(type: number, length: number): Framing {
    if (this.#masking) return this.#masking.framing(type, length);
    if (type === READY) return this.#state ? 'whole' : 'pass';
    if (type === ERROR) return this.#gate && this.#gate.pendingRefusals > 0 ? 'whole' : 'pass';
    if (type === PARAMETER_STATUS) return this.#gate ? 'whole' : 'pass';
    return 'pass';
  }

  #drain(out: PumpOutput): void | Promise<void> {
    for (;;) {
      if (this.#stopped) return this.#stop(out);
      this.#addInjected(out);
      const f = this.reader.frame(this.#decide, out.run, this.#ran);
      if (this.#stopped) return this.#stop(out);
      if (!f) {
        if (this.#cut && this.reader.atBoundary) return this.#stop(out);
        this.#addInjected(out);
        return;
      }
      if ('part' in f) continue; // the backend direction never streams
      const ask = this.#ask;
      if (f.type === READY) this.#state?.ready(f.body[0]!);
      else if (ask?.note) this.#tally?.message(ask.note, f.type, f.body);
      const m = this.#gate ? this.#gate.backend(f) : f;
      const r = this.#masking ? this.#masked(m, m !== f) : m.raw;
      if (r instanceof Promise) return this.#wait(r, out, ask);
      const recording = this.#hand(r, ask, out);
      if (recording)
        return this.#wait(
          recording.then(() => undefined),
          out,
          ask,
        );
      if (this.#cut && this.reader.atBoundary) return this.#stop(out);
    }
  }

  /**
   * What masking hands on for `m`. A message of the gateway's own (`own`: the refusal the gate put
   * in place of the server's answer to its stand-in) is read by masking, which follows the
   * answers in order, and handed on as the gateway wrote it: its words (a rule's message, the
   * reviewer who denied) are never masked or withheld.
   */
  #masked(m: PgMessage, own: boolean): Buffer | Promise<Buffer> {
    const r = this.#masking!.backend(m);
    if (!own) return r;
    return r instanceof Promise ? r.then(() => m.raw) : m.raw;
  }

  /** Hands the client one server message (what the write guard lets through, if it is on) and records it. */
  #hand(r: Buffer, ask: Ask | undefined, out: PumpOutput): Promise<void> | undefined {
    const handed = this.#guard ? this.#guard.backend(r, ask) : r;
    if (handed === undefined) return undefined;
    const bytes = Buffer.isBuffer(handed) ? handed : Buffer.concat(handed as readonly Buffer[]);
    out.run.add(bytes);
    return this.#recorder?.server(bytes);
  }

  #wait(p: Promise<Buffer | undefined>, out: PumpOutput, ask: Ask | undefined): Promise<void> {
    out.flush();
    this.#busy = true;
    return p.then(async (b) => {
      if (b) await this.#hand(b, ask, out);
      this.#busy = false;
      return this.#drain(out);
    });
  }

  /** Makes the cut: hands on what is gathered, then lets `onCut` speak. */
  #stop(out?: PumpOutput): void {
    this.#stopped = true;
    out?.flush();
    const onCut = this.#cut;
    this.#cut = undefined;
    if (onCut) process.nextTick(onCut);
  }
}
