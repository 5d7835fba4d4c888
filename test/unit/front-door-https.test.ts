/** The gateway's port tells a direct HTTP client from the API's by its first request line, however its bytes are split. */
import { describe, expect, it } from 'vitest';
import { httpsKind } from '../../src/gateway/front/front-door.js';

const LINES: Array<[string, 'direct' | 'api']> = [
  ['GET /direct/dc_abc/pw/customers HTTP/1.1\r\n', 'direct'],
  ['POST /direct/ HTTP/1.1\r\n', 'direct'],
  ['GET /v1/connections HTTP/1.1\r\n', 'api'],
  ['GET /directory HTTP/1.1\r\n', 'api'],
  ['GET /d HTTP/1.1\r\n', 'api'],
  ['GET / HTTP/1.1\r\n', 'api'],
  ['get /direct/x/y HTTP/1.1\r\n', 'api'],
  ['PRI * HTTP/2.0\r\n', 'api'],
  ['\x00\x01garbage', 'api'],
  [`${'A'.repeat(80)} /direct/ HTTP/1.1\r\n`, 'api'],
  [`${'A'.repeat(63)} ${'x'.repeat(100)}`, 'api'],
  [`${'A'.repeat(20)} /dir${'x'.repeat(100)}`, 'api'],
  [`${'A'.repeat(59)} /dir${'x'.repeat(100)}`, 'api'],
];

describe('httpsKind', () => {
  it.each(LINES)('reads %j as %s at every split, never deciding early otherwise', (line, kind) => {
    const bytes = Buffer.from(line, 'latin1');
    let decided: string | undefined;
    for (let n = 1; n <= bytes.length && !decided; n++) {
      const k = httpsKind(bytes.subarray(0, n));
      if (k !== 'more') decided = k;
    }
    expect(decided).toBe(kind);
  });

  it('decides within its first 64 bytes, whatever comes', () => {
    for (const head of ['', 'GET', 'GET ', 'GET /', 'GET /direct', 'A'.repeat(63), `${'A'.repeat(58)} /dir`]) {
      expect(httpsKind(Buffer.from(head.padEnd(64, 'A'), 'latin1'))).not.toBe('more');
      expect(httpsKind(Buffer.from(head.padEnd(64, ' '), 'latin1'))).not.toBe('more');
    }
  });
});
