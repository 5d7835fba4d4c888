/**
 * Keeps the token of every open tunnel fresh: when the token provider renews the token, each open
 * tunnel gets it in a `{type:'token'}` CONTROL message, so sessions outlive the token they began
 * with; the gateway answers `token-accepted` or `token-rejected`. Failures are said once.
 *
 * @see docs/internals.md (§3: refresh without dropping the session)
 */
import type { TokenProvider } from './token-provider.js';
import type { Logger } from '../log.js';
import type { TunnelStream } from '../tunnel/stream.js';
import type { ControlMessage } from '../tunnel/frames.js';

/** Sends renewed tokens to the tunnels it tracks. */
export class TunnelTokenRenewal {
  readonly #tunnels = new Map<TunnelStream, string>();
  readonly #log: Logger;
  readonly #say: (line: string) => void;
  readonly #unsubscribe: Array<() => void>;
  #latest: string | undefined;
  #rejectionSaid = false;

  /** Starts listening to `provider`'s renewals; `say` tells the user (once per failure kind). */
  constructor(provider: TokenProvider, log: Logger, say: (line: string) => void) {
    this.#log = log;
    this.#say = say;
    this.#unsubscribe = [
      provider.onRenewed((grant) => {
        this.#latest = grant.token;
        this.#rejectionSaid = false;
        for (const channel of this.#tunnels.keys()) this.#send(channel, grant.token);
        log.debug('token.renewed', { tunnels: this.#tunnels.size, expiresAt: grant.expiresAt?.toISOString() });
      }),
      provider.onRenewFailed((err) => {
        say(`could not renew the token: ${err.message}; open sessions end when it expires${err.hint ? ` (${err.hint})` : ''}`);
      }),
    ];
  }

  /** Tracks a tunnel opened with `token`; sends it a newer token if one arrived meanwhile. */
  track(channel: TunnelStream, token: string): void {
    this.#tunnels.set(channel, token);
    channel.on('close', () => this.#tunnels.delete(channel));
    channel.on('control', (msg: ControlMessage) => {
      if (msg.type === 'token-accepted') this.#log.debug('token.accepted', { expiresAt: msg.expiresAt });
      else if (msg.type === 'token-rejected' && !this.#rejectionSaid) {
        this.#rejectionSaid = true;
        const reason = typeof msg.reason === 'string' ? msg.reason : 'no reason given';
        this.#say(`the gateway did not accept the renewed token (${reason}); open sessions end when the old one expires (run \`hoop login\`, then connect again)`);
      }
    });
    if (this.#latest !== undefined && this.#latest !== token) this.#send(channel, this.#latest);
  }

  /** Stops listening to the provider. */
  close(): void {
    for (const stop of this.#unsubscribe) stop();
  }

  #send(channel: TunnelStream, token: string): void {
    if (this.#tunnels.get(channel) === token) return;
    this.#tunnels.set(channel, token);
    channel.sendControl({ type: 'token', token });
  }
}
