/**
 * A session's channel whose client is in this process (a runbook's run): two ends joined in
 * memory, each one's writes the other's reads (after the write returns, as a socket's), with
 * back-pressure, and the CONTROL messages the engine sends heard on the client's end as `control` events.
 */
import { Duplex } from 'node:stream';
import type { ControlMessage } from '../tunnel/frames.js';
import type { SessionChannel } from './engine.js';

/** One end: what it is written goes to its peer's readable side. */
class End extends Duplex {
  peer!: End;
  /** The write waiting for the peer to read (its callback), when the peer's buffer is full. */
  #waiting: (() => void) | undefined;
  bytesSent = 0;

  override _read(): void {
    const go = this.peer.#waiting;
    this.peer.#waiting = undefined;
    go?.();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    this.bytesSent += chunk.length;
    // As a socket does: the peer reads it later, never inside this write (a writer such as ssh2 is not
    // re-entrant), and a copy (a writer may reuse its buffer once the write returns).
    const copy = Buffer.from(chunk);
    queueMicrotask(() => {
      if (this.peer.destroyed) done();
      else if (this.peer.push(copy)) done();
      else this.#waiting = done;
    });
  }

  // What a client library asks of a socket (node:http's agent keeps one alive with these): nothing to do in memory.
  setKeepAlive(): this {
    return this;
  }

  setNoDelay(): this {
    return this;
  }

  setTimeout(): this {
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  override _final(done: (err?: Error | null) => void): void {
    queueMicrotask(() => {
      if (!this.peer.destroyed) this.peer.push(null);
      done();
    });
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    const go = this.#waiting;
    this.#waiting = undefined;
    go?.();
    // The other end sees its peer gone as an end, as a socket sees a close.
    if (!this.peer.destroyed) {
      this.peer.push(null);
      this.peer.destroy();
    }
    done(err);
  }
}

/** The gateway's end, which an engine serves. */
class GatewayEnd extends End implements SessionChannel {
  sendControl(message: ControlMessage): boolean {
    if (this.peer.destroyed) return false;
    // Heard at once: it may come before bytes written just before it (they reach the peer a microtask later).
    this.peer.emit('control', message);
    return true;
  }
}

/** Two joined ends: `gateway`, a session's channel, and `client`, which emits `control` for each CONTROL message. */
export function channelPair(): { gateway: SessionChannel; client: Duplex } {
  const gateway = new GatewayEnd();
  const client = new End();
  gateway.peer = client;
  client.peer = gateway;
  return { gateway, client };
}
