/**
 * `hoop demo` as a newcomer runs it: the built CLI in a child process, on a PATH that holds only
 * `node` (no git, psql, postgres, openssl: what npm installed must be enough), then a second
 * terminal that sources `<dir>/env` and uses psql and `hoop` against it, Ctrl-C, a restart, a
 * second demo on the same directory, a port in use, and --fresh.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProcess, type Finished } from '../harness/clients.js';
import { pgBinDir, freePort } from '../harness/postgres.js';
import { findMariaDb } from '../../src/demo/mariadb.js';
import { findSshd } from '../../src/demo/sshd.js';
import { detectContainment } from '../../src/agent/containment.js';

/** The demo script's checks: one more with an SSH target (when OpenSSH's server is installed), one more where runs are contained (the gate). */
const DEMO_STEPS = 12 + (findSshd() ? 1 : 0) + (detectContainment('auto', process.env).kind === 'bwrap' ? 1 : 0);

const bin = resolve(import.meta.dirname, '../../bin/hoop.js');
const base = mkdtempSync(join(tmpdir(), 'hoop-e2e-demo-'));
/** A PATH with node and nothing else. */
const nodeOnly = join(base, 'node-only');
mkdirSync(nodeOnly);
symlinkSync(process.execPath, join(nodeOnly, 'node'));
const children: ChildProcess[] = [];

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  // As root, the demo keeps PostgreSQL's data where the postgres OS user can reach it.
  for (const dir of ['scripted', 'running'])
    rmSync(
      join(
        '/var/lib/hoop-demo',
        createHash('sha256')
          .update(join(base, dir, 'postgres'))
          .digest('hex')
          .slice(0, 16),
      ),
      { recursive: true, force: true },
    );
  rmSync(base, { recursive: true, force: true });
});

beforeAll(() => {
  if (!existsSync(resolve(import.meta.dirname, '../../dist/cli.js'))) throw new Error('run `npm run build` first (npm test does)');
});

/** `hoop demo ...` on the node-only PATH, to completion. */
function demoOnce(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Finished> {
  return runProcess(process.execPath, [bin, 'demo', ...args], { env: { PATH: nodeOnly, HOME: base, ...env }, timeoutMs: 120_000 });
}

interface Ready {
  child: ChildProcess;
  info: { dir: string; gateway: string; envFile: string; env: Record<string, string>; psql: string; connections: string[]; postgres: { source: string; version: string; port: number } };
  stderr: () => string;
}

/** `hoop demo --json ...` left running: resolves with its one JSON line. */
function demoRunning(args: string[]): Promise<Ready> {
  const child = spawn(process.execPath, [bin, 'demo', '--json', ...args], { env: { PATH: nodeOnly, HOME: base }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  return new Promise((resolveReady, reject) => {
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('\n')) resolveReady({ child, info: JSON.parse(out.split('\n')[0]!) as Ready['info'], stderr: () => err });
    });
    child.once('exit', (code) => reject(new Error(`hoop demo exited ${code}: ${err}`)));
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  return child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise((r) => child.once('exit', (code) => r(code)));
}

/** Reads `export K=V` lines as `source <dir>/env` would. */
function sourced(envFile: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(envFile, 'utf8').split('\n')) {
    const m = /^export ([A-Z_]+)=(.*)$/.exec(line);
    if (m) env[m[1]!] = m[2]!.replace(/^'(.*)'$/, '$1');
  }
  return env;
}

/** A second terminal: `source <dir>/env`, then `command` in a shell where `hoop` is the built CLI. */
function terminal(envFile: string, command: string): Promise<Finished> {
  return runProcess('bash', ['-c', `hoop() { ${JSON.stringify(process.execPath)} ${JSON.stringify(bin)} "$@"; }\nsource ${JSON.stringify(envFile)}\n${command}`], {
    env: { PATH: `${pgBinDir()}:${process.env.PATH}`, HOME: base },
  });
}

/** Whether something accepts connections on 127.0.0.1:`port`. */
function listening(port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      done(true);
    });
    s.once('error', () => done(false));
  });
}

