import { describe, expect, it } from 'vitest';
import { scramble, scrambleMatches } from '../../src/mysql/wire/auth.js';
import { Cap, greeting, handshakeResponse, isSslRequest, parseGreeting, parseHandshakeResponse, sslRequest } from '../../src/mysql/wire/handshake.js';
import { Cursor, lenenc, lenencBytes, MAX_PACKET_PAYLOAD, packet, PacketReader } from '../../src/mysql/wire/packets.js';
import { MySqlProtocolError } from '../../src/mysql/wire/protocol-error.js';
import { columnDefinition, errPacket, isEof, okPacket, parseColumnDefinition, parseErr, parseOk, parseTextRow, textRow } from '../../src/mysql/wire/results.js';

describe('MySQL packets', () => {
  it('cuts a stream into packets however its bytes arrive', () => {
    const wire = Buffer.concat([packet(0, Buffer.from('abc')), packet(1, Buffer.alloc(0)), packet(7, Buffer.alloc(300, 1))]);
    for (const cut of [1, 2, 3, 4, 5, 9, wire.length]) {
      const reader = new PacketReader();
      const got = [];
      for (let at = 0; at < wire.length; at += cut) got.push(...reader.push(wire.subarray(at, at + cut)));
      expect(got.map((p) => [p.seq, p.next, p.payload.length])).toEqual([
        [0, 1, 3],
        [1, 2, 0],
        [7, 8, 300],
      ]);
      expect(reader.buffered).toBe(0);
      // A packet one chunk held whole keeps its bytes as they came; one cut across chunks has none to keep.
      const frames = [wire.subarray(0, 7), wire.subarray(7, 11), wire.subarray(11)];
      for (const [i, p] of got.entries()) if (p.raw) expect(p.raw.equals(frames[i]!)).toBe(true);
      if (cut === wire.length) expect(got.every((p) => p.raw !== undefined)).toBe(true);
      if (cut < 4) expect(got.every((p) => p.raw === undefined)).toBe(true);
    }
  });

  it('joins a payload of 2^24 - 1 bytes or more from its packets, an exact multiple ending with an empty one', () => {
    for (const size of [MAX_PACKET_PAYLOAD, MAX_PACKET_PAYLOAD + 5]) {
      const payload = Buffer.alloc(size, 7);
      const wire = packet(255, payload);
      expect(wire.length).toBe(size + 8);
      const [p, ...rest] = new PacketReader().push(wire);
      expect(rest).toEqual([]);
      expect(p!.seq).toBe(255);
      expect(p!.next).toBe(1);
      expect(p!.payload.equals(payload)).toBe(true);
    }
  });

  it('refuses a packet larger than its limit before buffering it', () => {
    const reader = new PacketReader(1024);
    const head = Buffer.from([0x01, 0x04, 0x00, 0x00]);
    expect(() => reader.push(head)).toThrow(MySqlProtocolError);
  });

  it('writes and reads length-encoded integers and strings at every width', () => {
    for (const n of [0, 250, 251, 0xffff, 0x10000, 0xffffff, 0x1000000, 2 ** 40]) expect(new Cursor(lenenc(n)).lenenc()).toBe(n);
    const c = new Cursor(Buffer.concat([lenencBytes('héllo'), lenencBytes(null)]));
    expect(c.lenencString()).toBe('héllo');
    expect(c.lenencBytesOrNull()).toBeNull();
    expect(() => new Cursor(Buffer.from([0xfc, 1])).lenenc()).toThrow(MySqlProtocolError);
  });
});

