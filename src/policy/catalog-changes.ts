/**
 * What changed in a connection's catalog through the gateway, for the caches of what its
 * relations are (src/postgres/gateway/relation-reads.ts, src/mysql/gateway/relations.ts): each
 * change by the names it may redefine (bare, lower-case; none: any), so a lookup it overlapped
 * keeps only what it cannot have made stale; and the names each session's open transaction is
 * redefining, which other sessions judge as anything until it ends (src/session/catalog-judge.ts).
 */

/** Changes remembered for the lookups they overlap; past it the oldest go (a lookup that overlapped one forgotten keeps nothing). */
const MAX_CHANGES = 256;

/** Among what is under a relation: a write to it may reach further tables by other commands than its own (a foreign key's action, a rule). */
export const WRITES_BEYOND = '!';

/** Among what is under a relation: its rows are another's (a foreign table; MySQL's MERGE, FEDERATED or CONNECT table): any table, whatever a session made of it. */
export const ROWS_ELSEWHERE = '@';

/** The bare name (the search path, or the session's database, decides the schema) of `schema.relation` or `relation`. */
export const bareName = (name: string): string => name.slice(name.lastIndexOf('.') + 1);

/** Whether a change of the relations `changed` (bare names) may change what `name`, which reads `tables`, is. */
export function touches(changed: ReadonlySet<string>, name: string, tables: Iterable<string>): boolean {
  if (changed.has(bareName(name))) return true;
  for (const t of tables) if (t === '*' || changed.has(bareName(t))) return true;
  return false;
}

/** One connection's changes (see the module documentation). */
export class CatalogChanges {
  readonly #changes: Array<{ at: number; names: ReadonlySet<string> | undefined }> = [];
  /** When the latest change no longer remembered was. */
  #forgotAt = Number.NEGATIVE_INFINITY;
  /** Per session whose open transaction may redefine relations, their bare names (`*`: any). */
  readonly #redefining = new Map<object, Set<string>>();
  #version = 0;

  /** Changes with each change of what sessions are redefining (what {@link inFlux} answers). */
  get version(): number {
    return this.#version;
  }

  /** Notes a change at `at` of `names` (none, or `*` among them: any); returns the names, undefined for any. */
  note(at: number, names?: readonly string[]): ReadonlySet<string> | undefined {
    const only = names && !names.includes('*') ? new Set(names) : undefined;
    this.#changes.push({ at, names: only });
    if (this.#changes.length > MAX_CHANGES) this.#forgotAt = this.#changes.shift()!.at;
    return only;
  }

  /** For a lookup started at `started`: which of its answers the changes since may have made stale; undefined when all may be. */
  staleSince(started: number): ((name: string, tables: Iterable<string>) => boolean) | undefined {
    const changes = this.#changes.filter((c) => c.at >= started);
    if (this.#forgotAt >= started || changes.some((c) => !c.names)) return undefined;
    return (name, tables) => changes.some((c) => touches(c.names!, name, tables));
  }

  /** `session`'s open transaction may redefine `names` (bare; `*`: any). */
  redefining(session: object, names: readonly string[]): void {
    const held = this.#redefining.get(session) ?? new Set<string>();
    for (const n of names) held.add(n);
    this.#redefining.set(session, held);
    this.#version++;
  }

  /** `session`'s transaction (or the session) ended: the names it was redefining, if any. */
  redefined(session: object): string[] | undefined {
    const names = this.#redefining.get(session);
    if (!names) return undefined;
    this.#redefining.delete(session);
    this.#version++;
    return [...names];
  }

  /** Whether a session other than `session` has an open transaction that may redefine `name` (bare). */
  inFlux(name: string, session: object): boolean {
    for (const [other, names] of this.#redefining) if (other !== session && (names.has(name) || names.has('*'))) return true;
    return false;
  }
}
