/**
 * How a contained command reaches its run's ports: it has a network of its own
 * (./sandbox-network.ts), so `hoop run`'s ports on this machine's 127.0.0.1 are out of its
 * reach. Each port also listens on a unix socket in the run's directory (which the sandbox
 * shares), and the sandbox's first process (./sandbox-init.ts) serves the same port number on the
 * sandbox's own 127.0.0.1, handing each connection to that socket. The port serves a client that
 * came this way exactly as one that came over TCP ({@link PortAcceptor.accept}). A gateway on this
 * machine's loopback (the demo's, a test's) comes in the same way ({@link forwardTo}).
 *
 * @see https://nodejs.org/api/net.html#serverlistenoptions-callback
 */
import { chmod, rm } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
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

/** An acceptor that hands each client on to `host:port` on this machine (the sandbox serves it on the same address). */
export function forwardTo(host: string, port: number): PortAcceptor {
  return {
    host,
    port,
    accept: (client) => {
      const upstream = connect({ host, port, noDelay: true });
      for (const [a, b] of [
        [client, upstream],
        [upstream, client],
      ] as const) {
        a.pipe(b);
        a.on('error', () => b.destroy());
        a.on('close', () => b.destroy());
      }
    },
  };
}
