/**
 * The one contract of the MySQL lane's command phase: every concern on the relay's one read of
 * each direction is a {@link MysqlStage}, and the relay (./relay.ts) runs the stages it has in the
 * order it declares there. A stage has only the hooks of the directions it cares about:
 *
 * - the prepared statements (./prepared.ts): which statement a COM_STMT_* names, what it runs, its row limit;
 * - the statement tally (./tally.ts): what each statement read and changed;
 * - masking (./masking.ts): results masked by the policy.
 *
 * The judge (./command-judge.ts), the write guard (./write-guard.ts) and the recorder
 * (./record-tap.ts) stand where the relay's order names them: a command is recorded as it came,
 * judged, then guarded or sent; an answer is counted, masked, held by the guard, then recorded as
 * the client receives it.
 *
 * @see https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_command_phase.html
 */
import type { StatementFacts } from '../../policy/sql/analyze/facts.js';
import type { GuardedWrite } from './command-judge.js';
import type { ServerPacket } from './conversation.js';

/** A command going to the server for the client, as the stages are told of it. */
export interface SentCommand {
  /** Its command byte. */
  readonly code: number;
  readonly payload: Buffer;
  /** The prepared statement a COM_STMT_* names (MariaDB's "the last one" resolved), when it names one. */
  readonly statement: number | undefined;
  /** What it runs: its own SQL's facts, or those of the statement it executes. */
  readonly facts: readonly StatementFacts[] | undefined;
  /** The row limit the judge found for its SQL (a prepare's, kept for each execute of it). */
  readonly guard: GuardedWrite | undefined;
}

/** One concern on the relay's path, with the hooks of the directions it cares about, called in the relay's declared order. */
export interface MysqlStage {
  /** A command goes to the server: what the stage must note of it. */
  sent?(c: SentCommand): void;
  /** A packet of the server's answer to the client's command (read as `kind`), as the stages before made it: what to hand on, a Promise of it while the stage works (the relay reads no more of the server meanwhile). */
  server?(kind: ServerPacket, payload: Buffer, answering: boolean): Buffer | Promise<Buffer>;
}
