/**
 * The SFTP stage on packets as a client and a server would send them: every change recorded as it
 * is sent (extensions too) and its failure with the answer; a reused request id ends the session;
 * a read-only session refuses what it does not know to be read-only.
 */
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { SftpProtocolError, SftpStage, type SftpEvent } from '../../src/ssh/common/sftp-stage.js';

/** One side of the channel: what the test pushes in as `data`, what the stage wrote to it. */
class Side extends EventEmitter {
  readonly written: Buffer[] = [];
  write(b: Buffer): boolean {
    this.written.push(Buffer.from(b));
    return true;
  }
  end(): void {}
  destroy(): void {}
  pause(): void {}
  resume(): void {}
}

const str = (s: string | Buffer): Buffer => {
  const b = Buffer.from(s);
  const n = Buffer.alloc(4);
  n.writeUInt32BE(b.length);
  return Buffer.concat([n, b]);
};
const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};
/** An SFTP packet: length, type, id, fields. */
const packet = (type: number, id: number, ...fields: Buffer[]): Buffer => {
  const body = Buffer.concat([Buffer.from([type]), u32(id), ...fields]);
  return Buffer.concat([u32(body.length), body]);
};
const OPEN = 3,
  FSETSTAT = 10,
  REMOVE = 13,
  EXTENDED = 200,
  STATUS = 101,
  HANDLE = 102;

function stage(readOnly: boolean) {
  const events: SftpEvent[] = [];
  const s = new SftpStage(readOnly, (e) => events.push(e));
  const client = new Side();
  const server = new Side();
  s.relay(client as never, server as never, () => undefined);
  return { events, client, server, send: (b: Buffer) => client.emit('data', b), answer: (b: Buffer) => server.emit('data', b) };
}

describe('the sftp stage', () => {
  it('relays packets whole and unchanged however the channel cuts them: one byte at a time, across packets, several at once', () => {
    const packets = [packet(OPEN, 1, str('/a.txt'), u32(1), u32(0)), packet(REMOVE, 2, str('x'.repeat(7_000))), packet(OPEN, 3, str('/b.txt'), u32(1), u32(0))];
    const all = Buffer.concat(packets);
    for (const cut of [1, 3, 5, 4096, 7_011, all.length]) {
      const { send, server, events } = stage(false);
      for (let at = 0; at < all.length; at += cut) send(all.subarray(at, at + cut));
      expect(server.written.map((b) => b.toString('hex'))).toEqual(packets.map((b) => b.toString('hex')));
      expect(events.map((e) => e.op)).toEqual(['remove']);
    }
  });

  it('ends the session when a request reuses the id of one not yet answered', () => {
    const { send, server } = stage(false);
    const twice = Buffer.concat([packet(OPEN, 7, str('/secret.txt'), u32(1), u32(0)), packet(OPEN, 7, str('/decoy.txt'), u32(1), u32(0))]);
    expect(() => send(twice)).toThrow(SftpProtocolError);
    expect(server.written).toHaveLength(1);
  });

  it('records every change as it is sent, extensions and handle operations too, and a failure with its answer', () => {
    const { send, answer, events } = stage(false);
    send(packet(OPEN, 1, str('/f.txt'), u32(0x02 | 0x08), u32(0)));
    answer(packet(HANDLE, 1, str('h1')));
    send(packet(FSETSTAT, 2, str('h1'), u32(0)));
    send(packet(EXTENDED, 3, str('posix-rename@openssh.com'), str('/a'), str('/b')));
    send(packet(EXTENDED, 4, str('hardlink@openssh.com'), str('/b'), str('/c')));
    send(packet(EXTENDED, 5, str('copy-data'), str('h1')));
    send(packet(REMOVE, 6, str('/gone')));
    answer(packet(STATUS, 6, u32(2), str('no such file'), str('')));
    expect(events).toEqual([
      { op: 'open', path: '/f.txt', mode: 'write' },
      { op: 'fsetstat', path: '/f.txt' },
      { op: 'extended', name: 'posix-rename@openssh.com', path: '/a', to: '/b' },
      { op: 'extended', name: 'hardlink@openssh.com', path: '/b', to: '/c' },
      { op: 'extended', name: 'copy-data' },
      { op: 'remove', path: '/gone' },
      { op: 'remove', path: '/gone', failed: 2 },
    ]);
  });

  it('refuses on a read-only session what it does not know to be read-only: writes, unknown extensions and packet types', () => {
    const { send, client, server, events } = stage(true);
    send(packet(21, 1, str('/a'), str('/b'))); // SSH_FXP_LINK of later drafts
    send(packet(EXTENDED, 2, str('copy-data'), str('h')));
    send(packet(OPEN, 3, str('/x'), u32(0x01 | 0x08), u32(0)));
    send(packet(EXTENDED, 4, str('statvfs@openssh.com'), str('/')));
    expect(server.written).toEqual([packet(EXTENDED, 4, str('statvfs@openssh.com'), str('/'))]); // only statvfs
    expect(client.written.map((b) => [b[4], b.readUInt32BE(5), b.readUInt32BE(9)])).toEqual([
      [STATUS, 1, 3],
      [STATUS, 2, 3],
      [STATUS, 3, 3],
    ]);
    expect(events.filter((e) => e.refused)).toHaveLength(3);
    expect(events.every((e) => e.refused)).toBe(true);
  });
});
