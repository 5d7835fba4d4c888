/**
 * A JSON body masked as it streams, by real masking rules (the masking tests' policy): a field
 * whose name a rule matches, whole; what the detectors find in any string, key or number (a card
 * sent as a number, or in escapes a reader decodes); every other byte as it came, at every split.
 */
import { describe, expect, it } from 'vitest';
import { HttpMasking, jsonMasking } from '../../src/http/pipeline/masking.js';
import { ticksWhile } from '../harness/event-loop.js';
import { streamedThroughAsync } from '../harness/streamed.js';
import { JsonStream } from '../../src/http/pipeline/json-stream.js';
import { MaskingRules } from '../../src/policy/masking/rules.js';
import { customersMaskingPolicy } from '../harness/masking-policy.js';
import { streamedThrough } from '../harness/streamed.js';

const rules = new MaskingRules(customersMaskingPolicy('k'));

/** `text` masked as it streams, cut at `cuts`. */
function masked(text: string, cuts: number[] = []): string {
  const m = jsonMasking(rules);
  const s = new JsonStream(m.value, m.key);
  return streamedThrough({ push: (c) => s.pushNow(c), end: () => s.end() }, text, cuts);
}

describe('a JSON body masked by the policy', () => {
  const body =
    '{"customers": [{"name": "Ann", "ssn": "123-45-6789", "note": "card 4111 1111 1111 1111, ssn 512-44-8823", "card": 4111111111111111, "4111111111111111": true, "esc": "\\u0034111111111111111"}], "count": 1}';

  it('masks by field name, and what the detectors find in strings, keys and numbers; keeps the rest', () => {
    const out = JSON.parse(masked(body)) as { customers: Array<Record<string, unknown>>; count: number };
    const [c] = out.customers;
    expect(c!.name).toBe('Ann');
    expect(c!.ssn).toBe('***-**-6789');
    expect(c!.note).toBe('card **** **** **** 1111, ssn [redacted]');
    expect(c!.card).toBe('************1111');
    expect(Object.keys(c!)).toContain('************1111');
    expect(c!.esc).not.toMatch(/4111111111111111|\\u0034111/);
    expect(out.count).toBe(1);
    expect(masked('{"name": "Ann", "list": [1, 2.5, true, null]}')).toBe('{"name": "Ann", "list": [1, 2.5, true, null]}');
  });

  it('is the same at every split', () => {
    const whole = masked(body);
    for (let k = 0; k <= body.length; k++) expect(masked(body, [k]), `split at ${k}`).toBe(whole);
  });
});

describe('a long string in a JSON answer', () => {
  it('is masked in the worker while the loop turns, as written and as a reader of its escapes reads it, the same as on the loop; a key too', async () => {
    const unit = 'card 4111 1111 1111 1111 and \\u0035555555555554444, ssn 512-44-8823; ';
    const long = unit.repeat(2000);
    const body = JSON.stringify({ note: long, [long]: 1, short: unit });
    const stage = new HttpMasking(rules, [], undefined, undefined, 'a session');
    const decided = stage.response({ status: 200, reason: 'OK', fields: [['content-type', 'application/json']], hasBody: true });
    const transform = (decided as { transform: { push(c: Buffer): Buffer | Promise<Buffer>; end(): Buffer } }).transform;
    const cuts = [10, 70_000, 200_000];
    const pending = streamedThroughAsync(transform, body, cuts);
    const { value, ticks } = await ticksWhile(pending);
    expect(ticks).toBeGreaterThan(0);
    expect(value).toBe(masked(body, cuts));
    expect(value).not.toMatch(/4111 1111 1111 1111|512-44-8823|u0035555/);
  });
});

describe("a long event's data in an event stream", () => {
  it('is masked while the loop turns (as JSON, its long strings in the worker; as text, in the worker), the same as on the loop', async () => {
    const unit = 'card 4111 1111 1111 1111 and \\u0035555555555554444, ssn 512-44-8823; ';
    const json = JSON.stringify({ note: unit.repeat(2000), list: Array.from({ length: 3000 }, () => ({ card: '4111 1111 1111 1111' })) });
    const text = `plain ${'card 4111 1111 1111 1111, ssn 512-44-8823; '.repeat(2000)}`;
    const m = jsonMasking(rules);
    const js = new JsonStream(m.value, m.key, 'one');
    const want = `event: a\ndata: ${Buffer.concat([js.pushNow(Buffer.from(json)), js.end()]).toString()}\n\ndata: ${m.value([], text)}\n\ndata: ${m.value([], 'short a@b.example')}\n\n`;
    const body = `event: a\ndata: ${json}\n\ndata: ${text}\n\ndata: short a@b.example\n\n`;
    const stage = new HttpMasking(rules, [], undefined, undefined, 'a session');
    const decided = stage.response({ status: 200, reason: 'OK', fields: [['content-type', 'text/event-stream']], hasBody: true });
    const transform = (decided as { transform: { push(c: Buffer): Buffer | Promise<Buffer>; end(): Buffer } }).transform;
    const { value, ticks } = await ticksWhile(streamedThroughAsync(transform, body, [5, 90_000, 300_000]));
    expect(ticks).toBeGreaterThan(3);
    expect(value).toBe(want);
    expect(value).not.toMatch(/4111 1111 1111 1111|512-44-8823|u0035555|a@b/);
  });
});
