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
  it("replaces a secret parameter's value (text or binary) by its keyed hash (every one of a statement naming a secret), keeps the result formats", () => {
    const b = new BindSecrets({ key: 'k' });
    b.parsed('s1', "select $1::text, set_config('app.api_token', $2, false), $3");
    const raw = bind('s1', ['data', 'hunter2', null]);
    const out = b.bind(raw, 's1');
    expect(out.toString('latin1')).not.toContain('hunter2');
    expect(params(out)).toEqual([expect.stringMatching(/^\[redacted:[0-9a-f]{8}\]$/), expect.stringMatching(/^\[redacted:[0-9a-f]{8}\]$/), null]);
    expect(out.subarray(-4)).toEqual(raw.subarray(-4)); // one result format, binary
    const binary = b.bind(bind('s1', ['data', Buffer.from('hunter2'), 'x']), 's1');
    expect(params(binary)[1]).toMatch(/^\[redacted:[0-9a-f]{8}\]$/);
    // The same value, hashed alike. The unnamed statement parsed again with no secret: its Binds as sent.
    expect(params(b.bind(bind('s1', ['d', 'hunter2', null]), 's1'))[1]).toBe(params(out)[1]);
    b.parsed('', 'select $1, $2');
    const plain = bind('', ['data', 'hunter2']);
    expect(b.bind(plain, '')).toBe(plain);
    // A named one parsed again keeps its secrets (the server refuses a name in use, and keeps the first).
    b.parsed('s1', 'select $1, $2, $3');
    expect(params(b.bind(bind('s1', ['d', 'hunter2', null]), 's1'))[1]).toMatch(/^\[redacted:/);
  });

  it('replaces what the detectors find in a text parameter of any statement, and only that', () => {
    const b = new BindSecrets({ key: 'k', detectors: ['payment-card'] });
    const out = b.bind(bind('', ['card 4111 1111 1111 1111 ok', 'plain']), '');
    expect(params(out)).toEqual([expect.stringMatching(/^card \[redacted:[0-9a-f]{8}\] ok$/), 'plain']);
    const none = bind('', ['plain']);
    expect(b.bind(none, '')).toBe(none);
  });

  it('takes every value as a secret where it cannot tell: a Bind it cannot read (its names alone), a statement it did not see prepared or could not read (too long), one SQL PREPAREd', () => {
    const b = new BindSecrets({ key: 'k' });
    b.parsed('', "select $1::text, set_config('app.api_token', $2, false)");
    const whole = bind('', ['d', 'hunter2']);
    const cut = Buffer.concat([whole.subarray(0, 5), whole.subarray(5, 20)]);
    cut.writeUInt32BE(cut.length - 1, 1);
    const kept = b.bind(cut, '');
    expect(kept.toString('latin1')).not.toContain('hunter');
    expect(kept.subarray(5, 13).toString('latin1')).toBe('portal\0\0');
    expect(params(b.bind(bind('elsewhere', ['a', 'b']), 'elsewhere'))).toEqual([expect.stringMatching(/^\[redacted:/), expect.stringMatching(/^\[redacted:/)]);
    b.parsed('long', undefined);
    expect(params(b.bind(bind('long', ['a']), 'long'))).toEqual([expect.stringMatching(/^\[redacted:/)]);
    b.query('PREPARE "P1" (text, text) AS select $1::text, set_config(\'app.api_token\', $2, false)');
    expect(params(b.bind(bind('P1', ['data', 'hunter2']), 'P1'))).toEqual([expect.stringMatching(/^\[redacted:/), expect.stringMatching(/^\[redacted:/)]);
  });

  it('reads a binary text parameter and a binary int8 for the detectors, as a driver that binds everything binary sends them', () => {
    const b = new BindSecrets({ key: 'k', detectors: ['payment-card'] });
    const int8 = Buffer.alloc(8);
    int8.writeBigInt64BE(4111111111111111n);
    const out = params(b.bind(bind('', [Buffer.from('4111 1111 1111 1111'), int8, Buffer.from('plain')]), ''));
    expect(out.slice(0, 2)).toEqual([expect.stringMatching(/^\[redacted:/), expect.stringMatching(/^\[redacted:/)]);
    expect(out[2]).toBe(Buffer.from('plain').toString('base64'));
    // A structured one too (the fifteenth attack): an int8range's bounds, a numeric (Npgsql binds decimals so).
    const range = Buffer.from('0200000008000e9b08a568f1c700000008000e9b08a568f1c8', 'hex');
    const numeric = Buffer.from([0, 4, 0, 3, 0, 0, 0, 0, 0x10, 0x0f, 0x04, 0x57, 0x04, 0x57, 0x04, 0x57]);
    expect(params(b.bind(bind('', [range, numeric]), ''))).toEqual([expect.stringMatching(/^\[redacted:/), expect.stringMatching(/^\[redacted:/)]);
  });
});
