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
 * @see docs/internals.md (§3: a token that expires inside a long tunnel is refreshed)
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1 (invalid_token)
 */
import { type Clock, realClock } from '../../clock.js';
import type { LogFields, Logger } from '../../log.js';
import type { ControlMessage } from '../../tunnel/frames.js';
import { SessionEnd, type TunnelSession } from '../../session/engine.js';
import type { Identity } from '../../identity.js';
import { TokenRejectedError, type TokenVerifier } from '../identity/verify-token.js';

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
  /** The gateway's one clock (tests hold it); the real one by default. */
  clock?: Clock;
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
  return new TokenWatch(options);
}

/** A session's token watched: its deadline's timer and its renewals, one at a time. */
class TokenWatch implements SessionTokenWatch {
  readonly #o: SessionTokenOptions;
  readonly #clock: Clock;
  #deadline: number;
  #stopTimer: (() => void) | undefined;
  #stopped = false;
  #busy = false;
  /** The last token that arrived while a renewal was verified, waiting its turn. */
  #next: unknown;

  constructor(o: SessionTokenOptions) {
    this.#o = o;
    this.#clock = o.clock ?? realClock;
    this.#deadline = o.session.identity.expiresAt.getTime() + o.toleranceSeconds(o.session.identity) * 1000;
    o.session.channel.on('control', this.#onControl);
    this.#arm();
  }

  get deadline(): Date {
    return new Date(this.#deadline);
  }

  /** Stops watching (a bound function: callers keep it apart from the watch). */
  readonly stop = (): void => {
    this.#stopped = true;
    this.#stopTimer?.();
    this.#stopTimer = undefined;
    this.#o.session.channel.off('control', this.#onControl);
  };

  #end(reason: SessionEnd): void {
    if (this.#stopped) return;
    this.stop();
    this.#o.end(reason);
  }

  /** Ends the session at its deadline: now if it passed, else by a timer (which looks again when it fires: a long wait may fire early). */
  readonly #arm = (): void => {
    this.#stopTimer?.();
    const delay = this.#deadline - this.#clock.now();
    if (delay <= 0) {
      this.#stopTimer = undefined;
      const { identity } = this.#o.session;
      this.#o.log.info('tunnel.token-expired', { ...this.#o.logFields, expiredAt: identity.expiresAt.toISOString() });
      this.#end(tokenExpiredEnd(identity));
      return;
    }
    this.#stopTimer = this.#clock.timer(delay, this.#arm);
  };

  #reply(message: ControlMessage): void {
    if (!this.#stopped) this.#o.session.channel.sendControl(message);
  }

  /** One renewal at a time; of the tokens that arrive meanwhile only the last is verified. */
  readonly #onControl = (message: ControlMessage): void => {
    if (message.type !== 'token' || this.#stopped) return;
    this.#next = message.token ?? '';
    if (this.#busy) return;
    this.#drain().catch((err: unknown) => this.#o.log.error('tunnel.token-renewal-failed', { ...this.#o.logFields, error: err instanceof Error ? err.message : String(err) }));
  };

  async #drain(): Promise<void> {
    this.#busy = true;
    try {
      while (this.#next !== undefined && !this.#stopped) {
        const token = this.#next;
        this.#next = undefined;
        const identity = await this.#verified(token);
        if (identity && !this.#stopped) this.#renew(identity);
      }
    } finally {
      this.#busy = false;
    }
  }

  /** Who `token` says is calling, when it may renew this session; else undefined, the client told why. */
  async #verified(token: unknown): Promise<Identity | undefined> {
    const { session, verifier, log, logFields } = this.#o;
    if (typeof token !== 'string' || token === '') {
      this.#reply({ type: 'token-rejected', reason: 'malformed', message: 'the token message carries no token' });
      return undefined;
    }
    // A run's session lives as long as its run: nothing renews it, nor turns it into the person's own.
    if (session.identity.run) {
      this.#reply({ type: 'token-rejected', reason: 'run-credential', message: `the session belongs to run ${session.identity.run.id}, whose credential is never renewed` });
      return undefined;
    }
    try {
      return await verifier.verify(token);
    } catch (err) {
      if (this.#stopped) return undefined;
      const e = err instanceof TokenRejectedError ? err : new TokenRejectedError('malformed', 'the token could not be verified', { cause: err });
      log.warn('tunnel.token-rejected', { ...logFields, reason: e.reason, message: e.message });
      this.#reply({ type: 'token-rejected', reason: e.reason, message: e.message, ...(e.hint ? { hint: e.hint } : {}) });
      return undefined;
    }
  }

  /** A verified token renews the session: its deadline moves; another identity, or one that may no longer use the connection, ends it. */
  #renew(identity: Identity): void {
    const { session, log, logFields } = this.#o;
    const current = session.identity;
    if (identity.issuer !== current.issuer || identity.subject !== current.subject) {
      log.warn('tunnel.identity-changed', { ...logFields, newSubject: identity.subject, newIssuer: identity.issuer });
      return this.#end(
        new SessionEnd(
          'identity-changed',
          `hoop: the renewed token is for ${JSON.stringify(identity.subject)}, not ${JSON.stringify(current.subject)}; the session is closed`,
          'connect again to open a session as the new identity',
        ),
      );
    }
    if (!this.#o.mayUse(identity)) {
      log.warn('tunnel.access-revoked', { ...logFields, groups: identity.groups });
      return this.#end(
        new SessionEnd(
          'access-revoked',
          `hoop: your renewed token no longer grants access to "${session.connection.name}"; the session is closed`,
          'ask an administrator to grant you access in the gateway configuration',
        ),
      );
    }
    session.identity = identity;
    this.#deadline = identity.expiresAt.getTime() + this.#o.toleranceSeconds(identity) * 1000;
    this.#arm();
    if (this.#stopped) return;
    log.info('tunnel.token-renewed', { ...logFields, expiresAt: identity.expiresAt.toISOString() });
    this.#reply({ type: 'token-accepted', expiresAt: identity.expiresAt.toISOString() });
  }
}
