/**
 * How every lane's relay ends (src/session/relay-end.ts): the first reason given is kept, a
 * connection ended by the gateway is cut five seconds later unless its peer closed it (crossed with
 * fake timers), and the engine is told once, with the bytes counted, after which an abort is no news.
 */
import { Duplex } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { END_GRACE_MS, RelayEnd } from '../../src/session/relay-end.js';

/** A connection whose peer never closes its side: what was written to it, and whether it was cut. */
function stubborn(): Duplex & { written: Buffer[] } {
  const written: Buffer[] = [];
  const d = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, done) {
      written.push(chunk);
      done();
    },
  });
  return Object.assign(d, { written });
}

afterEach(() => vi.useRealTimers());

describe('a relay ends', () => {
  it('for the first reason given; begins once; tells the engine once, with the bytes counted or given', async () => {
    const aborts = new AbortController();
    const end = new RelayEnd({ signal: aborts.signal }, () => undefined);
    end.bytes.fromClient += 10;
    end.note('client-disconnected', 'first');
    expect(end.ending).toBe(false);
    expect(end.begin('protocol-violation', 'second')).toBe(true);
    expect(end.begin('upstream-closed')).toBe(false);
    end.finish();
    end.finish({ fromClient: 1, toClient: 1 });
    expect(await end.outcome).toEqual({ reason: 'client-disconnected', bytesFromClient: 10, bytesToClient: 0, detail: 'first' });
    const other = new RelayEnd({ signal: aborts.signal }, () => undefined);
    other.finish({ fromClient: 3, toClient: 4 });
    expect(await other.outcome).toEqual({ reason: 'client-disconnected', bytesFromClient: 3, bytesToClient: 4 });
  });

  it('hears the gateway end the session until it has finished, not after', () => {
    const aborts = [new AbortController(), new AbortController()];
    const heard = vi.fn();
    new RelayEnd({ signal: aborts[0]!.signal }, heard);
    aborts[0]!.abort();
    expect(heard).toHaveBeenCalledTimes(1);
    const late = vi.fn();
    new RelayEnd({ signal: aborts[1]!.signal }, late).finish();
    aborts[1]!.abort();
    expect(late).not.toHaveBeenCalled();
  });

  it('ends a connection with its last bytes, and cuts it when its peer has not closed it in END_GRACE_MS; one that closed is not cut', () => {
    vi.useFakeTimers();
    const end = new RelayEnd({ signal: new AbortController().signal }, () => undefined);
    const peer = stubborn();
    end.linger(peer, Buffer.from('bye'));
    expect(Buffer.concat(peer.written).toString()).toBe('bye');
    expect(peer.writableEnded).toBe(true);
    vi.advanceTimersByTime(END_GRACE_MS - 1);
    expect(peer.destroyed).toBe(false);
    vi.advanceTimersByTime(1);
    expect(peer.destroyed).toBe(true);
    const polite = stubborn();
    const destroy = vi.spyOn(polite, 'destroy');
    end.linger(polite);
    polite.emit('close');
    vi.advanceTimersByTime(END_GRACE_MS);
    expect(destroy).not.toHaveBeenCalled();
  });
});
