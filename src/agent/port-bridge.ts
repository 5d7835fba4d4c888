/**
 * How a contained command reaches its run's ports, the gateway and the egress proxy: its network
 * is its own loopback, so `hoop run`'s ports on this machine's 127.0.0.1 are out of its reach.
 * Each port also listens on a unix socket in the run's directory (which the sandbox shares), and
 * the sandbox's first process (./sandbox-init.ts) serves the same port number on the sandbox's
 * own 127.0.0.1, handing each connection to that socket. The port serves a client that came this
 * way exactly as one that came over TCP ({@link PortAcceptor.accept}). The gateway comes in the
 * same way ({@link gatewayAcceptor}): under its own name, which the sandbox's `hosts` file puts
 * on its loopback, on a port of the sandbox's (one under 1024 cannot be served there), so that
 * its certificate still names it.
 *
 * @see https://nodejs.org/api/net.html#serverlistenoptions-callback
 */
import { chmod, rm } from 'node:fs/promises';
import { connect, createServer, isIP, type Server, type Socket } from 'node:net';
import { isLoopbackHost } from '../loopback.js';
import { join } from 'node:path';

/** A port that serves a client given to it. */
export interface PortAcceptor {
  /** The loopback address the sandbox serves it on (default 127.0.0.1). */
  host?: string;
  /** The port's number (the same inside the sandbox). */
  port: number;
  /** Serves a client that reached the port another way than its own listener. */
  accept(socket: Socket): void;
}

/** The ports bridged into a sandbox: what its first process serves, and how to stop. */
export interface PortBridge {
  ports: Array<{ host: string; port: number; socket: string }>;
  close(): Promise<void>;
}

/** Listens on `<dir>/.port-<n>` (0600) for each of `ports`, handing every client to its port. */
export async function bridgePorts(dir: string, ports: readonly PortAcceptor[]): Promise<PortBridge> {
  const servers: Array<{ server: Server; path: string }> = [];
  const close = async (): Promise<void> => {
    for (const { server, path } of servers) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(path, { force: true });
    }
  };
  try {
    for (const p of ports) {
      const path = join(dir, `.port-${p.host ?? '127.0.0.1'}-${p.port}`);
      const server = createServer((socket) => p.accept(socket));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ path }, () => resolve());
      });
      servers.push({ server, path });
      await chmod(path, 0o600);
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { ports: servers.map((s, i) => ({ host: ports[i]!.host ?? '127.0.0.1', port: ports[i]!.port, socket: s.path })), close };
}

/** Hands `client` on to `host:port` as this machine reaches it, both ways. */
function handOn(client: Socket, host: string, port: number): void {
  const upstream = connect({ host, port, noDelay: true });
  for (const [a, b] of [
    [client, upstream],
    [upstream, client],
  ] as const) {
    a.pipe(b);
    a.on('error', () => b.destroy());
    a.on('close', () => b.destroy());
  }
}

/** The gateway's host and port, from its URL. */
function gatewayHost(gateway: string): { host: string; port: number } {
  const url = new URL(gateway);
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)) };
}

/** The line a sandbox's `hosts` file needs so that the gateway's name is on its loopback: none for an address (or `localhost`). */
export function gatewayHostsLine(gateway: string): string | undefined {
  const { host } = gatewayHost(gateway);
  return isIP(host) || host === 'localhost' ? undefined : `127.0.0.1 ${host}`;
}

/**
 * The gateway inside the sandbox: on port `port` of the loopback address its name stands for there,
 * each client handed on to the gateway itself; and its URL as the command uses it. Undefined for
 * a gateway given by an address not on this machine's loopback, which the sandbox cannot stand in
 * for under its certificate (the command reaches it through the egress proxy only).
 */
export function gatewayAcceptor(gateway: string, port: number): { acceptor: PortAcceptor; url: string } | undefined {
  const real = gatewayHost(gateway);
  const family = isIP(real.host);
  if (family !== 0 && !isLoopbackHost(real.host)) return undefined;
  const url = new URL(gateway);
  url.port = String(port);
  return { acceptor: { host: family === 0 ? '127.0.0.1' : real.host, port, accept: (client) => handOn(client, real.host, real.port) }, url: url.toString().replace(/\/$/, '') };
}

/** A port number for the sandbox's loopback: `wanted` when it is 1024 or more and not `taken`, else the first free from `from`. */
export function portInside(taken: ReadonlySet<number>, wanted: number, from = 10_000): number {
  if (wanted >= 1024 && !taken.has(wanted)) return wanted;
  let p = from;
  while (taken.has(p)) p++;
  return p;
}
