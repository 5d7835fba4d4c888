import { describe, expect, it } from 'vitest';
import { Conversation } from '../../src/mysql/pipeline/conversation.js';
import { Cap } from '../../src/mysql/wire/handshake.js';
import { MySqlProtocolError } from '../../src/mysql/wire/protocol-error.js';
import { columnDefinition, eofPacket, errPacket, okPacket, parseBinaryRow, Status, textRow } from '../../src/mysql/wire/results.js';

const col = columnDefinition({ schema: 'app', table: 't', orgTable: 't', name: 'c', orgName: 'c', charset: 45, length: 10, type: 253, flags: 0, decimals: 0 });
const query = Buffer.from('\x03SELECT 1', 'latin1');
const kinds = (c: Conversation, packets: Buffer[]) => packets.map((p) => c.server(p).kind);

describe('the MySQL conversation', () => {
  it('reads a result set with EOF packets, then one under DEPRECATE_EOF', () => {
    const classic = new Conversation(Cap.PROTOCOL_41);
    classic.command(query);
    expect(kinds(classic, [Buffer.from([2]), col, col, eofPacket(2), textRow(['a', null]), textRow(['b', 'c']), eofPacket(2)])).toEqual([
      'column-count',
      'column',
      'column',
      'columns-end',
      'row',
      'row',
      'rows-end',
    ]);
    expect(classic.answering).toBe(false);
    const modern = new Conversation(Cap.PROTOCOL_41 | Cap.DEPRECATE_EOF);
    modern.command(query);
    expect(kinds(modern, [Buffer.from([1]), col, textRow(['a']), okPacket({ header: 0xfe })])).toEqual(['column-count', 'column', 'row', 'rows-end']);
    expect(modern.answering).toBe(false);
  });

  it('follows multiple results to the last, an OK among them, and an error that ends them', () => {
    const c = new Conversation(Cap.PROTOCOL_41 | Cap.DEPRECATE_EOF);
    c.command(query);
    const more = Status.MORE_RESULTS_EXISTS | Status.AUTOCOMMIT;
    expect(c.server(Buffer.from([1])).kind).toBe('column-count');
    c.server(col);
    c.server(textRow(['1']));
    expect(c.server(okPacket({ header: 0xfe, status: more }))).toEqual({ kind: 'rows-end', more: true });
    expect(c.server(okPacket({ affectedRows: 2n, status: more }))).toEqual({ kind: 'ok', more: true });
    expect(c.server(errPacket({ code: 1146, sqlState: '42S02', message: 'no table' }))).toEqual({ kind: 'err' });
    expect(c.answering).toBe(false);
    expect(() => c.server(okPacket())).toThrow(MySqlProtocolError);
  });

  it('reads a prepared statement description: parameters then columns, each with its EOF', () => {
    const c = new Conversation(Cap.PROTOCOL_41);
    c.command(Buffer.from('\x16SELECT ?, ?', 'latin1'));
    const prepared = Buffer.alloc(12);
    prepared.writeUInt32LE(7, 1);
    prepared.writeUInt16LE(1, 5);
    prepared.writeUInt16LE(2, 7);
    expect(c.server(prepared)).toEqual({ kind: 'prepared', statement: 7, columns: 1, params: 2 });
    expect(kinds(c, [col, col, eofPacket(2), col, eofPacket(2)])).toEqual(['param', 'param', 'columns-end', 'column', 'columns-end']);
    expect(c.answering).toBe(false);
    c.command(Buffer.from([0x19, 7, 0, 0, 0]));
    expect(c.answering).toBe(false);
  });

  it('reads a binary row as the text protocol would say it', () => {
    const types = [
      { type: 3, flags: 0 },
      { type: 8, flags: 32 },
      { type: 5, flags: 0 },
      { type: 12, flags: 0 },
      { type: 253, flags: 0 },
      { type: 253, flags: 0 },
    ];
    const bitmap = Buffer.from([1 << 7]); // (columns + 7 + 2) / 8 bytes, the NULL bits from bit 2: column 5 is bit 7
    const long = Buffer.alloc(4);
    long.writeInt32LE(-5);
    const big = Buffer.alloc(8);
    big.writeBigUInt64LE(18446744073709551615n);
    const dbl = Buffer.alloc(8);
    dbl.writeDoubleLE(1.5);
    const dt = Buffer.from([11, 0xe9, 0x07, 11, 27, 3, 4, 5, 0x40, 0xe2, 0x01, 0x00]);
    const payload = Buffer.concat([Buffer.from([0]), bitmap, long, big, dbl, dt, Buffer.from([2]), Buffer.from('hi')]);
    expect(parseBinaryRow(payload, types).map((v) => v?.toString())).toEqual(['-5', '18446744073709551615', '1.5', '2025-11-27 03:04:05.123456', 'hi', undefined]);
  });
});