describe('MySQL handshake', () => {
  const nonce = Buffer.from('0123456789abcdefghij');
  const g = {
    protocolVersion: 10,
    serverVersion: '5.5.5-10.11.19-MariaDB',
    connectionId: 42,
    nonce,
    capabilities: (Cap.PROTOCOL_41 | Cap.SECURE_CONNECTION | Cap.PLUGIN_AUTH | Cap.SSL | Cap.DEPRECATE_EOF) >>> 0,
    mariadbCapabilities: 0,
    charset: 45,
    status: 2,
    authPlugin: 'mysql_native_password',
  };

  it('reads back the greeting it writes', () => {
    expect(parseGreeting(greeting(g))).toEqual(g);
  });

  it('reads back a handshake response, with attributes, and tells an SSLRequest from it', () => {
    const r = {
      capabilities: (Cap.PROTOCOL_41 | Cap.SECURE_CONNECTION | Cap.PLUGIN_AUTH | Cap.PLUGIN_AUTH_LENENC_CLIENT_DATA | Cap.CONNECT_WITH_DB | Cap.CONNECT_ATTRS) >>> 0,
      maxPacketSize: 1 << 24,
      charset: 45,
      mariadbCapabilities: 0,
      user: 'app',
      authResponse: scramble('mysql_native_password', 'secret', nonce),
      database: 'shop',
      authPlugin: 'mysql_native_password',
      attributes: [
        ['_client_name', 'libmariadb'],
        ['program_name', 'mysql'],
      ] as Array<[string, string]>,
    };
    const wire = handshakeResponse(r);
    expect(parseHandshakeResponse(wire)).toEqual(r);
    expect(isSslRequest(wire)).toBe(false);
    expect(isSslRequest(sslRequest(r.capabilities, r.maxPacketSize, 45))).toBe(true);
  });

  it('refuses a client that does not speak protocol 4.1', () => {
    expect(() => parseHandshakeResponse(Buffer.alloc(40))).toThrow(/4\.1/);
  });

  it('matches a scramble only for the password it was made from (a real server checks it in test/integration/mysql-wire.test.ts)', () => {
    const a = scramble('mysql_native_password', 'pw', nonce);
    expect(a).toHaveLength(20);
    expect(scrambleMatches('mysql_native_password', 'pw', nonce, a)).toBe(true);
    expect(scrambleMatches('mysql_native_password', 'px', nonce, a)).toBe(false);
    const b = scramble('caching_sha2_password', 'pw', nonce);
    expect(b).toHaveLength(32);
    expect(scrambleMatches('caching_sha2_password', 'pw', nonce, b)).toBe(true);
    expect(scramble('mysql_native_password', '', nonce)).toHaveLength(0);
  });
});

describe('MySQL results', () => {
  it('reads back OK, ERR, EOF, column definitions and rows', () => {
    const ok = parseOk(okPacket({ affectedRows: 3n, lastInsertId: 9n, status: 0x22, warnings: 1, info: 'Rows matched: 3' }), 0);
    expect(ok).toEqual({ affectedRows: 3n, lastInsertId: 9n, status: 0x22, warnings: 1, info: 'Rows matched: 3' });
    expect(parseErr(errPacket({ code: 1045, sqlState: '28000', message: 'Access denied' }))).toEqual({ code: 1045, sqlState: '28000', message: 'Access denied' });
    const d = { schema: 'app', table: 'i', orgTable: 'items', name: 'n', orgName: 'name', charset: 45, length: 1020, type: 0xfc, flags: 16, decimals: 0 };
    expect(parseColumnDefinition(columnDefinition(d))).toEqual(d);
    expect(parseTextRow(textRow(['1', null, Buffer.from('x')]), 3)).toEqual([Buffer.from('1'), null, Buffer.from('x')]);
    expect(isEof(okPacket({ header: 0xfe }))).toBe(true);
    expect(isEof(textRow(['a']))).toBe(false);
  });

  it("reads an OK whose insert id is past 2^53: a signed AUTO_INCREMENT column's -999, as MariaDB sends it (the mysql2 suite's test-insert-negative-ai)", () => {
    const minus999 = Buffer.alloc(8);
    minus999.writeBigInt64LE(-999n);
    const sent = Buffer.concat([Buffer.from([0x00, 0x01, 0xfe]), minus999, Buffer.from([0x02, 0x00, 0x00, 0x00])]);
    const ok = parseOk(sent, 0);
    expect(ok).toEqual({ affectedRows: 1n, lastInsertId: 2n ** 64n - 999n, status: 2, warnings: 0, info: '' });
    expect(BigInt.asIntN(64, ok.lastInsertId)).toBe(-999n);
    expect(okPacket(ok)).toEqual(sent);
  });
});
