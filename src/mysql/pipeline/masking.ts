/**
 * Masking, as a stage (./stages.ts): each result masked by the policy (./result-masker.ts), its
 * computed columns by what the command runs (a prepared statement's own SQL); a table the session
 * alters or drops unknown from then on, one it makes of columns alone known once the server made it.
 */
import { Command } from '../wire/results.js';
import type { ServerPacket } from './conversation.js';
import type { MysqlResultMasker } from './result-masker.js';
import type { MysqlStage, SentCommand } from './stages.js';

/** See the module documentation. */
export class MaskingStage implements MysqlStage {
  readonly #masker: MysqlResultMasker;
  /** The table the command in flight makes (a CREATE TABLE of columns alone), known once the server answers OK. */
  #creating: { table: string; columns: string[] } | undefined;

  constructor(masker: MysqlResultMasker) {
    this.#masker = masker;
  }

  sent(c: SentCommand): void {
    this.#masker.statement(c.facts);
    const changed = (c.facts ?? []).filter((f) => f.kinds.some((k) => k === 'alter' || k === 'drop')).flatMap((f) => f.tables);
    if (changed.length > 0) this.#masker.tablesChanged(changed);
    this.#creating = (c.code === Command.QUERY || c.code === Command.STMT_EXECUTE) && c.facts?.length === 1 ? c.facts[0]!.createsTable : undefined;
  }

  server(kind: ServerPacket, payload: Buffer, answering: boolean): Buffer | Promise<Buffer> {
    if (this.#creating && !answering) {
      if (kind.kind === 'ok') this.#masker.tableCreated(this.#creating.table, this.#creating.columns);
      this.#creating = undefined;
    }
    // A row with a long value is masked in the worker first: the relay reads no more of the server meanwhile.
    return this.#masker.ahead(kind, payload) ?? this.#masker.server(kind, payload);
  }
}
