/**
 * Server-sent events rewritten as they stream: each event's data through the transform, every
 * other line as it came, at every split of the bytes and with every line ending the format allows
 * (a transform that waits too: the reading goes on where it stopped); an event too large to hold is
 * refused rather than passed.
 */
import { describe, expect, it } from 'vitest';
import { MAX_EVENT_BYTES, SseStream } from '../../src/http/pipeline/sse-stream.js';
import { streamedThrough, streamedThroughAsync } from '../harness/streamed.js';

/** Masks an email's local part in an event's data. */
const mask = (data: string): string => data.replace(/[a-z0-9.]+@/g, '***@');

const now = (s: SseStream) => ({ push: (c: Buffer) => s.pushNow(c), end: () => s.end() });
const streamed = (text: string, cuts: number[] = []): string => streamedThrough(now(new SseStream(mask)), text, cuts);

describe('SseStream', () => {
  const events = [': a comment', 'event: customer', 'id: 7', 'data: {"email":"ann@shop.example",', 'data:  "n": 1}', '', 'retry: 1000', 'data: bob@shop.example é', 'id: 8', '', ''];

  it.each(['\n', '\r\n', '\r'])('masks each event’s data and keeps every other line, lines ending in %j, at every split', (eol) => {
    const text = events.join(eol);
    // A data line's value is sent after `data: `; the lines around it as they came (the event's id after its data: sent before it).
    const want = [': a comment', 'event: customer', 'id: 7', 'data: {"email":"***@shop.example",', 'data:  "n": 1}', '', 'retry: 1000', 'id: 8', 'data: ***@shop.example é', '', ''].join(eol);
    expect(streamed(text, [])).toBe(want);
    const bytes = Buffer.byteLength(text);
    for (let k = 0; k <= bytes; k++) for (const j of [k, Math.min(bytes, k + 1), Math.min(bytes, k + 9)]) expect(streamed(text, [k, j]), `split at ${k}, ${j}`).toBe(want);
  });

  it('reads on where a transform that waits stopped: the same bytes at every split, each event transformed once, in order', async () => {
    const text = [...events, 'data: c@d.example', 'data: e@f.example', '', 'data: g@h.example', '', ''].join('\r\n');
    const want = streamed(text);
    const bytes = Buffer.byteLength(text);
    for (let k = 0; k <= bytes; k += 3) {
      const seen: string[] = [];
      // Every other event waits a turn of the loop; the rest are transformed at once.
      const waits = (data: string): string | Promise<string> => {
        seen.push(data);
        return seen.length % 2 === 0 ? new Promise((resolve) => setImmediate(() => resolve(mask(data)))) : mask(data);
      };
      expect(await streamedThroughAsync(new SseStream(waits), text, [k, Math.min(bytes, k + 5)]), `split at ${k}`).toBe(want);
      expect(seen).toEqual(['{"email":"ann@shop.example",\n "n": 1}', 'bob@shop.example é', 'c@d.example\ne@f.example', 'g@h.example']);
    }
  });

  it('drops an event the stream ends inside, as a browser does', () => {
    expect(streamed('data: a@b.example\n\ndata: c@d.example\n', [])).toBe('data: ***@b.example\n\n');
  });

  it('refuses an event too large to hold', () => {
    const s = new SseStream(mask);
    const line = Buffer.from(`data: ${'x'.repeat(1000)}\n`);
    expect(() => {
      for (let sent = 0; sent <= 2 * MAX_EVENT_BYTES; sent += line.length) s.push(line);
    }).toThrow(/larger than 1024 KiB/);
    // Whole in one chunk (as a decoded one can come): refused too.
    expect(() => new SseStream(mask).pushNow(Buffer.from(`data: ${'x'.repeat(MAX_EVENT_BYTES)}\n\n`))).toThrow(/larger than 1024 KiB/);
    expect(() => new SseStream(mask).pushNow(Buffer.from(`data: ${'x'.repeat(MAX_EVENT_BYTES / 2)}\ndata: ${'x'.repeat(MAX_EVENT_BYTES / 2)}\n\n`))).toThrow(/larger than 1024 KiB/);
  });
});
