/**
 * The gateway's connection to a MySQL or MariaDB server: TCP under a deadline, the server's
 * greeting, then a sign-in with the credential only the gateway holds, TLS as the connection's
 * `tls.mode` says (`prefer`: when the server offers it, unverified; `require`: always,
 * unverified; `verify-full`: always, the certificate checked against `ca` and the host name).
 *
 * @see https://dev.mysql.com/doc/refman/8.0/en/connection-options.html#option_general_ssl-mode
 */
import { describeError, ErrorCode, HoopError, isHoopError } from '../../errors.js';
import { connect, type Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import type { MysqlConnection } from '../../config/connection.js';
import { Cap } from '../wire/handshake.js';
import { MySqlGreeted, type MySqlClient } from '../wire/client.js';

/** A server that could not be reached or refused the gateway's sign-in. */
export class UpstreamMysqlError extends HoopError {
  readonly reason: 'upstream-unavailable' | 'upstream-auth-failed';

  constructor(reason: 'upstream-unavailable' | 'upstream-auth-failed', message: string) {
    super(reason === 'upstream-auth-failed' ? ErrorCode.UPSTREAM_AUTH_FAILED : ErrorCode.UPSTREAM_UNAVAILABLE, message);
    this.reason = reason;
  }
}

/** Connects to the server and reads its greeting, under `timeoutMs`. */
export function greetedUpstream(c: MysqlConnection, timeoutMs: number): Promise<MySqlGreeted> {
  return new Promise<Socket>((resolve, reject) => {
    const socket = connect({ host: c.host, port: c.port, noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new UpstreamMysqlError('upstream-unavailable', `${c.host}:${c.port} did not answer in ${timeoutMs / 1000} s`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(new UpstreamMysqlError('upstream-unavailable', `${c.host}:${c.port}: ${err.message}`));
    });
  }).then((socket) =>
    MySqlGreeted.read(socket).catch((err: Error) => {
      throw new UpstreamMysqlError('upstream-unavailable', `${c.host}:${c.port} did not greet as a MySQL server: ${err.message}`);
    }),
  );
}

/** The TLS options of `c` for a server that does (or does not) offer TLS; undefined: a plain connection. */
export function upstreamTls(c: MysqlConnection, offered: boolean): ConnectionOptions | undefined {
  const mode = c.tls.mode;
  if (mode === 'disable' || (mode === 'prefer' && !offered)) return undefined;
  if (mode === 'verify-full') return { ...(c.tls.ca ? { ca: c.tls.ca } : {}), servername: c.tls.serverName ?? c.host, rejectUnauthorized: true };
  return { rejectUnauthorized: false, ...(c.tls.serverName ? { servername: c.tls.serverName } : {}) };
}

/** Signs in on a greeted server as the connection's user, asking for `capabilities`. */
export async function signInUpstream(
  greeted: MySqlGreeted,
  c: MysqlConnection,
  o: { password: string; capabilities: number; mariadbCapabilities: number; charset: number; attributes: Record<string, string> },
): Promise<MySqlClient> {
  const tls = upstreamTls(c, (greeted.greeting.capabilities & Cap.SSL) !== 0);
  try {
    return await greeted.signIn({
      user: c.user,
      password: o.password,
      database: c.database,
      capabilities: o.capabilities,
      mariadbCapabilities: o.mariadbCapabilities,
      charset: o.charset,
      attributes: o.attributes,
      ...(tls && { tls }),
    });
  } catch (err) {
    throw new UpstreamMysqlError(isHoopError(err, ErrorCode.UPSTREAM_AUTH_FAILED) ? 'upstream-auth-failed' : 'upstream-unavailable', describeError(err));
  }
}
