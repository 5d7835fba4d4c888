/**
 * The statement tally, as a stage (./stages.ts): what each query or execute read and changed
 * (rows sent, rows the server says it changed, whether it failed), told to the session's report
 * once its answer ends.
 */
import type { SessionReport, StatementRows } from '../../session/engine.js';
import type { StatementFacts } from '../../policy/sql/analyze/facts.js';
import { Command, parseOk } from '../wire/results.js';
import type { ServerPacket } from './conversation.js';
import type { MysqlStage, SentCommand } from './stages.js';

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
export class StatementTally implements MysqlStage {
  readonly #report: SessionReport | undefined;
  readonly #capabilities: number;
  /** The statement in flight. */
  #running: StatementRows | undefined;

  constructor(report: SessionReport | undefined, capabilities: number) {
    this.#report = report;
    this.#capabilities = capabilities;
  }

  sent(c: SentCommand): void {
    if (c.code !== Command.QUERY && c.code !== Command.STMT_EXECUTE) return;
    this.#report?.ran();
    const verb = c.code === Command.QUERY ? (/^\s*([A-Za-z]+)/.exec(c.payload.toString('latin1', 1, 41))?.[1] ?? '').toUpperCase() : 'EXECUTE';
    this.#running = { verb, rows: 0, changed: 0, tables: tablesOf(c.facts), failed: false };
  }

  server(kind: ServerPacket, payload: Buffer, answering: boolean): Buffer {
    const st = this.#running;
    if (!st) return payload;
    if (kind.kind === 'row') st.rows++;
    else if (kind.kind === 'ok') st.changed += Number(parseOk(payload, this.#capabilities).affectedRows);
    else if (kind.kind === 'err') st.failed = true;
    if (!answering) {
      this.#running = undefined;
      this.#report?.statement(st);
    }
    return payload;
  }
}
