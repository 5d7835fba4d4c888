/**
 * Loopback addresses: the only hosts hoop talks plain HTTP to, or listens on without TLS.
 */
import { isIP } from 'node:net';

/**
 * True for 127.0.0.0/8, ::1 (and IPv4-mapped loopback) and `localhost`.
 *
 * @see https://www.rfc-editor.org/rfc/rfc1122#section-3.2.1.3
 * @see https://www.rfc-editor.org/rfc/rfc4291#section-2.5.3
 * @see https://www.rfc-editor.org/rfc/rfc6761#section-6.3
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (h.toLowerCase() === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) {
    const lower = h.toLowerCase();
    if (lower === '::1' || lower === '0:0:0:0:0:0:0:1') return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
    return mapped !== null && mapped[1]!.startsWith('127.');
  }
  return false;
}
