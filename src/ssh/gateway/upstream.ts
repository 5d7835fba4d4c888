/**
 * The gateway's SSH connection to a target: signed in with the credential only the gateway holds
 * (a private key or a password, resolved from its secret reference each time), and only to a
 * server that shows one of the connection's pinned host keys.
 *
 * @see https://www.rfc-editor.org/rfc/rfc4253#section-7 (key exchange, host key)
 * @see https://www.rfc-editor.org/rfc/rfc4252 (user authentication)
 */
import ssh2 from '../common/ssh2-vendor.js';
import type { Client as SshClient } from 'ssh2';
import { sshFingerprint, type SshConnection } from '../../config/connection.js';
import type { SecretRef } from '../../config/secrets.js';
import { describeError, ErrorCode, HoopError } from '../../errors.js';

/** Why the upstream could not be opened, with a message for the user (their ssh client prints it). */
export class UpstreamSshError extends HoopError {
  readonly reason: 'upstream-unavailable' | 'upstream-auth-failed' | 'host-key-mismatch';
  constructor(reason: UpstreamSshError['reason'], message: string) {
    super(reason === 'upstream-auth-failed' ? ErrorCode.UPSTREAM_AUTH_FAILED : ErrorCode.UPSTREAM_UNAVAILABLE, message);
    this.reason = reason;
  }
}

/**
 * Opens an SSH connection to `c`'s server and signs in; rejects with an {@link UpstreamSshError}.
 *
 * @see https://www.rfc-editor.org/rfc/rfc4253#section-8 (the server's host key is verified before anything is sent)
 */
export async function openUpstreamSsh(c: SshConnection, resolveSecret: (ref: SecretRef) => Promise<string>, timeoutMs: number): Promise<SshClient> {
  const secret = async (ref: SecretRef | undefined): Promise<string | undefined> => (ref ? resolveSecret(ref) : undefined);
  const [privateKey, passphrase, password] = await Promise.all([secret(c.privateKey), secret(c.passphrase), secret(c.password)]);
  const where = `${c.user}@${c.host}:${c.port}`;
  return new Promise<SshClient>((resolve, reject) => {
    const client = new ssh2.Client();
    let shown: string | undefined;
    let settled = false;
    const fail = (err: UpstreamSshError): void => {
      if (settled) return;
      settled = true;
      client.end();
      reject(err);
    };
    client.on('ready', () => {
      settled = true;
      // ssh2 leaves Nagle on: small writes (keystrokes, window adjustments) would wait for an ACK.
      client.setNoDelay(true);
      resolve(client);
    });
    client.on('error', (err: Error & { level?: string }) => {
      if (shown !== undefined && !c.hostKeys.includes(shown)) {
        fail(
          new UpstreamSshError(
            'host-key-mismatch',
            `the SSH server of "${c.name}" (${c.host}:${c.port}) showed host key ${shown}, which is not one of the keys pinned for it; the gateway did not sign in. If the server's key was changed on purpose, its administrators must pin the new one (hostKeys in the connection)`,
          ),
        );
      } else if (err.level === 'client-authentication') {
        fail(
          new UpstreamSshError(
            'upstream-auth-failed',
            `the SSH server of "${c.name}" refused the gateway's credential for ${where}; its administrators must check the connection's ${c.privateKey ? 'privateKey' : 'password'}`,
          ),
        );
      } else if (err.level === 'client-timeout') {
        fail(new UpstreamSshError('upstream-unavailable', `the SSH server of "${c.name}" (${c.host}:${c.port}) did not answer within ${Math.round(timeoutMs / 1000)} s`));
      } else {
        fail(new UpstreamSshError('upstream-unavailable', `the gateway cannot reach the SSH server of "${c.name}" (${c.host}:${c.port}): ${describeError(err)}`));
      }
    });
    client.on('close', () => fail(new UpstreamSshError('upstream-unavailable', `the SSH server of "${c.name}" (${c.host}:${c.port}) closed the connection before the gateway signed in`)));
    try {
      client.connect({
        host: c.host,
        port: c.port,
        username: c.user,
        ...(privateKey !== undefined ? { privateKey } : {}),
        ...(passphrase !== undefined ? { passphrase } : {}),
        ...(password !== undefined ? { password } : {}),
        readyTimeout: timeoutMs,
        keepaliveInterval: 15_000,
        // Only a pinned key: ssh2 calls this with the raw key blob before authenticating (RFC 4253 section 8).
        hostVerifier: (key: Buffer) => {
          shown = sshFingerprint(key);
          return c.hostKeys.includes(shown);
        },
      });
    } catch (err) {
      fail(new UpstreamSshError('upstream-auth-failed', `the gateway's credential for "${c.name}" cannot be used: ${describeError(err)}`));
    }
  });
}

/** What the target prints for `echo $SHELL`: its user's login shell, as sshd sets it (a path, one word). */
const LOGIN_SHELL = /^\/[A-Za-z0-9_./+-]{1,255}$/;

/**
 * The login shell of the user the gateway signed in as, which reads every command line sent: asked
 * of the target once per session (`echo $SHELL`, which every shell reads alike); `undefined` when
 * the answer is not one path within `timeoutMs` (the judge then trusts no line to its grammar).
 *
 * @see https://man.openbsd.org/sshd#LOGIN_PROCESS (sshd sets SHELL to the user's login shell)
 */
export function loginShellOf(client: SshClient, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    let out = '';
    const timer = setTimeout(() => resolve(undefined), timeoutMs);
    const done = (shell: string | undefined): void => {
      clearTimeout(timer);
      resolve(shell);
    };
    try {
      client.exec('echo $SHELL', (err, channel) => {
        if (err) return done(undefined);
        channel.on('data', (chunk: Buffer) => {
          if (out.length < 1024) out += chunk.toString('latin1');
        });
        channel.stderr.resume();
        channel.on('close', () => {
          const shell = out.trim();
          done(LOGIN_SHELL.test(shell) ? shell : undefined);
        });
      });
    } catch {
      done(undefined);
    }
  });
}
