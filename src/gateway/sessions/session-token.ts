/**
 * The token behind an open tunnel. A session lives no longer than its token (its `exp` plus the
 * issuer's clock tolerance) unless the client renews it: the CLI sends
 * `{"type":"token","token":"..."}` on the tunnel whenever it has a fresher token. The gateway
 * verifies it like any bearer token; one for the same issuer and subject moves the session's
 * expiry and is answered `{"type":"token-accepted","expiresAt":"..."}`; one that does not verify is
 * answered `{"type":"token-rejected","reason":...}` and the session goes on until the old expiry;
 * one for another identity, or one that no longer grants access to the connection, ends the
 * session at once. Tokens are never logged.
 *
 * @see docs/architecture.md (§3: a token that expires inside a long tunnel is refreshed)
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1 (invalid_token)
 */
import type { LogFields, Logger } from '../../log.js';
import type { ControlMessage } from '../../tunnel/frames.js';
import { SessionEnd, type TunnelSession } from '../../session/engine.js';
import type { Identity } from '../../identity.js';
import { TokenRejectedError, type TokenVerifier } from '../identity/verify-token.js';

/** The longest delay `setTimeout` takes (about 24.8 days); longer waits are re-armed. @see https://nodejs.org/api/timers.html#settimeoutcallback-delay-args */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Options of {@link watchSessionToken}. */
export interface SessionTokenOptions {
  /** The session; its `identity` is replaced by each accepted renewal. */
  session: TunnelSession;
  verifier: TokenVerifier;
  /** Seconds a token is still honoured after its `exp` (the issuer's clock tolerance). */
  toleranceSeconds: (identity: Identity) => number;
  /** Whether a renewed identity may still use the session's connection. */
  mayUse: (identity: Identity) => boolean;
  /** Ends the session (aborts its signal with this reason). */
  end: (reason: SessionEnd) => void;
  log: Logger;
  /** Fields every log line of this session carries (session id, subject, connection...). */
  logFields: LogFields;
  /** The current time (tests move it). */
  clock?: () => number;
}

/** A running watch; {@link SessionTokenWatch.stop} when the session ends. */
export interface SessionTokenWatch {
  /** When the session ends unless renewed (`exp` plus tolerance). */
  readonly deadline: Date;
  stop(): void;
}

/** The message and hint of a session whose token ran out. */
export function tokenExpiredEnd(identity: Identity): SessionEnd {
  return new SessionEnd(
    'token-expired',
    `hoop: your token expired at ${identity.expiresAt.toISOString()}; the session is closed`,
    identity.kind === 'workload' ? 'get a fresh token for the workload (or run `hoop login`) and connect again' : 'run `hoop login` and connect again',
  );
}

/**
 * Ends `session` when its token expires, and handles `token` control messages that renew it.
 * Control messages of other types are left to others.
 */
export function watchSessionToken(options: SessionTokenOptions): SessionTokenWatch {
  const { session, verifier, log, logFields } = options;
  const channel = session.channel;
  const clock = options.clock ?? Date.now;
  let deadline = session.identity.expiresAt.getTime() + options.toleranceSeconds(session.identity) * 1000;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let busy = false;
  let next: unknown;

  const stop = (): void => {
    stopped = true;
    clearTimeout(timer);
    timer = undefined;
    channel.off('control', onControl);
  };
  const end = (reason: SessionEnd): void => {
    if (stopped) return;
    stop();
    options.end(reason);
  };
  const arm = (): void => {
    clearTimeout(timer);
    const delay = deadline - clock();
    if (delay <= 0) {
      timer = undefined;
      log.info('tunnel.token-expired', { ...logFields, expiredAt: session.identity.expiresAt.toISOString() });
      end(tokenExpiredEnd(session.identity));
      return;
    }
    timer = setTimeout(arm, Math.min(delay, MAX_TIMER_MS));
    timer.unref();
  };
  const reply = (message: ControlMessage): void => {
    if (!stopped) channel.sendControl(message);
  };

  const renew = async (token: unknown): Promise<void> => {
    if (typeof token !== 'string' || token === '') {
      reply({ type: 'token-rejected', reason: 'malformed', message: 'the token message carries no token' });
      return;
    }
    // A run's session lives as long as its run: nothing renews it, nor turns it into the person's own.
    if (session.identity.run) {
      reply({ type: 'token-rejected', reason: 'run-credential', message: `the session belongs to run ${session.identity.run.id}, whose credential is never renewed` });
      return;
    }
    let identity: Identity;
    try {
      identity = await verifier.verify(token);
    } catch (err) {
      if (stopped) return;
      const e = err instanceof TokenRejectedError ? err : new TokenRejectedError('malformed', 'the token could not be verified', { cause: err });
      log.warn('tunnel.token-rejected', { ...logFields, reason: e.reason, message: e.message });
      reply({ type: 'token-rejected', reason: e.reason, message: e.message, ...(e.hint ? { hint: e.hint } : {}) });
      return;
    }
    if (stopped) return;
    const current = session.identity;
    if (identity.issuer !== current.issuer || identity.subject !== current.subject) {
      log.warn('tunnel.identity-changed', { ...logFields, newSubject: identity.subject, newIssuer: identity.issuer });
      end(
        new SessionEnd(
          'identity-changed',
          `hoop: the renewed token is for ${JSON.stringify(identity.subject)}, not ${JSON.stringify(current.subject)}; the session is closed`,
          'connect again to open a session as the new identity',
        ),
      );
      return;
    }
    if (!options.mayUse(identity)) {
      log.warn('tunnel.access-revoked', { ...logFields, groups: identity.groups });
      end(
        new SessionEnd(
          'access-revoked',
          `hoop: your renewed token no longer grants access to "${session.connection.name}"; the session is closed`,
          'ask an administrator to grant you access in the gateway configuration',
        ),
      );
      return;
    }
    session.identity = identity;
    deadline = identity.expiresAt.getTime() + options.toleranceSeconds(identity) * 1000;
    arm();
    if (stopped) return;
    log.info('tunnel.token-renewed', { ...logFields, expiresAt: identity.expiresAt.toISOString() });
    reply({ type: 'token-accepted', expiresAt: identity.expiresAt.toISOString() });
  };

  /** One renewal at a time; of the tokens that arrive meanwhile only the last is verified. */
  const drain = async (): Promise<void> => {
    busy = true;
    try {
      while (next !== undefined && !stopped) {
        const token = next;
        next = undefined;
        await renew(token);
      }
    } finally {
      busy = false;
    }
  };
  const onControl = (message: ControlMessage): void => {
    if (message.type !== 'token' || stopped) return;
    next = message.token ?? '';
    if (!busy) {
      drain().catch((err: unknown) => log.error('tunnel.token-renewal-failed', { ...logFields, error: err instanceof Error ? err.message : String(err) }));
    }
  };

  channel.on('control', onControl);
  arm();
  return {
    get deadline() {
      return new Date(deadline);
    },
    stop,
  };
}
