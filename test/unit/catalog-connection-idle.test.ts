/**
 * When the gateway's own catalog connection (src/postgres/pipeline/masking/catalog-connection.ts)
 * ends, on a clock of the test's own: unused for `idleMs` while sessions hold it, `lingerMs` after
 * the last session let go, never while a session holds it and no `idleMs` is set; and a lookup
 * after it ended opens another.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CatalogConnection } from '../../src/postgres/pipeline/masking/catalog-connection.js';
import type { RoundTripConnection } from '../../src/postgres/wire/client.js';

/** Server connections as the catalog opens them: each records whether it was ended (with a Terminate). */
function server() {
  const sockets: Array<{ ended: Buffer | undefined }> = [];
  const open = async (): Promise<RoundTripConnection> => {
    const s = Object.assign(new EventEmitter(), { destroyed: false, writableEnded: false, ended: undefined as Buffer | undefined });
    Object.assign(s, {
      end: (b: Buffer) => {
        s.ended = b;
        s.writableEnded = true;
      },
    });
    sockets.push(s);
    return { socket: s as unknown as Socket, leftover: Buffer.alloc(0) };
  };
  return { open, sockets };
}

const TERMINATE = Buffer.from([0x58, 0, 0, 0, 4]);

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('CatalogConnection idle close', () => {
  it('ends a connection unused for idleMs while a session holds it, not before, with a Terminate', async () => {
    const { open, sockets } = server();
    const catalog = new CatalogConnection(open, { idleMs: 30_000 });
    catalog.acquire(true);
    await vi.advanceTimersByTimeAsync(0);
    expect(catalog.open).toBe(true);
    expect(sockets).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(29_999);
    expect(catalog.open).toBe(true);
    expect(sockets[0]!.ended).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(catalog.open).toBe(false);
    expect(sockets[0]!.ended).toEqual(TERMINATE);
    catalog.close();
  });

  it('ends it lingerMs after the last session let go (at most 1 s unless told), not while another holds it', async () => {
    const { open, sockets } = server();
    const catalog = new CatalogConnection(open, { idleMs: 30_000 });
    catalog.acquire(true);
    catalog.acquire(false);
    await vi.advanceTimersByTimeAsync(0);
    catalog.release();
    // One session still holds it: the idle deadline (30 s) holds, not the linger.
    await vi.advanceTimersByTimeAsync(5_000);
    expect(catalog.open).toBe(true);
    catalog.release();
    await vi.advanceTimersByTimeAsync(999);
    expect(catalog.open).toBe(true);
    await vi.advanceTimersByTimeAsync(1);
    expect(catalog.open).toBe(false);
    expect(sockets[0]!.ended).toEqual(TERMINATE);

    const told = new CatalogConnection(server().open, { idleMs: 30_000, lingerMs: 200 });
    told.acquire(true);
    await vi.advanceTimersByTimeAsync(0);
    told.release();
    await vi.advanceTimersByTimeAsync(199);
    expect(told.open).toBe(true);
    await vi.advanceTimersByTimeAsync(1);
    expect(told.open).toBe(false);
    catalog.close();
    told.close();
  });

  it('keeps it while a session holds it and no idleMs is set; a warm acquire after the end opens another', async () => {
    const { open, sockets } = server();
    const catalog = new CatalogConnection(open);
    catalog.acquire(true);
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(catalog.open).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
    catalog.release();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(catalog.open).toBe(false);
    catalog.acquire(true);
    await vi.advanceTimersByTimeAsync(0);
    expect(catalog.open).toBe(true);
    expect(sockets).toHaveLength(2);
    catalog.close();
    await vi.advanceTimersByTimeAsync(0);
    expect(catalog.open).toBe(false);
    expect(sockets[1]!.ended).toEqual(TERMINATE);
  });

  it('ends at once, and for good, when closed', async () => {
    const { open, sockets } = server();
    const catalog = new CatalogConnection(open, { idleMs: 30_000 });
    catalog.acquire(true);
    await vi.advanceTimersByTimeAsync(0);
    catalog.close();
    await vi.advanceTimersByTimeAsync(0);
    expect(sockets[0]!.ended).toEqual(TERMINATE);
    expect(vi.getTimerCount()).toBe(0);
    catalog.acquire(true);
    expect(sockets).toHaveLength(1);
  });
});
