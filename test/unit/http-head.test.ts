/**
 * HTTP/1.1 heads read strictly, one reading: what servers could read two ways (request smuggling's
 * class) is refused with a status, at every split of the bytes; a chunked body read as it comes.
 * Generated heads are sent to a real Node HTTP server (llhttp): a head taken here is read there the
 * same way (method, target, fields, framing), and one it refuses is refused here.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ChunkedReader, MAX_FIELDS, MAX_HEAD_BYTES, readRequestHead, readResponseHead, type RequestHead } from '../../src/http/wire/head.js';
import { Random } from '../harness/random.js';

const head = (text: string): Buffer => Buffer.from(text, 'latin1');
const taken = (text: string): RequestHead => {
  const h = readRequestHead(head(text));
  if (!h || 'refused' in h) throw new Error(`${JSON.stringify(text)}: ${h ? h.refused : 'incomplete'}`);
  return h;
};

describe('readRequestHead', () => {
  it('reads the start line, the fields in order (names in lower case, values trimmed) and the framing', () => {
    expect(taken('GET /a?b=1 HTTP/1.1\r\nHost: api\r\nX-Thing:  v 1 \r\nAccept: */*\r\n\r\nBODY')).toEqual({
      method: 'GET',
      target: '/a?b=1',
      version: '1.1',
      fields: [
        ['host', 'api'],
        ['x-thing', 'v 1'],
        ['accept', '*/*'],
      ],
      framing: { kind: 'none' },
      close: false,
      bytes: 63,
      expectContinue: false,
    });
    expect(taken('POST /o HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n').framing).toEqual({ kind: 'length', length: 12 });
    expect(taken('POST /o HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n').framing).toEqual({ kind: 'chunked' });
    expect(taken('GET / HTTP/1.0\r\n\r\n')).toMatchObject({ version: '1.0', close: true });
    expect(taken('GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n').close).toBe(false);
    expect(taken('GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n').close).toBe(true);
    expect(taken('PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n').expectContinue).toBe(true);
    expect(taken('GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n\r\n').upgrade).toBe('websocket');
    expect(readRequestHead(head('GET / HTTP/1.1\r\nHost: a\r\n'))).toBeUndefined();
  });

  it.each([
    ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n', 400, /both Transfer-Encoding and Content-Length/],
    ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n', 400, /more than once/],
    ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n', 400, /not a number/],
    ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n', 400, /not a number/],
    ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n', 400, /not a number/],
    ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n', 400, /not a number/],
    ['GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 501, /only chunked/],
    ['GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n', 501, /only chunked/],
    ['GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n', 501, /only chunked/],
    ['GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n', 501, /only chunked/],
    ['GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n', 400, /HTTP\/1\.0/],
    ['GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  folded\r\n\r\n', 400, /obs-fold/],
    ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n', 400, /not a field name/],
    ['GET / HTTP/1.1\r\nHost: a\r\n Transfer-Encoding: chunked\r\n\r\n', 400, /obs-fold/],
    ['GET / HTTP/1.1\nHost: a\r\n\r\n', 400, /bare LF/],
    ['GET / HTTP/1.1\r\nHost: a\rX: 1\r\n\r\n', 400, /bare CR/],
    ['GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n', 400, /control character/],
    ['GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n', 400, /no colon/],
    ['GET / HTTP/1.1\r\n\r\n', 400, /no Host/],
    ['GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400, /more than one Host/],
    ['GET / HTTP/2.0\r\nHost: a\r\n\r\n', 505, /HTTP\/2\.0/],
    ['GET /\r\n\r\n', 400, /request line/],
    ['GET  / HTTP/1.1\r\nHost: a\r\n\r\n', 400, /request line/],
    ['G(T / HTTP/1.1\r\nHost: a\r\n\r\n', 400, /request line/],
    ['\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n', 400, /request line/],
    ['PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n', 417, /expectation/],
    [`GET / HTTP/1.1\r\nHost: a\r\n${'X: 1\r\n'.repeat(MAX_FIELDS)}\r\n`, 431, /more than 100 fields/],
    [`GET / HTTP/1.1\r\nHost: a\r\nX: ${'a'.repeat(MAX_HEAD_BYTES)}\r\n\r\n`, 431, /larger than/],
  ])('refuses %j with %i, saying why', (text, status, why) => {
    const h = readRequestHead(head(text));
    expect(h).toMatchObject({ status });
    expect((h as { refused: string }).refused).toMatch(why);
  });

  it('never reads a head from part of one: every split gives nothing yet, or the refusal the whole gets', () => {
    const samples = [
      'POST /orders/1/refund?x=1 HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}',
      'GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n',
      'GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  folded\r\n\r\n',
      'GET / HTTP/1.1\nHost: a\r\n\r\n',
    ];
    for (const text of samples) {
      const whole = readRequestHead(head(text));
      for (let k = 0; k < text.length; k++) {
        const part = readRequestHead(head(text.slice(0, k)));
        if (part === undefined) continue;
        expect(part, `${JSON.stringify(text)} at ${k}`).toEqual(whole);
      }
    }
  });
});

