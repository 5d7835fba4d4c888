/**
 * A network of its own for a contained command: bubblewrap puts it in a new network namespace
 * (`--unshare-net`: only its own loopback), and slirp4netns gives that namespace a way out to
 * the network as any other process of the person has it, through a user-mode TCP/IP stack, with
 * the person's loopback out of reach (`--disable-host-loopback`) and the machine's other addresses
 * refused by routes of the namespace's own ({@link refuseHostAddresses}). So neither an abstract unix
 * socket (one with no file, which no mount can hide) nor a service of the person's on
 * 127.0.0.1 (a notebook server, a debugger, a Docker daemon on TCP) can be asked to act for the
 * command; the run's own ports come in through ./port-bridge.ts.
 *
 * A resolver on the machine's loopback (systemd-resolved's 127.0.0.53) is out of reach too: the
 * namespace then gets a `resolv.conf` naming slirp4netns's DNS forwarder.
 *
 * @see https://github.com/rootless-containers/slirp4netns/blob/master/slirp4netns.1.md
 * @see https://man7.org/linux/man-pages/man5/resolv.conf.5.html
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { delimiter, join } from 'node:path';
import type { Readable } from 'node:stream';

/** slirp4netns's DNS forwarder, in the namespace's default network (10.0.2.0/24). */
const SLIRP_DNS = '10.0.2.3';

/**
 * A program as the variable `named` says (taken as it is), else the first on `PATH` or in the
 * system's directories (where packages put `bwrap`, `slirp4netns` and `ip`); undefined when none is.
 */
export function findProgram(name: string, env: NodeJS.ProcessEnv, named?: string): string | undefined {
  if (named?.trim()) return named.trim();
  return [...(env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/sbin', '/usr/bin', '/usr/local/bin', '/sbin', '/bin'].map((d) => join(d, name)).find((f) => existsSync(f));
}

/** `slirp4netns` ({@link findProgram}, or `HOOP_SLIRP4NETNS`); undefined when missing or not working. */
export function findSlirp4netns(env: NodeJS.ProcessEnv): string | undefined {
  const file = findProgram('slirp4netns', env, env.HOOP_SLIRP4NETNS);
  if (!file || !existsSync(file)) return undefined;
  const probe = spawnSync(file, ['--version'], { stdio: ['ignore', 'ignore', 'ignore'], timeout: 5_000 });
  return probe.status === 0 ? file : undefined;
}

/**
 * The `resolv.conf` the namespace needs when the machine's names only loopback resolvers, which
 * it cannot reach; undefined when the machine's own serves.
 */
export function namespaceResolvConf(hostResolvConf: string): string | undefined {
  const lines = hostResolvConf.split('\n');
  const servers = lines.filter((l) => /^\s*nameserver\s/.test(l)).map((l) => l.trim().split(/\s+/)[1] ?? '');
  const loopback = (a: string): boolean => a.startsWith('127.') || a === '::1';
  if (servers.length > 0 && !servers.every(loopback)) return undefined;
  const kept = lines.filter((l) => /^\s*(search|domain|options)\s/.test(l));
  return [`nameserver ${SLIRP_DNS}`, ...kept, ''].join('\n');
}

/** This machine's own IPv4 addresses other than loopback: slirp4netns would reach its services on them as any other host's. */
export function hostAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a !== undefined && a.family === 'IPv4' && !a.internal)
    .map((a) => a!.address);
}

/**
 * Routes in the namespace of process `pid` that refuse this machine's own `addresses` (EACCES),
 * so that its services listening on every address stay out of the command's reach as its
 * loopback ones are. Added from outside (`nsenter` into the namespace's user and network
 * namespaces, `ip -batch`): the command has no capability to remove them.
 * @see https://man7.org/linux/man-pages/man8/ip-route.8.html (route type prohibit)
 * @throws Error saying why when they could not be added
 */
export function refuseHostAddresses(tools: { nsenter: string; ip: string }, pid: number, addresses: readonly string[]): void {
  if (addresses.length === 0) return;
  const r = spawnSync(tools.nsenter, ['--preserve-credentials', '-U', '-n', '-t', String(pid), tools.ip, '-batch', '-'], {
    input: addresses.map((a) => `route add prohibit ${a}/32\n`).join(''),
    stdio: ['pipe', 'ignore', 'pipe'],
    timeout: 5_000,
  });
  if (r.status !== 0) throw new Error(`the machine's own addresses could not be kept out of reach (${r.stderr?.toString('utf8').trim().split('\n')[0] || `exit ${r.status}`})`);
}

/** A namespace's way out, while the command runs. */
export interface NamespaceNetwork {
  /** Ends it (the command has ended). */
  close(): void;
}

/**
 * Gives the network namespace of process `pid` (bubblewrap's, before the command starts) a way
 * out through slirp4netns; resolves once its interface is configured.
 * @throws Error saying why when slirp4netns does not get there within 10 s
 */
export function attachNetwork(slirp4netns: string, pid: number): Promise<NamespaceNetwork> {
  // fd 3: slirp4netns writes "1" there once the tap device is configured; fd 4: it exits once that closes (this process ended, even killed).
  const child = spawn(slirp4netns, ['--configure', '--mtu=65520', '--disable-host-loopback', '--ready-fd=3', '--exit-fd=4', String(pid), 'tap0'], {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'],
  });
  for (const fd of [3, 4]) (child.stdio[fd] as Readable).on('error', () => undefined);
  let said = '';
  child.stderr!.on('data', (b: Buffer) => (said = (said + b.toString('utf8')).slice(-2000)));
  const close = (): void => void (child.exitCode === null && child.signalCode === null && child.kill('SIGTERM'));
  return new Promise((resolve, reject) => {
    const fail = (why: string): void => {
      clearTimeout(timer);
      close();
      reject(new Error(`slirp4netns ${why}${said.trim() ? `: ${said.trim().split('\n').slice(-3).join(' ')}` : ''}`));
    };
    const timer = setTimeout(() => fail('did not configure the namespace within 10 s'), 10_000);
    (child.stdio[3] as Readable).once('data', () => {
      clearTimeout(timer);
      resolve({ close });
    });
    child.once('error', (err) => fail(`could not start (${err.message})`));
    child.once('exit', (code) => fail(`ended (exit ${code}) before the namespace was configured`));
  });
}
