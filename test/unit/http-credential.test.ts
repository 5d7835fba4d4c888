/**
 * An HTTP connection's credential: injected in place of whatever the caller sent, and masked in
 * every spelling an echo could take, wherever it falls across a response's chunks, without
 * changing a body's length. Random splits of generated bodies are checked against masking the
 * whole at once.
 */
import { describe, expect, it } from 'vitest';
import { CredentialEcho, credentialSpellings, type HttpCredential, injectCredential, maskText, SecretMask } from '../../src/http/pipeline/credential.js';
import { readTarget, type RequestTarget } from '../../src/http/wire/target.js';
import { Random } from '../harness/random.js';

const target = (t: string): RequestTarget => readTarget(t) as RequestTarget;
const caller: Array<[string, string]> = [
  ['host', 'api'],
  ['authorization', 'Bearer callers-own'],
  ['proxy-authorization', 'Basic eDp5'],
  ['x-api-key', 'callers-key'],
  ['accept', '*/*'],
];

describe('injectCredential', () => {
  it.each<[HttpCredential, Array<[string, string]>]>([
    [{ kind: 'bearer', token: 'tok-1234567890' }, [['authorization', 'Bearer tok-1234567890']]],
    [{ kind: 'basic', user: 'shop', password: 'pa:ss w0rd!' }, [['authorization', `Basic ${Buffer.from('shop:pa:ss w0rd!').toString('base64')}`]]],
    [{ kind: 'header', name: 'X-API-Key', value: 'key-1234567890' }, [['x-api-key', 'key-1234567890']]],
  ])('drops what the caller sent and adds %j', (credential, added) => {
    const { fields, target: t } = injectCredential(credential, caller, target('/orders?x=1'));
    expect(fields).toEqual([['host', 'api'], ...(credential.kind === 'header' ? [] : [['x-api-key', 'callers-key'] as [string, string]]), ['accept', '*/*'], ...added]);
    expect(t.canonical).toBe('/orders?x=1');
  });

  it('a query credential replaces the caller’s parameter of that name, in any case', () => {
    const { fields, target: t } = injectCredential({ kind: 'query', name: 'api_key', value: 'k/ey 1234567' }, caller, target('/orders?API_KEY=mine&x=1&api_key=again'));
    expect(t.canonical).toBe('/orders?x=1&api_key=k/ey%201234567');
    expect(t.query).toEqual([
      ['x', '1'],
      ['api_key', 'k/ey 1234567'],
    ]);
    expect(fields.map(([n]) => n)).toEqual(['host', 'x-api-key', 'accept']);
  });
});

describe('credentialSpellings', () => {
  it('names each spelling an echo could take', () => {
    const spelled = credentialSpellings({ kind: 'basic', user: 'shop', password: 'p"ss/w0rd é' }).map((b) => b.toString('utf8'));
    expect(spelled).toEqual(
      expect.arrayContaining([
        'p"ss/w0rd é',
        'p\\"ss/w0rd é',
        'p%22ss%2Fw0rd%20%C3%A9',
        'p%22ss%2fw0rd%20%c3%a9',
        'shop:p"ss/w0rd é',
        Buffer.from('shop:p"ss/w0rd é').toString('base64'),
        Buffer.from('p"ss/w0rd é').toString('base64'),
      ]),
    );
  });

  it('refuses a secret too short to mask', () => {
    expect(() => credentialSpellings({ kind: 'bearer', token: 'short' })).toThrow(/shorter than 8 characters/);
  });
});

describe('SecretMask', () => {
  const spellings = credentialSpellings({ kind: 'bearer', token: 'sk_live_4f9a"b' });

  it('masks a secret split across chunks at every place, keeping the length', () => {
    const body = '{"echo":"sk_live_4f9a\\"b","again":"sk_live_4f9a%22b","b64":"c2tfbGl2ZV80ZjlhImI=","plain":"sk_live_4f9a"}';
    const whole = maskText(body, spellings);
    expect(whole).toBe('{"echo":"***************","again":"****************","b64":"********************","plain":"sk_live_4f9a"}');
    for (let k = 0; k <= body.length; k++) {
      for (const j of [k, Math.min(body.length, k + 3), Math.min(body.length, k + 17)]) {
        const m = new SecretMask(spellings);
        const out = Buffer.concat([m.push(Buffer.from(body.slice(0, k))), m.push(Buffer.from(body.slice(k, j))), m.push(Buffer.from(body.slice(j))), m.end()]).toString();
        expect(out, `split at ${k}, ${j}`).toBe(whole);
      }
    }
  });

  it('random chunkings of generated bodies come out as the whole masked at once', () => {
    const random = new Random(99);
    const pieces = ['sk_live_4f9a"b', 'sk_live_4f9a\\"b', 'sk_live_4f9a%22b', 'sk_live_', '4f9a', '"b', 'x', '{', '"', '\\', 'c2tfbGl2ZV80ZjlhImI='];
    for (let i = 0; i < 2000; i++) {
      let body = '';
      for (let k = random.int(12); k >= 0; k--) body += pieces[random.int(pieces.length)];
      const bytes = Buffer.from(body);
      const m = new SecretMask(spellings);
      const out: Buffer[] = [];
      for (let at = 0; at < bytes.length; ) {
        const n = 1 + random.int(6);
        out.push(m.push(bytes.subarray(at, at + n)));
        at += n;
      }
      out.push(m.end());
      const got = Buffer.concat(out).toString();
      expect(got, body).toBe(maskText(body, spellings));
      expect(got.length).toBe(body.length);
      for (const s of spellings) expect(got.includes(s.toString())).toBe(false);
    }
  });

  it('leaves the caller’s chunk as it was', () => {
    const chunk = Buffer.from('token sk_live_4f9a"b here');
    new SecretMask(spellings).push(chunk);
    expect(chunk.toString()).toBe('token sk_live_4f9a"b here');
  });

  it("masks every spelling in an answer's field names and values, a secret of any bytes, and gives back a field that holds none as it was", () => {
    for (const credential of [
      { kind: 'bearer', token: 'sk_live_4f9a"b/ü€ key' },
      { kind: 'basic', user: 'shop', password: 'pa:ss w0rd!' },
    ] as HttpCredential[]) {
      for (const s of credentialSpellings(credential)) {
        // A field's text as Node's HTTP client gives it: its bytes, a character each.
        const text = s.toString('latin1');
        const res = {
          status: 200,
          reason: 'OK',
          hasBody: false,
          fields: [
            [`x-${text}`, `a ${text} b`],
            ['content-type', 'application/json'],
          ] as Array<[string, string]>,
        };
        new CredentialEcho(credential, false).response(res);
        expect(res.fields[0]).toEqual([`x-${'*'.repeat(text.length)}`, `a ${'*'.repeat(text.length)} b`]);
        expect(res.fields[1]).toEqual(['content-type', 'application/json']);
      }
    }
  });
});
