/**
 * The HTTP lane's request target: one form judged and forwarded. Spellings servers read
 * differently are refused with why; every other is decoded and encoded one way. Generated targets
 * (from the pieces such tricks are made of) check that what is taken reads back as itself, holds
 * no ambiguous piece, and that the WHATWG URL parser and a real Node HTTP server reach the same
 * route from the original and from the canonical form.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { MAX_TARGET_LENGTH, readTarget, type RequestTarget } from '../../src/http/wire/target.js';
import { Random } from '../harness/random.js';

const taken = (target: string): RequestTarget => {
  const t = readTarget(target);
  if ('refused' in t) throw new Error(`${target} refused: ${t.refused}`);
  return t;
};

describe('readTarget', () => {
  it.each([
    ['/', [''], [], '/'],
    ['/customers/42', ['customers', '42'], [], '/customers/42'],
    ['/customers/', ['customers', ''], [], '/customers/'],
    ['/%41dmin/x', ['Admin', 'x'], [], '/Admin/x'],
    ['/a%20b/c+d', ['a b', 'c+d'], [], '/a%20b/c+d'],
    ['/caf%c3%a9/%E2%9C%93', ['café', '✓'], [], '/caf%C3%A9/%E2%9C%93'],
    ['/100%25', ['100%'], [], '/100%25'],
    [
      '/s?q=a+b&x=%2B&flag&&y=1=2',
      ['s'],
      [
        ['q', 'a b'],
        ['x', '+'],
        ['flag', ''],
        ['y', '1=2'],
      ],
      '/s?q=a%20b&x=%2B&flag=&y=1%3D2',
    ],
    ['/s?', ['s'], [], '/s'],
    ['/s?path=/etc/passwd?x', ['s'], [['path', '/etc/passwd?x']], '/s?path=/etc/passwd?x'],
    ['/s?%E2%9C%93=%E2%9C%93', ['s'], [['✓', '✓']], '/s?%E2%9C%93=%E2%9C%93'],
  ])('takes %s', (target, segments, query, canonical) => {
    expect(taken(target)).toEqual({ segments, query, canonical });
  });

  it.each([
    ['//admin', /empty segment/],
    ['/a//b', /empty segment/],
    ['/a/../b', /`\.\.` segment/],
    ['/a/./b', /`\.` segment/],
    ['/a/%2e%2e/b', /`\.\.` segment/],
    ['/a/.%2E/b', /`\.\.` segment/],
    ['/a/%2e/b', /`\.` segment/],
    ['/a/.../b', /ending in `\.` or a space/],
    ['/admin./x', /ending in `\.` or a space/],
    ['/admin%20/x', /ending in `\.` or a space/],
    ['/report%20', /ending in `\.` or a space/],
    ['/..', /`\.\.` segment/],
    ['/a%2fb', /encoded `\/`/],
    ['/a%2Fb', /encoded `\/`/],
    ['/a%5cb', /encoded `\/` or `\\`/],
    ['/a\\b', /`\\`/],
    ['/admin;jsessionid=1/x', /`;`/],
    ['/..;/admin', /`;`/],
    ['/a%00', /U\+0000/],
    ['/a%0d%0aX-Injected:%201', /U\+000D/],
    ['/a%7f', /U\+007F/],
    ['/a%c2%85', /U\+0085/],
    ['/a%', /two hex digits/],
    ['/a%zz', /two hex digits/],
    ['/a%C0%AE', /not UTF-8/],
    ['/a%ff', /not UTF-8/],
    ['/%EF%BC%8E%EF%BC%8E/admin', /Unicode folding/],
    ['/a%EF%BC%8Fb', /Unicode folding/],
    ['http://internal/admin', /only a path/],
    ['internal:80', /only a path/],
    ['*', /asterisk/],
    ['/a#frag', /`#`/],
    ['/a b', /` `/],
    ['/a\tb', /U\+0009/],
    ['/s?x=%00', /U\+0000/],
    ['/s?x=%', /two hex digits/],
    [`/${'a'.repeat(MAX_TARGET_LENGTH)}`, /longer than/],
  ])('refuses %s, saying why', (target, why) => {
    const t = readTarget(target);
    expect(t).toHaveProperty('refused');
    expect((t as { refused: string }).refused).toMatch(why);
  });
});

/** Targets made of the pieces path and query tricks are made of, deterministically. */
function generated(count: number): string[] {
  const pieces = [
    'a',
    'B',
    '.',
    '..',
    '%2e',
    '%2E',
    '%2f',
    '/',
    '//',
    '%25',
    '%',
    '+',
    ';',
    '=',
    '&',
    '%20',
    'é',
    '%C3%A9',
    '%00',
    '\\',
    '~',
    '-',
    '_',
    ':',
    '@',
    '!',
    '%41',
    '%3F',
    '%23',
    "'",
    '*',
    '$',
    ',',
    '(',
    ')',
    '%E2%80%AE',
    '%EF%BC%8F',
  ];
  const random = new Random(0x9e3779b9);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    let path = '/';
    for (let k = random.int(8); k >= 0; k--) path += pieces[random.int(pieces.length)];
    let query = '';
    if (random.int(2) === 0) for (let k = random.int(6); k >= 0; k--) query += ['a', '=', '&', '+', '%2B', '%20', '%26', '%3D', 'x', '?', '/', '%'][random.int(12)];
    out.push(query ? `${path}?${query}` : path);
  }
  return out;
}

