/** Listening on loopback for test servers. */
import type { Server } from 'node:net';

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
