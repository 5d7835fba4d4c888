/**
 * Secrets bound as parameters are recorded as those typed into SQL are (issue 72, class 8): a Bind
 * of a statement whose parameter is a secret by its place, or whose text parameter holds what a
 * detector finds, is recorded with that value as its keyed hash (in text), every other byte as sent.
 */
import { describe, expect, it } from 'vitest';
import { BindSecrets } from '../../src/postgres/pipeline/recording/bind-secrets.js';
import { bindParameterSpans } from '../../src/postgres/wire/frontend-messages.js';

/** A Bind of `statement` with `params` (text, or binary when a Buffer; null is NULL), one format code each, and `resultFormats`. */
function bind(statement: string, params: Array<string | Buffer | null>, resultFormats: number[] = [1]): Buffer {
  const parts: Buffer[] = [Buffer.from(`portal\0${statement}\0`)];
  const formats = Buffer.alloc(2 + 2 * params.length);
  formats.writeUInt16BE(params.length);
  params.forEach((p, i) => formats.writeUInt16BE(Buffer.isBuffer(p) ? 1 : 0, 2 + 2 * i));
  const count = Buffer.alloc(2);
  count.writeUInt16BE(params.length);
  parts.push(formats, count);
  for (const p of params) {
    const len = Buffer.alloc(4);
    len.writeInt32BE(p === null ? -1 : Buffer.byteLength(p));
    parts.push(len, ...(p === null ? [] : [Buffer.isBuffer(p) ? p : Buffer.from(p)]));
  }
  const results = Buffer.alloc(2 + 2 * resultFormats.length);
  results.writeUInt16BE(resultFormats.length);
  resultFormats.forEach((f, i) => results.writeUInt16BE(f, 2 + 2 * i));
  parts.push(results);
  const body = Buffer.concat(parts);
  const head = Buffer.alloc(5);
  head[0] = 0x42;
  head.writeUInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

/** The parameters of Bind `raw` as a recording's reader takes them: text, base64 for binary, null. */
function params(raw: Buffer): Array<string | null> {
  const body = raw.subarray(5);
  expect(raw.readUInt32BE(1)).toBe(raw.length - 1);
  return bindParameterSpans(body)!.map((p) => (p ? body.toString(p.format === 1 ? 'base64' : 'utf8', p.start, p.end) : null));
}

describe('a Bind as it is recorded', () => {
  it("replaces a secret parameter's value (text or binary) by its keyed hash, keeps every other and the result formats", () => {
    const b = new BindSecrets({ key: 'k' });
    b.parsed('s1', 'select pgp_sym_encrypt($1, $2), $3');
    const raw = bind('s1', ['data', 'hunter2', null]);
    const out = b.bind(raw, 's1');
    expect(out.toString('latin1')).not.toContain('hunter2');
    expect(params(out)).toEqual(['data', expect.stringMatching(/^\[redacted:[0-9a-f]{8}\]$/), null]);
    expect(out.subarray(-4)).toEqual(raw.subarray(-4)); // one result format, binary
    const binary = b.bind(bind('s1', ['data', Buffer.from('hunter2'), 'x']), 's1');
    expect(params(binary)[1]).toMatch(/^\[redacted:[0-9a-f]{8}\]$/);
    // The same value, hashed alike; a statement parsed again with no secret, its Binds as sent.
    expect(params(b.bind(bind('s1', ['d', 'hunter2', null]), 's1'))[1]).toBe(params(out)[1]);
    b.parsed('s1', 'select $1, $2, $3');
    const plain = bind('s1', ['data', 'hunter2', null]);
    expect(b.bind(plain, 's1')).toBe(plain);
  });

  it('replaces what the detectors find in a text parameter of any statement, and only that', () => {
    const b = new BindSecrets({ key: 'k', detectors: ['payment-card'] });
    const out = b.bind(bind('', ['card 4111 1111 1111 1111 ok', 'plain']), '');
    expect(params(out)).toEqual([expect.stringMatching(/^card \[redacted:[0-9a-f]{8}\] ok$/), 'plain']);
    const none = bind('', ['plain']);
    expect(b.bind(none, '')).toBe(none);
  });

  it('keeps a Bind it cannot read as it came (the server refuses it; the reader says it is unreadable)', () => {
    const b = new BindSecrets({ key: 'k', detectors: ['payment-card'] });
    const cut = bind('', ['4111 1111 1111 1111']).subarray(0, 20);
    expect(b.bind(cut, '')).toBe(cut);
  });
});
