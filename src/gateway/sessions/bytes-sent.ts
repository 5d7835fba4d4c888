/**
 * Bytes the gateway sent each session's client, told as they go: every {@link BYTES_TICK_MS} a
 * session that was sent bytes since it was last told emits `session.bytes` (how many, and the
 * session's total). A session told of once has the rest told at its end, before `session.end`,
 * which then says `bytesTold`; a shorter one is told by its `session.end` alone (no event more per
 * session on the audit stream). So a `bytes-sent` alert counts a long session's pull while it
 * runs, not when it ends, and counts every byte: results, command output, sftp reads and
 * forwarded ports alike (the tunnel's own count, any protocol). One timer for every session.
 */
import type { SessionChannel } from '../../session/engine.js';
import type { SessionWho } from './live-session.js';
import type { GatewayEventFields } from '../audit/events.js';

/** How often the bytes sent to each session's client are told. */
export const BYTES_TICK_MS = 10_000;

interface Watched {
  who: SessionWho;
  channel: SessionChannel;
  told: number;
}

export class BytesSentTally {
  readonly #watched = new Set<Watched>();
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly emit: (event: 'session.bytes', fields: GatewayEventFields['session.bytes']) => void,
    private readonly tickMs = BYTES_TICK_MS,
  ) {}

  /**
   * Follows what `channel` sends the client of session `who`. The function returned stops (call it
   * before `session.end`): it tells the rest of a session told of before, and answers the bytes
   * told in all (undefined for a session never told of: its `session.end` tells them).
   */
  watch(who: SessionWho, channel: SessionChannel): () => number | undefined {
    const w: Watched = { who, channel, told: 0 };
    this.#watched.add(w);
    this.#timer ??= setInterval(() => {
      for (const each of this.#watched) this.#tell(each);
    }, this.tickMs).unref();
    return () => {
      if (!this.#watched.delete(w)) return undefined;
      if (this.#watched.size === 0) {
        clearInterval(this.#timer);
        this.#timer = undefined;
      }
      if (w.told === 0) return undefined;
      this.#tell(w);
      return w.told;
    };
  }

  #tell(w: Watched): void {
    const total = w.channel.bytesSent;
    const bytes = total - w.told;
    if (bytes <= 0) return;
    w.told = total;
    this.emit('session.bytes', { ...w.who, bytesToClient: bytes, total });
  }
}
