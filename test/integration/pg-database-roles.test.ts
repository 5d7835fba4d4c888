/**
 * The database roles and databases an access rule allows (issue 43, part 3): a client picks them
 * with its StartupMessage's `user` and `database`, as with a server of its own; `user=hoop` gets
 * the access's first role; anything the access does not allow is refused as PostgreSQL refuses a
 * role or database it does not have (28000, 3D000), naming what the client may use. The gateway
 * signs in with the chosen role's own credential: the server says who the session is.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { psql } from '../harness/clients.js';
import { eventually } from '../harness/wait.js';
import { connectionYaml } from '../harness/postgres.js';
import { startRepoStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { query, startupMessage } from '../../src/postgres/wire/messages.js';

let stack: HoopStack;
let ro: string;
let rw: string;

beforeAll(async () => {
  stack = await startRepoStack(
    'hoop-db-roles-',
    async (pg) => {
      ro = pg.users.md5.user;
      rw = pg.users.scram.user;
      // The cluster's app database holds items (3 rows), readable by every role.
      await pg.psql('create database reports');
      // The server lets the connection's own role become the other: only the policy stands between.
      await pg.psql(`grant "${ro}" to "${rw}"`);
      return `version: 1
connections:
${connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}', extra: [`roles: [{ user: ${ro}, password: "\${env:MD5_PASSWORD}" }]`, 'databases: [reports]'] })}access:
  - { name: people, subjects: [alice], connections: [app], mode: read-write }
  - { name: analysts, groups: [analysts], connections: [app], roles: [${ro}], databases: [app, reports] }
  - { name: reporters, groups: [reporters], connections: [app], databases: [reports] }
`;
    },
    ['${env:APP_*}', '${env:MD5_PASSWORD}'],
  );
});
afterAll(async () => {
  await stack?.close();
});

/** A session on the tunnel as `user` on `database`: who the server says it is, or the error that refused it. */
async function signIn(token: string, user: string, database?: string): Promise<{ who?: string; error?: { code?: string; message?: string; hint?: string } }> {
  const raw = await stack.tunnel('app', token, { startup: false });
  raw.write(startupMessage([['user', user], ...(database ? ([['database', database]] as Array<[string, string]>) : [])]));
  // Signed in (ReadyForQuery), or refused: then the stream ends after an ErrorResponse.
  if (!(await raw.waitFor('Z'))) {
    const error = await raw.error(30_000);
    return { error: { code: error?.code, message: error?.message, ...(error?.hint ? { hint: error.hint } : {}) } };
  }
  const from = raw.raw.length;
  raw.write(query("select current_user || '@' || current_database()"));
  const rows = await raw.messagesSince(from, 1);
  raw.destroy();
  const row = rows.find((m) => m.type === 0x44)!;
  return { who: row.body.subarray(6).toString('utf8') };
}

