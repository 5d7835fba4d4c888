/**
 * The two directions of a PostgreSQL relay, each read once: a {@link FrontendPath} (client ->
 * server) and a {@link BackendPath} (server -> client), each over one {@link MessageReader}. The
 * concerns of a session are {@link Stage}s (./stages.ts) that see that one read, each path running
 * those it has in the order declared here ({@link FRONTEND_ORDER}, {@link BACKEND_ORDER}):
 *
 * - client -> server: framing and limits (reader), then for a Query or Parse the SQL analysis
 *   (in a worker thread for long texts) and the lexing guard; then the stages: the recorder (the
 *   message as the client sent it), the statement gate (judges; refusals replace the message),
 *   the write guard, and masking (sees all the server receives, may add a Describe before an
 *   Execute); last the {@link ServerState} (what the server has yet to answer);
 * - server -> client: framing (a message no stage needs to see is passed on as its bytes arrive,
 *   never held), the {@link ServerState} (which client message it answers; ReadyForQuery), then the
 *   stages: the statement tally, the statement gate (its refusals' errors, the server's
 *   settings), masking, the write guard, the recorder; last the cut at a message boundary when the
 *   session ends.
 *
 * The {@link ServerState} is the paths' own, not a stage: every message the server receives is
 * noted in it, and every message the server sends is matched against it before a stage sees it.
 * Both the gateway's engine and `hoop connect`'s local listener build their relay from these, with
 * the stages they have.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
import { ANALYSIS_CACHE_MAX_TEXT, analyzeSql, type Analysis } from '../../policy/sql/analyze.js';
import { analyzeLongSql } from '../../policy/sql/worker.js';
import { type Ask, type AskOutcome, StatementNote } from './answers.js';
import type { PumpOutput } from '../../tunnel/pump.js';
import { BIND_HELD_MAX, BindDecoder, decodeFrontend, type FrontendMessage, type SqlMessage } from '../wire/frontend-messages.js';
import { PgProtocolError } from '../wire/protocol-error.js';
import { SqlState } from '../wire/messages.js';
import { TOO_LONG_HINT, tooLongMessage } from './gate/responses.js';
import type { Framing, MessageReader, PgMessage, StreamPart } from '../wire/reader.js';
import type { Decision, FrontendContext, Passed, Stage } from './stages.js';
import type { ServerState } from './server-state.js';
import { Backend, Frontend } from '../wire/codes.js';

const { QUERY, PARSE, BIND, TERMINATE, COPY_DATA } = Frontend;
const { DATA_ROW, READY_FOR_QUERY: READY } = Backend;
const BACKSLASH = 0x5c;
const NO_TABLES: readonly string[] = [];

/** The stages a relay may have, by name: each path runs those it has in its order. */
export interface PathStages {
  /** Records what the client sent and what it receives (./recording/stage.ts). */
  recorder?: Stage;
  /** The statement gate (./statement-gate.ts). */
  gate?: Stage;
  /** Runs writes under a row limit so that their rows are counted before they commit (./write-guard.ts). */
  guard?: Stage;
  /** Masking (./masking/stage.ts). */
  masking?: Stage;
  /** Follows each Query and Execute that passed (with the tables the gate saw it name) for what it reads and changes (./tally.ts); needs the server state. */
  tally?: Stage;
}

/**
 * The stages each message the client sends meets, in order: recorded as sent, judged, run under a
 * row limit, and masking sees all that goes upstream (the statement tally's part is the note each
 * Query and Execute that passed carries in the server state).
 */
const FRONTEND_ORDER = ['recorder', 'gate', 'guard', 'masking'] as const;
/**
 * The stages each message the server sends meets, in order: counted as the server sent it, put
 * right for the gate (its refusals), masked, held for a write's count, and recorded as the client
 * gets it.
 */
const BACKEND_ORDER = ['tally', 'gate', 'masking', 'guard', 'recorder'] as const;

/** The stages of `o` a path has, in its `order`. */
function inOrder(o: PathStages, order: readonly (keyof PathStages)[]): readonly Stage[] {
  return order.flatMap((name) => o[name] ?? []);
}

/** The client's message at hand in a {@link FrontendPath}: one per path, refilled for each message. */
interface AtHand extends FrontendContext {
  message: FrontendMessage | undefined;
  analysis: Analysis | undefined;
  passed: Passed | undefined;
  /** Its statement note went upstream with it (the first time it was sent). */
  noted: boolean;
}

