/**
 * The PostgreSQL message boundary tracker the gateway uses to end a session between two server
 * messages: exact at every split point of a stream, and it stops at the first boundary asked for.
 */
import { describe, expect, it } from 'vitest';
import { MessageBoundary } from '../../src/gateway/message-boundary.js';

function message(type: string, body: Buffer | string): Buffer {
  const payload = typeof body === 'string' ? Buffer.from(body) : body;
  const header = Buffer.alloc(5);
  header.write(type, 0, 'latin1');
  header.writeInt32BE(payload.length + 4, 1);
  return Buffer.concat([header, payload]);
}

const messages = [message('T', 'row description'), message('D', Buffer.alloc(300, 7)), message('n', ''), message('C', 'SELECT 1\0'), message('Z', 'I')];
const stream = Buffer.concat(messages);
const boundaries = new Set<number>([0]);
{
  let at = 0;
  for (const m of messages) boundaries.add((at += m.length));
}

describe('MessageBoundary', () => {
  it('is at a boundary exactly between messages, for every split of the stream in two or three', () => {
    for (let i = 0; i <= stream.length; i++) {
      const b = new MessageBoundary();
      expect(b.advance(stream.subarray(0, i))).toBe(i);
      expect(b.atBoundary, `after ${i} bytes`).toBe(boundaries.has(i));
      for (const j of [i, Math.min(stream.length, i + 1), Math.min(stream.length, i + 4), stream.length]) {
        const c = new MessageBoundary();
        c.advance(stream.subarray(0, i));
        c.advance(stream.subarray(i, j));
        expect(c.atBoundary, `after ${i}+${j - i} bytes`).toBe(boundaries.has(j));
      }
    }
  });

  it('stops at the first boundary at or after the start of a chunk', () => {
    const sorted = [...boundaries].sort((a, b) => a - b);
    for (let i = 0; i <= stream.length; i++) {
      const b = new MessageBoundary();
      b.advance(stream.subarray(0, i));
      const next = sorted.find((x) => x >= i)!;
      const rest = stream.subarray(i);
      const at = b.advance(rest, true);
      if (rest.length === 0) expect(at, `at ${i}`).toBe(boundaries.has(i) ? 0 : -1);
      else expect(at, `from ${i}`).toBe(next - i);
      expect(b.atBoundary).toBe(true);
    }
  });

  it('returns -1 when a chunk ends inside a message, then finds the boundary in the next chunk', () => {
    const b = new MessageBoundary();
    b.advance(stream.subarray(0, 3));
    expect(b.advance(stream.subarray(3, 10), true)).toBe(-1);
    expect(b.atBoundary).toBe(false);
    expect(b.advance(stream.subarray(10), true)).toBe(messages[0]!.length - 10);
  });

  it('gives up on a length below 4: no boundary any more', () => {
    const b = new MessageBoundary();
    const bad = Buffer.from([0x44, 0, 0, 0, 2, 1, 2, 3]);
    expect(b.advance(bad)).toBe(bad.length);
    expect(b.broken).toBe(true);
    expect(b.atBoundary).toBe(false);
    expect(b.advance(stream, true)).toBe(-1);
  });
});
