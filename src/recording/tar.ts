/**
 * A tar archive written as it streams (POSIX ustar: a 512-byte header per entry, the bytes padded
 * to 512, two empty blocks at the end), for the evidence bundle that `tar -xzf` opens anywhere.
 * Names up to 100 bytes, regular files and directories only: what a bundle holds.
 *
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/utilities/pax.html#tag_20_92_13_06 (ustar Interchange Format)
 */
import { createReadStream } from 'node:fs';
import type { Writable } from 'node:stream';

const BLOCK = 512;

/** A ustar header for `name` (`'0'`: a file of `size` bytes; `'5'`: a directory). */
function header(name: string, size: number, type: '0' | '5', mtime: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  if (Buffer.byteLength(name) > 100) throw new RangeError(`tar: the name ${name} is longer than 100 bytes`);
  const octal = (value: number, at: number, width: number): void => {
    h.write(`${value.toString(8).padStart(width - 1, '0')}\0`, at, 'ascii');
  };
  h.write(name, 0, 'utf8');
  octal(type === '5' ? 0o755 : 0o644, 100, 8);
  octal(0, 108, 8); // uid
  octal(0, 116, 8); // gid
  octal(size, 124, 12);
  octal(Math.floor(mtime / 1000), 136, 12);
  h.fill(' ', 148, 156); // the checksum counts its own field as spaces
  h.write(type, 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

/** Writes one chunk, waiting while `out` is full (back-pressure). */
async function put(out: Writable, chunk: Buffer): Promise<void> {
  if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', resolve));
}

/** Writes a tar archive entry by entry to `out` (which it does not end). */
export class TarWriter {
  constructor(
    private readonly out: Writable,
    private readonly mtime = Date.now(),
  ) {}

  async directory(name: string): Promise<void> {
    await put(this.out, header(name.endsWith('/') ? name : `${name}/`, 0, '5', this.mtime));
  }

  /** A file of these bytes. */
  async bytes(name: string, data: Buffer): Promise<void> {
    await put(this.out, header(name, data.length, '0', this.mtime));
    await put(this.out, data);
    await this.#pad(data.length);
  }

  /** A file of `size` bytes read from `path` as it streams (it must not change meanwhile). */
  async file(name: string, path: string, size: number): Promise<void> {
    await put(this.out, header(name, size, '0', this.mtime));
    let written = 0;
    for await (const chunk of createReadStream(path)) {
      written += (chunk as Buffer).length;
      if (written > size) throw new Error(`tar: ${path} grew while it was archived`);
      await put(this.out, chunk as Buffer);
    }
    if (written !== size) throw new Error(`tar: ${path} shrank while it was archived`);
    await this.#pad(size);
  }

  /** The two empty blocks that end the archive. */
  async end(): Promise<void> {
    await put(this.out, Buffer.alloc(2 * BLOCK));
  }

  async #pad(size: number): Promise<void> {
    const rest = size % BLOCK;
    if (rest !== 0) await put(this.out, Buffer.alloc(BLOCK - rest));
  }
}
