/**
 * The session's prepared statements, as a stage (./stages.ts): the id each prepare got from the
 * server, its text, what each runs (its SQL's facts, which its results are masked by) and its row
 * limit, as judged last (at each execute again, with rules on tables), and which statement
 * MariaDB's id "the last one" names.
 *
 * @see https://mariadb.com/kb/en/com_stmt_execute/
 */
import type { StatementFacts } from '../../policy/sql/analyze/facts.js';
import { Command } from '../wire/results.js';
import type { GuardedWrite } from './command-judge.js';
import type { ServerPacket } from './conversation.js';
import type { MysqlStage, SentCommand } from './stages.js';

/** MariaDB's statement id for the statement prepared last on the session. */
const LAST_STATEMENT = 0xffffffff;

/** See the module documentation. */
export class PreparedStatements implements MysqlStage {
  readonly #facts = new Map<number, readonly StatementFacts[] | undefined>();
  readonly #guards = new Map<number, GuardedWrite>();
  readonly #texts = new Map<number, string>();
  /** The prepare in flight. */
  #preparing: SentCommand | undefined;
  /** The id of the statement prepared last; undefined when there is none. */
  #last: number | undefined;

  /** The prepared statement a COM_STMT_* command `payload` names: its id, or for {@link LAST_STATEMENT} the last one (undefined when there is none). */
  named(payload: Buffer): number | undefined {
    if (payload.length < 5) return undefined;
    const id = payload.readUInt32LE(1);
    return id === LAST_STATEMENT ? this.#last : id;
  }

  /** What statement `id` runs. */
  facts(id: number | undefined): readonly StatementFacts[] | undefined {
    return id === undefined ? undefined : this.#facts.get(id);
  }

  /** The text statement `id` was prepared from. */
  text(id: number | undefined): string | undefined {
    return id === undefined ? undefined : this.#texts.get(id);
  }

  /** Statement `id` judged again as it is executed: what it runs and its row limit now. */
  judged(id: number | undefined, facts: readonly StatementFacts[] | undefined, guard: GuardedWrite | undefined): void {
    if (id === undefined || !this.#texts.has(id)) return;
    this.#facts.set(id, facts);
    if (guard) this.#guards.set(id, guard);
    else this.#guards.delete(id);
  }

  /** The row limit statement `id` writes under. */
  guard(id: number | undefined): GuardedWrite | undefined {
    return id === undefined ? undefined : this.#guards.get(id);
  }

  sent(c: SentCommand): void {
    this.#preparing = c.code === Command.STMT_PREPARE ? c : undefined;
    // MariaDB forgets its last statement when a prepare fails: hoop learns the new one from the server's answer.
    if (c.code === Command.STMT_PREPARE) this.#last = undefined;
    if (c.code === Command.STMT_CLOSE && c.statement !== undefined) {
      this.#guards.delete(c.statement);
      this.#facts.delete(c.statement);
      this.#texts.delete(c.statement);
      if (c.statement === this.#last) this.#last = undefined;
    }
  }

  server(kind: ServerPacket, payload: Buffer): Buffer {
    if (kind.kind === 'prepared') {
      this.#last = kind.statement;
      this.#facts.set(kind.statement, this.#preparing?.facts);
      if (this.#preparing) this.#texts.set(kind.statement, this.#preparing.payload.toString('utf8', 1));
      else this.#texts.delete(kind.statement);
      if (this.#preparing?.guard) this.#guards.set(kind.statement, this.#preparing.guard);
    }
    return payload;
  }
}
