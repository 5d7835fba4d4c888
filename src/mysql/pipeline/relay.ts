/**
 * The MySQL lane's command phase at the gateway: the client's packets read once, command by
 * command, and the server's packets read once, each direction through its stages in the order
 * declared here ({@link SENT_ORDER}, {@link SERVER_ORDER}; ./stages.ts):
 *
 * - the client's command: recorded as it came, judged (./command-judge.ts: refused, or held for
 *   review), then run under its row limit (./write-guard.ts) or sent; the stages told of it;
 * - the server's packet: the gateway's own statements' answers read by what sent them (the
 *   guard's, the access's timeouts set again), then through the stages (prepared statements,
 *   tally, masking), held by the guard while it counts, recorded as the client receives it.
 *
 * One command at a time: a refusal answers in turn and the recording pairs each command with its
 * answer. While commands wait, the client's stream is paused (what it pipelines waits in its
 * socket, not in the gateway's memory). Unmasked and unguarded, the server's bytes go on as they
 * came, read beside.
 *
 * @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_command_phase.html
 */
import { realClock } from '../../clock.js';
import type { Duplex } from 'node:stream';
import { describeError, hoopSays } from '../../errors.js';
import type { CloseReason, PendingReview, ReviewAsk, TunnelSession } from '../../session/engine.js';
import { MAX_PACKET_PAYLOAD, packet, PacketReader, type MySqlPacket } from '../wire/packets.js';
import { Command, errPacket, type ErrPacket } from '../wire/results.js';
import type { CommandJudge, GuardedWrite, Kill } from './command-judge.js';
import { Conversation, type ServerPacket } from './conversation.js';
import { MaskingStage } from './masking.js';
import { PreparedStatements } from './prepared.js';
import type { MysqlPacketRecorder } from './record-tap.js';
import type { MysqlStage, SentCommand } from './stages.js';
import { StatementTally } from './tally.js';
import { GuardedWriteRun, type GuardStep } from './write-guard.js';

/** ER_SPECIFIC_ACCESS_DENIED_ERROR: what a refusal is to a client. */
export const REFUSED: Pick<ErrPacket, 'code' | 'sqlState'> = { code: 1227, sqlState: '42000' };

/** An ERR packet, as the recorder reads what the gateway answers for the server. */
const ERR: ServerPacket = { kind: 'err' };

/** The stages, by name. */
interface Stages {
  prepared: PreparedStatements;
  tally: StatementTally;
  masking?: MaskingStage;
}

/** The order the stages are told of a command sent. */
const SENT_ORDER: ReadonlyArray<keyof Stages> = ['prepared', 'tally', 'masking'];
/** The order a server packet goes through the stages (counted as the server sent it, then masked). */
const SERVER_ORDER: ReadonlyArray<keyof Stages> = ['prepared', 'tally', 'masking'];

/** Packet `p`'s bytes: as they came when its payload is the one read with them (a view, no copy), else framed anew. */
function asCame(p: MySqlPacket): Buffer {
  const { raw, payload } = p;
  return raw && raw.buffer === payload.buffer && raw.byteOffset + 4 === payload.byteOffset && raw.length === payload.length + 4 ? raw : packet(p.seq, payload);
}

/** What the relay needs of its session relay (../gateway/session-relay.ts). */
export interface RelayOwner {
  /** Writes `bytes` to the client (counted). */
  write(bytes: Buffer): void;
  /** Bytes the client sent are counted here. */
  fromClient(n: number): void;
  /** Ends the session with `why`. */
  end(why: CloseReason, what?: string): void;
  /** Whether the session has ended. */
  finished(): boolean;
  /** The server's own id of the session of the same owner a client greeted with `id` names, or why there is none. */
  killTarget(id: number): number | { refused: string };
}

