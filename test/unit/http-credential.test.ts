/**
 * An HTTP connection's credential: injected in place of whatever the caller sent, and masked in
 * every spelling an echo could take, wherever it falls across a response's chunks, without
 * changing a body's length. Random splits of generated bodies are checked against masking the
 * whole at once.
 */
import { describe, expect, it } from 'vitest';
import { CredentialEcho, characterSpellings, credentialMatcher, type HttpCredential, injectCredential, maskText, SecretMask, secretsMasker } from '../../src/http/pipeline/credential.js';
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

const SPECIAL = ['%', '&', '\\'];

/**
 * The ways an echo could spell character `c` among others spelled otherwise, as tests write them
 * out (the matcher's own list is not read here); `written`: the secret's `%`, `&` and `\\` are
 * spelled as written (else encoded), each of them alike in one echo.
 */
function spellingsOf(c: string, written: boolean): string[] {
  const bytes = [...Buffer.from(c, 'utf8')];
  const hex = (n: number, w = 2): string => n.toString(16).padStart(w, '0');
  const cp = c.codePointAt(0)!;
  const all = [
    c,
    ...(cp < 0x80 ? [c.toUpperCase()] : []),
    bytes.map((b) => `%${hex(b).toUpperCase()}`).join(''),
    bytes.map((b) => `%${hex(b)}`).join(''),
    ...(c === '%' ? [] : [bytes.map((b) => `%25${hex(b).toUpperCase()}`).join('')]),
    `&#${cp};`,
    `&#x${hex(cp, 1)};`,
    `&#X${hex(cp, 1).toUpperCase()};`,
    `&#00${cp};`,
    ...(c.length === 1 ? [`\\u${hex(cp, 4)}`, `\\u${hex(cp, 4).toUpperCase()}`] : []),
    ...(cp < 0x100 ? [`\\x${hex(cp)}`] : []),
    ...(c === ' ' ? ['+'] : []),
    ...(c === '"' || c === '/' || c === '\\' ? [`\\${c}`] : []),
    ...(c === '&' ? ['&amp;'] : c === '"' ? ['&quot;'] : c === '<' ? ['&lt;'] : []),
  ];
  if (!SPECIAL.includes(c)) return all;
  // As written: the character itself and the spellings that begin otherwise; encoded: all but itself.
  return written ? all.filter((x) => x === c || x[0] !== c) : all.filter((x) => x !== c);
}

/** Whether `text` (a character a byte) still holds a match of `credential`'s matcher. */
function holds(credential: HttpCredential, text: string): boolean {
  const { regex } = credentialMatcher(credential);
  regex.lastIndex = 0;
  return regex.test(text);
}

