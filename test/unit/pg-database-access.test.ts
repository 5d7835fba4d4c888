/**
 * The role and database a PostgreSQL session signs in as (src/postgres/gateway/database-access.ts):
 * by name among those its access allows, `hoop` for the first, a direct credential's the first;
 * anything else refused as a server refuses a role (28000) or a database (3D000) it does not have.
 */
import { describe, expect, it } from 'vitest';
import type { PostgresConnection } from '../../src/config/connection.js';
import { signInAs } from '../../src/postgres/gateway/database-access.js';

const connection: PostgresConnection = {
  name: 'app',
  type: 'postgres',
  host: 'h',
  port: 5432,
  database: 'app',
  user: 'app_rw',
  password: { kind: 'env', name: 'RW' },
  roles: [
    { user: 'app_ro', password: { kind: 'env', name: 'RO' } },
    { user: 'hoop', password: { kind: 'env', name: 'HOOP' } },
  ],
  databases: ['reports'],
  tls: { mode: 'prefer' },
  allowCleartextWithoutTls: false,
  allow: { subjects: [], emails: [], groups: [] },
};
const fails = (f: () => unknown): { sqlstate?: string; message?: string } => {
  try {
    f();
  } catch (err) {
    return err as { sqlstate?: string; message?: string };
  }
  throw new Error('expected a refusal');
};

describe('signInAs', () => {
  it("takes a role the access allows by name, with that role's credential, on the database asked for or the first", () => {
    const access = { roles: ['app_ro', 'app_rw'], databases: ['reports', 'app'] };
    expect(signInAs(connection, access, { user: 'app_ro', database: 'app', direct: false })).toMatchObject({ user: 'app_ro', password: { name: 'RO' }, database: 'app' });
    expect(signInAs(connection, access, { user: 'hoop', database: undefined, direct: false })).toMatchObject({ user: 'app_ro', database: 'reports' });
    expect(signInAs(connection, access, { user: 'dc_anything', database: undefined, direct: true })).toMatchObject({ user: 'app_ro' });
    expect(signInAs(connection, access, { user: 'app_rw', database: 'app', direct: false })).toBe(connection);
    // A role named hoop that the access names is taken by its name.
    expect(signInAs(connection, { roles: ['app_rw', 'hoop'], databases: ['app'] }, { user: 'hoop', database: undefined, direct: false })).toMatchObject({ user: 'hoop', password: { name: 'HOOP' } });
    // Without a policy's word: the connection's own.
    expect(signInAs(connection, undefined, { user: 'hoop', database: undefined, direct: false })).toBe(connection);
  });

  it('refuses what the access does not allow: 28000 for a role, 3D000 when no database is allowed', () => {
    expect(fails(() => signInAs(connection, { roles: ['app_ro'], databases: ['app'] }, { user: 'app_rw', database: undefined, direct: false }))).toMatchObject({
      sqlstate: '28000',
      message: 'role "app_rw" is not allowed to you on connection "app" through hoop: you may use "app_ro"',
    });
    expect(fails(() => signInAs(connection, { roles: [], databases: ['app'] }, { user: 'hoop', database: undefined, direct: false }))).toMatchObject({ sqlstate: '28000' });
    expect(fails(() => signInAs(connection, { roles: ['app_ro'], databases: [] }, { user: 'hoop', database: undefined, direct: false }))).toMatchObject({
      sqlstate: '3D000',
      message: 'no database of connection "app" is allowed to you through hoop',
    });
  });
});
