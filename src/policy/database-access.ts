/**
 * Which database roles and databases a PostgreSQL session may use. A connection names its own
 * role and database (`user`, `database`) and may hold more (`roles`, each with its credential;
 * `databases`, on the same server). An access rule lists which of them the people it admits may
 * pick (`roles`, `databases`); a rule that lists none gives the connection's own. A session's
 * choices are those of the rules that give it its mode, the connection's own first when among
 * them; a renewed token keeps the session only while they still include all of them. The
 * client picks with its StartupMessage's `user` and `database`, as with a server of its own, and
 * anything else is refused as that server would refuse it (src/postgres/gateway/database-access.ts).
 * As Teleport's database users: the role is the client's to name, the policy's to allow; and
 * once in, a session cannot become a role the access does not allow ({@link roleRefusal}).
 *
 * @see https://goteleport.com/docs/enroll-resources/database-access/rbac/
 */
import type { StatementFacts } from './sql/analyze.js';

/** What of a PostgreSQL connection (as written, or as the gateway holds it) names its roles and databases. */
interface RolesAndDatabases {
  user: string;
  database: string;
  roles?: ReadonlyArray<{ user: string }>;
  databases?: readonly string[];
}

/** The database roles and databases a session may pick; the first of each is what it gets when it names none. */
export interface DatabaseAccess {
  roles: readonly string[];
  databases: readonly string[];
}

/** What an access rule says of database roles and databases (absent: the connection's own). */
export interface DatabaseChoices {
  roles?: readonly string[];
  databases?: readonly string[];
}

/** Whether `now` still allows everything `before` did (a session's token renewed under a changed access). */
export function stillIncludes(now: DatabaseAccess | undefined, before: DatabaseAccess | undefined): boolean {
  if (!before) return true;
  return !!now && before.roles.every((r) => now.roles.includes(r)) && before.databases.every((d) => now.databases.includes(d));
}

/** The roles a rule may name on `c`: its own, and those it holds credentials for. */
export function connectionRoles(c: RolesAndDatabases): string[] {
  return [c.user, ...(c.roles ?? []).map((r) => r.user)];
}

/** The databases a rule may name on `c`. */
export function connectionDatabases(c: RolesAndDatabases): string[] {
  return [c.database, ...(c.databases ?? [])];
}

/**
 * What the access `rules` that give a session on `connection` its mode let it pick (see the
 * module documentation; `accessFor` passes the rules giving the mode it grants, and the
 * requestable ones only while the access rests on their grant).
 */
export function databaseAccessOf(connection: RolesAndDatabases, rules: readonly DatabaseChoices[]): DatabaseAccess {
  // A rule over several connections may list one's roles the others lack: each connection gives only what it holds.
  const pick = (own: string, held: readonly string[], listed: (r: DatabaseChoices) => readonly string[] | undefined): string[] => {
    const all = new Set(rules.flatMap((r) => listed(r) ?? [own]).filter((x) => held.includes(x)));
    return all.has(own) ? [own, ...[...all].filter((x) => x !== own)] : [...all];
  };
  return { roles: pick(connection.user, connectionRoles(connection), (r) => r.roles), databases: pick(connection.database, connectionDatabases(connection), (r) => r.databases) };
}

/**
 * The roles and databases `rule` lists that a PostgreSQL connection it names explicitly does not
 * hold (a rule over `*` allows each where it exists), as `[key, index, message]`.
 */
export function databaseChoiceProblems(
  rule: DatabaseChoices & { connections: readonly string[] },
  connections: ReadonlyArray<{ name: string; type: string } & Partial<RolesAndDatabases>>,
): Array<[key: 'roles' | 'databases', index: number, message: string]> {
  const problems: Array<[key: 'roles' | 'databases', index: number, message: string]> = [];
  const named = connections.filter((c): c is { name: string; type: string } & RolesAndDatabases => c.type === 'postgres' && rule.connections.includes(c.name));
  const check = (key: 'roles' | 'databases', listed: readonly string[] | undefined, held: (c: RolesAndDatabases) => string[]): void => {
    listed?.forEach((name, i) => {
      const lacking = named.filter((c) => !held(c).includes(name));
      if (lacking.length > 0)
        problems.push([
          key,
          i,
          `${key === 'roles' ? 'role' : 'database'} "${name}" is not one connection "${lacking[0]!.name}" has (it has ${held(lacking[0]!)
            .map((x) => `"${x}"`)
            .join(', ')}${key === 'roles' ? "; add it to the connection's roles, with its password" : "; add it to the connection's databases"})`,
        ]);
    });
  };
  check('roles', rule.roles, connectionRoles);
  check('databases', rule.databases, connectionDatabases);
  return problems;
}

/** Rule name of decisions that keep a session to the database roles its access allows. */
export const ROLE_RULE = 'database-roles';

/**
 * Why `facts` would make the session (or a later one: ALTER ROLE … SET role) a database role
 * outside `roles`, or undefined: a role or session authorization set to one not listed, or from
 * an expression the gateway cannot read (back to the session's own, `NONE` or `DEFAULT`, is
 * always allowed).
 */
export function roleRefusal(facts: StatementFacts, roles: readonly string[]): string | undefined {
  if (!facts.kinds.some((k) => k === 'set-role' || k === 'set-session-authorization')) return undefined;
  for (const { name, value, raw } of facts.settings) {
    if (name === undefined) return 'a setting named by an expression, which could be the role';
    if (name !== 'role' && name !== 'session_authorization') continue;
    // A name is compared as the server reads it, case and spaces included (`"ADMIN"` is not admin).
    if (raw !== undefined ? raw !== 'none' && !roles.includes(raw) : value !== 'default') {
      return value === undefined || raw === undefined ? `${name === 'role' ? 'a role' : 'a session authorization'} from an expression` : `role "${raw}"`;
    }
  }
  return undefined;
}