/** Options of a {@link FrontendPath}. */
export interface FrontendPathOptions extends PathStages {
  /** The reader of the client's messages; may already hold bytes (those that came with the startup). */
  reader: MessageReader;
  state?: ServerState;
  /**
   * Hold a Query or Parse whose text has a backslash until the server has answered what came
   * before it (see {@link FrontendPath}); for sessions whose statements are judged (a stage says
   * `refuseLexingPending`).
   */
  guardLexing?: boolean;
  /** Longest SQL text (bytes) of a Query or Parse the stages read; longer ones are refused unread. Default: the reader's limit. */
  maxStatementBytes?: number;
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
 * 4. the stages' `frontend` hooks, in {@link FRONTEND_ORDER}: each may put others in its place
 *    (then the rest do not see it) or wait (a message held for a review holds everything behind
 *    it, in order, until it is decided: the source is paused, so the client's bytes wait in the
 *    tunnel's window);
 * 5. each message the server will receive (the client's, what stands in its place, what a stage
 *    sends beside it): the stages' `upstream` hooks, then the server state.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-PIPELINING
 * @see https://www.postgresql.org/docs/current/runtime-config-compatible.html#GUC-STANDARD-CONFORMING-STRINGS
 */
export class FrontendPath {
  readonly reader: MessageReader;
  /** Its stages in {@link FRONTEND_ORDER}; those with a `frontend` hook, and those with an `upstream` hook. */
  readonly #stages: readonly Stage[];
  readonly #deciders: readonly Stage[];
  readonly #upstreams: readonly Stage[];
  readonly #state: ServerState | undefined;
  readonly #guardLexing: boolean;
  /** Each Query and Execute that passed carries a {@link StatementNote} (for the tally). */
  readonly #notes: boolean;
  readonly #maxStatement: number;
  readonly #keepServer: boolean;
  readonly #atHand: AtHand;
  /** The pump's output (one per pump), for what a stage sends later (see {@link FrontendContext}). */
  #out: PumpOutput | undefined;
  /** The streamed message in progress: a Bind being decoded, or a message being dropped (and what ends the session at its end, with no stage to refuse it). */
  #stream: { bind?: BindDecoder; forward: boolean; held: Buffer[]; fatal?: PgProtocolError } | undefined;
  #terminated = false;
  #stopped = false;

  constructor(o: FrontendPathOptions) {
    this.reader = o.reader;
    this.#stages = inOrder(o, FRONTEND_ORDER);
    this.#deciders = this.#stages.filter((s) => s.frontend);
    this.#upstreams = this.#stages.filter((s) => s.upstream);
    this.#state = o.state;
    this.#guardLexing = o.guardLexing === true && this.#stages.some((s) => s.refuseLexingPending);
    this.#notes = o.tally !== undefined && o.state !== undefined;
    this.#maxStatement = o.maxStatementBytes ?? Number.POSITIVE_INFINITY;
    this.#keepServer = o.keepServer === true;
    this.#atHand = {
      message: undefined,
      analysis: undefined,
      passed: undefined,
      noted: false,
      send: (m, tag, done) => {
        if (!this.#stopped) this.#upstream(m, 0, this.#out!, tag, done, this.#noteFor(m));
      },
      sendAll: (messages) => {
        if (!this.#stopped) this.#send(messages, this.#out!);
      },
      flush: () => this.#out?.flush(),
    };
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
    this.#out = out;
    this.reader.push(chunk);
    return this.#drain(out);
  };

  readonly #decide = (type: number, length: number): Framing => {
    if (type === TERMINATE) {
      this.#terminated = true;
      if (this.#keepServer) return 'whole';
    }
    if (this.#stages.length === 0) {
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

  /** True while a stage drops what the client sends until its Sync. */
  #discarding(): boolean {
    for (const s of this.#stages) if (s.discarding) return true;
    return false;
  }

  /**
   * A Query or Parse: analysed once (a long text off the event loop), held behind unanswered
   * messages when it could lex differently, then passed on. A Promise when it must wait.
   */
  #sql(m: SqlMessage, out: PumpOutput): Promise<void> | undefined {
    if (this.#discarding()) return this.#pass(m, out, undefined);
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
          this.#send(this.#refusal((s) => s.refuseLexingPending?.(msg)) ?? [], out);
          return;
        }
        await this.#state.answered();
      }
      if (!this.#stopped) await this.#pass(msg, out, analysis);
    })();
  }

  /** What the first stage that says one sends in place of a message the stages cannot read (`says`: its hook). */
  #refusal(says: (s: Stage) => readonly FrontendMessage[] | undefined): readonly FrontendMessage[] | undefined {
    for (const s of this.#stages) {
      const instead = says(s);
      if (instead) return instead;
    }
    return undefined;
  }

  /**
   * Passes one whole message the client sent through the stages, then upstream; a Promise while a
   * stage waits (what was gathered before it is written first). What a stage decides after the
   * session stopped sends nothing.
   */
  #pass(m: FrontendMessage, out: PumpOutput, analysis: Analysis | undefined): Promise<void> | undefined {
    const at = this.#atHand;
    at.message = m;
    at.analysis = analysis;
    at.passed = undefined;
    at.noted = false;
    return this.#runStages(0, out);
  }

