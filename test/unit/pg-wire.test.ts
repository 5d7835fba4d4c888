import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/errors.js';
import * as m from '../../src/postgres/wire/messages.js';
import { ByteRun } from '../../src/byte-run.js';
import { PgProtocolError } from '../../src/postgres/wire/protocol-error.js';
import {
  MessageReader,
  type Framing,
  parseAuthentication,
  parseBackendKeyData,
  parseErrorFields,
  parseParameterStatus,
  parsePasswordMessage,
  parseReadyForQuery,
  parseSaslInitialResponse,
  type PgMessage,
} from '../../src/postgres/wire/reader.js';
import { filterStartupParams, readStartupPacket, type StartupPacket } from '../../src/postgres/pipeline/startup.js';
import { thrown } from '../harness/thrown.js';

const ch = (c: string): number => c.charCodeAt(0);

/** One message read by a fresh reader from exactly its bytes. */
function readOne(side: 'frontend' | 'backend', bytes: Buffer): PgMessage {
  const r = new MessageReader({ side });
  r.push(bytes);
  const msg = r.next();
  expect(msg).not.toBeNull();
  expect(r.next()).toBeNull();
  expect(r.bufferedBytes).toBe(0);
  return msg!;
}

/** Expects `fn` to throw a PgProtocolError with the given SQLSTATE; returns it. */
function protocolError(fn: () => unknown, sqlstate = '08P01'): PgProtocolError {
  const caught = thrown(fn);
  expect(caught).toBeInstanceOf(PgProtocolError);
  const e = caught as PgProtocolError;
  expect(e.sqlstate).toBe(sqlstate);
  expect(e.code).toBe(ErrorCode.PROTOCOL_VIOLATION);
  return e;
}

/** Typed header for hand-made messages: type byte and a length field. */
function header(type: string, length: number): Buffer {
  const b = Buffer.alloc(5);
  b[0] = ch(type);
  b.writeUInt32BE(length >>> 0, 1);
  return b;
}

function startupBytes(code: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(8 + body.length, 0);
  b.writeUInt32BE(code, 4);
  return Buffer.concat([b, body]);
}

function cstrs(...parts: string[]): Buffer {
  return Buffer.concat(parts.map((p) => Buffer.from(`${p}\0`)));
}

