/**
 * The paths that are not hoop, to compare hoop with: an OpenSSH local forward (`ssh -L`), the floor
 * of a Node relay (./node-relay.mjs, nothing but `pipe()`: two processes with one TLS connection per
 * client, or one process terminating the client's TLS), and pgbouncer in session mode. Each is started here and stopped by its `close`.
 *
 * Layer: uses ./processes.ts and ./measure.ts's types; ./paths.ts lists these set-ups.
 *
 * @see https://man.openbsd.org/ssh
 * @see https://www.pgbouncer.org/config.html
 */
import { chownSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort, type PgCluster } from '../test/harness/postgres.js';
import type { Endpoint, PathSetup } from './measure.js';
import { isRoot, lastLines, onCleanup, postgresIds, repoRoot, startProcess, tempDir, waitForPort, which } from './processes.js';

/**
 * `ssh` options that sign in with `keyFile` alone and trust any host key, reading no configuration
 * of the user's or the machine's (`-F /dev/null`): the same for `ssh -L` and the direct `scp`.
 */
export function opensshOptions(keyFile: string): string[] {
  return [
    '-F',
    '/dev/null',
    '-i',
    keyFile,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'LogLevel=ERROR',
  ];
}

/** `ssh -L` to an sshd of its own (src/demo/sshd.ts), forwarding a local port to the database at `ep` (PostgreSQL or MariaDB). */
export async function setupSshForward(ep: Endpoint): Promise<PathSetup> {
  const ssh = which('ssh');
  if (!ssh) throw new Error('skipped: ssh not installed (apt-get install openssh-client)');
  const { findSshd, startSshd } = await import('../src/demo/sshd.js');
  if (!findSshd()) throw new Error('skipped: sshd/ssh-keygen not installed (apt-get install openssh-server)');
  const sshd = await startSshd();
  const stopSshd = onCleanup('sshd', () => sshd.stop());

  const localPort = await freePort();
  const forward = ['-o', 'ExitOnForwardFailure=yes', '-p', String(sshd.port), '-L', `127.0.0.1:${localPort}:${ep.host}:${ep.port}`];
  const tunnel = startProcess(ssh, ['-N', ...opensshOptions(sshd.clientKeyFile), ...forward, `${userInfo().username}@127.0.0.1`], { name: 'ssh -L' });
  await waitForPort(localPort, 15_000, () => tunnel.child.exitCode === null).catch((e: Error) => {
    throw new Error(`ssh -L did not come up: ${e.message}: ${lastLines(tunnel.stderr(), 3)}`);
  });
  return {
    endpoint: { ...ep, port: localPort },
    relay: { server: sshd.pid, client: tunnel.child.pid! },
    close: async () => {
      await tunnel.stop();
      await stopSshd();
    },
  };
}

/**
 * The floor of a Node relay, ./node-relay.mjs: `two` processes (a TLS server in front of
 * PostgreSQL and a client that listens locally), or one `front` that terminates the client's own TLS.
 */
export async function setupNodeRelay(pg: PgCluster, ep: Endpoint, shape: 'two' | 'front'): Promise<PathSetup> {
  const { createTestPki } = await import('../test/harness/certs.js');
  const pki = await createTestPki();
  onCleanup('node relay PKI', () => pki.cleanup());
  const leaf = await pki.issue('relay', ['IP:127.0.0.1', 'DNS:localhost']);
  const script = join(repoRoot, 'bench', 'node-relay.mjs');
  const [serverPort, localPort] = [await freePort(), await freePort()];
  const role = shape === 'two' ? 'server' : 'front';
  const server = startProcess(process.execPath, [script, role, String(serverPort), String(pg.port), leaf.certFile, leaf.keyFile], { name: `node relay ${role}` });
  const client = shape === 'two' ? startProcess(process.execPath, [script, 'client', String(localPort), String(serverPort), pki.caFile], { name: 'node relay client' }) : undefined;
  for (const [port, p] of client
    ? ([
        [serverPort, server],
        [localPort, client],
      ] as const)
    : ([[serverPort, server]] as const)) {
    await waitForPort(port, 15_000, () => p.child.exitCode === null).catch((e: Error) => {
      throw new Error(`the node relay did not come up: ${e.message}: ${lastLines(p.stderr(), 3)}`);
    });
  }
  return {
    endpoint: client ? { ...ep, port: localPort } : { ...ep, port: serverPort, sslRootCert: pki.caFile },
    relay: { server: server.child.pid!, client: client?.child.pid },
    close: async () => {
      await client?.stop();
      await server.stop();
    },
  };
}

/** pgbouncer in session mode in front of PostgreSQL (as the `postgres` user when run as root). */
export async function setupPgbouncer(pg: PgCluster, ep: Endpoint): Promise<PathSetup> {
  const bouncer = which('pgbouncer', ['/usr/sbin']);
  if (!bouncer) throw new Error('skipped: pgbouncer not installed (apt-get install pgbouncer)');
  const { dir } = tempDir('hoop-bench-pgbouncer-', true);
  const port = await freePort();
  const quote = (s: string): string => `"${s.replace(/"/g, '""')}"`;
  const authFile = join(dir, 'userlist.txt');
  writeFileSync(authFile, `${quote(ep.user)} ${quote(ep.password)}\n`, { mode: 0o600 });
  const ini = [
    '[databases]',
    `${ep.database} = host=127.0.0.1 port=${pg.port} dbname=${ep.database}`,
    '',
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = scram-sha-256',
    `auth_file = ${authFile}`,
    'pool_mode = session',
    'max_client_conn = 100',
    'default_pool_size = 20',
    'ignore_startup_parameters = extra_float_digits',
    'server_tls_sslmode = disable',
    'client_tls_sslmode = disable',
    'log_connections = 0',
    'log_disconnections = 0',
    'log_pooler_errors = 1',
    'stats_period = 3600',
    '',
  ].join('\n');
  const iniFile = join(dir, 'pgbouncer.ini');
  writeFileSync(iniFile, ini, { mode: 0o600 });
  if (isRoot) {
    const { uid, gid } = postgresIds();
    chownSync(authFile, uid, gid);
    chownSync(iniFile, uid, gid);
  }
  const [file, args] = isRoot ? ['runuser', ['-u', 'postgres', '--', bouncer, iniFile]] : [bouncer, [iniFile]];
  const daemon = startProcess(file, args, { name: 'pgbouncer', cwd: dir });
  await waitForPort(port, 10_000, () => daemon.child.exitCode === null).catch((e: Error) => {
    throw new Error(`pgbouncer did not start: ${e.message}: ${lastLines(daemon.stderr(), 3)}`);
  });
  return { endpoint: { ...ep, port }, close: () => daemon.stop() };
}
