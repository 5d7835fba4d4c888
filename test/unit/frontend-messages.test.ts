import { describe, expect, it } from 'vitest';
import { decodeFrontend } from '../../src/postgres/wire/frontend-messages.js';
import { PgProtocolError } from '../../src/postgres/wire/protocol-error.js';
import type { PgMessage } from '../../src/postgres/wire/reader.js';

/** A frontend message of `type` whose body is `parts` (strings as UTF-8, buffers as they are). */
function message(type: string, ...parts: Array<string | Buffer>): PgMessage {
  const body = Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));
  const raw = Buffer.concat([Buffer.from(type), Buffer.alloc(4), body]);
  raw.writeUInt32BE(body.length + 4, 1);
  return { type: raw[0]!, body: raw.subarray(5), raw };
}
const NUL = Buffer.from([0]);
const zeros = (n: number): Buffer => Buffer.alloc(n);

describe('decodeFrontend: strings', () => {
  it('reads ASCII names and statements of every length, empty ones included, and says they are UTF-8', () => {
    for (const n of [0, 1, 63, 64, 65, 200]) {
      const name = 's'.repeat(n);
      const sql = `select ${'1'.repeat(n)}`;
      expect(decodeFrontend(message('P', name, NUL, sql, NUL, zeros(2)))).toMatchObject({ kind: 'parse', name, sql, utf8: true });
      expect(decodeFrontend(message('E', name, NUL, zeros(4)))).toMatchObject({ kind: 'execute', portal: name, utf8: true });
    }
  });

  it('decodes UTF-8 past ASCII, wherever the first such byte is, and marks bytes that are not UTF-8', () => {
    for (const prefix of ['', 'a'.repeat(63), 'a'.repeat(64), 'a'.repeat(100)]) {
      expect(decodeFrontend(message('Q', `${prefix}select 'é'`, NUL))).toMatchObject({ kind: 'query', sql: `${prefix}select 'é'`, utf8: true });
      const bad = decodeFrontend(message('Q', prefix, Buffer.from([0x73, 0xff, 0x65]), NUL));
      expect(bad).toMatchObject({ kind: 'query', utf8: false });
      const badName = decodeFrontend(message('D', 'P', prefix, Buffer.from([0xc3]), NUL));
      expect(badName).toMatchObject({ kind: 'describe', target: 'P', utf8: false });
    }
  });

  it('refuses a string with no NUL, however short', () => {
    expect(() => decodeFrontend(message('E', 'p'))).toThrow(PgProtocolError);
    expect(() => decodeFrontend(message('Q', 'select 1'))).toThrow(/unterminated string/);
  });
});