/** See the module documentation. */
export class MysqlRelay {
  readonly #session: TunnelSession;
  readonly #up: Duplex;
  readonly #judge: CommandJudge;
  readonly #recorder: MysqlPacketRecorder | undefined;
  readonly #owner: RelayOwner;
  readonly #capabilities: number;
  readonly #conversation: Conversation;
  readonly #clientPackets: PacketReader;
  readonly #serverPackets = new PacketReader();
  readonly #stages: Stages;
  readonly #sentStages: MysqlStage[];
  readonly #serverStages: MysqlStage[];
  /** The client's packets waiting for the command in flight to end. */
  readonly #queued: MySqlPacket[] = [];
  /** A command held for review. */
  #held: { pending: PendingReview } | undefined;
  /** The write under a row limit in flight: the gateway's own commands around it, its answer held until its rows are counted. */
  #guarded: GuardedWriteRun | undefined;
  /** The access's timeouts, to set again once the command in flight has ended (it may have run stored code), and whether they are being set. */
  #reset: string | undefined;
  #resetting = false;
  /** A long command's SQL is being read off the event loop (the queue waits). */
  #reading = false;
  /** Masked sessions: packets written minus packets received in the answer in flight. */
  #seqShift = 0;
  /** While the server's chunk is read: what it becomes for the client, written once at its end. */
  #batch: Buffer[] | undefined;
  /** A stage works on a server packet (a long value masked in the worker): the server is read no more, and its packets read meanwhile wait here. */
  #serverWaits = false;
  #serverLater: MySqlPacket[] = [];

  constructor(session: TunnelSession, up: Duplex, o: { judge: CommandJudge; recorder: MysqlPacketRecorder | undefined; owner: RelayOwner; capabilities: number; clientPackets: PacketReader }) {
    this.#session = session;
    this.#up = up;
    this.#judge = o.judge;
    this.#recorder = o.recorder;
    this.#owner = o.owner;
    this.#capabilities = o.capabilities;
    this.#clientPackets = o.clientPackets;
    this.#conversation = new Conversation(o.capabilities);
    const masker = o.judge.masker;
    this.#stages = { prepared: new PreparedStatements(), tally: new StatementTally(session.report, o.capabilities), ...(masker ? { masking: new MaskingStage(masker) } : {}) };
    const inOrder = (order: ReadonlyArray<keyof Stages>): MysqlStage[] => order.flatMap((n) => this.#stages[n] ?? []);
    this.#sentStages = inOrder(SENT_ORDER);
    this.#serverStages = inOrder(SERVER_ORDER);
  }

  /** Whether a command waits for its review. */
  get holding(): boolean {
    return this.#held !== undefined;
  }

  /** Withdraws the review a command waits for (the session ended). */
  withdraw(): void {
    this.#held?.pending.withdraw('session-ended');
  }

  /** Relays both ways until the session ends. */
  start(): void {
    const { channel } = this.#session;
    const up = this.#up;
    channel.on('data', (chunk: Buffer) => {
      this.#owner.fromClient(chunk.length);
      this.#safely(() => {
        this.#queued.push(...this.#clientPackets.push(chunk));
        this.#next();
      });
    });
    up.on('data', (chunk: Buffer) => this.#fromServer(chunk));
    up.on('error', (err: Error) => this.#owner.end('upstream-closed', describeError(err)));
    up.on('close', () => this.#owner.end('upstream-closed'));
    this.#flow(channel, up, () => this.#serverWaits || up.resume());
    this.#flow(up, channel, () => this.#resumeClient());
    // A client that signed in at the gateway's MySQL port waits paused until now.
    channel.resume();
  }

  /** One chunk of the server's: its packets through the stages (see {@link #serve}). */
  #fromServer(chunk: Buffer): void {
    // Unmasked and unguarded, the server's bytes go on as they came; else each packet as the stages make it, or held.
    if (!this.#stages.masking && !this.#guarded && !this.#resetting) this.#owner.write(chunk);
    let packets: MySqlPacket[] = [];
    this.#safely(() => (packets = this.#serverPackets.push(chunk)));
    if (this.#serverWaits) this.#serverLater.push(...packets);
    else this.#serve(packets);
  }

  /**
   * The server's `packets`, in turn, through the stages, what they become for the client written in
   * one write (one tunnel frame); when a stage works on one (a long value masked in the worker), the
   * server is read no more, and the rest waits for it.
   */
  #serve(packets: readonly MySqlPacket[]): void {
    const batch: Buffer[] = [];
    this.#batch = batch;
    this.#safely(() => {
      for (let i = 0; i < packets.length; i++) {
        const p = packets[i]!;
        const kind = this.#conversation.server(p.payload);
        const own = this.#ownAnswer(kind, p.payload);
        if (own === 'ended') return;
        if (own) continue;
        const working = this.#staged(p, kind, p.payload, 0);
        if (working) return this.#waitFor(working, packets.slice(i + 1));
      }
      this.#next();
    });
    this.#batch = undefined;
    if (batch.length > 0) this.#owner.write(batch.length === 1 ? batch[0]! : Buffer.concat(batch));
  }

