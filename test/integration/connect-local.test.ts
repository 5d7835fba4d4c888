/**
 * The local port of `hoop connect`: TLS with a per-session certificate that clients verify
 * (`sslmode=verify-full`), for apps that insist on TLS, next to plain clients; and the files it
 * hands out (password, certificate) are each run's own.
 *
 * @see https://www.postgresql.org/docs/current/libpq-ssl.html#LIBPQ-SSL-PROTECTION
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TLSSocket } from 'node:tls';
import { psql, runProcess } from '../harness/clients.js';
import { RawFrontend } from '../harness/raw-pg.js';
import { startupMessage } from '../../src/postgres/wire/messages.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';

let stack: HoopStack;
let connected: RunningConnect;
let token: string;

beforeAll(async () => {
  stack = await startStack();
  token = await stack.token('alice');
  connected = await stack.connect('app', token);
});

afterAll(async () => {
  await connected?.stop();
  await stack?.close();
});

describe('TLS on the local port', () => {
  it('is offered with a per-session certificate: the printed URI works with verify-full (psql)', async () => {
    const { info } = connected;
    expect(info.sslmode).toBe('verify-full');
    expect(info.uri).toContain(`sslmode=verify-full&sslrootcert=${encodeURIComponent(info.sslrootcert!)}`);
    const r = await runProcess('psql', ['-X', '-At', info.uri, '-c', 'select 1', '-c', '\\conninfo'], { env: { PGPASSFILE: info.pgpassFile } });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^1\n/);
    expect(r.stdout).toMatch(/SSL connection/);
    // A certificate that is not this session's is refused by the client.
    const other = await stack.connect('app', token);
    try {
      const wrong = await runProcess('psql', ['-X', '-At', info.uri.replace(encodeURIComponent(info.sslrootcert!), encodeURIComponent(other.info.sslrootcert!)), '-c', 'select 1'], {
        env: { PGPASSFILE: info.pgpassFile },
      });
      expect(wrong.code).not.toBe(0);
      expect(wrong.stderr).toMatch(/certificate verify failed/);
    } finally {
      await other.stop();
    }
  });

  it('serves the pg and postgres drivers over verified TLS, and plain clients still', async () => {
    const { info } = connected;
    const ca = readFileSync(info.sslrootcert!, 'utf8');
    const c = new pg.Client({ host: info.host, port: info.port, user: info.user, database: info.database, password: info.password, ssl: { ca, rejectUnauthorized: true } });
    await c.connect();
    try {
      expect((await c.query('select 2 as two')).rows).toEqual([{ two: 2 }]);
    } finally {
      await c.end();
    }
    const sql = postgres({ host: info.host, port: info.port, user: info.user, database: info.database, pass: info.password, ssl: { ca, rejectUnauthorized: true }, max: 1 });
    try {
      expect((await sql`select 3 as three`)[0]).toEqual({ three: 3 });
    } finally {
      await sql.end();
    }
    const plain = await psql(info, ['-At', '-c', 'select 4']);
    expect(plain.stdout.trim()).toBe('4');
  });

  it("takes PostgreSQL 17's direct TLS (sslnegotiation=direct: a ClientHello first, ALPN postgresql), as the gateway's port does", async () => {
    const { info } = connected;
    const f = await RawFrontend.direct(info.port, readFileSync(info.sslrootcert!), true);
    try {
      expect((f.stream as TLSSocket).alpnProtocol).toBe('postgresql');
      await f.startup(info.password, [
        ['user', info.user],
        ['database', info.database],
      ]);
      const rows = (await f.simple('select 5 as five')).filter((m) => m.type === 0x44).map((m) => m.body.subarray(6).toString());
      expect(rows).toEqual(['5']);
    } finally {
      f.destroy();
    }
  });
});

describe('files a run hands out', () => {
  it("are its own: two hoop connects on the same port number (unix sockets in two directories) never share, overwrite or delete each other's password file", async () => {
    const [da, db] = await Promise.all([mkdtemp(join(tmpdir(), 'hoop-a-')), mkdtemp(join(tmpdir(), 'hoop-b-'))]);
    const a = await stack.connect('app', token, ['--socket', da]);
    const b = await stack.connect('app', token, ['--socket', db]);
    try {
      expect(a.info.port).toBe(b.info.port);
      expect(a.info.pgpassFile).not.toBe(b.info.pgpassFile);
      expect(readFileSync(a.info.pgpassFile, 'utf8')).toContain(a.info.password);
      expect(readFileSync(b.info.pgpassFile, 'utf8')).toContain(b.info.password);
      await a.stop();
      expect(existsSync(a.info.pgpassFile)).toBe(false);
      expect(existsSync(b.info.pgpassFile)).toBe(true);
      const r = await psql(b.info, ['-At', '-c', 'select 5']);
      expect(r.stdout.trim()).toBe('5');
    } finally {
      await b.stop();
      await Promise.all([rm(da, { recursive: true, force: true }), rm(db, { recursive: true, force: true })]);
    }
  });

  it('on TCP include the certificate, removed with the password file', async () => {
    const c = await stack.connect('app', token);
    await c.stop();
    expect(existsSync(c.info.sslrootcert!)).toBe(false);
    expect(existsSync(c.info.pgpassFile)).toBe(false);
  });
});

describe('the database a client names', () => {
  it("is the connection's, or refused as a server refuses a database it does not have (3D000), naming the one it serves; the raw tunnel meets the same", async () => {
    const { info } = connected;
    const nope = await psql(info, ['-At', '-c', 'select current_database()'], { env: { PGDATABASE: 'nope' } });
    expect(nope.code).toBe(2);
    expect(nope.stdout).toBe('');
    expect(nope.stderr).toContain(`FATAL:  hoop: database "nope" is not available through hoop: this connection serves "${info.database}"`);
    expect(nope.stderr).toContain(`HINT:  connect with dbname=${info.database}`);
    const ok = await psql(info, ['-At', '-c', 'select current_database()']);
    expect(ok.stdout.trim()).toBe(info.database);
    // Straight to the gateway, with no CLI in between.
    const raw = await stack.tunnel('app', token, { startup: false });
    try {
      raw.write(
        startupMessage([
          ['user', 'hoop'],
          ['database', 'postgres'],
        ]),
      );
      const err = await raw.error();
      expect(err).toMatchObject({ severity: 'FATAL', code: '3D000' });
      expect(err!.message).toContain('this connection serves "app"');
      expect(await raw.closed()).toBe(true);
    } finally {
      raw.destroy();
    }
    // The index says what it was: a refused startup, not a protocol violation (once the gateway has
    // ended the session: its client may see the connection close first).
    await eventually(
      async () => {
        const ls = JSON.parse((await stack.run(['sessions', 'ls', '--json', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: token })).stdout) as {
          sessions: Array<{ reason: string }>;
        };
        expect(ls.sessions.filter((x) => x.reason === 'startup-refused').length).toBeGreaterThanOrEqual(2);
      },
      { timeout: 60_000, interval: 100 },
    );
  });
});