/** The route WHATWG URL parsing reaches for `target`: its path's segments, decoded. */
function whatwgSegments(target: string): string[] {
  return new URL(target, 'http://gateway.test').pathname.slice(1).split('/').map(decodeURIComponent);
}

describe('generated targets', () => {
  const targets = generated(20_000);
  const accepted = targets.map((t) => [t, readTarget(t)] as const).filter((p): p is readonly [string, RequestTarget] => !('refused' in p[1]));

  it('take some and refuse some (the generator reaches both)', () => {
    expect(accepted.length).toBeGreaterThan(2_000);
    expect(accepted.length).toBeLessThan(targets.length - 2_000);
  });

  it('read back as themselves: the canonical form is taken, to the same segments, parameters and form', () => {
    for (const [, t] of accepted) expect(readTarget(t.canonical)).toEqual(t);
  });

  it('hold no piece servers read differently', () => {
    for (const [target, t] of accepted) {
      const path = t.canonical.split('?')[0]!;
      expect(path, target).not.toMatch(/\/\/|%2F|%5C|%2E|;|\\|#/i);
      expect(t.segments.slice(0, -1).includes(''), target).toBe(false);
      for (const s of t.segments) expect(['.', '..'].includes(s), target).toBe(false);
    }
  });

  it('reach the route WHATWG URL parsing reaches, from the target as sent and from its canonical form', () => {
    for (const [target, t] of accepted) {
      expect(whatwgSegments(target), target).toEqual(t.segments);
      expect(whatwgSegments(t.canonical), target).toEqual(t.segments);
      expect(new URL(t.canonical, 'http://gateway.test').pathname + (t.query.length ? new URL(t.canonical, 'http://gateway.test').search : '')).toBe(t.canonical);
      const params = [...new URL(t.canonical, 'http://gateway.test').searchParams];
      expect(params, target).toEqual(t.query);
    }
  });

  it('reach a real Node HTTP server as the canonical form, byte for byte, which it reads as the judged route', async () => {
    const seen: string[] = [];
    const server = createServer((req, res) => {
      seen.push(req.url!);
      res.end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const sample = accepted.slice(0, 300);
    try {
      const socket = connect(port, '127.0.0.1');
      await once(socket, 'connect');
      socket.write(sample.map(([, t]) => `GET ${t.canonical} HTTP/1.1\r\nHost: upstream\r\n\r\n`).join(''));
      let received = '';
      socket.on('data', (d: Buffer) => {
        received += d.toString('latin1');
      });
      await expect.poll(() => received.split('HTTP/1.1 200').length - 1, { timeout: 20_000 }).toBe(sample.length);
      socket.destroy();
    } finally {
      server.close();
    }
    expect(seen).toEqual(sample.map(([, t]) => t.canonical));
    for (const [i, url] of seen.entries()) expect(whatwgSegments(url)).toEqual(sample[i]![1].segments);
  });
});
