/**
 * The database role and database a session signs in upstream as: those its StartupMessage names
 * (`user`, `database`), among those its access allows (src/policy/database-access.ts; without a
 * policy, the connection's own). `user=hoop`, what `hoop connect` and `hoop exec` send, is the
 * access's first role; a direct client's `user` is its credential's name, so it gets that role
 * too. A role or database outside the access is refused as a server of its own would refuse one it
 * does not have (28000, 3D000), naming what the client may use. The upstream credential is the
 * chosen role's, from the connection (`password`, or its `roles` entry).
 *
 * @see https://www.postgresql.org/docs/current/errcodes-appendix.html (28000, 3D000)
 */
import type { PostgresConnection } from '../../config/connection.js';
import type { DatabaseAccess } from '../../policy/database-access.js';
import { SqlState } from '../wire/messages.js';
import { PgProtocolError } from '../wire/protocol-error.js';

/** The `user` that asks for the access's first role (what hoop's own clients send). */
export const ANY_ROLE = 'hoop';

/** What a session may pick, without a policy's word: the connection's own role and database. */
function ownAccess(connection: PostgresConnection): DatabaseAccess {
  return { roles: [connection.user], databases: [connection.database] };
}

/** The databases a session on `connection` may name (for the StartupMessage's check). */
export function databasesOf(connection: PostgresConnection, access: DatabaseAccess | undefined): readonly string[] {
  return (access ?? ownAccess(connection)).databases;
}

/**
 * `connection` as the session signs in: the role it asked for (`user`), with that role's
 * credential, on `database` (already checked against {@link databasesOf}; undefined: the first).
 *
 * @throws PgProtocolError 28000 for a role the access does not allow, naming those it does
 */
export function signInAs(connection: PostgresConnection, access: DatabaseAccess | undefined, asked: { user: string; database: string | undefined; direct: boolean }): PostgresConnection {
  const { roles, databases } = access ?? ownAccess(connection);
  const list = roles.map((r) => `"${r}"`).join(', ');
  // A role the access names is taken by its name, even one called `hoop`.
  const role = asked.direct ? roles[0] : (roles.find((r) => r === asked.user) ?? (asked.user === ANY_ROLE ? roles[0] : undefined));
  if (role === undefined) {
    throw new PgProtocolError(
      roles.length === 0
        ? `no database role of connection "${connection.name}" is allowed to you through hoop`
        : `role "${asked.user}" is not allowed to you on connection "${connection.name}" through hoop: you may use ${list}`,
      {
        sqlstate: SqlState.INVALID_AUTHORIZATION,
        hint: roles.length === 0 ? "ask the policy's owners for a role (an access rule's roles)" : `connect with user=${roles[0]} (user=${ANY_ROLE} also signs in as ${roles[0]})`,
      },
    );
  }
  const database = asked.database ?? databases[0];
  if (database === undefined)
    throw new PgProtocolError(`no database of connection "${connection.name}" is allowed to you through hoop`, {
      sqlstate: SqlState.INVALID_CATALOG_NAME,
      hint: "ask the policy's owners for one (an access rule's databases)",
    });
  if (role === connection.user) return database === connection.database ? connection : { ...connection, database };
  const credential = connection.roles?.find((r) => r.user === role);
  if (!credential) throw new PgProtocolError(`the gateway holds no credential for role "${role}" of connection "${connection.name}"`, { sqlstate: SqlState.INVALID_AUTHORIZATION });
  return { ...connection, user: role, password: credential.password, database };
}