  /** Runs the message at hand through the deciding stages from `from` on, and sends what they leave. */
  #runStages(from: number, out: PumpOutput): Promise<void> | undefined {
    const at = this.#atHand;
    const m = at.message!;
    const deciders = this.#deciders;
    for (let i = from; i < deciders.length; i++) {
      const decision = deciders[i]!.frontend!(m, at);
      if (decision === undefined) continue;
      if (decision instanceof Promise) {
        out.flush();
        return decision.then((decided) => (this.#stopped ? undefined : decided === undefined ? this.#runStages(i + 1, out) : this.#goOn(decided, i + 1, out)));
      }
      if (!decision.passed) {
        this.#send(decision.send, out);
        return undefined;
      }
      at.passed = decision.passed;
    }
    this.#upstream(m, 0, out, undefined, at.passed?.answered, this.#noteFor(m));
    return undefined;
  }

  /** Goes on after a stage that waited: what stands in the message's place, or the stages after it. */
  #goOn(decision: Decision, next: number, out: PumpOutput): Promise<void> | undefined {
    if (!decision.passed) {
      this.#send(decision.send, out);
      return undefined;
    }
    this.#atHand.passed = decision.passed;
    return this.#runStages(next, out);
  }

  /** The note that goes upstream with the client's Query or Execute the first time it is sent (the write guard may send it twice: it is counted once). */
  #noteFor(m: FrontendMessage): StatementNote | undefined {
    const at = this.#atHand;
    if (!this.#notes || m !== at.message || at.noted || (m.kind !== 'query' && m.kind !== 'execute')) return undefined;
    at.noted = true;
    return new StatementNote(at.passed?.touched ?? NO_TABLES);
  }

  #send(messages: readonly FrontendMessage[], out: PumpOutput): void {
    for (const s of messages) this.#upstream(s, 0, out);
  }

  /**
   * One message the server will receive: the `upstream` hooks of the stages from `from` on (what
   * one sends before it meets those after it), then the server state, told who waits on its
   * answer, who else must see it, and its note.
   */
  #upstream(m: FrontendMessage, from: number, out: PumpOutput, tag?: object, done?: (outcome: AskOutcome) => void, note?: StatementNote): void {
    const upstreams = this.#upstreams;
    if (from < upstreams.length) {
      const analysis = m === this.#atHand.message ? this.#atHand.analysis : undefined;
      for (let i = from; i < upstreams.length; i++) {
        const before = upstreams[i]!.upstream!(m, analysis);
        if (before) for (const b of before) this.#upstream(b, i + 1, out, tag);
      }
    }
    const msg = m.msg!;
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
        const instead = this.#refusal((s) => s.refuseTooLong?.(p.type, p.length, this.#maxStatement));
        if (instead) this.#send(instead, out);
        // No stage to answer in its place: the session ends once the client has sent it all, so that the client reads why.
        else this.#stream.fatal = new PgProtocolError(tooLongMessage(p.length, this.#maxStatement), { sqlstate: SqlState.PROGRAM_LIMIT_EXCEEDED, hint: TOO_LONG_HINT });
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
   * A streamed Bind: its first bytes are held until both names are in and the stages have
   * decided (at once: it cannot be held); then its bytes go on as they come (or are dropped), and
   * the `upstream` hooks see it at its end.
   */
  #bindPart(p: StreamPart, s: { bind: BindDecoder; forward: boolean; held: Buffer[] }, out: PumpOutput): void {
    const body = p.first ? p.bytes.subarray(5) : p.bytes;
    const hadNames = s.bind.head !== undefined;
    s.bind.push(body);
    if (!hadNames) {
      s.held.push(p.bytes);
      const head = s.bind.head;
      if (!head) return;
      if (!this.#passesAtOnce(head, out)) {
        s.held = [];
        return;
      }
      s.forward = true;
      this.#state?.forwarded(BIND);
      for (const b of s.held.splice(0)) out.run.add(b);
    } else if (s.forward) out.run.add(p.bytes);
    if (p.last && s.forward) {
      const bound = s.bind.finish();
      for (const u of this.#upstreams) u.upstream!(bound, undefined);
    }
  }

  /** Runs a streamed Bind's names through the deciding stages: true when it passed, else what stands in its place was sent. */
  #passesAtOnce(head: FrontendMessage, out: PumpOutput): boolean {
    const at = this.#atHand;
    at.message = head;
    at.analysis = undefined;
    at.passed = undefined;
    at.noted = false;
    for (const stage of this.#deciders) {
      const decision = stage.frontend!(head, at) as Decision | undefined;
      if (decision === undefined) continue;
      if (!decision.passed) {
        this.#send(decision.send, out);
        return false;
      }
      at.passed = decision.passed;
    }
    return true;
  }
}