  /** Reads no more of the server until `working` is done, then serves `rest` and what came after it. */
  #waitFor(working: Promise<void>, rest: MySqlPacket[]): void {
    this.#serverWaits = true;
    this.#serverLater = rest;
    this.#up.pause();
    working.then(
      () => {
        this.#serverWaits = false;
        if (this.#owner.finished()) return;
        const later = this.#serverLater;
        this.#serverLater = [];
        this.#serve(later);
        if (!this.#serverWaits && !this.#session.channel.writableNeedDrain) this.#up.resume();
      },
      (err: unknown) => this.#owner.end('protocol-violation', describeError(err)),
    );
  }

  /** Server packet `p` (read as `kind`) through the stages from the `from`th on, with `payload` as the one before made it, then handed on; a Promise while a stage works. */
  #staged(p: MySqlPacket, kind: ServerPacket, payload: Buffer, from: number): Promise<void> | undefined {
    for (let i = from; i < this.#serverStages.length; i++) {
      const made = this.#serverStages[i]!.server!(kind, payload, this.#conversation.answering);
      if (made instanceof Promise) return made.then((b) => (this.#owner.finished() ? undefined : this.#staged(p, kind, b, i + 1)));
      payload = made;
    }
    this.#handOn(p, kind, payload);
    return undefined;
  }

  /** Server packet `p` as the stages made it (`payload`): written to the client and recorded, or held by the guard. */
  #handOn(p: MySqlPacket, kind: ServerPacket, payload: Buffer): void {
    // The judge follows what the client's command changed of how the server reads SQL (a SET sql_mode), once it ran.
    if (!this.#conversation.answering) this.#judge.answered(kind.kind === 'ok');
    const g = this.#guarded;
    if (this.#stages.masking) {
      const out = payload === p.payload && this.#seqShift === 0 ? asCame(p) : this.#framed(p, payload);
      if (!g) this.#write(out);
    }
    if (!g) return this.#recorder?.server(kind, payload);
    g.hold(kind, payload);
    if (!this.#conversation.answering) this.#guardStep(g.wrote(kind, payload));
  }

  /** Whether server packet `payload` answers the gateway's own statement (read here, never the client's); 'ended' when its answer ends the session. */
  #ownAnswer(kind: ServerPacket, payload: Buffer): boolean | 'ended' {
    if (this.#resetting) {
      if (this.#conversation.answering) return true;
      this.#resetting = false;
      if (kind.kind === 'ok') return true;
      this.#owner.end('protocol-violation', "the access's server timeouts could not be set again");
      return 'ended';
    }
    const g = this.#guarded;
    if (!g || g.writing) return false;
    this.#guardStep(g.answered(kind, payload, this.#conversation.answering, this.#conversation.status));
    return true;
  }

  /**
   * Server packet `p` with `payload` in place of its own, framed: its sequence id follows the
   * packets written before it in the same answer (a payload masking made shorter or longer than
   * 16 MiB is one packet fewer or more).
   */
  #framed(p: MySqlPacket, payload: Buffer): Buffer {
    const out = packet((p.seq + this.#seqShift) & 0xff, payload);
    const received = (p.next - p.seq) & 0xff;
    const sent = Math.floor(payload.length / MAX_PACKET_PAYLOAD) + 1;
    this.#seqShift += sent - received;
    return out;
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
    if (this.#queued.length > 0 || this.#held || this.#guarded || this.#resetting || this.#up.writableNeedDrain || this.#session.recording?.stream.behind) return;
    this.#session.channel.resume();
  }

  /** Runs `step`; what a peer sends that breaks the protocol ends this one session. */
  #safely(step: () => void): void {
    try {
      step();
    } catch (err) {
      this.#owner.end('protocol-violation', describeError(err));
    }
  }

  /** Whether a command may be taken now: none in flight (its answer not yet ended, held for review, guarded) and the session on. */
  #free(): boolean {
    return !this.#held && !this.#guarded && !this.#resetting && !this.#reading && !this.#conversation.answering && !this.#owner.finished();
  }

  /** Takes the client's next command when none is in flight (see the module documentation). */
  #next(): void {
    const waiting = this.#queued[0];
    if (this.#reset && waiting && !this.#judge.readsDiagnostics(waiting.payload) && this.#free()) {
      // What ran may have run stored code that changed the access's timeouts: they are set again before the next command
      // (after a read of what the client's statement left, ROW_COUNT() and the like, which the gateway's own SET would change).
      this.#resetting = true;
      this.#own(this.#reset);
      this.#reset = undefined;
    }
    while (this.#queued.length > 0 && this.#free()) {
      // A long statement is read off the event loop first (judged, then its secrets found for the recording); the queue waits for it, then goes on.
      const next = this.#queued[0]!.payload;
      const held = this.#heldText(next);
      const reading = this.#judge.reads(next, held) ?? this.#recorder?.ahead(next, this.#judge.lexing);
      if (reading) {
        this.#reading = true;
        reading.then(
          () => {
            this.#reading = false;
            this.#safely(() => this.#next());
          },
          (err: unknown) => this.#owner.end('protocol-violation', `a long command could not be read: ${describeError(err)}`),
        );
        break;
      }
      this.#command(this.#queued.shift()!, held);
    }
    if (this.#queued.length > 0 || this.#held) this.#session.channel.pause();
    else this.#resumeClient();
  }

  /** One packet of the client's, with the text of the prepared statement it executes if any: a command relayed or refused (recorded either way). */
  #command(p: MySqlPacket, held: string | undefined): void {
    const code = p.payload[0] ?? -1;
    if (p.seq !== 0) throw new Error(`a client packet of sequence ${p.seq} where a command was due`);
    if (code === Command.QUIT) return this.#owner.end('client-terminated');
    const recorded = this.#recorder?.client(p.payload, this.#judge.lexing);
    const judged = this.#judge.judge(code, p.payload, held);
    if (judged && 'ask' in judged) return this.#hold(p, judged.ask);
    if (judged && 'kill' in judged) return this.#kill(p, judged.kill);
    if (judged) return this.#refuse(p, judged, 'deny');
    if (code === Command.QUERY && recorded !== undefined) this.#session.report?.sql(recorded);
    const statement = this.#stages.prepared.named(p.payload);
    if (held !== undefined && this.#judge.judgesHeld) this.#stages.prepared.judged(statement, this.#judge.lastFacts, this.#judge.lastGuard);
    if (code === Command.STMT_EXECUTE && statement === undefined && p.payload.length >= 5 && this.#judge.governs) {
      return this.#refuse(p, { rule: 'hoop:mysql-command', reason: 'COM_STMT_EXECUTE of the statement prepared last (id -1), and none is' }, 'deny');
    }
    const guard = code === Command.QUERY ? this.#judge.lastGuard : code === Command.STMT_EXECUTE ? this.#stages.prepared.guard(statement) : undefined;
    if (guard) return this.#guard(p, guard);
    this.#send(p);
  }

  /**
   * Command `p`, a KILL of connection `kill.id` as a client was greeted with it: sent as a KILL of
   * the server's own id of that session, when it is one of this owner's, else refused.
   */
  #kill(p: MySqlPacket, kill: Kill): void {
    const target = this.#owner.killTarget(kill.id);
    if (typeof target !== 'number') return this.#refuse(p, { rule: 'hoop:mysql-kill', reason: target.refused }, 'deny');
    this.#send({ ...p, payload: Buffer.concat([Buffer.from([Command.QUERY]), Buffer.from(`KILL ${kill.query ? 'QUERY' : 'CONNECTION'} ${target}`, 'latin1')]) });
  }

  /** The text the prepared statement a COM_STMT_EXECUTE `payload` names runs, if known. */
  #heldText(payload: Buffer): string | undefined {
    return payload[0] === Command.STMT_EXECUTE ? this.#stages.prepared.text(this.#stages.prepared.named(payload)) : undefined;
  }

  /** Runs command `p`, a write under row limit `limit`, so that the server counts its rows before they commit (./write-guard.ts). */
  #guard(p: MySqlPacket, limit: GuardedWrite): void {
    this.#guarded = new GuardedWriteRun(p, limit, { status: this.#conversation.status, capabilities: this.#capabilities, mayReview: this.#session.reviews !== undefined });
    this.#guardStep(this.#guarded.start());
  }

