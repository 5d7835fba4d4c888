/**
 * Server-sent events rewritten as they stream: each event's data through the transform, every
 * other line as it came, at every split of the bytes and with every line ending the format allows;
 * an event too large to hold is refused rather than passed.
 */
import { describe, expect, it } from 'vitest';
import { MAX_EVENT_BYTES, SseStream } from '../../src/http/pipeline/sse-stream.js';
import { streamedThrough } from '../harness/streamed.js';

/** Masks an email's local part in an event's data. */
const mask = (data: string): string => data.replace(/[a-z0-9.]+@/g, '***@');

const streamed = (text: string, cuts: number[] = []): string => streamedThrough(new SseStream(mask), text, cuts);

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

  it('drops an event the stream ends inside, as a browser does', () => {
    expect(streamed('data: a@b.example\n\ndata: c@d.example\n', [])).toBe('data: ***@b.example\n\n');
  });

  it('refuses an event too large to hold', () => {
    const s = new SseStream(mask);
    const line = Buffer.from(`data: ${'x'.repeat(1000)}\n`);
    expect(() => {
      for (let sent = 0; sent <= 2 * MAX_EVENT_BYTES; sent += line.length) s.push(line);
    }).toThrow(/larger than 1024 KiB/);
  });
});
