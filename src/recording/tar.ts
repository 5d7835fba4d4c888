/**
 * A tar archive written as it streams (POSIX ustar: a 512-byte header per entry, the bytes padded
 * to 512, two empty blocks at the end), for the evidence bundle that `tar -xzf` opens anywhere;
 * and small archives made and read whole, for the CLI's records uploaded in one request
 * (`POST /v1/client-records`). Names up to 100 bytes, regular files and directories only: what a
 * bundle holds.
 *
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/utilities/pax.html#tag_20_92_13_06 (ustar Interchange Format)
 */
import { realClock } from '../clock.js';
import { createReadStream } from 'node:fs';
import type { Writable } from 'node:stream';

/** A ustar archive's unit: every header is one, every file is padded to whole ones. */
export const BLOCK = 512;

/** A ustar header for `name` (`'0'`: a file of `size` bytes; `'5'`: a directory). */
export function header(name: string, size: number, type: '0' | '5', mtime: number): Buffer {
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
  for (let i = 0; i < BLOCK; i++) sum += h[i]!;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

/** The zeros that pad `size` bytes of a file to a whole block (none when it fills its last one). */
export function padding(size: number): Buffer | undefined {
  const rest = size % BLOCK;
  return rest === 0 ? undefined : Buffer.alloc(BLOCK - rest);
}

/** Writes one chunk, waiting while `out` is full (back-pressure). */
async function put(out: Writable, chunk: Buffer): Promise<void> {
  if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', resolve));
}

/** Writes a tar archive entry by entry to `out` (which it does not end). */
export class TarWriter {
  constructor(
    private readonly out: Writable,
    private readonly mtime = realClock.now(),
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
    const pad = padding(size);
    if (pad) await put(this.out, pad);
  }
}

/** A file read from a tar archive. */
export interface TarEntry {
  name: string;
  data: Buffer;
}

/**
 * The regular files of a ustar archive held whole in `archive` (what {@link TarWriter} writes;
 * directories are skipped). Strict: every header's checksum, the `ustar` magic, an octal size that
 * fits the archive, and the two empty blocks at the end are required; at most `maxEntries` files.
 *
 * @throws RangeError naming what is wrong, for an archive that is not one
 */
export function readTar(archive: Buffer, maxEntries: number): TarEntry[] {
  const entries: TarEntry[] = [];
  for (let at = 0; ; ) {
    if (at + 2 * BLOCK > archive.length) throw new RangeError('tar: the archive ends without its two empty blocks');
    const h = readHeader(archive.subarray(at, at + BLOCK), at);
    if (!h) {
      if (!archive.subarray(at + BLOCK, at + 2 * BLOCK).every((b) => b === 0)) throw new RangeError(`tar: an empty block at ${at} is not followed by another`);
      return entries;
    }
    const start = at + BLOCK;
    if (start + h.size > archive.length) throw new RangeError(`tar: ${h.name} says ${h.size} bytes, more than the archive holds`);
    if (h.type === '0') {
      if (entries.length >= maxEntries) throw new RangeError(`tar: more than ${maxEntries} files`);
      entries.push({ name: h.name, data: archive.subarray(start, start + h.size) });
    }
    at = start + Math.ceil(h.size / BLOCK) * BLOCK;
  }
}

/**
 * The ustar header in `h` (the block at `at` of its archive): its name, size and type (a file,
 * `'0'`, or a directory, `'5'`); undefined for an empty block (the end of the archive). Strict:
 * its checksum, the `ustar` magic and an octal size.
 *
 * @throws RangeError naming what is wrong
 */
export function readHeader(h: Buffer, at: number): { name: string; size: number; type: '0' | '5' } | undefined {
  if (h.every((b) => b === 0)) return undefined;
  const field = (from: number, width: number): string => h.toString('latin1', from, from + width).replace(/[\0 ]+$/, '');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  const stored = field(148, 8);
  if (!/^[0-7]+$/.test(stored) || Number.parseInt(stored, 8) !== sum) throw new RangeError(`tar: the header at ${at} has a wrong checksum`);
  if (h.toString('latin1', 257, 262) !== 'ustar') throw new RangeError(`tar: the header at ${at} is not ustar`);
  const name = h.toString('utf8', 0, 100).replace(/\0.*$/s, '');
  if (h[345] !== 0) throw new RangeError(`tar: ${name} has a name prefix (names are read up to 100 bytes)`);
  const sizeText = field(124, 12);
  if (!/^[0-7]+$/.test(sizeText)) throw new RangeError(`tar: ${name} has no octal size`);
  const type = String.fromCharCode(h[156]!);
  if (type !== '0' && type !== '\0' && type !== '5') throw new RangeError(`tar: ${name} is neither a file nor a directory (type ${JSON.stringify(type)})`);
  return { name, size: Number.parseInt(sizeText, 8), type: type === '5' ? '5' : '0' };
}

/** A whole ustar archive of these files, in memory (a few small ones: a batch of records). */
export function tarOf(files: readonly TarEntry[], mtime = realClock.now()): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    const pad = padding(f.data.length);
    parts.push(header(f.name, f.data.length, '0', mtime), f.data, ...(pad ? [pad] : []));
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}