describe('encoders round-trip through the parsers', () => {
  it('ErrorResponse and NoticeResponse carry S, V, C, M, D, H', () => {
    const e = readOne('backend', m.errorResponse({ severity: 'FATAL', code: '28P01', message: 'nope', detail: 'd', hint: 'h' }));
    expect(e.type).toBe(ch('E'));
    const f = parseErrorFields(e.body);
    expect(f).toMatchObject({ severity: 'FATAL', code: '28P01', message: 'nope', detail: 'd', hint: 'h' });
    expect(f.fields.get('S')).toBe('FATAL');
    expect(f.fields.get('V')).toBe('FATAL');
    const n = readOne('backend', m.noticeResponse({ severity: 'NOTICE', code: '00000', message: 'héllo' }));
    expect(n.type).toBe(ch('N'));
    const nf = parseErrorFields(n.body);
    expect(nf).toMatchObject({ severity: 'NOTICE', code: '00000', message: 'héllo' });
    expect(nf.detail).toBeUndefined();
    expect(nf.hint).toBeUndefined();
  });

  it('the severity comes from V when S is localized', () => {
    const body = Buffer.concat([Buffer.from('SFEHLER\0VERROR\0C42P01\0Mweg\0'), Buffer.from([0])]);
    expect(parseErrorFields(body)).toMatchObject({ severity: 'ERROR', code: '42P01', message: 'weg' });
  });

  it('Authentication messages', () => {
    const auth = (b: Buffer) => {
      const msg = readOne('backend', b);
      expect(msg.type).toBe(ch('R'));
      return parseAuthentication(msg.body);
    };
    expect(auth(m.authenticationOk())).toEqual({ code: 0 });
    expect(auth(m.authenticationCleartextPassword())).toEqual({ code: 3 });
    const salt = Buffer.from([1, 2, 3, 4]);
    expect(auth(m.authenticationMD5Password(salt))).toEqual({ code: 5, salt });
    expect(auth(m.authenticationSASL(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']))).toEqual({
      code: 10,
      mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'],
    });
    expect(auth(m.authenticationSASLContinue(Buffer.from('r=abc')))).toEqual({ code: 11, data: Buffer.from('r=abc') });
    expect(auth(m.authenticationSASLFinal(Buffer.from('v=xyz')))).toEqual({ code: 12, data: Buffer.from('v=xyz') });
    expect(() => m.authenticationMD5Password(Buffer.alloc(3))).toThrow(RangeError);
  });

  it('ParameterStatus, BackendKeyData, ReadyForQuery', () => {
    expect(parseParameterStatus(readOne('backend', m.parameterStatus('server_version', '15.8')).body)).toEqual(['server_version', '15.8']);
    expect(parseBackendKeyData(readOne('backend', m.backendKeyData(4242, 0xdeadbeef)).body)).toEqual({
      processId: 4242,
      secretKey: 0xdeadbeef,
    });
    expect(parseBackendKeyData(readOne('backend', m.backendKeyData(1, -1)).body)).toEqual({ processId: 1, secretKey: 0xffffffff });
    for (const s of ['I', 'T', 'E'] as const) expect(parseReadyForQuery(readOne('backend', m.readyForQuery(s)).body)).toBe(s);
  });

  it('NegotiateProtocolVersion', () => {
    const msg = readOne('backend', m.negotiateProtocolVersion(0, ['_pq_.a', '_pq_.b']));
    expect(msg.type).toBe(ch('v'));
    expect(msg.body.readUInt32BE(0)).toBe(0);
    expect(msg.body.readUInt32BE(4)).toBe(2);
    expect(msg.body.subarray(8).toString()).toBe('_pq_.a\0_pq_.b\0');
  });

  it('startup-phase packets', () => {
    const params: Array<[string, string]> = [
      ['user', 'alice'],
      ['database', 'app'],
      ['application_name', 'psql'],
    ];
    const s = readStartupPacket(m.startupMessage(params));
    expect(s).toEqual({ packet: { kind: 'startup', minorVersion: 0, params: new Map(params) }, size: m.startupMessage(params).length });
    expect(readStartupPacket(m.startupMessage(params, 2))!.packet).toMatchObject({ kind: 'startup', minorVersion: 2 });
    expect(m.startupMessage(params).readUInt32BE(4)).toBe(m.PROTOCOL_3_0);
    expect(readStartupPacket(m.sslRequest())).toEqual({ packet: { kind: 'ssl-request' }, size: 8 });
    expect(readStartupPacket(m.gssEncRequest())).toEqual({ packet: { kind: 'gssenc-request' }, size: 8 });
    expect(readStartupPacket(m.cancelRequest(77, 0x89abcdef))).toEqual({
      packet: { kind: 'cancel', processId: 77, secretKey: 0x89abcdef },
      size: 16,
    });
  });

  it('frontend messages', () => {
    const pw = readOne('frontend', m.passwordMessage('s3cret'));
    expect(pw.type).toBe(ch('p'));
    expect(parsePasswordMessage(pw.body)).toEqual(Buffer.from('s3cret'));
    const init = readOne('frontend', m.saslInitialResponse('SCRAM-SHA-256', Buffer.from('n,,n=,r=abc')));
    expect(parseSaslInitialResponse(init.body)).toEqual({ mechanism: 'SCRAM-SHA-256', data: Buffer.from('n,,n=,r=abc') });
    expect(readOne('frontend', m.saslResponse(Buffer.from('c=biws'))).body).toEqual(Buffer.from('c=biws'));
    const x = readOne('frontend', m.terminate());
    expect(x.type).toBe(ch('X'));
    expect(x.raw).toEqual(Buffer.from([ch('X'), 0, 0, 0, 4]));
    const q = readOne('frontend', m.query('select 1'));
    expect(q.type).toBe(ch('Q'));
    expect(q.body.toString()).toBe('select 1\0');
  });

  it('a SASLInitialResponse with length -1 has empty data', () => {
    const body = Buffer.concat([cstrs('SCRAM-SHA-256'), Buffer.from([0xff, 0xff, 0xff, 0xff])]);
    expect(parseSaslInitialResponse(body)).toEqual({ mechanism: 'SCRAM-SHA-256', data: Buffer.alloc(0) });
  });

  it('refuses a NUL inside a string', () => {
    protocolError(() => m.query('select 1\0; drop table x'));
    protocolError(() => m.parameterStatus('a\0b', 'c'));
  });
});

describe('readStartupPacket', () => {
  const stream = Buffer.concat([
    m.sslRequest(),
    m.gssEncRequest(),
    m.startupMessage([
      ['user', 'bob'],
      ['database', 'db'],
      ['TimeZone', 'UTC'],
    ]),
    m.cancelRequest(1, 2),
  ]);

  /** Feeds `pieces` one after the other, as a listener does, and collects the packets. */
  function feed(pieces: Buffer[]): StartupPacket[] {
    const out: StartupPacket[] = [];
    let buf = Buffer.alloc(0);
    for (const p of pieces) {
      buf = Buffer.concat([buf, p]);
      for (;;) {
        const r = readStartupPacket(buf);
        if (!r) break;
        out.push(r.packet);
        buf = buf.subarray(r.size);
      }
    }
    expect(buf.length).toBe(0);
    return out;
  }

  const whole = feed([stream]);

  it('gives the same packets at every split point and one byte at a time', () => {
    expect(whole.map((p) => p.kind)).toEqual(['ssl-request', 'gssenc-request', 'startup', 'cancel']);
    for (let i = 0; i <= stream.length; i++) expect(feed([stream.subarray(0, i), stream.subarray(i)])).toEqual(whole);
    expect(feed([...stream].map((b) => Buffer.from([b])))).toEqual(whole);
  });

  it('returns null until the packet is complete', () => {
    const s = m.startupMessage([['user', 'hoop']]);
    for (let i = 0; i < s.length; i++) expect(readStartupPacket(s.subarray(0, i))).toBeNull();
  });

  it('refuses bad lengths as soon as the length field is in', () => {
    const len = (n: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n >>> 0);
      return b;
    };
    protocolError(() => readStartupPacket(len(7)));
    protocolError(() => readStartupPacket(len(0)));
    protocolError(() => readStartupPacket(len(10_001)));
    protocolError(() => readStartupPacket(len(0x7fffffff)));
    protocolError(() => readStartupPacket(len(0xffffffff)));
    protocolError(() => readStartupPacket(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')));
    expect(readStartupPacket(len(10_000))).toBeNull();
  });

  it('refuses odd request codes and other protocol versions', () => {
    protocolError(() => readStartupPacket(startupBytes(m.SSL_REQUEST_CODE, Buffer.alloc(4))));
    protocolError(() => readStartupPacket(startupBytes(m.GSSENC_REQUEST_CODE, Buffer.alloc(1))));
    protocolError(() => readStartupPacket(startupBytes(m.CANCEL_REQUEST_CODE, Buffer.alloc(4))));
    protocolError(() => readStartupPacket(startupBytes(m.CANCEL_REQUEST_CODE, Buffer.alloc(40))));
    const v2 = protocolError(() => readStartupPacket(startupBytes(2 << 16, cstrs('user', 'u', ''))), '0A000');
    expect(v2.message).toMatch(/unsupported frontend protocol 2\.0/);
    protocolError(() => readStartupPacket(startupBytes(4 << 16, cstrs('user', 'u', ''))), '0A000');
    protocolError(() => readStartupPacket(startupBytes((1234 << 16) | 5681)), '0A000');
  });

  it('refuses malformed parameter lists', () => {
    const v3 = (body: Buffer) => () => readStartupPacket(startupBytes(m.PROTOCOL_3_0, body));
    protocolError(v3(Buffer.alloc(0)));
    protocolError(v3(Buffer.from('user\0u\0')));
    protocolError(v3(Buffer.from('user\0u')));
    protocolError(v3(Buffer.from('user')));
    protocolError(v3(Buffer.from('user\0u\0\0x')));
    protocolError(v3(Buffer.from('user\0u\0\0\0')));
    const dup = protocolError(v3(cstrs('user', 'u', 'search_path', 'a', 'search_path', 'b', '')));
    expect(dup.message).toMatch(/search_path/);
    protocolError(v3(cstrs('database', 'd', '')), '28000');
    protocolError(v3(cstrs('user', '', '')), '28000');
    expect(v3(cstrs('user', 'u', ''))()).not.toBeNull();
  });
});

describe('filterStartupParams', () => {
  it('consumes user and database and forwards the allowed parameters with their spelling', () => {
    const r = filterStartupParams(
      new Map([
        ['user', 'alice'],
        ['database', 'app'],
        ['TimeZone', 'UTC'],
        ['application_name', 'psql'],
        ['client_encoding', 'UTF8'],
        ['DateStyle', 'ISO'],
        ['_pq_.compression', 'on'],
      ]),
    );
    expect(r).toEqual({
      user: 'alice',
      database: 'app',
      forward: [
        ['TimeZone', 'UTC'],
        ['application_name', 'psql'],
        ['client_encoding', 'UTF8'],
        ['DateStyle', 'ISO'],
      ],
      protocolOptions: ['_pq_.compression'],
    });
  });

  it('defaults the database to the user', () => {
    expect(filterStartupParams(new Map([['user', 'bob']])).database).toBe('bob');
    expect(
      filterStartupParams(
        new Map([
          ['user', 'bob'],
          ['database', ''],
        ]),
      ).database,
    ).toBe('bob');
  });

  it('refuses replication, unknown parameters and what the gateway decides, naming the parameter and why', () => {
    const rep = protocolError(
      () =>
        filterStartupParams(
          new Map([
            ['user', 'hoop'],
            ['replication', 'database'],
          ]),
        ),
      '0A000',
    );
    expect(rep.message).toBe('replication connections are not supported through hoop');
    protocolError(
      () =>
        filterStartupParams(
          new Map([
            ['user', 'hoop'],
            ['Replication', 'true'],
          ]),
        ),
      '0A000',
    );
    const unknown = protocolError(
      () =>
        filterStartupParams(
          new Map([
            ['user', 'hoop'],
            ['work_mem', '1GB'],
          ]),
        ),
      '0A000',
    );
    expect(unknown.message).toBe('startup parameter "work_mem" is not allowed through hoop: it is not on the gateway\'s list of startup settings');
    expect(unknown.hint).toMatch(/application_name/);
    // search_path would move unqualified names out of reach of schema-wide rules (billing.*): not by default.
    expect(
      protocolError(
        () =>
          filterStartupParams(
            new Map([
              ['user', 'hoop'],
              ['search_path', 'billing'],
            ]),
          ),
        '0A000',
      ).message,
    ).toContain('"search_path"');
    expect(
      protocolError(
        () =>
          filterStartupParams(
            new Map([
              ['user', 'hoop'],
              ['options', '-c search_path=billing'],
            ]),
          ),
        '0A000',
      ).message,
    ).toContain('(-c search_path)');
    expect(
      protocolError(
        () =>
          filterStartupParams(
            new Map([
              ['user', 'hoop'],
              ['default_transaction_read_only', 'off'],
            ]),
          ),
        '0A000',
      ).message,
    ).toContain('the gateway decides it');
    expect(
      protocolError(
        () =>
          filterStartupParams(
            new Map([
              ['user', 'hoop'],
              ['options', '-c role=postgres'],
            ]),
          ),
        '0A000',
      ).message,
    ).toContain('"options" (-c role)');
    expect(
      protocolError(
        () =>
          filterStartupParams(
            new Map([
              ['user', 'hoop'],
              ['standard_conforming_strings', 'off'],
            ]),
          ),
        '0A000',
      ).message,
    ).toContain('must stay on');
  });

  it('reads -c settings from options, within the allow-list', () => {
    const r = filterStartupParams(
      new Map([
        ['user', 'hoop'],
        ['options', '-c application_name=app\\,public  --lock-timeout=2s -cstatement_timeout=1min'],
      ]),
    );
    expect(r.forward).toEqual([
      ['application_name', 'app,public'],
      ['lock_timeout', '2s'],
      ['statement_timeout', '1min'],
    ]);
    expect(
      protocolError(
        () =>
          filterStartupParams(
            new Map([
              ['user', 'hoop'],
              ['options', '-D /tmp'],
            ]),
          ),
        '0A000',
      ).message,
    ).toContain('"-D"');
    expect(
      protocolError(
        () =>
          filterStartupParams(
            new Map([
              ['user', 'hoop'],
              ['application_name', 'x'],
            ]),
            { settings: new Set(['work_mem']) },
          ),
        '0A000',
      ).message,
    ).toContain('application_name');
    expect(
      filterStartupParams(
        new Map([
          ['user', 'hoop'],
          ['work_mem', '64MB'],
        ]),
        { settings: new Set(['work_mem']) },
      ).forward,
    ).toEqual([['work_mem', '64MB']]);
  });

  it('keeps timeouts within the access limits: lower ones pass, missing ones are set, higher ones and 0 are refused', () => {
    const limits = { statement_timeout: 30_000, lock_timeout: 5000 };
    expect(
      filterStartupParams(
        new Map([
          ['user', 'hoop'],
          ['statement_timeout', '10s'],
        ]),
        { limits },
      ).forward,
    ).toEqual([
      ['statement_timeout', '10s'],
      ['lock_timeout', '5000ms'],
    ]);
    for (const [name, value] of [
      ['statement_timeout', '0'],
      ['statement_timeout', '31s'],
      ['lock_timeout', '1min'],
      ['options', '-c statement_timeout=1h'],
    ]) {
      const e = protocolError(
        () =>
          filterStartupParams(
            new Map([
              ['user', 'hoop'],
              [name!, value!],
            ]),
            { limits },
          ),
        '0A000',
      );
      expect(e.message).toMatch(/is limited to (30 s|5 s) for this access/);
    }
  });
});

describe('MessageReader', () => {
  const backendStream = Buffer.concat([
    m.authenticationSASL(['SCRAM-SHA-256']),
    m.authenticationOk(),
    m.parameterStatus('client_encoding', 'UTF8'),
    m.parameterStatus('TimeZone', 'UTC'),
    m.backendKeyData(123, 456),
    m.noticeResponse({ severity: 'NOTICE', code: '00000', message: 'hi' }),
    Buffer.from([ch('1'), 0, 0, 0, 4]),
    Buffer.concat([header('D', 4 + 3000), Buffer.alloc(3000, 7)]),
    m.readyForQuery('I'),
  ]);
  const frontendStream = Buffer.concat([
    m.query('select 1'),
    Buffer.concat([header('P', 4 + 12), Buffer.from('\0select 1\0\0\0')]),
    Buffer.from([ch('S'), 0, 0, 0, 4]),
    Buffer.from([ch('H'), 0, 0, 0, 4]),
    Buffer.concat([header('d', 4 + 5), Buffer.from('hello')]),
    Buffer.from([ch('c'), 0, 0, 0, 4]),
    m.terminate(),
  ]);

  /** The messages read from `pieces`, as one string: type and hex of each (cheap to compare). */
  function feed(side: 'frontend' | 'backend', pieces: Buffer[]): string {
    const r = new MessageReader({ side });
    const out: string[] = [];
    for (const p of pieces) {
      r.push(p);
      for (let msg = r.next(); msg; msg = r.next()) {
        if (!msg.raw.subarray(5).equals(msg.body) || msg.raw[0] !== msg.type) throw new Error('body is not raw[5:]');
        out.push(`${msg.type}:${msg.raw.toString('hex')}`);
      }
    }
    if (r.bufferedBytes !== 0) throw new Error('bytes left over');
    return out.join(' ');
  }

  for (const [side, stream] of [
    ['backend', backendStream],
    ['frontend', frontendStream],
  ] as const) {
    it(`reads ${side} messages the same at every split point and one byte at a time`, () => {
      const whole = feed(side, [stream]);
      expect(Buffer.from(whole.replace(/\d+:| /g, ''), 'hex').equals(stream)).toBe(true);
      expect(whole.split(' ')).toHaveLength(side === 'backend' ? 9 : 7);
      for (let i = 0; i <= stream.length; i++) expect(feed(side, [stream.subarray(0, i), stream.subarray(i)])).toBe(whole);
      expect(
        feed(
          side,
          [...stream].map((b) => Buffer.from([b])),
        ),
      ).toBe(whole);
    });
  }

  it('reads the frontend stream the same at every pair of split points', () => {
    const whole = feed('frontend', [frontendStream]);
    for (let i = 0; i <= frontendStream.length; i++) {
      for (let j = i; j <= frontendStream.length; j++) {
        const parts = [frontendStream.subarray(0, i), frontendStream.subarray(i, j), frontendStream.subarray(j)];
        expect(feed('frontend', parts)).toBe(whole);
      }
    }
  });

  it('returns views into the chunk when a message lies inside it', () => {
    const chunk = Buffer.concat([m.query('select 1'), m.query('select 2')]);
    const r = new MessageReader({ side: 'frontend' });
    r.push(chunk);
    const a = r.next()!;
    const b = r.next()!;
    expect(a.raw.buffer).toBe(chunk.buffer);
    expect(b.raw.byteOffset).toBe(chunk.byteOffset + a.raw.length);
    expect(b.body.toString()).toBe('select 2\0');
  });

  it('reports the bytes held for an incomplete message', () => {
    const q = m.query('select 1');
    const r = new MessageReader({ side: 'frontend' });
    r.push(Buffer.concat([q, q.subarray(0, 3)]));
    expect(r.next()).not.toBeNull();
    expect(r.next()).toBeNull();
    expect(r.bufferedBytes).toBe(3);
    r.push(q.subarray(3, 7));
    expect(r.next()).toBeNull();
    expect(r.bufferedBytes).toBe(7);
    r.push(q.subarray(7));
    expect(r.next()!.raw).toEqual(q);
    expect(r.bufferedBytes).toBe(0);
  });

  it('hands over the unread bytes with takeBuffered', () => {
    const q = m.query('select 1');
    const rest = Buffer.concat([q, m.query('select 2')]).subarray(0, q.length + 7);
    const r = new MessageReader({ side: 'frontend' });
    r.push(Buffer.concat([q, rest.subarray(0, 3)]));
    r.push(rest.subarray(3, 10));
    r.push(rest.subarray(10));
    expect(r.next()!.raw).toEqual(q);
    expect(r.next()!.raw).toEqual(q);
    expect(r.next()).toBeNull();
    expect(r.takeBuffered()).toEqual(rest.subarray(q.length));
    expect(r.bufferedBytes).toBe(0);
    expect(r.takeBuffered().length).toBe(0);
    r.push(q);
    expect(r.next()!.raw).toEqual(q);
  });

  function fails(side: 'frontend' | 'backend', bytes: Buffer): PgProtocolError {
    const r = new MessageReader({ side });
    r.push(bytes);
    const e = protocolError(() => {
      while (r.next());
    });
    r.push(m.query('select 1'));
    expect(() => r.next()).toThrow(e);
    expect(r.bufferedBytes).toBe(0);
    return e;
  }

  it('refuses unknown types, on the first byte', () => {
    expect(fails('frontend', Buffer.from('Z')).message).toMatch(/unexpected frontend message type 'Z'/);
    fails('frontend', Buffer.from([0]));
    fails('frontend', Buffer.from('G'));
    fails('backend', Buffer.from('Q'));
    fails('backend', Buffer.from('p'));
    fails('frontend', Buffer.concat([m.query('x'), Buffer.from('R')]));
  });

  it('refuses bad lengths as soon as the header is in', () => {
    const huge = fails('frontend', header('Q', 0x7fffffff));
    expect(huge.message).toBe("message length 2147483647 exceeds the 1073741822-byte limit for 'Q'");
    fails('frontend', header('Q', 0xffffffff));
    fails('frontend', header('Q', 0x3fffffff)); // PostgreSQL's PQ_LARGE_MESSAGE_LIMIT is MaxAllocSize - 1
    fails('backend', header('D', 0x3fffffff));
    fails('frontend', header('Q', 3));
    fails('frontend', header('Q', 0));
    fails('backend', header('D', 3));
    expect(fails('frontend', header('S', 5)).message).toMatch(/must be 4/);
    fails('frontend', header('H', 8));
    fails('frontend', header('X', 5));
    fails('frontend', header('c', 6));
    fails('frontend', header('E', 10_001));
    fails('frontend', header('D', 10_001));
    fails('frontend', header('p', 65_536));
    fails('backend', header('Z', 6));
    fails('backend', header('Z', 4));
    fails('backend', header('1', 5));
  });

  it('accepts the limits themselves', () => {
    const r = new MessageReader({ side: 'frontend' });
    r.push(header('E', 10_000));
    expect(r.next()).toBeNull();
    expect(r.bufferedBytes).toBe(5);
    const q = new MessageReader({ side: 'frontend' });
    q.push(header('Q', 0x3ffffffe));
    expect(q.next()).toBeNull();
    const b = new MessageReader({ side: 'backend' });
    b.push(header('D', 0x3ffffffe));
    expect(b.next()).toBeNull();
  });

  it('reads a 50 MB message arriving in 64 KiB chunks (how fast: test/perf/parsing-speed.test.ts)', () => {
    const size = 50 * 1024 * 1024;
    const msg = Buffer.allocUnsafe(5 + size);
    msg[0] = ch('d');
    msg.writeUInt32BE(4 + size, 1);
    for (let i = 5; i < msg.length; i += 4096) msg[i] = i & 0xff;
    msg[msg.length - 1] = 0xab;
    const trailer = m.query('select 1');
    const all = Buffer.concat([msg, trailer]);
    const r = new MessageReader({ side: 'frontend' });
    const got: PgMessage[] = [];
    for (let i = 0; i < all.length; i += 65536) {
      r.push(all.subarray(i, Math.min(all.length, i + 65536)));
      for (let x = r.next(); x; x = r.next()) got.push(x);
    }
    expect(got).toHaveLength(2);
    expect(got[0]!.body.length).toBe(size);
    expect(got[0]!.raw.equals(msg)).toBe(true);
    expect(got[1]!.raw).toEqual(trailer);
  });
});

describe('MessageReader.frame', () => {
  const copyData = (text: string): Buffer => Buffer.concat([header('d', 4 + text.length), Buffer.from(text)]);
  const stream = Buffer.concat([
    Buffer.concat([header('H', 11), Buffer.from([0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0].slice(0, 7))]),
    copyData('1\talice\n'),
    copyData('2\tbob\n'),
    copyData('3\tcarol\n'),
    Buffer.concat([header('c', 4)]),
    Buffer.concat([header('C', 4 + 7), Buffer.from('COPY 3\0')]),
    Buffer.concat([header('Z', 5), Buffer.from('I')]),
  ]);

  /** Frames `stream` cut at `cuts` with `decide`; returns the bytes handed on in order and what the caller saw. */
  function frameAll(cuts: number[], decide: (type: number) => Framing): { bytes: Buffer; seen: string[]; runs: number } {
    const r = new MessageReader({ side: 'backend' });
    const run = new ByteRun();
    const out: Buffer[] = [];
    const seen: string[] = [];
    let at = 0;
    for (const c of [...cuts, stream.length]) {
      r.push(stream.subarray(at, c));
      at = c;
      for (let f = r.frame(decide, run); f; f = r.frame(decide, run)) {
        out.push(...run.take());
        if ('part' in f) {
          // A first part starts with the whole header, wherever the chunks were cut.
          if (f.first) expect([f.bytes[0], f.bytes.length >= 5 && f.bytes.readInt32BE(1)]).toEqual([f.type, f.length]);
          seen.push(`${String.fromCharCode(f.type)}${f.first ? '<' : ''}${f.last ? '>' : ''}`);
          out.push(f.bytes);
        } else {
          seen.push(String.fromCharCode(f.type));
          out.push(f.raw);
        }
      }
      out.push(...run.take());
    }
    expect(r.atBoundary).toBe(true);
    return { bytes: Buffer.concat(out), seen, runs: out.length };
  }

  it('passes, streams or returns whole each message as decided, at every split point, losing and reordering nothing (a first part holds the whole header)', () => {
    const passCopy = (t: number): Framing => (t === ch('d') ? 'pass' : 'whole');
    const streamCopy = (t: number): Framing => (t === ch('d') ? 'stream' : 'whole');
    for (let cut = 0; cut <= stream.length; cut++) {
      const passed = frameAll([cut], passCopy);
      expect(passed.bytes.equals(stream), `cut at ${cut}`).toBe(true);
      expect(passed.seen.join(''), `cut at ${cut}`).toBe('HcCZ');
      const streamed = frameAll([cut], streamCopy);
      expect(streamed.bytes.equals(stream), `cut at ${cut}`).toBe(true);
      const parts = streamed.seen.join(' ');
      expect(parts.match(/d</g), `cut at ${cut}`).toHaveLength(3);
      expect(parts.match(/d<?>/g), `cut at ${cut}`).toHaveLength(3);
    }
  });

  it('passes a run of rows without asking per row, at every pair of split points, telling how many before the next decision', () => {
    // Two runs of CopyData with a message of another type between them: each run ends there.
    const second = stream.indexOf(copyData('3\tcarol\n'));
    const runs = Buffer.concat([stream.subarray(0, second), header('N', 4 + 2), Buffer.from('\0\0'), stream.subarray(second)]);
    for (let a = 0; a <= runs.length; a++) {
      for (let b = a; b <= runs.length; b += 3) {
        const r = new MessageReader({ side: 'backend' });
        const run = new ByteRun();
        const out: Buffer[] = [];
        const log: string[] = [];
        let asked = 0;
        const decide = (t: number): Framing => {
          log.push(String.fromCharCode(t));
          if (t !== ch('d')) return 'whole';
          asked++;
          return 'run';
        };
        const ran = (t: number, n: number): void => void log.push(`${String.fromCharCode(t)}${n}`);
        let at = 0;
        for (const c of [a, b, runs.length]) {
          r.push(runs.subarray(at, c));
          at = c;
          for (let f = r.frame(decide, run, ran); f; f = r.frame(decide, run, ran)) {
            out.push(...run.take());
            out.push((f as PgMessage).raw);
          }
          out.push(...run.take());
          log.push('|');
        }
        expect(r.atBoundary).toBe(true);
        const where = `cuts at ${a}, ${b}`;
        expect(Buffer.concat(out).equals(runs), where).toBe(true);
        // Every 'd' asked about starts a run, counted before anything else is decided.
        let view = '';
        let open = false;
        let sum = 0;
        for (const t of log) {
          if (t === 'd') {
            expect(open, where).toBe(false);
            open = true;
          } else if (/^d\d+$/.test(t)) {
            expect(open, where).toBe(true);
            open = false;
            sum += Number(t.slice(1));
          } else if (t === '|') {
            // A run ends when frame() returns: the next chunk's rows are asked about again.
            expect(open, where).toBe(false);
          } else {
            expect(open, where).toBe(false);
            if (sum > 0) view += ` d${sum}`;
            sum = 0;
            view += ` ${t}`;
          }
        }
        expect(view.trim(), where).toBe('H d2 N d1 c C Z');
        // Once per run, and once more at most where a cut falls inside one.
        expect(asked, where).toBeLessThanOrEqual(4);
        if (a === b && (a === 0 || a === runs.length)) expect(asked, where).toBe(2);
      }
    }
  });

  it('asks once for a run of rows that came in one chunk', () => {
    const r = new MessageReader({ side: 'backend' });
    const run = new ByteRun();
    const rows = Buffer.concat(Array.from({ length: 1000 }, (_, i) => Buffer.concat([header('D', 4 + 6), Buffer.from([0, 1, 0, 0, 0, i % 10])])));
    r.push(Buffer.concat([rows, header('C', 4 + 9), Buffer.from('SELECT 1\0')]));
    let asked = 0;
    const counts: number[] = [];
    const f = r.frame(
      (t) => (t === ch('D') ? (asked++, 'run') : 'whole'),
      run,
      (_, n) => void counts.push(n),
    );
    expect(f && !('part' in f) && String.fromCharCode(f.type)).toBe('C');
    expect([asked, counts]).toEqual([1, [1000]]);
    expect(Buffer.concat(run.take()).equals(rows)).toBe(true);
  });

  it('hands on a run of passed messages in one chunk as one view of it', () => {
    const r = new MessageReader({ side: 'backend' });
    const run = new ByteRun();
    const copies = stream.subarray(12, 12 + 3 * 13);
    r.push(stream);
    const seen: number[] = [];
    for (let f = r.frame((t) => (t === ch('d') ? 'pass' : 'whole'), run); f; f = r.frame((t) => (t === ch('d') ? 'pass' : 'whole'), run)) {
      if (!('part' in f)) seen.push(f.type);
      if (f && !('part' in f) && f.type === ch('c')) {
        const [view] = run.take();
        expect(view!.buffer).toBe(stream.buffer);
        expect(view!.length).toBe(stream.indexOf(header('c', 4)) - 12);
      }
    }
    expect(copies.length).toBeGreaterThan(0);
    expect(seen.map((t) => String.fromCharCode(t)).join('')).toBe('HcCZ');
  });

  it('passes a message as it arrives, without holding it until it is complete', () => {
    const r = new MessageReader({ side: 'backend' });
    const run = new ByteRun();
    const big = Buffer.concat([header('D', 4 + 1000), Buffer.alloc(1000, 7)]);
    r.push(big.subarray(0, 300));
    expect(r.frame(() => 'pass', run)).toBeNull();
    expect(run.size).toBe(300);
    expect(r.bufferedBytes).toBe(0);
    expect(r.atBoundary).toBe(false);
    r.push(big.subarray(300));
    expect(r.frame(() => 'pass', run)).toBeNull();
    expect(Buffer.concat(run.take()).equals(big)).toBe(true);
    expect(r.atBoundary).toBe(true);
  });

  it('still refuses a bad length, whatever the decision', () => {
    const r = new MessageReader({ side: 'backend' });
    r.push(Buffer.concat([copyData('ok\n'), header('d', 2)]));
    const run = new ByteRun();
    expect(protocolError(() => r.frame(() => 'pass', run)).message).toMatch(/invalid message length 2/);
    // Inside a run too, and past the type's limit, wherever the bad header is.
    for (const bad of [header('d', 2), header('d', 0x40000000)]) {
      const rows = Buffer.concat([copyData('a\n'), copyData('b\n'), bad]);
      for (let cut = 0; cut <= rows.length; cut++) {
        const runner = new MessageReader({ side: 'backend' });
        runner.push(rows.subarray(0, cut));
        runner.push(rows.subarray(cut));
        expect(protocolError(() => runner.frame(() => 'run', new ByteRun())).message, `cut at ${cut}`).toMatch(/invalid message length 2|exceeds the/);
      }
    }
  });
});

describe('body parsers are bounds-checked', () => {
  it('throws PgProtocolError on truncated or malformed bodies', () => {
    protocolError(() => parseAuthentication(Buffer.alloc(3)));
    protocolError(() => parseAuthentication(Buffer.from([0, 0, 0, 0, 1])));
    protocolError(() => parseAuthentication(Buffer.from([0, 0, 0, 5, 1, 2, 3])));
    protocolError(() => parseAuthentication(Buffer.from([0, 0, 0, 5, 1, 2, 3, 4, 5])));
    protocolError(() => parseAuthentication(Buffer.concat([Buffer.from([0, 0, 0, 10]), Buffer.from('SCRAM-SHA-256\0')])));
    protocolError(() => parseAuthentication(Buffer.concat([Buffer.from([0, 0, 0, 10]), Buffer.from('SCRAM')])));
    protocolError(() => parseErrorFields(Buffer.from('SERROR\0')));
    protocolError(() => parseErrorFields(Buffer.from('SERROR')));
    protocolError(() => parseErrorFields(Buffer.from('SERROR\0\0x')));
    protocolError(() => parseParameterStatus(Buffer.from('a\0b')));
    protocolError(() => parseParameterStatus(Buffer.from('a\0b\0c')));
    protocolError(() => parseBackendKeyData(Buffer.alloc(7)));
    protocolError(() => parseBackendKeyData(Buffer.alloc(9)));
    protocolError(() => parseReadyForQuery(Buffer.from('X')));
    protocolError(() => parseReadyForQuery(Buffer.from('')));
    protocolError(() => parseReadyForQuery(Buffer.from('II')));
    protocolError(() => parsePasswordMessage(Buffer.from('secret')));
    protocolError(() => parsePasswordMessage(Buffer.from('sec\0ret\0')));
    protocolError(() => parseSaslInitialResponse(Buffer.from('SCRAM-SHA-256')));
    protocolError(() => parseSaslInitialResponse(Buffer.concat([cstrs('SCRAM-SHA-256'), Buffer.from([0, 0])])));
    protocolError(() => parseSaslInitialResponse(Buffer.concat([cstrs('SCRAM-SHA-256'), Buffer.from([0, 0, 0, 9]), Buffer.from('abc')])));
    protocolError(() => parseSaslInitialResponse(Buffer.concat([cstrs('SCRAM-SHA-256'), Buffer.from([0, 0, 0, 1]), Buffer.from('ab')])));
    protocolError(() => parseSaslInitialResponse(Buffer.concat([cstrs('SCRAM-SHA-256'), Buffer.from([0xff, 0xff, 0xff, 0xfe])])));
  });
});

describe('client encodings that could make SQL lex differently', () => {
  it.each(['SJIS', 'sjis', 'Shift_JIS', 'SHIFT_JIS_2004', 'shift-jis-2004', 'BIG5', 'GBK', 'UHC', 'GB18030', 'JOHAB', 'WIN932', 'windows950'])('refuses client_encoding %s with 0A000', (enc) => {
    const e = thrown(() =>
      filterStartupParams(
        new Map([
          ['user', 'hoop'],
          ['client_encoding', enc],
        ]),
      ),
    ) as PgProtocolError;
    expect(e).toBeInstanceOf(PgProtocolError);
    expect(e.sqlstate).toBe('0A000');
    expect(e.message).toContain('client_encoding');
  });

  it.each(['UTF8', 'utf-8', 'LATIN1', 'SQL_ASCII', 'EUC_JP', 'WIN1252'])('accepts client_encoding %s', (enc) => {
    expect(
      filterStartupParams(
        new Map([
          ['user', 'hoop'],
          ['client_encoding', enc],
        ]),
      ).forward,
    ).toEqual([['client_encoding', enc]]);
  });
});