describe('readResponseHead', () => {
  it('frames by the request and the status first, then the fields', () => {
    const r = (text: string, method = 'GET') => readResponseHead(head(text), method);
    expect(r('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n')).toMatchObject({ status: 200, reason: 'OK', framing: { kind: 'length', length: 3 } });
    expect(r('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n', 'HEAD')).toMatchObject({ framing: { kind: 'none' } });
    expect(r('HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n')).toMatchObject({ framing: { kind: 'none' } });
    expect(r('HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n')).toMatchObject({ framing: { kind: 'none' } });
    expect(r('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n')).toMatchObject({ framing: { kind: 'chunked' } });
    expect(r('HTTP/1.1 200 OK\r\n\r\n')).toMatchObject({ framing: { kind: 'until-close' } });
    expect(r('HTTP/1.0 200\r\n\r\n')).toMatchObject({ status: 200, reason: '', close: true });
    expect(r('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n')).toMatchObject({ status: 502, refused: expect.stringMatching(/upstream's answer: both/) });
    expect(r('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n')).toMatchObject({ status: 502 });
    expect(r('HTTP/1.1 20 OK\r\n\r\n')).toMatchObject({ status: 502, refused: expect.stringMatching(/status line/) });
  });
});

describe('ChunkedReader', () => {
  const body = '5;name=value\r\nhello\r\nB\r\n, world!!!!\r\n0\r\nX-Trailer: dropped\r\n\r\nNEXT';
  it('gives the data and the end, at every split, with what follows the body', () => {
    for (let k = 0; k <= body.length; k++) {
      const r = new ChunkedReader();
      const a = r.push(head(body.slice(0, k)));
      // Once ended, what was not pushed follows the body too.
      const b = a.ended ? { data: [], ended: true, rest: head(body.slice(k)) } : r.push(head(body.slice(k)));
      const data = Buffer.concat([...a.data, ...b.data]).toString('latin1');
      expect(data, `split at ${k}`).toBe('hello, world!!!!');
      expect(b.ended).toBe(true);
      expect(`${a.rest?.toString() ?? ''}${b.rest?.toString() ?? ''}`, `split at ${k}`).toBe('NEXT');
    }
  });

  it.each([
    ['zz\r\n', /not a chunk size/],
    ['-1\r\n', /not a chunk size/],
    ['1000000000000\r\n', /not a chunk size/],
    ['5\nhello\r\n', /CRLF/],
    ['5\r\nhelloX\r\n', /not followed by CRLF/],
    [`5;${'x'.repeat(5000)}`, /too long/],
    ['5 \r\nhello\r\n', /not a chunk size/],
  ])('refuses %j', (text, why) => {
    expect(() => new ChunkedReader().push(head(text))).toThrow(why);
  });
});

/** Heads made of the pieces smuggling tries are made of, deterministically. */
function generatedHeads(count: number): string[] {
  const lines = [
    'Host: api',
    'Host: other',
    'Content-Length: 3',
    'Content-Length: 4',
    'Content-Length:3',
    'Content-Length : 3',
    'Content-Length: 3, 3',
    'Transfer-Encoding: chunked',
    'Transfer-Encoding: Chunked',
    'Transfer-Encoding: gzip',
    'Transfer-Encoding:  chunked ',
    'Transfer-Encoding: chunked, identity',
    ' X-Folded: 1',
    'X-A: \x01',
    'X-B: ok',
    'Connection: close',
    'Expect: 100-continue',
  ];
  const random = new Random(42);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const fields: string[] = random.int(4) === 0 ? [] : ['Host: api'];
    for (let k = random.int(3); k >= 0; k--) fields.splice(random.int(fields.length + 1), 0, lines[random.int(lines.length)]!);
    out.push(`${['GET', 'POST', 'PUT'][random.int(3)]} /x HTTP/1.${random.int(2)}\r\n${fields.map((f) => `${f}\r\n`).join('')}\r\n`);
  }
  return out;
}

describe('generated heads, against a real Node HTTP server', () => {
  it('a head taken here is read the same there; one refused there is refused here', async () => {
    const server = createServer({ requireHostHeader: false }, (req: IncomingMessage, res) => {
      req.resume();
      res.setHeader('x-seen', JSON.stringify([req.method, req.url, req.rawHeaders, req.headers['transfer-encoding'] ?? null, req.headers['content-length'] ?? null]));
      res.end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    /** What the server made of `text`: what it saw, or 'refused'. */
    const serve = async (text: string): Promise<unknown> => {
      const socket = connect(port, '127.0.0.1');
      await once(socket, 'connect');
      let got = '';
      socket.on('data', (d: Buffer) => {
        got += d.toString('latin1');
      });
      // A framed body of three bytes where the head asks for one (chunked, or a length), then the server's answer.
      const chunked = /transfer-encoding:\s*chunked\s*\r\n/i.test(text);
      socket.end(head(text + (chunked ? '3\r\nabc\r\n0\r\n\r\n' : 'abc')));
      await once(socket, 'close');
      const seen = /x-seen: (.*)\r\n/.exec(got);
      return seen ? JSON.parse(seen[1]!) : 'refused';
    };
    let agreed = 0;
    try {
      for (const text of [...new Set(generatedHeads(400))]) {
        const ours = readRequestHead(head(text));
        const theirs = await serve(text);
        if (ours === undefined) throw new Error(`incomplete: ${JSON.stringify(text)}`);
        if ('refused' in ours) continue;
        expect(theirs, JSON.stringify(text)).not.toBe('refused');
        const [method, url, raw, te, cl] = theirs as [string, string, string[], string | null, string | null];
        const fields: Array<[string, string]> = [];
        for (let i = 0; i < raw.length; i += 2) fields.push([raw[i]!.toLowerCase(), raw[i + 1]!]);
        expect([method, url, fields], JSON.stringify(text)).toEqual([ours.method, ours.target, ours.fields]);
        expect(ours.framing.kind === 'chunked', JSON.stringify(text)).toBe(te !== null);
        expect(ours.framing.kind === 'length' ? String(ours.framing.length) : null, JSON.stringify(text)).toBe(cl);
        agreed++;
      }
    } finally {
      server.close();
    }
    expect(agreed).toBeGreaterThan(20);
  });
});