describe('credentialMatcher', () => {
  const tricky = 'Qk+7/zP=9 x&y~!Z';
  const credential: HttpCredential = { kind: 'query', name: 'api_key', value: tricky };

  it('finds the query credential in the very spelling the gateway forwards it in', () => {
    const { target: t } = injectCredential(credential, caller, target('/echo'));
    const sent = t.canonical.slice(t.canonical.indexOf('api_key=') + 'api_key='.length);
    expect(sent).not.toBe(encodeURIComponent(tricky));
    const echoed = `{"url":"/v1/echo?${t.canonical.split('?')[1]}","location":"/v1/landing/?page=2&api_key=${sent}"}`;
    const masked = maskText(echoed, credentialMatcher(credential));
    expect(masked).not.toContain(sent);
    expect(masked.length).toBe(echoed.length);
  });

  it("finds it in each encoding libraries write: form, Python's quote, Java's URLEncoder, every byte, lower-case hex, HTML references", () => {
    const forms = [
      new URLSearchParams({ k: tricky }).toString().slice(2),
      encodeURIComponent(tricky).replace(/!/g, '%21').replace(/~/g, '%7E'),
      [...Buffer.from(tricky)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join(''),
      encodeURIComponent(tricky).toLowerCase(),
      [...tricky].map((c) => `&#x${c.charCodeAt(0).toString(16)};`).join(''),
      [...tricky].map((c) => `&#${c.charCodeAt(0)};`).join(''),
      tricky.toUpperCase(),
      // Go's encoding/json escapes <, > and & for HTML, the rest as it is.
      JSON.stringify(tricky).slice(1, -1).replace(/&/g, '\\u0026'),
      Buffer.from(tricky).toString('hex').toUpperCase(),
    ];
    for (const f of forms) expect(maskText(`a ${f} b`, credentialMatcher(credential)), f).toBe(`a ${'*'.repeat(f.length)} b`);
  });

  it('finds a secret whose characters are spelled each its own way, for generated mixes', () => {
    const random = new Random(76);
    for (const secret of [tricky, 'sk_live_4f9a"b/ü€ key', 'tok\\en\n😀-1234', 'a%b&c\\d-1234']) {
      const c: HttpCredential = { kind: 'bearer', token: secret };
      for (let i = 0; i < 300; i++) {
        const written = random.int(2) === 0;
        const spelled = [...secret].map((ch) => random.pick(spellingsOf(ch, written))).join('');
        const text = Buffer.from(`x${spelled}y`, 'utf8').toString('latin1');
        expect(holds(c, text), spelled).toBe(true);
        expect(maskText(text, credentialMatcher(c))).toBe(`x${'*'.repeat(text.length - 2)}y`);
      }
    }
  });

  it('spells no character two ways one of which begins the other, so a pattern never backtracks within a character', () => {
    const chars = [...Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i)), '\n', '\t', 'é', '€', '😀', '\u00a0'];
    for (const c of chars) {
      for (const written of [false, true]) {
        const spelled = characterSpellings(c, written).map((x) => x.toLowerCase());
        for (const a of spelled) for (const b of spelled) if (a !== b) expect(b.startsWith(a), `${JSON.stringify(c)}: ${a} begins ${b}`).toBe(false);
      }
    }
  });

  it('masks in time linear in the text, for secrets of repeated characters and text made to almost match them', () => {
    for (const secret of ['1111111111111111', '3333333333', '%%%%%%%%%%', '&#&#&#&#&#', '\\'.repeat(10), '%2%2%2%2%2']) {
      const matcher = credentialMatcher({ kind: 'bearer', token: secret });
      for (const unit of ['1', '31', '33', '%', '%25', '%2', '&', '&#', '\\', '\\\\', '\\x5c', '%2525']) {
        const text = `${unit.repeat(Math.ceil(200_000 / unit.length))}x`;
        const t0 = performance.now();
        maskText(text, matcher);
        expect(performance.now() - t0, `${secret} in ${JSON.stringify(unit)}s`).toBeLessThan(2000);
      }
    }
  });

  it('finds a secret holding `%`, `&` or `\\` as written among its other characters encoded (a PHP echo, an encoder that spells some)', () => {
    const masks = (secret: string, echo: string): void => expect(maskText(`a ${echo} b`, credentialMatcher({ kind: 'bearer', token: secret })), echo).toBe(`a ${'*'.repeat(echo.length)} b`);
    masks('abc&defghijk', 'abc&defghij%6B');
    masks('Xy7&Lm/9Qr2k', 'Xy7&Lm\\/9Qr2k');
    masks('ab%cd\\ef&gh', 'ab%cd\\ef&g%68');
    masks('ab%cd\\ef&gh', 'ab%25cd%5Cef%26gh');
    // HTML's named references, as Python's html.escape and PHP's htmlspecialchars write them.
    masks('a1b2&c3d4/e5"f6', 'a1b2&amp;c3d4&sol;e5&quot;f6');
    masks('p"ssw0rd!xyz', 'p&quot;ssw0rd!xyz');
  });

  it('reads a stream of small chunks in time linear in it, for a long secret (a JWT)', () => {
    const random = new Random(6);
    // A JWT's public start, and text that begins it again and again (each place a match begins, then fails).
    const start = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.';
    const jwt = start + Array.from({ length: 1600 }, () => 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_'[random.int(64)]).join('');
    const text = Buffer.from(Array.from({ length: (256 * 1024) / 16 }, () => `${start.slice(0, 12)}${random.int(10)}xyz`).join(''), 'latin1');
    const mask = new SecretMask(credentialMatcher({ kind: 'bearer', token: jwt }));
    const t0 = performance.now();
    let out = 0;
    for (let at = 0; at < text.length; at += 64) out += mask.push(text.subarray(at, at + 64)).length;
    out += mask.end().length;
    expect(out).toBe(text.length);
    expect(performance.now() - t0).toBeLessThan(1500);
  });

  it('leaves text that holds only a piece of the secret', () => {
    expect(maskText('sk_live_4f9a', credentialMatcher({ kind: 'bearer', token: 'sk_live_4f9a"b' }))).toBe('sk_live_4f9a');
  });

  it('masks a decoded JSON string, and gives undefined for one that holds none', () => {
    const masker = secretsMasker({ kind: 'bearer', token: 'sk_live_4f9a"b/ü' });
    expect(masker('say sk_live_4f9a"b/ü!')).toBe(`say ${'*'.repeat(Buffer.byteLength('sk_live_4f9a"b/ü'))}!`);
    expect(masker('nothing here')).toBeUndefined();
  });

  it('refuses a secret too short to mask', () => {
    expect(() => credentialMatcher({ kind: 'bearer', token: 'short' })).toThrow(/shorter than 8 characters/);
  });
});

describe('SecretMask', () => {
  const spellings = credentialMatcher({ kind: 'bearer', token: 'sk_live_4f9a"b' });

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
      expect(holds({ kind: 'bearer', token: 'sk_live_4f9a"b' }, got)).toBe(false);
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
      const secret = credential.kind === 'bearer' ? credential.token : (credential as { password: string }).password;
      for (const spelled of [secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1), Buffer.from(secret).toString('base64')]) {
        // A field's text as Node's HTTP client gives it: its bytes, a character each.
        const text = Buffer.from(spelled, 'utf8').toString('latin1');
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
