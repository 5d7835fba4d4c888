/**
 * The built CLI as a user runs it: `node bin/hoop.js gateway` and `node bin/hoop.js connect` as
 * separate processes, psql through them, Ctrl-C to stop, and the errors a user sees.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProcess } from '../harness/clients.js';
import { createTestPki, type TestPki } from '../harness/certs.js';
import { startOidc, type TestOidc } from '../harness/oidc.js';
import { startPgCluster, type PgCluster } from '../harness/postgres.js';
import { eventually } from '../harness/wait.js';
import { recoverJournals } from '../../src/recording/journal-recovery.js';
import { recordingFiles } from '../../src/recording/recording-files.js';

const bin = resolve(import.meta.dirname, '../../bin/hoop.js');

let dir: string;
let pki: TestPki;
let pg: PgCluster;
let oidc: TestOidc;
let token: string;
const children: ChildProcess[] = [];

/** Starts `node bin/hoop.js args` and resolves with the first stdout/stderr line matching `ready`. */
function start(args: string[], env: NodeJS.ProcessEnv, ready: RegExp): Promise<{ child: ChildProcess; line: string; output: () => string }> {
  const child = spawn(process.execPath, [bin, ...args], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  return new Promise((resolveStart, reject) => {
    const onData = (d: Buffer): void => {
      output += d.toString();
      const line = output.split('\n').find((l) => ready.test(l));
      if (line) resolveStart({ child, line, output: () => output });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => reject(new Error(`hoop ${args[0]} exited ${code}: ${output}`)));
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  return child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise((r) => child.on('exit', (code) => r(code)));
}

beforeAll(async () => {
  if (!existsSync(resolve(import.meta.dirname, '../../dist/cli.js'))) throw new Error('run `npm run build` first (npm test does)');
  dir = await mkdtemp(join(tmpdir(), 'hoop-e2e-'));
  pki = await createTestPki();
  pg = await startPgCluster();
  oidc = await startOidc({ audience: 'hoop-e2e' });
  token = await oidc.token({ subject: 'dana', groups: ['dev'] });
  const cert = await pki.issue('gateway', ['IP:127.0.0.1']);
  await writeFile(join(dir, 'db.password'), `${pg.users.scram.password}\n`, { mode: 0o600 });
  await writeFile(
    join(dir, 'gateway.yaml'),
    `listen: 127.0.0.1:0
tls: { cert: ${cert.certFile}, key: ${cert.keyFile} }
issuers:
  - issuer: ${oidc.issuer}
    audience: hoop-e2e
connections:
  - name: app
    type: postgres
    host: 127.0.0.1
    port: ${pg.port}
    database: app
    user: ${pg.users.scram.user}
    password: \${file:db.password}
    tls: { mode: prefer }
    allow: { groups: [dev] }
`,
  );
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await Promise.allSettled([oidc?.close(), pg?.stop()]);
  await pki?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('hoop gateway + hoop connect as processes', () => {
  it('serves psql end to end, and stops cleanly on Ctrl-C', async () => {
    const gw = await start(['gateway', '--config', join(dir, 'gateway.yaml')], {}, /gateway\.listening/);
    const url = (JSON.parse(gw.line) as { url: string }).url;
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);

    const health = await runProcess(process.execPath, ['-e', `fetch(${JSON.stringify(`${url}/healthz`)}).then(r=>r.json()).then(j=>console.log(JSON.stringify(j)))`], {
      env: { NODE_EXTRA_CA_CERTS: pki.caFile },
    });
    expect(JSON.parse(health.stdout)).toMatchObject({ status: 'ok' });

    const runtime = join(dir, 'run');
    const conn = await start(['connect', 'app', '--gateway', url, '--ca-file', pki.caFile], { HOOP_TOKEN: token, XDG_RUNTIME_DIR: runtime }, /PGPASSFILE=\S+ psql/);
    const text = conn.output();
    expect(text).toContain('Connected to "app"');
    const pgpass = /PGPASSFILE=(\S+)/.exec(conn.line)![1]!;
    const conninfo = /psql '([^']+)'/.exec(conn.line)![1]!;
    expect((await stat(pgpass)).mode & 0o777).toBe(0o600);
    expect(await readFile(pgpass, 'utf8')).not.toContain(pg.users.scram.password);

    // Exactly what the user is told to paste: TLS to the local port, its certificate verified.
    expect(conninfo).toMatch(/sslmode=verify-full sslrootcert=\S+\.crt$/);
    const rootcert = /sslrootcert=(\S+)/.exec(conninfo)![1]!;
    const r = await runProcess('psql', ['-X', '-At', conninfo, '-c', 'select current_user, count(*) from items', '-c', '\\conninfo'], { env: { PGPASSFILE: pgpass } });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')[0]).toBe(`${pg.users.scram.user}|3`);
    expect(r.stdout).toMatch(/SSL connection \(protocol: TLSv1\.[23]/);

    conn.child.kill('SIGINT');
    expect(await exited(conn.child)).toBe(0);
    expect(existsSync(pgpass)).toBe(false);
    expect(existsSync(rootcert)).toBe(false);

    gw.child.kill('SIGTERM');
    expect(await exited(gw.child)).toBe(0);
    const logs = gw
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logs.find((l) => l.event === 'tunnel.close')).toMatchObject({ subject: 'dana', connection: 'app', reason: 'client-terminated' });
    expect(gw.output()).not.toContain(pg.users.scram.password);
    expect(gw.output()).not.toContain(token);
  });

  it("a gateway killed mid-session: after a restart the session is listed as truncated and its recording verifies up to its last checkpoint; the CLI's record waits in the spool and goes up when the gateway is back", async () => {
    const config = join(dir, 'gateway-crash.yaml');
    // A fixed port, so the restarted gateway is the one the CLI's spool names.
    const port = await new Promise<number>((r) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const p = (probe.address() as { port: number }).port;
        probe.close(() => r(p));
      });
    });
    await writeFile(
      config,
      `${(await readFile(join(dir, 'gateway.yaml'), 'utf8')).replace('listen: 127.0.0.1:0', `listen: 127.0.0.1:${port}`)}dataDir: crash-data\nrecording: { checkpointSeconds: 1 }\n`,
    );
    const gw = await start(['gateway', '--config', config], {}, /gateway\.listening/);
    const url = (JSON.parse(gw.line) as { url: string }).url;
    const cliConfig = join(dir, 'cfg-crash');
    const conn = await start(['connect', 'app', '--gateway', url, '--ca-file', pki.caFile, '--json'], { HOOP_TOKEN: token, XDG_RUNTIME_DIR: join(dir, 'run'), HOOP_CONFIG_DIR: cliConfig }, /^\{/);
    const info = JSON.parse(conn.line) as { host: string; port: number; user: string; database: string; pgpassFile: string };
    const psql = spawn('psql', ['-X', '-At', '-h', info.host, '-p', String(info.port), '-U', info.user, info.database], {
      env: { PATH: process.env.PATH, PGPASSFILE: info.pgpassFile, PGSSLMODE: 'require' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    children.push(psql);
    let out = '';
    psql.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    const answered = async (n: number): Promise<void> => {
      await eventually(() => expect(out.split('\n').filter(Boolean).length).toBeGreaterThanOrEqual(n), { timeout: 5000 }).catch(() => undefined);
    };
    /** Until the gateway's journal holds `sql` under a signed commit: what a crash from then on keeps (read as the restart reads it). */
    const committed = async (sql: string): Promise<void> => {
      const key = createPrivateKey(await readFile(join(dir, 'crash-data', 'keys', 'recording-ed25519.pem'), 'utf8'));
      await eventually(
        () => {
          const { sessions } = recoverJournals(join(dir, 'crash-data', 'journal'), [key]);
          expect(
            sessions.some((s) => [...s.blocks()].some((b) => b.includes(Buffer.from(sql)))),
            `${sql} under a signed commit of the journal`,
          ).toBe(true);
        },
        { timeout: 60_000, interval: 100 },
      );
    };
    psql.stdin!.write('select count(*) from items;\n');
    await answered(1);
    await committed('select count(*) from items');
    psql.stdin!.write('select name from items order by id limit 1;\n');
    await answered(2);
    await committed('select name from items order by id limit 1');
    // Nothing in the session's archive while it runs (its claim made it empty): its recording is in the journal alone.
    const archives = await readdir(join(dir, 'crash-data', 'recordings'));
    expect(archives).toHaveLength(1);
    expect((await stat(join(dir, 'crash-data', 'recordings', archives[0]!))).size).toBe(0);
    gw.child.kill('SIGKILL');
    await exited(gw.child);
    psql.kill('SIGKILL');
    conn.child.kill('SIGINT');
    await exited(conn.child);
    // The gateway was gone: hoop connect kept its record of the session, closed and signed, in its spool.
    expect(conn.output()).toContain("1 of this machine's records of sessions are not uploaded yet");
    const spooled = (await readdir(join(cliConfig, 'spool'))).filter((f) => f.startsWith('sessions-'));
    expect(spooled).toHaveLength(1);
    // Its directory, or the one archive of a record that closed before its first checkpoint.
    expect(await recordingFiles(join(cliConfig, 'spool', spooled[0]!)).names()).toContain('SHA256SUMS.sig');

    const again = await start(['gateway', '--config', config], {}, /gateway\.listening/);
    expect(again.output()).toContain('"event":"recording.recovered"');
    const url2 = (JSON.parse(again.line) as { url: string }).url;
    const cli = (args: string[]) => runProcess(process.execPath, [bin, ...args, '--gateway', url2, '--ca-file', pki.caFile], { env: { HOOP_TOKEN: token, HOOP_CONFIG_DIR: cliConfig } });
    // The next hoop command uploads what waited in the spool.
    const ls = JSON.parse((await cli(['sessions', 'ls', '--json'])).stdout) as {
      sessions: Array<{ id: string; subject: string; recording: string; reason: string; statements: number; clientRecord?: string }>;
    };
    expect(ls.sessions).toHaveLength(1);
    expect(ls.sessions[0]).toMatchObject({ subject: 'dana', recording: 'truncated', reason: 'gateway-stopped', statements: 2, clientRecord: 'complete' });
    expect((await readdir(join(cliConfig, 'spool'))).filter((f) => f.startsWith('sessions-'))).toEqual([]);
    // Every check is made and said; a truncated recording fails the command unless accepted.
    const strict = await cli(['sessions', 'verify', ls.sessions[0]!.id]);
    expect(strict.code).toBe(1);
    expect(strict.stdout).toMatch(/cross-check: the gateway's and the CLI's records agree/);
    expect(strict.stderr).toContain('verifies only up to its last checkpoint');
    const verify = await cli(['sessions', 'verify', ls.sessions[0]!.id, '--accept-truncated']);
    expect(verify.stderr).toBe('');
    expect(verify.code).toBe(0);
    expect(verify.stdout).toMatch(/verified: \d+ chunk\(s\), \d+ events, truncated at its last checkpoint/);
    expect(verify.stdout).toMatch(/CLI record: verified: \d+ chunk\(s\), \d+ events, complete/);
    expect(verify.stdout).toMatch(/cross-check: the gateway's and the CLI's records agree on [12] statement\(s\) and \d+ outcome\(s\); the gateway's record was cut short/);
    const replay = await cli(['sessions', 'replay', ls.sessions[0]!.id, '--no-tty']);
    expect(replay.stdout).toContain('db=> select count(*) from items'.replace('db', 'app'));
    expect(replay.stdout).toContain('-- the recording ends here: the session was cut short (its last checkpoint)');
    again.child.kill('SIGTERM');
    expect(await exited(again.child)).toBe(0);
  });

  it('listens on a unix socket with --socket', async () => {
    const gw = await start(['gateway', '--config', join(dir, 'gateway.yaml')], {}, /gateway\.listening/);
    const url = (JSON.parse(gw.line) as { url: string }).url;
    const sockets = await mkdtemp(join(tmpdir(), 'hoop-sock-'));
    const conn = await start(['connect', 'app', '--gateway', url, '--ca-file', pki.caFile, '--socket', sockets, '--json'], { HOOP_TOKEN: token, XDG_RUNTIME_DIR: join(dir, 'run') }, /^\{/);
    const info = JSON.parse(conn.line) as { host: string; port: number; pgpassFile: string };
    expect(info.host).toBe(sockets);
    const r = await runProcess('psql', ['-X', '-At', '-h', sockets, '-p', String(info.port), '-U', 'hoop', '-d', 'app', '-c', 'select 7'], { env: { PGPASSFILE: info.pgpassFile } });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('7');
    conn.child.kill('SIGINT');
    gw.child.kill('SIGINT');
    await Promise.all([exited(conn.child), exited(gw.child)]);
    await rm(sockets, { recursive: true, force: true });
  });
});

describe('what a user sees when something is wrong', () => {
  it('a bad gateway config: one error naming file, line and field; exit 78; nothing listens', async () => {
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, `listen: 127.0.0.1:0\nissuers:\n  - issuer: ${oidc.issuer}\n    audiense: hoop\nconnections: []\n`);
    const r = await runProcess(process.execPath, [bin, 'gateway', '--config', bad]);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:4:5: .*audiense`));
    expect(r.stderr).not.toContain('gateway.listening');
  });

  it('plain HTTP only on loopback and only with --insecure-dev-http', async () => {
    const noTls = join(dir, 'notls.yaml');
    await writeFile(noTls, `listen: 127.0.0.1:0\nissuers:\n  - issuer: ${oidc.issuer}\n    audience: hoop\n`);
    const refused = await runProcess(process.execPath, [bin, 'gateway', '--config', noTls]);
    expect(refused.code).toBe(78);
    expect(refused.stderr).toContain('--insecure-dev-http');
    const dev = await start(['gateway', '--config', noTls, '--insecure-dev-http'], {}, /gateway\.listening/);
    expect((JSON.parse(dev.line) as { url: string }).url).toMatch(/^http:\/\/127\.0\.0\.1:/);
    dev.child.kill('SIGINT');
    expect(await exited(dev.child)).toBe(0);
  });

  it('--help lists the commands, and a usage error exits 64', async () => {
    const help = await runProcess(process.execPath, [bin, '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('connect');
    expect(help.stdout).toContain('gateway');
    const usage = await runProcess(process.execPath, [bin, 'connect']);
    expect(usage.code).toBe(64);
    expect(usage.stderr).toContain("missing required argument 'name'");
  });

  it('--version says the version and the commit it was built from', async () => {
    const version = await runProcess(process.execPath, [bin, '--version']);
    const head = (await runProcess('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: resolve(bin, '../..') })).stdout.trim();
    expect(version.stdout.trim()).toBe(`0.1.0 (commit ${head})`);
  });
});
