/**
 * The prepared statements and portals of one session, as the gateway knows them: for each name,
 * the SQL it may hold at the server, so that a Bind, an Execute or a SQL-level `EXECUTE` is
 * judged again with what it runs. PostgreSQL keeps one namespace for protocol-level (Parse) and
 * SQL-level (PREPARE) statements; '' is the unnamed statement (or portal).
 *
 * A name may hold more than one text ({@link Held}): a Parse or PREPARE of a name already held
 * adds to it until the server's answer says which one it kept. With `confirmed`, names change
 * only as the server confirms: each change hands out an answer hook (see
 * the gate decision's `answered`), and a Bind (or Execute) in the same batch as its Parse (or
 * Bind) judges what that message set, as it runs only if that message did. Without (`hoop
 * connect`'s early checks), names change as messages pass.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 * @see https://www.postgresql.org/docs/current/sql-prepare.html
 */
import type { Analysis } from '../../../policy/sql/analyze.js';
import type { AskOutcome } from '../answers.js';

/** A statement's SQL as remembered: its text, or for a long one (not decoded on the relay's thread) its analysis. */
export type Sql = string | Analysis;
/**
 * The SQL a statement or portal name may hold at the server. Usually one; a Parse or PREPARE of
 * a name already held adds to it, since the gateway does not know whether the first one failed
 * (then the server holds the second) or the second will (then it keeps the first). Each is judged.
 */
export type Held = readonly Sql[];
/** What must hear the server's answer to a message that changes a name. */
export type AnswerHook = (outcome: AskOutcome) => void;

/** The names of the gateway's own never-existing statements start with this; clients may not use it. */
export const RESERVED_STATEMENT_PREFIX = 'hoop_denied_';
/** Named statements and portals remembered per session; beyond this a new name is refused. */
export const MAX_NAMES = 10_000;
/** SQL texts one name may hold (see {@link Held}) before a new Parse of it is refused. */
export const MAX_HELD = 8;
/**
 * PostgreSQL keys prepared statements and portals by their first NAMEDATALEN - 1 bytes: longer
 * names could mean one statement to the server and two to the gateway, so they are refused.
 * @see https://www.postgresql.org/docs/current/sql-syntax-lexical.html#SQL-SYNTAX-IDENTIFIERS
 */
export const MAX_NAME_BYTES = 63;

/** What statement `name` may hold once `sql` is prepared under it (see {@link Held}); the unnamed statement is replaced. */
export function hold(name: string, sql: Sql, held: Held | undefined): Held {
  if (name === '' || held === undefined) return [sql];
  return held.includes(sql) ? held : [...held, sql];
}

