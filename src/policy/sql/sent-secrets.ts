/**
 * Whether what the server says may repeat a secret the client sent. Once a session sent anything its
 * record redacts or cannot read (a password typed or bound, what the detectors find, SQL too long to
 * read, a Bind streamed past the relay, a COPY FROM's rows), the text of every error, notice and
 * notification after it is recorded as one marker: the server may repeat a value in any spelling
 * (its parts joined, case folded, as hex, truncated, in a trigger's RAISE or `pg_notify`, long after,
 * at a deferred COMMIT), and no match of the text sent finds them all. Their codes, severities and
 * positions stay as the server said them.
 */
import { redactionMarker } from './redact.js';

/**
 * The fields of a PostgreSQL error or notice no client's value can be in: severity, SQLSTATE,
 * positions, and the server's own source file, line and routine. Every other (the message, DETAIL,
 * HINT, CONTEXT, the internal query, and the schema, table, column, type and constraint names,
 * which PL/pgSQL's `RAISE … USING TABLE = …` fills with any text) may quote one.
 * @see https://www.postgresql.org/docs/current/protocol-error-fields.html
 * @see https://www.postgresql.org/docs/current/plpgsql-errors-and-messages.html
 */
const SERVER_FIELDS = new Set(['S', 'V', 'C', 'P', 'p', 'F', 'L', 'R']);

/** See the module documentation. */
export class SentSecrets {
  readonly #key: Buffer | string | undefined;
  #tainted = false;

  constructor(key: Buffer | string | undefined) {
    this.#key = key;
  }

  /** The client sent something its record redacts or cannot read. */
  taint(): void {
    this.#tainted = true;
  }

  get tainted(): boolean {
    return this.#tainted;
  }

  /** A text of the server's (an error's message, a notification's payload) as it is recorded. */
  text(text: string): string {
    return this.#tainted ? redactionMarker(text, this.#key) : text;
  }

  /** Field `code` of a PostgreSQL error or notice as it is recorded (see {@link SERVER_FIELDS}). */
  field(code: string, text: string): string {
    return SERVER_FIELDS.has(code) ? text : this.text(text);
  }
}
