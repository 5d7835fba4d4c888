/**
 * The SFTP stage of both SSH ends: reads the packets of an sftp subsystem channel once in each
 * direction, relays them unchanged, records the file operations (opens, failed ones too, and closes
 * with their mode and bytes read and written; every request that changes files, extensions
 * included, as it is sent, and its failure when the server answers one), and on a read-only session answers every
 * request that would change the server's files with SSH_FX_PERMISSION_DENIED instead of relaying
 * it. An extension or a packet type the stage does not know to be read-only is refused too (fail
 * closed). A request that reuses the id of one still unanswered is a protocol violation (it would
 * let answers be matched to the wrong request): the session ends.
 *
 * @see https://datatracker.ietf.org/doc/html/draft-ietf-secsh-filexfer-02 (SFTP version 3, as OpenSSH speaks it)
 * @see https://github.com/openssh/openssh-portable/blob/master/PROTOCOL (OpenSSH's extensions)
 */
import { ErrorCode, HoopError } from '../../errors.js';
import type { Readable, Writable } from 'node:stream';
import { ChunkQueue } from '../../tunnel/chunk-queue.js';

/** Packet types (draft-ietf-secsh-filexfer-02, section 3). */
const T = {
  INIT: 1,
  VERSION: 2,
  OPEN: 3,
  CLOSE: 4,
  READ: 5,
  WRITE: 6,
  LSTAT: 7,
  FSTAT: 8,
  SETSTAT: 9,
  FSETSTAT: 10,
  OPENDIR: 11,
  READDIR: 12,
  REMOVE: 13,
  MKDIR: 14,
  RMDIR: 15,
  REALPATH: 16,
  STAT: 17,
  RENAME: 18,
  READLINK: 19,
  SYMLINK: 20,
  STATUS: 101,
  HANDLE: 102,
  DATA: 103,
  NAME: 104,
  ATTRS: 105,
  EXTENDED: 200,
  EXTENDED_REPLY: 201,
} as const;

/** `pflags` of SSH_FXP_OPEN that write. */
const WRITE_FLAGS = 0x02 | 0x04 | 0x08 | 0x10;
const SSH_FX_PERMISSION_DENIED = 3;
/** Request types that only read. */
const READS = new Set<number>([T.OPEN, T.CLOSE, T.READ, T.LSTAT, T.FSTAT, T.OPENDIR, T.READDIR, T.REALPATH, T.STAT, T.READLINK]);
/** Extensions that name two paths (from, to) and one path; others are recorded by name. */
const TWO_PATH_EXTENSIONS = new Set(['posix-rename@openssh.com', 'hardlink@openssh.com']);
const ONE_PATH_EXTENSIONS = new Set(['lsetstat@openssh.com', 'statvfs@openssh.com', 'expand-path@openssh.com']);
/** Extensions that only read (OpenSSH's PROTOCOL file); any other is refused on a read-only session. */
const READ_EXTENSIONS = new Set([
  'statvfs@openssh.com',
  'fstatvfs@openssh.com',
  'limits@openssh.com',
  'expand-path@openssh.com',
  'home-directory',
  'users-groups-by-id@openssh.com',
  'fsync@openssh.com',
]);
/** Largest packet relayed (OpenSSH's sftp-server takes 256 KiB). */
export const MAX_SFTP_PACKET = 1024 * 1024;
/** Requests waiting for an answer that the stage remembers (a client pipelines far fewer). */
const MAX_PENDING = 4096;

/** An sftp operation as the recording keeps it. */
export type SftpEvent = { op: string; name?: string; path?: string; to?: string; mode?: 'read' | 'write'; read?: number; written?: number; refused?: true; failed?: number };

/** A client broke the SFTP protocol in a way the stage cannot judge past: the session ends. */
export class SftpProtocolError extends HoopError {
  constructor(message: string) {
    super(ErrorCode.PROTOCOL_VIOLATION, message);
  }
}

/** A request waiting for its answer. */
interface Pending {
  type: number;
  path?: string;
  handle?: string;
  mode?: 'read' | 'write';
  /** The change it asked for, as recorded (its failure is recorded with the answer). */
  change?: SftpEvent;
}

interface OpenFile {
  path: string;
  mode: 'read' | 'write';
  read: number;
  written: number;
}

/** See the module documentation. */
export class SftpStage {
  readonly #readOnly: boolean;
  readonly #record: (e: SftpEvent) => void;
  /** Request id → what it asked, until the server answers. */
  readonly #pending = new Map<number, Pending>();
  readonly #handles = new Map<string, OpenFile>();
  readonly #counts = { opened: 0, refused: 0, read: 0, written: 0 };