/** Options of a {@link BackendPath}. */
export interface BackendPathOptions extends PathStages {
  /** The reader of the server's messages. */
  reader: MessageReader;
  state?: ServerState;
}

/**
 * The server -> client direction. For each message, in order: framing (a message no stage must
 * read whole passes as it arrives: DataRow and CopyData unless masking must change them,
 * everything without stages), the {@link ServerState} (the client message it answers; a
 * ReadyForQuery), the stages' `backend` hooks in {@link BACKEND_ORDER} (each hands on what the
 * next sees: the same bytes, others, or none while it holds them; a lookup waits), and the cut:
 * when the session is ending, nothing after the next message boundary is handed on.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html
 */
export class BackendPath {
  readonly reader: MessageReader;
  /** Its stages in {@link BACKEND_ORDER}: those with a `wants`, an `unread`, a `backend` hook, and those that may be `behind`. */
  readonly #wanting: readonly Stage[];
  readonly #counting: readonly Stage[];
  readonly #handling: readonly Stage[];
  readonly #pacing: readonly Stage[];
  readonly #state: ServerState | undefined;
  /** The client message the server message being read answers. */
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
    const stages = inOrder(o, BACKEND_ORDER);
    this.#wanting = stages.filter((s) => s.wants);
    this.#counting = stages.filter((s) => s.unread);
    this.#handling = stages.filter((s) => s.backend);
    this.#pacing = stages.filter((s) => 'behind' in s);
    this.#state = o.state;
    this.#plain = stages.length === 0 && !o.state;
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

  /**
   * How a server message whose header just arrived is read: whole when the server state (a
   * ReadyForQuery) or a stage wants it (every stage is asked: one may refuse it over its limit);
   * else rows that pass now pass until the next message of another kind (nothing above changes
   * between two rows), so the rest of the received rows go on without asking.
   */
  readonly #decide = (type: number, length: number): Framing => {
    if (this.#cut) {
      // A new message begins: the boundary the cut waits for.
      this.#stopped = true;
      return 'stream';
    }
    const ask = this.#state?.serverSent(type);
    this.#ask = ask;
    let whole = type === READY && this.#state !== undefined;
    const wanting = this.#wanting;
    for (let i = 0; i < wanting.length; i++) if (wanting[i]!.wants!(type, length, ask)) whole = true;
    if (whole) return 'whole';
    return type === DATA_ROW || type === COPY_DATA ? 'run' : 'pass';
  };

  /** A run of messages passed unread (see {@link #decide}): the stages count them. */
  readonly #ran = (type: number, count: number): void => {
    const counting = this.#counting;
    for (let i = 0; i < counting.length; i++) counting[i]!.unread!(type, count, this.#ask);
  };

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
      if (f.type === READY) this.#state?.ready(f.body[0]!);
      const waiting = this.#hand(f.raw, 0, f, this.#ask, out);
      if (waiting) {
        out.flush();
        this.#busy = true;
        return waiting.then(() => {
          this.#busy = false;
          return this.#drain(out);
        });
      }
      if (this.#cut && this.reader.atBoundary) return this.#stop(out);
    }
  }

  /**
   * Hands the client server message `msg` through the stages from `from` on (`bytes`: as the stages
   * before left it); a Promise while a stage waits, or while one is behind once it is handed on.
   */
  #hand(bytes: Buffer, from: number, msg: PgMessage, ask: Ask | undefined, out: PumpOutput): Promise<void> | undefined {
    const handling = this.#handling;
    for (let i = from; i < handling.length; i++) {
      const r = handling[i]!.backend!(bytes, msg, ask);
      if (r === undefined) return undefined;
      if (r instanceof Promise) return r.then((b) => this.#hand(b, i + 1, msg, ask, out));
      // (Not Buffer.isBuffer: the global `Buffer` is a getter, a call on every message.)
      bytes = Array.isArray(r) ? Buffer.concat(r) : (r as Buffer);
    }
    out.run.add(bytes);
    const pacing = this.#pacing;
    for (let i = 0; i < pacing.length; i++) {
      const behind = pacing[i]!.behind;
      if (behind) return behind;
    }
    return undefined;
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