describe('database roles and databases through hoop', () => {
  it("without roles in the rule, the connection's own role and database: user=hoop and its name sign in; any other is refused 28000 / 3D000, naming what is allowed", async () => {
    const alice = await stack.token('alice');
    expect(await signIn(alice, 'hoop', 'app')).toEqual({ who: `${rw}@app` });
    expect(await signIn(alice, rw, 'app')).toEqual({ who: `${rw}@app` });
    const role = await signIn(alice, ro, 'app');
    expect(role.error).toMatchObject({ code: '28000', hint: `connect with user=${rw} (user=hoop also signs in as ${rw})` });
    expect(role.error?.message).toContain(`role "${ro}" is not allowed to you on connection "app" through hoop: you may use "${rw}"`);
    const db = await signIn(alice, 'hoop', 'reports');
    expect(db.error).toMatchObject({ code: '3D000' });
    expect(db.error?.message).toContain('database "reports" is not available through hoop: this connection serves "app"');
  });

  it("a rule's roles and databases are what its people pick, signed in with that role's own credential", async () => {
    const analyst = await stack.token('bob', ['analysts']);
    expect(await signIn(analyst, ro, 'app')).toEqual({ who: `${ro}@app` });
    expect(await signIn(analyst, 'hoop', 'app')).toEqual({ who: `${ro}@app` });
    expect(await signIn(analyst, ro, 'reports')).toEqual({ who: `${ro}@reports` });
    // The recording says who the session was at the server.
    const recorded = stack
      .logs()
      .filter((l) => l.event === 'tunnel.open' && l.subject === 'bob')
      .at(-1)!.session as string;
    await eventually(async () => {
      const shown = await stack.run(['sessions', 'show', recorded, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: analyst });
      expect(shown.stdout).toContain(`-- signed in as role "${ro}" on database "reports"`);
    });
    // And the index: who used a role is a search.
    const listed = await stack.run(['sessions', 'ls', '--json', '--role', ro, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: analyst });
    const sessions = (JSON.parse(listed.stdout) as { sessions: Array<{ id: string; role?: string; database?: string }> }).sessions;
    expect(sessions.length).toBeGreaterThanOrEqual(3);
    expect(sessions.every((x) => x.role === ro)).toBe(true);
    expect(sessions.find((x) => x.id === recorded)).toMatchObject({ role: ro, database: 'reports' });
    const other = await signIn(analyst, rw, 'app');
    expect(other.error).toMatchObject({ code: '28000' });
    expect(other.error?.message).toContain(`you may use "${ro}"`);
  });

  it('a session cannot become a role its access does not allow, though the server would let it (SET ROLE, set_config, SET SESSION AUTHORIZATION); back to its own it may', async () => {
    // The server itself lets the connection's role become the other.
    expect((await stack.pg.psql(`set role "${ro}"; select current_user`, { user: stack.pg.users.scram })).trim().split('\n').at(-1)).toBe(ro);
    const raw = await stack.tunnel('app', await stack.token('alice'));
    const refused = async (sql: string): Promise<string | undefined> => {
      const from = raw.raw.length;
      raw.write(query(sql));
      const e = (await raw.messagesSince(from, 1)).find((m) => m.type === 0x45);
      return e?.body.toString('utf8');
    };
    // A setting named by an expression could be the role, or anything: refused whatever it is.
    expect(await refused(`select set_config('ro' || 'le', '${ro}', false)`)).toContain('hoop: denied by rule');
    for (const sql of [`set role "${ro}"`, `select set_config('role', '${ro}', false)`, `set session authorization "${ro}"`]) {
      const error = await refused(sql);
      expect(error, sql).toContain('denied by rule "database-roles"');
      expect(error).toContain(`access to "app" lets a session be "${rw}" only`);
    }
    for (const sql of ['reset role', 'set role none', `set role "${rw}"`, 'select current_user']) expect(await refused(sql), sql).toBeUndefined();
    const from = raw.raw.length;
    raw.write(query('select current_user'));
    const row = (await raw.messagesSince(from, 1)).find((m) => m.type === 0x44)!;
    expect(row.body.subarray(6).toString('utf8')).toBe(rw);
    raw.destroy();
  });

  it('psql through hoop connect picks the role with its user, and is told when it may not', async () => {
    const connected: RunningConnect = await stack.connect('app', await stack.token('bob', ['analysts']));
    try {
      const env = { PGPASSWORD: connected.info.password, PGPASSFILE: '/dev/null' };
      const ok = await psql(connected.info, ['-At', '-c', 'select current_user, count(*) from items'], { env: { ...env, PGUSER: ro } });
      expect(ok.stderr).toBe('');
      expect(ok.stdout.trim()).toBe(`${ro}|3`);
      const refused = await psql(connected.info, ['-At', '-c', 'select 1'], { env: { ...env, PGUSER: 'postgres' } });
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain(`FATAL:  hoop: role "postgres" is not allowed to you on connection "app" through hoop: you may use "${ro}"`);
    } finally {
      await connected.stop();
    }
  });

  it('hoop connect and hoop exec name the first database the access allows: a rule that gives only another database gets it by default', async () => {
    const reporter = await stack.token('carol', ['reporters']);
    const connected: RunningConnect = await stack.connect('app', reporter);
    try {
      expect(connected.info.database).toBe('reports');
      const r = await psql(connected.info, ['-At', '-c', 'select current_user, current_database()']);
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe(`${rw}|reports`);
    } finally {
      await connected.stop();
    }
    const exec = await stack.run(['exec', 'app', '-c', 'select current_database()', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: reporter });
    expect(exec.stderr).toBe('');
    expect(exec.stdout).toContain('reports');
  });
});
