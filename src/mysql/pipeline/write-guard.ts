/**
 * A MySQL write under a row limit (`maxAffectedRows`), run so that the server counts its rows
 * before they commit: in the client's transaction (or with autocommit off) behind a SAVEPOINT,
 * else in a transaction of the gateway's own; before it, in that transaction, a check that every
 * table it names is InnoDB now (a rollback undoes nothing else). Its answer is held (at most
 * {@link MAX_HELD_BYTES}) until the count is in; then the write is kept (RELEASE, COMMIT) and the
 * client gets its answer, its status as the server's after, or it is rolled back and refused or
 * held for review. The gateway's own statements' answers never reach the client.
 *
 * {@link GuardedWriteRun} holds one such write's state and says, at each answer, what the relay
 * (./session-relay.ts) does next ({@link GuardStep}); the relay sends and writes.
 *
 * @see https://mariadb.com/kb/en/savepoint/
 */
import { createHash } from 'node:crypto';
import type { ReviewAsk } from '../../session/engine.js';
import { WRITE_GUARD_RULE } from '../../policy/write-limit.js';
import type { ServerPacket } from './conversation.js';
import { MAX_PACKET_PAYLOAD, type MySqlPacket } from '../wire/packets.js';
import { errPacket, parseErr, parseOk, parseTextRow, Status, withStatus } from '../wire/results.js';
import type { GuardedWrite } from './command-judge.js';

/** The savepoint behind a write under a row limit in the client's transaction. */
const GUARD_SAVEPOINT = 'hoop_row_limit';
/** Most bytes of a guarded write's answer held until its rows are counted. */
const MAX_HELD_BYTES = 16 * 1024 * 1024;

/** What the relay does next for a guarded write. */
export type GuardStep =
  /** Sends the gateway's own statement; its answer comes back to {@link GuardedWriteRun.answered}. */
  | { do: 'own'; sql: string }
  /** Sends the client's command; its answer is held (through {@link GuardedWriteRun.hold}) until {@link GuardedWriteRun.wrote}. */
  | { do: 'write' }
  /** Ends: the client gets these payloads (read as `kinds`) as the answer to its command. */
  | { do: 'answer'; held: Buffer[]; kinds: ServerPacket[] }
  /** Ends: the client gets this ERR. */
  | { do: 'error'; err: Buffer }
  /** Ends: refused by hoop, with its reason. */
  | { do: 'refuse'; rule: string; reason: string }
  /** Ends: held for review (rolled back meanwhile). */
  | { do: 'review'; ask: ReviewAsk };

/**
 * The gateway's own statement, in its transaction before a guarded write: how many of the
 * `tables` it names (`db.table`, lower-case) are not InnoDB now. The names go in as hex, whatever
 * the session's quoting rules.
 */
function engineCheck(tables: readonly string[]): string {
  const names = tables.map((t) => `CONVERT(X'${Buffer.from(t, 'utf8').toString('hex')}' USING utf8mb4)`).join(', ');
  return `SELECT COUNT(*) FROM information_schema.TABLES WHERE LOWER(CONCAT(TABLE_SCHEMA, '.', TABLE_NAME)) IN (${names}) AND (ENGINE IS NULL OR ENGINE <> 'InnoDB')`;
}

/** See the module documentation. */
export class GuardedWriteRun {
  /** The client's command. */
  readonly p: MySqlPacket;
  readonly #limit: GuardedWrite;
  readonly #capabilities: number;
  readonly #mayReview: boolean;
  /** `open`: the gateway's SAVEPOINT or START TRANSACTION; `check`: its tables' engines; `write`: the client's command; `close`: keeping or rolling back. */
  #step: 'open' | 'check' | 'write' | 'close' = 'open';
  /** In the client's transaction: behind a savepoint (else in the gateway's own transaction). */
  #savepoint: boolean;
  /** Tables the write names that are not InnoDB now (the `check`'s count), and the refusal that makes. */
  #foreign: number | undefined;
  #refused: string | undefined;
  /** The answer's payloads, held, and what each is. */
  #held: Buffer[] = [];
  #kinds: ServerPacket[] = [];
  #bytes = 0;
  /** Rows of a result (MariaDB's RETURNING). */
  #rows = 0;
  /** The answer was more than {@link MAX_HELD_BYTES}: it cannot be held, and the write is rolled back. */
  #tooBig = false;
  /** Rows over the limit (set when it is rolled back). */
  #over: number | undefined;
  /** The write's own error (its answer, whatever the gateway's RELEASE or ROLLBACK after it says). */
  #error: Buffer | undefined;

  /** `status`: the server's status flags now; `mayReview`: reviewers can be asked. */
  constructor(p: MySqlPacket, limit: GuardedWrite, o: { status: number; capabilities: number; mayReview: boolean }) {
    this.p = p;
    this.#limit = limit;
    this.#capabilities = o.capabilities;
    this.#mayReview = o.mayReview;
    this.#savepoint = (o.status & Status.IN_TRANS) !== 0 || (o.status & Status.AUTOCOMMIT) === 0;
  }

  /** Whether the client's command is being answered (its packets are held, not the gateway's own). */
  get writing(): boolean {
    return this.#step === 'write';
  }

