/**
 * The HTTP lane's record of a request (src/http/pipeline/recorder.ts): a body past the cap is cut
 * there, and bound whole by a keyed hash, so what a body padded past the cut said is not out of
 * the record's reach.
 */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HttpRecorder, RECORDED_BODY_BYTES } from '../../src/http/pipeline/recorder.js';
import type { RecordedRequest } from '../../src/http/pipeline/records.js';
import type { HttpRequest } from '../../src/http/pipeline/stages.js';
import type { RecordingStream } from '../../src/recording/thread.js';
import { readTarget, type RequestTarget } from '../../src/http/wire/target.js';

/** What `body` is recorded as, sent in a POST, under `key`. */
function recorded(body: Buffer, key?: Buffer): RecordedRequest {
  const records: Buffer[] = [];
  const stream = { record: (_k: number, _at: number, bytes: Buffer, from: number, to: number) => void records.push(Buffer.from(bytes.subarray(from, to))) } as unknown as RecordingStream;
  const fields: Array<[string, string]> = [['content-type', 'application/json']];
  const req = { head: { method: 'POST', fields }, method: 'POST', target: readTarget('/orders') as RequestTarget, fields, body } as unknown as HttpRequest;
  new HttpRecorder(stream, { bodies: 'masked', ...(key ? { key } : {}) }).request(req);
  return JSON.parse(records[0]!.toString('utf8')) as RecordedRequest;
}

describe('a recorded request body', () => {
  const key = Buffer.alloc(32, 7);
  const padded = (tail: string): Buffer => Buffer.from(`{"pad":"${'x'.repeat(RECORDED_BODY_BYTES)}","amount":"${tail}"}`);

  it('past the cap is cut there and bound whole by its keyed hash, which tells apart what differs only past the cut', () => {
    const a = recorded(padded('10'), key);
    const b = recorded(padded('99999'), key);
    expect(a.body!.length).toBeLessThanOrEqual(RECORDED_BODY_BYTES);
    expect(a.body).not.toContain('amount');
    expect(a.bodyHmac).toBe(createHmac('sha256', key).update(padded('10')).digest('hex'));
    expect(b.bodyHmac).not.toBe(a.bodyHmac);
  });

  it('within the cap is whole, and has no hash', () => {
    const r = recorded(Buffer.from('{"amount":10}'), key);
    expect(r.body).toBe('{"amount":10}');
    expect(r.bodyHmac).toBeUndefined();
  });
});