describe('hoop demo', () => {
  it('--script on a machine with only node: masked reads, a denied DROP, a review denied and one approved with the CLI; exit 0', async () => {
    const dir = join(base, 'scripted');
    const ports = ['--gateway-port', String(await freePort()), '--port', String(await freePort())];
    const r = await demoOnce(['--dir', dir, '--script', ...ports]);
    expect(r.stderr).not.toMatch(/unexpected error|WARNING/);
    // What the script printed says which outcome did not happen.
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toContain('[redacted]');
    expect(r.stdout).toMatch(/\*{4} \*{4} \*{4} \d{4}/);
    expect(r.stdout).toContain('denied by rule "no-drop-or-truncate"');
    expect(r.stdout).toMatch(/\(reviewer\) hoop review deny (rv-[0-9a-f]{16}) --reason "not during the demo": review \1: denied by rae@hoop\.example: not during the demo/);
    expect(r.stdout).toMatch(/ERROR 42501: hoop: denied by reviewer .* \(review rv-[0-9a-f]{16}\): not during the demo/);
    expect(r.stdout).toMatch(/\(reviewer\) hoop review approve (rv-[0-9a-f]{16}): review \1: approved by rae@hoop\.example\n {8}BEGIN, DELETE 60, ROLLBACK/);
    // The agent is a principal of its own: its write waits for a reviewer while the person's own runs.
    expect(r.stdout).toMatch(
      /agent> hoop run --agent demo-agent --connect demo-db -- hoop exec demo-db --no-wait -c "update orders set status = 'shipped' where id = 7"\n {8}(rv-[0-9a-f]{16})\nyou> {3}update orders set status = 'shipped' where id = 7\n {8}UPDATE 1\n {8}\(reviewer\) hoop review deny \1/,
    );
    expect(r.stdout).toContain('   ok   the agent is a principal of its own');
    expect(r.stdout).toContain(`${DEMO_STEPS} of ${DEMO_STEPS} expected outcomes happened.`);
    expect(r.stdout).not.toMatch(/@example\.(com|org)|\b\d{4} \d{4} \d{4} \d{4}\b|\b\d{3}-\d{2}-\d{4}\b/);
    expect(readFileSync(join(dir, 'env'), 'utf8')).toContain('export HOOP_GATEWAY=');
    expect(existsSync(join(dir, 'demo.pid'))).toBe(false);

    // The script checks outcomes: a policy that no longer denies DROP makes it fail (exit 1).
    const repo = join(dir, 'policy-repo');
    const policy = readFileSync(join(repo, 'hoop.yaml'), 'utf8');
    writeFileSync(join(repo, 'hoop.yaml'), policy.replace('match: { kinds: [drop, truncate] }', 'match: { kinds: [truncate] }'));
    const git = (args: string[]) => runProcess('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@example.invalid', ...args]);
    expect((await git(['commit', '-qam', 'allow drop'])).code).toBe(0);
    const broken = await demoOnce(['--dir', dir, '--script', ...ports]);
    expect(broken.code, broken.stderr).toBe(1);
    expect(broken.stdout).toMatch(/agent> drop table orders\n {8}DROP TABLE\n {3}FAIL it ran \(DROP TABLE\); it should have been refused/);
    expect(broken.stdout).not.toContain(`${DEMO_STEPS} of ${DEMO_STEPS}`);
    expect(broken.stderr).toContain('did not go as the demo policy says');
  }, 360_000);

  it('--json runs until SIGTERM; a second terminal sources <dir>/env and uses psql and hoop; restart and --fresh; all seven ports chosen', async () => {
    const dir = join(base, 'running');
    const gatewayPort = await freePort();
    const ports = ['--gateway-port', String(gatewayPort), '--port', String(await freePort())];
    const [postgresPort, idpPort, sshPort, mysqlPort, gatewayMysqlPort] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
    const targets = [
      '--postgres-port',
      String(postgresPort),
      '--idp-port',
      String(idpPort),
      '--ssh-port',
      String(sshPort),
      '--mysql-port',
      String(mysqlPort),
      '--gateway-mysql-port',
      String(gatewayMysqlPort),
    ];
    const first = await demoRunning(['--dir', dir, ...ports, ...targets]);
    expect(first.info, first.stderr()).toMatchObject({
      dir,
      gateway: `https://127.0.0.1:${gatewayPort}`,
      envFile: join(dir, 'env'),
      connections: ['demo-db', ...(findSshd() ? ['demo-ssh'] : []), ...(findMariaDb() ? ['demo-mysql'] : []), 'demo-files', 'demo-api'],
      postgres: { source: 'npm' },
    });
    expect(first.info.postgres.version).toMatch(/^17\./);
    // Each chosen port is where its part listens.
    expect(first.info.postgres.port).toBe(postgresPort);
    for (const [port, there] of [
      [idpPort, true],
      [sshPort, findSshd() !== undefined],
      [mysqlPort, findMariaDb() !== undefined],
      [gatewayMysqlPort, findMariaDb() !== undefined],
    ] as const)
      expect(await listening(port), String(port)).toBe(there);
    expect(sourced(first.info.envFile)).toEqual(first.info.env);

    // psql as printed, and psql with only the sourced environment.
    const printed = await terminal(
      first.info.envFile,
      `env -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE -u PGPASSFILE -u PGSSLMODE -u PGSSLROOTCERT ${first.info.psql} -XAtc 'select email, card_number from customers where id = 1'`,
    );
    expect(printed.stderr).toBe('');
    expect(printed.stdout.trim()).toMatch(/^\[redacted\]\|\*{4} \*{4} \*{4} \d{4}$/);
    const drop = await terminal(first.info.envFile, "psql -X -c 'drop table orders'");
    expect(drop.code).not.toBe(0);
    expect(drop.stderr).toContain('denied by rule "no-drop-or-truncate"');
    // Its hint names a command that works as written, in the same terminal.
    const explain = /`(hoop policy check [^`]+)`/.exec(drop.stderr)?.[1];
    expect(explain).toBe("hoop policy check --connection demo-db 'drop table orders'");
    const why = await terminal(first.info.envFile, explain!);
    expect(why.code, why.stderr).toBe(1);
    expect(why.stdout).toContain('no-drop-or-truncate');
    // The banner's DO block: refused as a whole, so the DROP inside it never runs.
    const hidden = await terminal(first.info.envFile, `psql -X -c "do \\$\\$ begin execute 'drop table orders'; end \\$\\$"`);
    expect(hidden.code).not.toBe(0);
    expect(hidden.stderr).toContain('denied by rule "no-unseen-code"');
    // Nor can a function of the session's own read the masked column past masking.
    const fn = await terminal(first.info.envFile, `psql -X -c "create function leak() returns text language sql as 'select email from customers limit 1'"`);
    expect(fn.stderr).toContain('denied by rule "no-unseen-code"');
    expect((await terminal(first.info.envFile, 'psql -XAt -c "select count(*) from pg_proc where proname = \'leak\'"')).stdout.trim()).toBe('0');
    const write = await terminal(first.info.envFile, "psql -XAt -c 'create table notes (t text)' -c \"insert into notes values ('kept')\" -c 'select count(*) from orders'");
    expect(write.stdout.trim().split('\n').at(-1)).toBe('60');

    // The same shop on MariaDB, under the same policy: masked by the gateway, a DROP denied.
    if (findMariaDb()) {
      const masked = await terminal(first.info.envFile, `hoop exec demo-mysql --csv -c 'select email, card_number, ssn from customers where id = 1'`);
      expect(masked.stderr).toBe('');
      expect(masked.stdout).toMatch(/^email,card_number,ssn\n\[redacted\],\*{4} \*{4} \*{4} \d{4},\*{3}-\*{2}-\d{4}\n$/);
      const dropped = await terminal(first.info.envFile, `hoop exec demo-mysql -c 'drop table orders'`);
      expect(dropped.code).toBe(3);
      expect(dropped.stderr).toContain('denied by rule "no-drop-or-truncate"');
      expect((await terminal(first.info.envFile, `hoop exec demo-mysql --csv -c 'select count(*) from orders'`)).stdout).toBe('count(*)\n60\n');
      // The mariadb client straight to the gateway's MySQL port, with the credential hoop connect --direct mints: masked there too.
      const direct = await terminal(first.info.envFile, 'hoop connect demo-mysql --direct --once --json');
      expect(direct.code, direct.stderr).toBe(0);
      const { optionFile } = JSON.parse(direct.stdout) as { optionFile: string };
      const client = await terminal(first.info.envFile, `mariadb --defaults-extra-file=${optionFile} -N -e 'select email, card_number from customers where id = 1'`);
      expect(client.stderr).toBe('');
      expect(client.stdout).toMatch(/^\[redacted\]\t\*{4} \*{4} \*{4} \d{4}\n$/);
    }

    // The CLI as the demo user.
    const whoami = await terminal(first.info.envFile, 'hoop whoami');
    expect(whoami.code).toBe(0);
    expect(whoami.stdout).toMatch(/^demo /);
    expect(whoami.stdout).toContain('groups:  engineers');
    const ls = await terminal(first.info.envFile, 'hoop connections');
    expect(ls.stdout).toMatch(/demo-db\s+postgres\s+shop\s+read-write/);
    const check = await terminal(first.info.envFile, `hoop policy check --as analyst --group analysts --connection demo-db "update orders set status = 'paid'"`);
    expect(check.code).toBe(1);
    expect(check.stdout).toMatch(/decision\s+deny/);
    expect(check.stdout).toMatch(/rule\s+read-only-access/);
    const tests = await terminal(first.info.envFile, 'hoop policy test');
    expect(tests.code).toBe(0);
    expect(tests.stdout).toContain('8 passed, 0 failed');

    // A second demo on the same directory; another one on a port in use.
    const second = await demoOnce(['--dir', dir, ...ports]);
    expect(second.code).toBe(64);
    expect(second.stderr).toContain(`hoop demo is already running in ${dir} (process ${first.child.pid})`);
    const other = await demoOnce(['--dir', join(base, 'other'), '--gateway-port', String(gatewayPort), '--port', String(await freePort())]);
    expect(other.code).toBe(69);
    expect(other.stderr).toContain(`port ${gatewayPort} on 127.0.0.1 is in use`);
    expect(other.stderr).toContain('--gateway-port');
    expect(existsSync(join(base, 'other', 'postgres'))).toBe(false); // nothing was started

    // SIGTERM: everything stops, PostgreSQL included.
    expect(await listening(first.info.postgres.port)).toBe(true);
    first.child.kill('SIGTERM');
    expect(await exited(first.child)).toBe(0);
    expect(await listening(first.info.postgres.port)).toBe(false);
    expect(await listening(gatewayPort)).toBe(false);
    expect(existsSync(join(dir, 'demo.pid'))).toBe(false);
    const down = await terminal(first.info.envFile, "psql -X -c 'select 1'");
    expect(down.code).not.toBe(0);

    // A target's kept port is named by the policy repo: another one takes a fresh start.
    const moved = await demoOnce(['--dir', dir, ...ports, '--postgres-port', String(await freePort())]);
    expect(moved.code).toBe(64);
    expect(moved.stderr).toContain(`keeps its PostgreSQL on port ${postgresPort} (its policy repo names it)`);
    expect(moved.stderr).toContain('--fresh');

    // Restarted: the same data (its ports kept), and the terminal that sourced the env before keeps working.
    const again = await demoRunning(['--dir', dir, ...ports]);
    expect(again.info.postgres.port).toBe(postgresPort);
    expect((await terminal(first.info.envFile, 'psql -XAtc "select t from notes"')).stdout.trim()).toBe('kept');
    expect((await terminal(first.info.envFile, 'hoop whoami')).code).toBe(0);
    again.child.kill('SIGINT');
    expect(await exited(again.child)).toBe(0);

    // --fresh: an empty start.
    const fresh = await demoRunning(['--dir', dir, '--fresh', ...ports]);
    const gone = await terminal(fresh.info.envFile, 'psql -XAtc "select count(*) from pg_tables where tablename = \'notes\'"');
    expect(gone.stdout.trim()).toBe('0');
    fresh.child.kill('SIGINT');
    expect(await exited(fresh.child)).toBe(0);
  }, 360_000);

  it('a port in use for the local port gets a hint naming --port', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const port = (taken.address() as { port: number }).port;
    try {
      const r = await demoOnce(['--dir', join(base, 'taken'), '--gateway-port', String(await freePort()), '--port', String(port)]);
      expect(r.code).toBe(69);
      expect(r.stderr).toContain(`port ${port} on 127.0.0.1 is in use, so the demo's local port cannot listen there`);
      expect(r.stderr).toContain('pick another port with --port');
    } finally {
      taken.close();
    }
  });

  it('a disk under the recording floor is said before anything starts (exit 74), not after "running"', async () => {
    // A 64 MiB tmpfs in a mount namespace of the test's own (a user namespace makes it work for a non-root user too).
    const small = join(base, 'small-disk');
    mkdirSync(small);
    const script = 'mount -t tmpfs -o size=64m tmpfs "$1" && shift && exec "$@"';
    const ports = ['--gateway-port', String(await freePort()), '--port', String(await freePort())];
    const r = await runProcess('unshare', ['-rm', 'sh', '-c', script, 'sh', small, process.execPath, bin, 'demo', '--dir', join(small, 'demo'), ...ports], {
      env: { PATH: `${nodeOnly}:/usr/bin:/bin`, HOME: base },
      timeoutMs: 60_000,
    });
    expect(r.stderr).toMatch(/the disk of \S+ has 6\d MiB free: the demo's gateway refuses every session under 256 MiB/);
    expect(r.stderr).toContain('--dir');
    expect(r.stderr).not.toContain('starting PostgreSQL');
    expect(r.code).toBe(74);
  });
});