  /** Does what the guarded write in flight needs next: the gateway's own statement, the client's command, or its end. */
  #guardStep(step: GuardStep | undefined): void {
    const g = this.#guarded;
    if (!step || !g) return;
    if (step.do === 'own') return this.#own(step.sql);
    if (step.do === 'write') return this.#send(g.p);
    this.#guarded = undefined;
    if (step.do === 'review') return this.#hold(g.p, step.ask);
    if (step.do === 'refuse') this.#refuse(g.p, { rule: step.rule, reason: step.reason }, 'deny');
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
    this.#conversation.command(payload);
    this.#up.write(packet(0, payload));
  }

  /** Sends the client's command `p` to the server, which answers it next; the stages told of it first. */
  #send(p: MySqlPacket): void {
    this.#conversation.command(p.payload);
    this.#seqShift = 0;
    const code = p.payload[0]!;
    const statement = code === Command.STMT_EXECUTE || code === Command.STMT_CLOSE ? this.#stages.prepared.named(p.payload) : undefined;
    const facts = code === Command.STMT_EXECUTE ? this.#stages.prepared.facts(statement) : this.#judge.lastFacts;
    const sent: SentCommand = { code, payload: p.payload, statement, facts, guard: code === Command.STMT_PREPARE ? this.#judge.lastGuard : undefined };
    for (const stage of this.#sentStages) stage.sent!(sent);
    this.#reset = code === Command.QUERY ? this.#judge.lastReset : code === Command.STMT_EXECUTE ? this.#judge.timeoutsSql : undefined;
    this.#up.write(asCame(p));
  }

  /** Answers command `p` with an ERR saying why hoop did not relay it (recorded and reported as the refusal it is). */
  #refuse(p: MySqlPacket, refusal: { rule: string; reason: string }, action: 'deny' | 'review'): void {
    this.#session.recording?.stream.event({ t: 'decision', at: realClock.now(), action, rule: refusal.rule, reason: refusal.reason });
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
    recording?.stream.event({ t: 'decision', at: realClock.now(), action: 'review', rule: ask.rule ?? 'policy', reason: ask.reason });
    const pending = this.#session.reviews!.request(ask);
    this.#held = { pending };
    const said = { id: pending.id, ...(ask.rule !== undefined ? { rule: ask.rule } : {}), groups: ask.settings.groups, approvals: ask.settings.approvals };
    if (!pending.reused) channel.sendControl({ type: 'review', state: 'pending', ...said, timeoutMs: ask.settings.timeoutMs });
    void pending.decided.then((o) => {
      if (this.#owner.finished()) return;
      channel.sendControl({
        type: 'review',
        state: o.state,
        ...said,
        ...(o.state === 'denied' ? { by: o.by, ...(o.reason ? { reason: o.reason } : {}) } : o.state === 'approved' ? { by: o.by } : {}),
      });
      if (o.state === 'approved') this.#send(p);
      else {
        const why = o.state === 'denied' ? `denied by ${o.by}${o.reason ? ` (${o.reason})` : ''}` : o.state === 'expired' ? 'no reviewer decided in time' : 'withdrawn';
        this.#refuse(p, { rule: ask.rule ?? 'policy', reason: `the review ${pending.id} ended: ${why}` }, 'review');
      }
      this.#held = undefined;
      this.#safely(() => this.#next());
    });
  }

  /** Writes `bytes` to the client: into the server chunk's batch while one is read. */
  #write(bytes: Buffer): void {
    const batch = this.#batch;
    if (!batch) return this.#owner.write(bytes);
    // Packets that went on as they came lie one after another in the server's chunk: one view of them, not a copy.
    const last = batch[batch.length - 1];
    if (last && last.buffer === bytes.buffer && last.byteOffset + last.length === bytes.byteOffset) batch[batch.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + bytes.length);
    else batch.push(bytes);
  }
}
