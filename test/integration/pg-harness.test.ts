import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPki, type TestPki } from '../harness/certs.js';
import { startPgCluster, type PgCluster, type PgUser } from '../harness/postgres.js';
import { eventually } from '../harness/wait.js';

/** First server message after a StartupMessage: 'R' with its auth code, or 'E' with the error text. */
function firstAuthMessage(port: number, user: string): Promise<{ type: string; code?: number; text?: string }> {
  return new Promise((resolve, reject) => {
    const params = Buffer.from(`user\0${user}\0database\0app\0\0`, 'utf8');
    const startup = Buffer.alloc(8 + params.length);
    startup.writeUInt32BE(startup.length, 0);
    startup.writeUInt32BE(196608, 4);
    params.copy(startup, 8);
    const socket = connect({ host: '127.0.0.1', port }, () => socket.write(startup));
    let buf = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 5) return;
      const len = buf.readUInt32BE(1);
      if (buf.length < 1 + len) return;
      const type = String.fromCharCode(buf[0]!);
      socket.destroy();
      if (type === 'R') resolve({ type, code: buf.readUInt32BE(5) });
      else resolve({ type, text: buf.subarray(5, 1 + len).toString('utf8') });
    });
    socket.on('error', reject);
  });
}

async function pgLogin(cluster: PgCluster, user: PgUser, ssl?: pg.ClientConfig['ssl']): Promise<{ user: string; ssl: boolean }> {
  const client = new pg.Client({ host: '127.0.0.1', port: cluster.port, user: user.user, password: user.password, database: 'app', ssl: ssl ?? false });
  await client.connect();
  try {
    const r = await client.query<{ u: string; ssl: boolean }>('select current_user as u, (select ssl from pg_stat_ssl where pid = pg_backend_pid()) as ssl');
    return { user: r.rows[0]!.u, ssl: r.rows[0]!.ssl };
  } finally {
    await client.end();
  }
}