  /** The first step. */
  start(): GuardStep {
    return { do: 'own', sql: this.#savepoint ? `SAVEPOINT ${GUARD_SAVEPOINT}` : 'START TRANSACTION' };
  }

  /** Holds a packet (`payload`, read as `kind`) of the write's answer. */
  hold(kind: ServerPacket, payload: Buffer): void {
    if (kind.kind === 'row') this.#rows++;
    this.#bytes += payload.length + 4;
    if (this.#bytes > MAX_HELD_BYTES || payload.length >= MAX_PACKET_PAYLOAD) {
      this.#tooBig = true;
      this.#held = [];
      this.#kinds = [];
    } else if (!this.#tooBig) {
      this.#held.push(payload);
      this.#kinds.push(kind);
    }
  }

  /** The write's answer is in (`kind`, `payload` its last packet): its rows counted, the gateway keeps it or rolls it back. */
  wrote(kind: ServerPacket, payload: Buffer): GuardStep {
    const changed = kind.kind === 'ok' ? parseOk(payload, this.#capabilities).affectedRows : 0n;
    const rows = changed > BigInt(this.#rows) ? changed : BigInt(this.#rows);
    this.#step = 'close';
    if (kind.kind === 'err') this.#error = payload;
    else if (rows > BigInt(this.#limit.maxRows) || this.#tooBig) this.#over = Number(rows);
    if (this.#savepoint) return { do: 'own', sql: this.#over !== undefined ? `ROLLBACK TO SAVEPOINT ${GUARD_SAVEPOINT}` : `RELEASE SAVEPOINT ${GUARD_SAVEPOINT}` };
    return { do: 'own', sql: this.#over !== undefined || kind.kind === 'err' ? 'ROLLBACK' : 'COMMIT' };
  }

  /** A packet of the answer to one of the gateway's own statements (`answering`: more of it is due; `status`: the server's flags now); the next step once it has ended. */
  answered(kind: ServerPacket, payload: Buffer, answering: boolean, status: number): GuardStep | undefined {
    if (this.#step === 'check' && kind.kind === 'row') this.#foreign = Number(parseTextRow(payload, 1)[0]?.toString('latin1') ?? 0);
    if (answering) return undefined;
    const failed = kind.kind === 'err' ? parseErr(payload) : undefined;
    const { rule } = this.#limit;
    if (this.#step === 'open') {
      if (failed) return { do: 'error', err: errPacket({ ...failed, message: `hoop: the write under a row limit could not be guarded: ${failed.message}` }) };
      // The client's transaction can end unseen (an ERR carries no status: a DDL that failed after its implicit commit, a
      // deadlock): outside a transaction, in autocommit, a SAVEPOINT makes none, and the write would commit as it runs.
      if (this.#savepoint && (status & Status.AUTOCOMMIT) !== 0 && (status & Status.IN_TRANS) === 0) {
        this.#savepoint = false;
        return { do: 'own', sql: 'START TRANSACTION' };
      }
      this.#step = 'check';
      return { do: 'own', sql: engineCheck(this.#limit.tables) };
    }
    if (this.#step === 'check') {
      // A table renamed or altered since the session opened may be one no rollback undoes.
      if (!failed && this.#foreign === 0) {
        this.#step = 'write';
        return { do: 'write' };
      }
      this.#refused = failed
        ? `the write is under a row limit (rule "${rule}"), and hoop could not check that its tables can be rolled back: ${failed.message}`
        : `the write is under a row limit (rule "${rule}"), and a table it names is no InnoDB table now, so its rows could not be rolled back`;
      this.#step = 'close';
      return { do: 'own', sql: this.#savepoint ? `ROLLBACK TO SAVEPOINT ${GUARD_SAVEPOINT}` : 'ROLLBACK' };
    }
    // `close`: the write kept (RELEASE, COMMIT) or rolled back (ROLLBACK).
    if (this.#refused) return { do: 'refuse', rule: WRITE_GUARD_RULE, reason: this.#refused };
    if (this.#over !== undefined) return this.#overLimit(kind, payload, failed?.message);
    // A write that failed answers with its own error (a deadlock rolled back the client's transaction, and the savepoint
    // with it: the RELEASE fails too); a COMMIT that fails is the write's failure; else the client gets its answer, its
    // status as the server's now.
    if (this.#error && this.#tooBig) return { do: 'error', err: this.#error };
    if (failed && !this.#error) return { do: 'error', err: payload };
    const last = this.#held.length - 1;
    if (last >= 0 && !this.#savepoint && !this.#error) this.#held[last] = withStatus(this.#held[last]!, status, this.#capabilities);
    return { do: 'answer', held: this.#held, kinds: this.#kinds };
  }

  /** The write changed more rows than the limit (or answered more than hoop holds) and was rolled back: refused, or held for review. */
  #overLimit(kind: ServerPacket, payload: Buffer, rollbackFailed: string | undefined): GuardStep {
    const { rule, maxRows, sql, overLimit, review } = this.#limit;
    const lost = !rollbackFailed && kind.kind === 'ok' && parseOk(payload, this.#capabilities).warnings > 0 ? '; the server warned that some of it could not be rolled back' : '';
    const verb = sql.trim().split(/\s+/, 1)[0]!.toUpperCase();
    const what = this.#tooBig
      ? `the ${verb}'s result was more than the ${MAX_HELD_BYTES >> 20} MiB hoop holds while it counts rows`
      : `the ${verb} changed ${this.#over} rows, over the limit of ${maxRows}`;
    const reason = `${what} (rule "${rule}"); it was rolled back${lost}`;
    if (overLimit === 'review' && review && this.#mayReview && !rollbackFailed && !this.#tooBig) {
      const digest = createHash('sha256').update(this.p.payload).update('\0').update(sql).digest('hex');
      return { do: 'review', ask: { sql, digest, rule, reason, settings: review } };
    }
    return { do: 'refuse', rule, reason: rollbackFailed ? `${reason}, but the rollback failed: ${rollbackFailed}` : reason };
  }
}
