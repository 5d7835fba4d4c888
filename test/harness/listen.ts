/** Listening on loopback for test servers, and waiting for a server process to. */
import type { ChildProcess } from 'node:child_process';
import { connect, type Server } from 'node:net';
import { eventually } from './wait.js';

/** Resolves once `port` of 127.0.0.1 takes a connection; rejects once `child` exited (with `name` and its `log()`), or after `timeout` ms. */
export function untilListening(port: number, child: ChildProcess, name: string, log: () => string, timeout = 60_000): Promise<void> {
  return eventually(
    () =>
      new Promise<void>((resolve, reject) => {
        if (child.exitCode !== null) return reject(new Error(`${name} exited: ${log()}`));
        const s = connect(port, '127.0.0.1', () => {
          s.destroy();
          resolve();
        });
        s.on('error', reject);
      }),
    { timeout, interval: 50 },
  );
}

/**
 * Starts `server` (any `net.Server`: http, https, tls, net) on 127.0.0.1 at a port the kernel
 * picks; resolves that port, rejects if listening fails.
 * @see https://nodejs.org/api/net.html#serverlisten
 */
export function listenOnLoopback(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : 0);
    });
  });
}