/** Runs the real psql against a connection URI; resolves exit code, stdout and stderr. */
function psqlUri(uri: string, sql: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
    const child = spawn('psql', ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', uri, '-c', sql], { env: { ...env, PGCONNECT_TIMEOUT: '10' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('postgres harness without TLS', () => {
  let cluster: PgCluster;
  beforeAll(async () => {
    cluster = await startPgCluster();
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('starts on 127.0.0.1 with the expected shape', async () => {
    expect(cluster.host).toBe('127.0.0.1');
    expect(cluster.port).toBeGreaterThan(0);
    expect(cluster.ssl).toBe(false);
    expect(existsSync(join(cluster.dataDir, 'PG_VERSION'))).toBe(true);
    expect(existsSync(join(cluster.socketDir, `.s.PGSQL.${cluster.port}`))).toBe(true);
    expect(readFileSync(join(cluster.dataDir, 'PG_VERSION'), 'utf8').trim()).toMatch(/^\d+$/);
    expect(await cluster.psql('show fsync; show listen_addresses')).toBe('off\n127.0.0.1\n');
    expect(await cluster.psql('select id, name from items order by id', { user: cluster.users.scram })).toBe('1|apple\n2|banana\n3|cherry\n');
    expect(await cluster.psql("select pg_get_userbyid(datdba) from pg_database where datname = 'app'")).toBe(`${cluster.users.scram.user}\n`);
  });

  it('asks each user for its own password method over TCP', async () => {
    // AuthenticationSASL = 10, AuthenticationMD5Password = 5, AuthenticationCleartextPassword = 3.
    expect(await firstAuthMessage(cluster.port, cluster.users.scram.user)).toEqual({ type: 'R', code: 10 });
    expect(await firstAuthMessage(cluster.port, cluster.superuser.user)).toEqual({ type: 'R', code: 10 });
    expect(await firstAuthMessage(cluster.port, cluster.users.md5.user)).toEqual({ type: 'R', code: 5 });
    expect(await firstAuthMessage(cluster.port, cluster.users.cleartext.user)).toEqual({ type: 'R', code: 3 });
    const stored = await cluster.psql(`select rolname, left(rolpassword, 3) from pg_authid where rolname like 'app\\_%' order by rolname`);
    expect(stored).toContain(`${cluster.users.md5.user}|md5`);
    expect(stored).toContain(`${cluster.users.scram.user}|SCR`);
  });

  it('lets every password user log in with the pg driver and with psql', async () => {
    for (const user of [cluster.superuser, cluster.users.scram, cluster.users.md5, cluster.users.cleartext]) {
      expect(await pgLogin(cluster, user)).toEqual({ user: user.user, ssl: false });
      expect(await cluster.psql('select current_user', { user })).toBe(`${user.user}\n`);
      const viaUri = await psqlUri(cluster.url(user), 'select current_user');
      expect(viaUri.stderr).toBe('');
      expect(viaUri.stdout).toBe(`${user.user}\n`);
    }
  });

  it('rejects a wrong password for every method', async () => {
    for (const user of [cluster.superuser, cluster.users.scram, cluster.users.md5, cluster.users.cleartext]) {
      const wrong = { user: user.user, password: `${user.password}x` };
      await expect(pgLogin(cluster, wrong)).rejects.toThrow(/password authentication failed/);
      await expect(cluster.psql('select 1', { user: wrong })).rejects.toThrow(/password authentication failed/);
    }
  });

  it('rejects the TLS-only user without TLS', async () => {
    const first = await firstAuthMessage(cluster.port, cluster.users.tlsOnly.user);
    expect(first.type).toBe('E');
    expect(first.text).toMatch(/no encryption/);
    await expect(pgLogin(cluster, cluster.users.tlsOnly)).rejects.toThrow(/pg_hba\.conf rejects connection/);
    await expect(cluster.psql('select 1', { user: cluster.users.tlsOnly })).rejects.toThrow(/pg_hba\.conf rejects connection/);
  });

  it('reports a psql error on stderr and rejects', async () => {
    await expect(cluster.psql('select * from no_such_table')).rejects.toThrow(/relation "no_such_table" does not exist/);
  });

  it('stops idempotently and removes its data directory', async () => {
    const other = await startPgCluster({ config: { max_connections: '20' } });
    expect(await other.psql('show max_connections')).toBe('20\n');
    expect(other.port).not.toBe(cluster.port);
    await Promise.all([other.stop(), other.stop()]);
    await other.stop();
    expect(existsSync(other.dataDir)).toBe(false);
    await expect(firstAuthMessage(other.port, 'postgres')).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('postgres harness with TLS', () => {
  let cluster: PgCluster;
  let ca: Buffer;
  let pki: TestPki;
  beforeAll(async () => {
    pki = await createTestPki();
    ca = pki.ca;
    const leaf = await pki.issue('postgres', ['IP:127.0.0.1', 'DNS:localhost']);
    cluster = await startPgCluster({ ssl: { certFile: leaf.certFile, keyFile: leaf.keyFile } });
  });
  afterAll(async () => {
    await cluster?.stop();
    await pki?.cleanup();
  });

  it('serves TLS with sslmode=require (psql) and a verified certificate (pg driver)', async () => {
    expect(cluster.ssl).toBe(true);
    const viaPsql = await psqlUri(cluster.url(cluster.users.scram, { sslmode: 'require' }), 'select ssl from pg_stat_ssl where pid = pg_backend_pid()');
    expect(viaPsql.stderr).toBe('');
    expect(viaPsql.stdout).toBe('t\n');
    expect(await pgLogin(cluster, cluster.users.scram, { ca })).toEqual({ user: cluster.users.scram.user, ssl: true });
  });

  it('lets the TLS-only user in over TLS only', async () => {
    expect(await pgLogin(cluster, cluster.users.tlsOnly, { ca })).toEqual({ user: cluster.users.tlsOnly.user, ssl: true });
    const withTls = await psqlUri(cluster.url(cluster.users.tlsOnly, { sslmode: 'require' }), 'select current_user');
    expect(withTls.stdout).toBe(`${cluster.users.tlsOnly.user}\n`);
    const withoutTls = await psqlUri(cluster.url(cluster.users.tlsOnly, { sslmode: 'disable' }), 'select 1');
    expect(withoutTls.code).not.toBe(0);
    expect(withoutTls.stderr).toMatch(/pg_hba\.conf rejects connection .*no encryption/);
    await expect(pgLogin(cluster, cluster.users.tlsOnly)).rejects.toThrow(/no encryption/);
  });

  it('still rejects a wrong password over TLS', async () => {
    const r = await psqlUri(cluster.url({ user: cluster.users.scram.user, password: 'nope' }, { sslmode: 'require' }), 'select 1');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/password authentication failed/);
  });
});

describe('a test process killed outright', () => {
  it('leaves no server behind: its watchdog stops the PostgreSQL cluster and the MariaDB server it started and removes their files', async () => {
    const harness = join(dirname(fileURLToPath(import.meta.url)), '..', 'harness');
    const code = [
      `import { startPgCluster } from ${JSON.stringify(join(harness, 'postgres.ts'))};`,
      `import { startMariaDb } from ${JSON.stringify(join(harness, 'mariadb.ts'))};`,
      'const [pg, maria] = await Promise.all([startPgCluster(), startMariaDb()]);',
      'console.log(JSON.stringify({ pgPort: pg.port, pgDir: pg.dataDir, mariaPort: maria.port, mariaSocket: maria.socket }));',
      'setInterval(() => {}, 1000);',
    ].join('\n');
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    const said = await new Promise<string>((resolve) => {
      let out = '';
      child.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        if (out.includes('\n')) resolve(out);
      });
    });
    const started = JSON.parse(said) as { pgPort: number; pgDir: string; mariaPort: number; mariaSocket: string };
    await expect(firstAuthMessage(started.pgPort, 'postgres')).resolves.toMatchObject({ type: 'R' });
    child.kill('SIGKILL');
    const refused = (port: number) =>
      new Promise<boolean>((resolve) => {
        const s = connect({ host: '127.0.0.1', port }, () => {
          s.destroy();
          resolve(false);
        });
        s.on('error', () => resolve(true));
      });
    await eventually(async () => {
      expect(await refused(started.pgPort)).toBe(true);
      expect(await refused(started.mariaPort)).toBe(true);
      expect(existsSync(started.pgDir)).toBe(false);
      expect(existsSync(dirname(started.mariaSocket))).toBe(false);
    });
  });
});