/** The statement and portal names of one session and the SQL each may hold (see the module documentation). */
export class PreparedNames {
  /** Names change only as the server confirms (see the module documentation). */
  readonly confirmed: boolean;
  /** Prepared statements (protocol and SQL level, '' for the unnamed one) -> the SQL to judge again (a long one's analysis). */
  get statements(): Map<string, Held> {
    return (this.#statementsMade ??= new Map());
  }
  #statementsMade: Map<string, Held> | undefined;
  /** Portals -> the SQL of their statement. */
  get portals(): Map<string, Held> {
    return (this.#portalsMade ??= new Map());
  }
  #portalsMade: Map<string, Held> | undefined;
  /** Sync and Query messages so far: a batch is what lies between two. */
  #batch = 0;
  /** Name changes so far (a later one makes an earlier one's answer moot). */
  #changes = 0;
  /** Parses sent whose answer has not come: name -> the text, its batch, the change number, what the name held before. */
  get #tentative(): Map<string, { text: Sql; batch: number; change: number; before: Held | undefined }> {
    return (this.#tentativeMade ??= new Map());
  }
  #tentativeMade: Map<string, { text: Sql; batch: number; change: number; before: Held | undefined }> | undefined;
  /** The last change of each name with an answer pending. */
  get #lastChange(): Map<string, number> {
    return (this.#lastChangeMade ??= new Map());
  }
  #lastChangeMade: Map<string, number> | undefined;
  /** Binds sent whose answer has not come: portal -> what it was bound to, its batch, the change number, what it held before. */
  get #tentativePortals(): Map<string, { sql: Held; batch: number; change: number; before: Held | undefined }> {
    return (this.#tentativePortalsMade ??= new Map());
  }
  #tentativePortalsMade: Map<string, { sql: Held; batch: number; change: number; before: Held | undefined }> | undefined;

  constructor(confirmed: boolean) {
    this.confirmed = confirmed;
  }

  /** A Sync or a Query passed: a new batch begins. */
  nextBatch(): void {
    this.#batch++;
  }

  /** What statement `name` may hold once `sql` is prepared under it (see {@link hold}). */
  hold(name: string, sql: Sql, held: Held | undefined = this.statements.get(name)): Held {
    return hold(name, sql, held);
  }

  /**
   * A Parse of `name` passed: until the server answers, the name may hold `text` or what it held
   * before; then what the server says it holds. The hook that hears the answer, when `confirmed`.
   */
  prepared(name: string, text: Sql): AnswerHook | undefined {
    if (!this.confirmed) {
      this.statements.set(name, this.hold(name, text));
      return undefined;
    }
    const before = this.statements.get(name);
    const change = ++this.#changes;
    this.#lastChange.set(name, change);
    this.#tentative.set(name, { text, batch: this.#batch, change, before });
    this.statements.set(name, before === undefined ? [text] : before.includes(text) ? before : [...before, text]);
    return (outcome) => {
      if (this.#lastChange.get(name) !== change) return; // a later change of the name decides
      this.#lastChange.delete(name);
      this.#tentative.delete(name);
      if (outcome === 'ok') this.statements.set(name, [text]);
      // PostgreSQL drops the unnamed statement before it parses a new one, even one that fails.
      else if (outcome === 'failed' && name === '') this.statements.delete('');
      else if (before === undefined) this.statements.delete(name);
      else this.statements.set(name, before);
    };
  }

  /** What statement `name` holds for a Bind: its Parse's text when that Parse is in the Bind's batch (the Bind runs only if it did), else all it may hold. */
  heldBy(name: string): Held | undefined {
    const t = this.#tentative.get(name);
    if (t && t.batch === this.#batch && this.#lastChange.get(name) === t.change) return [t.text];
    return this.statements.get(name);
  }

  /**
   * A Bind of `portal` passed: until the server answers, the portal may hold `sql` or what it
   * held before (a Bind that fails leaves the old portal, which a later savepoint rollback can
   * bring back); then what the server says it holds. The hook that hears the answer, when `confirmed`.
   */
  bound(portal: string, sql: Held): AnswerHook | undefined {
    if (!this.confirmed) {
      this.portals.set(portal, sql);
      return undefined;
    }
    const before = this.portals.get(portal);
    const change = ++this.#changes;
    this.#tentativePortals.set(portal, { sql, batch: this.#batch, change, before });
    this.portals.set(portal, before ? [...new Set([...before, ...sql])] : sql);
    return (outcome) => {
      if (this.#tentativePortals.get(portal)?.change !== change) return; // a later Bind of it decides
      this.#tentativePortals.delete(portal);
      if (outcome === 'ok') this.portals.set(portal, sql);
      else if (before) this.portals.set(portal, before);
      else this.portals.delete(portal);
    };
  }

  /** What portal `name` holds for an Execute: its Bind's statement when that Bind is in the Execute's batch (it runs only if the Bind did), else all it may hold. */
  portalHeld(name: string): Held | undefined {
    const t = this.#tentativePortals.get(name);
    if (t && t.batch === this.#batch) return t.sql;
    return this.portals.get(name);
  }

  /** Whether a Bind of portal `name` waits for the server's answer. */
  binding(name: string): boolean {
    return this.#tentativePortals.has(name);
  }

  /** Forgets statements `names` (a Close, a DEALLOCATE) once the server confirms it did: the hook that hears the answer. */
  forgetWhenDone(names: readonly string[]): AnswerHook {
    const changes = names.map((n) => {
      const change = ++this.#changes;
      this.#lastChange.set(n, change);
      return [n, change] as const;
    });
    return (outcome) => {
      for (const [n, change] of changes) {
        if (this.#lastChange.get(n) !== change) continue;
        this.#lastChange.delete(n);
        this.#tentative.delete(n);
        if (outcome === 'ok') this.statements.delete(n);
      }
    };
  }
}
