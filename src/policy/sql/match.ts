/**
 * Matching a statement rule's `tables` and `functions` globs against what the SQL analysis found.
 *
 * Names are dotted (`schema.name`); a glob's `*` stands for any run of characters *within one
 * part* (`billing.*` matches `billing.invoices`, not `billing.x.y`), and everything is compared
 * lower-case. A glob without a dot names the object in any schema (`cards` = `*.cards`).
 *
 * SQL that does not qualify a name leaves it to the search path, which the session can change
 * (`SET search_path`, `set_config('search_path', ...)`). So an unqualified name `t` matches:
 * - every glob that matches `public.t` (tables; for functions also `pg_catalog.t`, which is
 *   always searched first), and
 * - every glob whose last part is not just `*`, whatever its schema part: `billing.cards` and
 *   `billing.card*` match an unqualified `cards`, since the search path may lead there.
 * A schema-wide glob (`billing.*`) matches an unqualified name only through `public`: rules on
 * whole schemas cannot see through a changed search path (deny `SET search_path` or qualify).
 *
 * A fact part that is itself `*` (`GRANT ... ON ALL TABLES IN SCHEMA billing` is reported as
 * `billing.*`) matches any glob part.
 *
 * @see https://www.postgresql.org/docs/17/ddl-schemas.html#DDL-SCHEMAS-PATH
 */
import { globMatches } from '../../glob.js';

function partMatches(globPart: string, factPart: string): boolean {
  return factPart === '*' || globMatches(globPart, factPart);
}

function split(name: string): [schema: string | undefined, name: string] {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? [undefined, name] : [name.slice(0, dot), name.slice(dot + 1)];
}

function matchesOne(glob: string, fact: string, implicitSchemas: readonly string[]): boolean {
  const [gSchema, gName] = split(glob.toLowerCase());
  const [fSchema, fName] = split(fact.toLowerCase());
  if (!partMatches(gName, fName)) return false;
  if (gSchema === undefined) return true;
  if (fSchema !== undefined) return partMatches(gSchema, fSchema);
  if (gName !== '*') return true;
  return implicitSchemas.some((s) => partMatches(gSchema, s));
}

/**
 * True when any of `globs` matches any of `tables` (as reported by the SQL analysis).
 * @see https://www.postgresql.org/docs/17/ddl-schemas.html#DDL-SCHEMAS-PATH
 */
export function tablesMatch(globs: readonly string[], tables: readonly string[]): boolean {
  return globs.some((g) => tables.some((t) => matchesOne(g, t, ['public'])));
}

/**
 * True when any of `globs` matches any of `functions` (as reported by the SQL analysis).
 * @see https://www.postgresql.org/docs/17/ddl-schemas.html#DDL-SCHEMAS-CATALOG
 */
export function functionsMatch(globs: readonly string[], functions: readonly string[]): boolean {
  return globs.some((g) => functions.some((f) => matchesOne(g, f, ['pg_catalog', 'public'])));
}
