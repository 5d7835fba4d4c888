/**
 * A direct PostgreSQL client at the gateway's port, its TLS handshake done (../../gateway/front/front-door.ts):
 * its StartupMessage names a direct credential as its user; the client proves it knows the
 * credential's password with SCRAM-SHA-256, bound to this TLS connection (-PLUS, `tls-server-end-point`)
 * when the client can bind, as libpq does by default; a credential no longer accepted is refused
 * then, saying why. A signed-in client goes to the gateway's admission, and its session runs on the
 * engine as a tunnel's does ({@link PostgresEngine.serveStarted}). A CancelRequest sent over TLS is
 * handed on by its key.
 *
 * A user name that is no credential gets the same exchange with a verifier nobody holds, so the
 * answer does not say whether the name exists.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP
 * @see https://www.postgresql.org/docs/current/sasl-authentication.html
 */
import { createHmac, randomBytes } from 'node:crypto';
import { describeError, isHoopError, hoopSays } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { TlsSessionChannel } from '../../session/tls-channel.js';
import { HandshakeStream, scramExchange } from '../pipeline/handshake.js';
import { authenticationSASLFinal, errorResponse, SqlState } from '../wire/messages.js';
import { PgProtocolError } from '../wire/protocol-error.js';
import { ScramAuthError, ScramServer, tlsServerEndPoint, type ScramSecret } from '../wire/scram.js';
import type { CancelKey } from './cancel-registry.js';
import type { DirectStart } from './engine.js';

/** A credential as the direct front needs it: its verifier, why it is no longer accepted (if so), and what the admission takes. */
export interface DirectCredential<T> {
  secret: ScramSecret;
  refused?: { message: string; hint: string };
  value: T;
}

/** Options of {@link serveDirectClient}. */
export interface DirectFrontOptions<T> {
  /** Deadline for the startup and the sign-in. */
  handshakeTimeoutMs: number;
  /** The client's address, as the gateway knows it (a balancer's PROXY header's), for the log. */
  remote: string | undefined;
  /** The credential named by a StartupMessage's user, if any. */
  credential(user: string): Promise<DirectCredential<T> | undefined>;
  /** The client signed in with `value`: admit and serve its session. */
  admit(value: T, start: DirectStart, channel: TlsSessionChannel): void;
  /** A CancelRequest over TLS. */
  cancel(key: CancelKey): void;
  /** The client got past its startup (its deadline is the handshake's now), and signed in. */
  spoke(channel: TlsSessionChannel): void;
  signedIn(channel: TlsSessionChannel): void;
  log: Logger;
}

/** Salts of user names that are no credential: the same name gets the same salt, as a real one would. */
const UNKNOWN_SALT_KEY = randomBytes(32);

/** A verifier nobody holds the password of, for a user name that is no credential. */
function unknownSecret(user: string): ScramSecret {
  return { salt: createHmac('sha256', UNKNOWN_SALT_KEY).update(user).digest().subarray(0, 16), iterations: 4096, storedKey: randomBytes(32), serverKey: randomBytes(32) };
}

/** Reads the client's startup and sign-in on `channel`, then hands it to the admission; a failure is said to the client and closes it. */
export async function serveDirectClient<T>(channel: TlsSessionChannel, o: DirectFrontOptions<T>): Promise<void> {
  const handshake = new HandshakeStream(channel, o.handshakeTimeoutMs);
  let user = '';
  try {
    const first = await handshake.startup();
    o.spoke(channel);
    if (first.kind === 'cancel') {
      handshake.release();
      o.cancel({ processId: first.processId, secretKey: first.secretKey });
      channel.end();
      return;
    }
    user = first.params.get('user') ?? '';
    const credential = user === '' ? undefined : await o.credential(user);
    const cert = channel.getCertificate();
    const binding = cert && 'raw' in cert ? tlsServerEndPoint(cert.raw) : undefined;
    const verified = await scramExchange(handshake, new ScramServer(credential?.secret ?? unknownSecret(user), undefined, binding));
    if (!credential) throw new ScramAuthError('password authentication failed');
    if (credential.refused) {
      handshake.release();
      channel.end(errorResponse({ severity: 'FATAL', code: SqlState.INVALID_AUTHORIZATION, message: hoopSays(credential.refused.message), hint: credential.refused.hint }));
      return;
    }
    channel.write(authenticationSASLFinal(verified));
    o.signedIn(channel);
    o.admit(credential.value, { startup: first, handshake }, channel);
  } catch (err) {
    handshake.release();
    refuse(channel, err, user, o);
  }
}

/** Says why the startup failed, as PostgreSQL would, and closes. */
function refuse(channel: TlsSessionChannel, err: unknown, user: string, { log, remote }: { log: Logger; remote: string | undefined }): void {
  // A wrong password is worth an operator's look; a client that broke the protocol is not.
  if (err instanceof ScramAuthError) log.warn('direct.auth-failed', { user, remote, error: describeError(err) });
  else log.debug('direct.refused', { user, remote, error: describeError(err) });
  if (channel.destroyed || channel.writableEnded) return;
  if (err instanceof ScramAuthError) {
    channel.end(errorResponse({ severity: 'FATAL', code: '28P01', message: `password authentication failed for user "${user}"` }));
    return;
  }
  if (err instanceof PgProtocolError) {
    // What PostgreSQL only logs (a startup packet of no valid length: a Terminate sent first, a stray probe) closes without a word.
    if (err.unanswered) channel.end();
    else channel.end(errorResponse({ severity: 'FATAL', code: err.sqlstate, message: hoopSays(err.message) }));
    return;
  }
  if (isHoopError(err)) channel.end(errorResponse({ severity: 'FATAL', code: '08006', message: hoopSays(err.message) }));
  else channel.destroy();
}
