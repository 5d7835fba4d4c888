import { userInfo } from 'node:os';
import { join } from 'node:path';
import { pgbouncerPath, startPgbouncer } from '../test/harness/pgbouncer.js';
import { freePort, type PgCluster } from '../test/harness/postgres.js';
import type { Endpoint, PathSetup } from './measure.js';
import { lastLines, onCleanup, repoRoot, startProcess, waitForPort, which } from './processes.js';

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
 * The floor of a Node relay, ./node-relay.mjs, in front of `upstream`: `two` processes (a TLS server
 * and a client that listens locally), one `front` that terminates a PostgreSQL client's own TLS, or
 * one `tls` server whose clients speak TLS from their first byte (an HTTPS client's).
 */
export async function setupNodeRelay(upstream: { port: number }, ep: Endpoint, shape: 'two' | 'front' | 'tls'): Promise<PathSetup> {
  const { createTestPki } = await import('../test/harness/certs.js');
  const pki = await createTestPki();
  onCleanup('node relay PKI', () => pki.cleanup());
  const leaf = await pki.issue('relay', ['IP:127.0.0.1', 'DNS:localhost']);
  const script = join(repoRoot, 'bench', 'node-relay.mjs');
  const [serverPort, localPort] = [await freePort(), await freePort()];
  const role = shape === 'front' ? 'front' : 'server';
  const server = startProcess(process.execPath, [script, role, String(serverPort), String(upstream.port), leaf.certFile, leaf.keyFile], { name: `node relay ${role}` });
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

/** pgbouncer in session mode in front of PostgreSQL (test/harness/pgbouncer.ts). */
export async function setupPgbouncer(pg: PgCluster, ep: Endpoint): Promise<PathSetup> {
  if (!pgbouncerPath()) throw new Error('skipped: pgbouncer not installed (apt-get install pgbouncer)');
  const bouncer = await startPgbouncer({ serverPort: pg.port, database: ep.database, user: ep.user, password: ep.password, mode: 'session' });
  return { endpoint: { ...ep, port: bouncer.port }, close: async () => bouncer.stop() };
}
