/** hoop's MySQL client against a real MariaDB server: sign-in plain and over TLS, refusals, results, packets split past 16 MiB. */
import { connect, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MySqlClient, MySqlServerError, type MySqlSignIn } from '../../src/mysql/wire/client.js';
import { startMariaDb, type MariaServer } from '../harness/mariadb.js';

describe('MySQL client against MariaDB', () => {
  let db: MariaServer;
  beforeAll(async () => {
    db = await startMariaDb();
  });
  afterAll(async () => {
    await db?.stop();
  });

  const socket = (): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const s = connect(db.port, db.host, () => resolve(s));
      s.once('error', reject);
    });
  const signIn = async (o: Partial<MySqlSignIn> = {}): Promise<MySqlClient> => MySqlClient.signIn(await socket(), { ...db.users.native, database: 'app', ...o });
  const tls = () => ({ ca: readFileSync(db.caFile), servername: 'localhost' });

  it('signs in with mysql_native_password and reads rows as the server holds them', async () => {
    const c = await signIn();
    expect(c.greeting.serverVersion).toContain('MariaDB');
    const [r] = await c.query('SELECT id, name, NULL AS nothing FROM items ORDER BY id');
    expect(r).toMatchObject({
      rows: [
        ['1', 'one', null],
        ['2', 'two', null],
      ],
    });
    if (!r || !('columns' in r)) throw new Error('no result set');
    expect(r.columns.map((d) => [d.orgTable, d.orgName, d.name])).toEqual([
      ['items', 'id', 'id'],
      ['items', 'name', 'name'],
      ['', '', 'nothing'],
    ]);
    const [ok] = await c.query("INSERT INTO items VALUES (3, 'three')");
    expect(ok).toMatchObject({ ok: { affectedRows: 1n } });
    expect((await db.sql('SELECT name FROM app.items WHERE id = 3')).trim()).toBe('three');
    c.close();
  });

  it('signs in over TLS, verified against the server certificate, where the account requires it', async () => {
    const c = await signIn({ ...db.users.tlsOnly, tls: tls() });
    const [r] = await c.query("SHOW STATUS LIKE 'Ssl_version'");
    expect(r).toMatchObject({ rows: [['Ssl_version', expect.stringMatching(/^TLSv1\.[23]$/)]] });
    c.close();
    await expect(signIn(db.users.tlsOnly)).rejects.toBeInstanceOf(MySqlServerError);
    await expect(signIn(db.users.tlsOnly)).rejects.toMatchObject({ errno: 1045, code: 'HOOP_UPSTREAM_AUTH_FAILED' });
  });

  it('is refused with the server error for a wrong password, and a statement error leaves the session usable', async () => {
    const refused = await signIn({ password: 'wrong' }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(MySqlServerError);
    expect(refused).toMatchObject({ errno: 1045, sqlState: '28000' });
    const c = await signIn();
    await expect(c.query('SELECT * FROM nowhere')).rejects.toMatchObject({ errno: 1146, sqlState: '42S02' });
    await expect(c.query('SELECT 1; SELECT 2')).rejects.toMatchObject({ errno: 1064 });
    expect(await c.query('SELECT 5')).toMatchObject([{ rows: [['5']] }]);
    c.close();
  });

  it('reads a row of more than 16 MiB, which the server sends in several packets', async () => {
    const c = await signIn();
    const [r] = await c.query("SELECT REPEAT('x', 17000000) AS big, 'after' AS tail");
    if (!r || !('rows' in r)) throw new Error('no result set');
    expect(r.rows[0]![0]).toHaveLength(17_000_000);
    expect(r.rows[0]![1]).toBe('after');
    c.close();
  });
});
