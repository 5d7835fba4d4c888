/** A test's reader of the MySQL packets arriving on a stream, one at a time, and of its close. */
import type { Duplex } from 'node:stream';
import { PacketReader, type MySqlPacket } from '../../src/mysql/wire/packets.js';

/** Reads packets off `stream` as they come; `next` rejects once it closed with none left. */
export function packets(stream: Duplex): { next(): Promise<MySqlPacket>; closed: Promise<void> } {
  const reader = new PacketReader();
  const ready: MySqlPacket[] = [];
  let wake: (() => void) | undefined;
  stream.on('data', (c: Buffer) => {
    ready.push(...reader.push(c));
    wake?.();
  });
  stream.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => {
    stream.once('end', () => resolve());
    stream.once('close', () => resolve());
  });
  return {
    closed,
    async next() {
      while (ready.length === 0) await Promise.race([new Promise<void>((r) => (wake = r)), closed.then(() => Promise.reject(new Error('closed')))]);
      return ready.shift()!;
    },
  };
}