  constructor(readOnly: boolean, record: (e: SftpEvent) => void) {
    this.#readOnly = readOnly;
    this.#record = record;
  }

  /** What the session did, for the channel's exit event. */
  summary(): { opened: number; refused: number; read: number; written: number } {
    return { ...this.#counts };
  }

  /** Relays the channel: `client` is the client's side, `server` the target's; `serverEnded` runs at the target's EOF. */
  relay(client: Readable & Writable, server: Readable & Writable, serverEnded: () => void): void {
    packets(
      client,
      server,
      (p) => this.#request(p, client),
      () => server.end(),
    );
    packets(server, client, (p) => this.#answer(p), serverEnded);
  }

  /** A client request: relayed (true), or answered here with a refusal (false). */
  #request(p: Buffer, client: Writable): boolean {
    const type = p[4]!;
    if (type === T.INIT || p.length < 9) return true;
    const id = p.readUInt32BE(5);
    if (this.#pending.has(id)) throw new SftpProtocolError(`sftp request id ${id} was sent again before the server answered it`);
    const r = new Reader(p, 9);
    /** What the request changes, recorded as it is sent (undefined: it only reads). */
    let change: SftpEvent | undefined;
    let handle: string | undefined;
    let mode: 'read' | 'write' | undefined;
    let path: string | undefined;
    if (type === T.OPEN) {
      path = r.string();
      // A malformed OPEN is taken as one that writes.
      const flags = r.u32() ?? WRITE_FLAGS;
      mode = flags & WRITE_FLAGS ? 'write' : 'read';
    } else if (type === T.EXTENDED) {
      const name = r.string() ?? '?';
      if (!READ_EXTENSIONS.has(name)) {
        const from = TWO_PATH_EXTENSIONS.has(name) || ONE_PATH_EXTENSIONS.has(name) ? r.string() : undefined;
        const to = TWO_PATH_EXTENSIONS.has(name) ? r.string() : undefined;
        change = { op: 'extended', name, ...(from !== undefined ? { path: from } : {}), ...(to !== undefined ? { to } : {}) };
      }
    } else if (type === T.READ || type === T.WRITE || type === T.CLOSE || type === T.FSETSTAT) {
      handle = r.bytes()?.toString('latin1');
      const file = handle !== undefined ? this.#handles.get(handle) : undefined;
      if (type === T.WRITE) {
        r.skip(8);
        const n = r.u32() ?? 0;
        // Writes are counted on their file's close, not recorded one by one (a read-only session refuses them).
        if (this.#readOnly) change = { op: 'write', path: file?.path ?? '?' };
        else {
          if (file) file.written += n;
          this.#counts.written += n;
        }
      } else if (type === T.FSETSTAT) change = { op: 'fsetstat', path: file?.path ?? '?' };
    } else if (type === T.RENAME || type === T.SYMLINK) {
      const from = r.string();
      const to = r.string();
      change = { op: opName(type), ...(from !== undefined ? { path: from } : {}), ...(to !== undefined ? { to } : {}) };
    } else if (type === T.REMOVE || type === T.MKDIR || type === T.RMDIR || type === T.SETSTAT) {
      change = { op: opName(type), path: r.string() ?? '?' };
    } else if (type === T.OPENDIR) {
      path = r.string();
    } else if (!READS.has(type)) {
      change = { op: opName(type) };
    }
    const refuse = this.#readOnly && (change !== undefined || mode === 'write');
    if (refuse) {
      this.#counts.refused++;
      this.#record({ ...(change ?? { op: 'open', ...(path !== undefined ? { path } : {}), mode: 'write' }), refused: true });
      client.write(status(id, SSH_FX_PERMISSION_DENIED, "hoop: this session is read-only (the policy's ssh.sftp, or read-only access)"));
      return false;
    }
    if (change) this.#record(change);
    this.#remember(id, { type, ...(path !== undefined ? { path } : {}), ...(handle !== undefined ? { handle } : {}), ...(mode ? { mode } : {}), ...(change ? { change } : {}) });
    return true;
  }

  #remember(id: number, request: Pending): void {
    if (this.#pending.size >= MAX_PENDING) this.#pending.delete(this.#pending.keys().next().value!);
    this.#pending.set(id, request);
  }

  /** A server answer: always relayed. */
  #answer(p: Buffer): boolean {
    const type = p[4]!;
    if (type === T.VERSION || p.length < 9) return true;
    const id = p.readUInt32BE(5);
    const asked = this.#pending.get(id);
    if (!asked) return true;
    this.#pending.delete(id);
    const r = new Reader(p, 9);
    if (type === T.HANDLE && asked.type === T.OPEN) {
      const handle = r.bytes()?.toString('latin1');
      this.#counts.opened++;
      if (handle !== undefined && this.#handles.size < MAX_PENDING) this.#handles.set(handle, { path: asked.path ?? '?', mode: asked.mode ?? 'read', read: 0, written: 0 });
      this.#record({ op: 'open', path: asked.path ?? '?', mode: asked.mode ?? 'read' });
    } else if (type === T.HANDLE && asked.type === T.OPENDIR) {
      this.#record({ op: 'list', path: asked.path ?? '?' });
    } else if (type === T.DATA && asked.type === T.READ) {
      const n = r.u32() ?? 0;
      const file = asked.handle !== undefined ? this.#handles.get(asked.handle) : undefined;
      if (file) file.read += n;
      this.#counts.read += n;
    } else if (type === T.STATUS && asked.type === T.CLOSE && asked.handle !== undefined) {
      const file = this.#handles.get(asked.handle);
      if (file) {
        this.#handles.delete(asked.handle);
        this.#record({ op: 'close', path: file.path, mode: file.mode, read: file.read, written: file.written });
      }
    } else if (type === T.STATUS && asked.type === T.OPEN) {
      const code = r.u32();
      if (code !== 0) this.#record({ op: 'open', path: asked.path ?? '?', mode: asked.mode ?? 'read', failed: code ?? -1 });
    } else if (type === T.STATUS && asked.change) {
      const code = r.u32();
      if (code !== 0) this.#record({ ...asked.change, failed: code ?? -1 });
    }
    return true;
  }
}

/** A request type's name in a recording. */
function opName(type: number): string {
  const names: Record<number, string> = {
    [T.OPEN]: 'open',
    [T.WRITE]: 'write',
    [T.SETSTAT]: 'setstat',
    [T.FSETSTAT]: 'fsetstat',
    [T.REMOVE]: 'remove',
    [T.MKDIR]: 'mkdir',
    [T.RMDIR]: 'rmdir',
    [T.RENAME]: 'rename',
    [T.SYMLINK]: 'symlink',
    [T.EXTENDED]: 'extended',
  };
  return names[type] ?? `type-${type}`;
}

/** An SSH_FXP_STATUS packet. */
function status(id: number, code: number, message: string): Buffer {
  const msg = Buffer.from(message);
  const b = Buffer.alloc(4 + 1 + 4 + 4 + 4 + msg.length + 4);
  b.writeUInt32BE(b.length - 4, 0);
  b[4] = T.STATUS;
  b.writeUInt32BE(id, 5);
  b.writeUInt32BE(code, 9);
  b.writeUInt32BE(msg.length, 13);
  msg.copy(b, 17);
  b.writeUInt32BE(0, 17 + msg.length);
  return b;
}

/** A cursor over one packet's fields; reads past the end give undefined. */
class Reader {
  constructor(
    private readonly b: Buffer,
    private at: number,
  ) {}
  u32(): number | undefined {
    if (this.at + 4 > this.b.length) return undefined;
    const v = this.b.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }
  skip(n: number): void {
    this.at += n;
  }
  bytes(): Buffer | undefined {
    const n = this.u32();
    if (n === undefined || this.at + n > this.b.length) return undefined;
    const v = this.b.subarray(this.at, this.at + n);
    this.at += n;
    return v;
  }
  string(): string | undefined {
    return this.bytes()?.toString('utf8');
  }
}

/**
 * Cuts `from`'s bytes into SFTP packets (a u32 length, then that many bytes) and hands each to
 * `seen`; a packet it returns true for is written to `to` as it came. `from` pauses while `to` is
 * full. A packet over {@link MAX_SFTP_PACKET} ends both sides; `ended` runs when `from` ends.
 */
function packets(from: Readable & Writable, to: Writable, seen: (packet: Buffer) => boolean, ended: () => void): void {
  const parts = new ChunkQueue();
  from.on('data', (chunk: Buffer) => {
    parts.push(chunk);
    let full = false;
    while (parts.available >= 4) {
      const n = parts.peek(4).readUInt32BE(0);
      if (n + 4 > MAX_SFTP_PACKET || n < 1) {
        from.destroy();
        to.end();
        return;
      }
      if (parts.available < 4 + n) break;
      const p = parts.take(4 + n);
      if (seen(p) && !to.write(p)) full = true;
    }
    if (full) {
      from.pause();
      to.once('drain', () => from.resume());
    }
  });
  from.on('end', ended);
}
