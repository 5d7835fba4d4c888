/**
 * Recovery of the recording journal (./journal.ts, docs/recording-format.md "The journal"): the
 * sessions a thread that stopped (killed, crashed, or a replica taken over) left uncut, each up to
 * the last head a signed commit binds, read entry by entry; only where each block lies is kept,
 * and a session's blocks are read again, and checked against that head, as it is cut.
 */
import { createHash, createPublicKey, type KeyObject, verify } from 'node:crypto';
import { closeSync, fstatSync, openSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { CLOSE, COMMIT, chainedBlocks, chainStart, commitMessage, DATA, ENTRY, JOURNAL_FILE, type JournalSession, MAGIC, MAX_ENTRY, OPEN, readAt } from './journal.js';
import { countRecords } from './record-chunks.js';

/** A session found in journals left by a thread that stopped: what to cut of it. */
export interface RecoveredSession {
  meta: JournalSession;
  /** How many of its blocks a commit binds. */
  count: number;

  /** Those blocks, in order, read again from the journals one at a time. @throws JournalChanged when they changed since they were recovered */
  blocks(): Generator<Buffer>;
}

/** Where one block of a recovered session lies. */
interface FoundBlock {
  file: string;
  offset: number;
  length: number;
}

/** A session as the journals are read: its chain so far, and how far a commit binds it. */
interface Found {
  meta: JournalSession;
  /** The chain's head after each number of blocks read (the first: the chain's start). */
  heads: Buffer[];
  blocks: FoundBlock[];
  /** Blocks a valid commit binds (-1: none yet), and the head it signed. */
  committed: number;
  committedHead: Buffer;
  closed: boolean;
  /** What a commit bound before the session was written again (compacted): kept until a commit binds it where it is now. */
  before?: { blocks: FoundBlock[]; committed: number; committedHead: Buffer };
}

/** The whole entries of journal `file`, one at a time, up to the first that is cut short or not one (a crash's torn tail). */
function* readEntries(file: string): Generator<{ type: number; session: number; offset: number; payload: Buffer }> {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    if (!readAt(fd, MAGIC.length, 0)?.equals(MAGIC)) return;
    for (let at = MAGIC.length; at + ENTRY <= size; ) {
      const head = readAt(fd, ENTRY, at)!;
      const type = head[0]!;
      const length = head.readUInt32LE(5);
      if (type < OPEN || type > CLOSE || length > MAX_ENTRY || at + ENTRY + length > size) return;
      const payload = readAt(fd, length, at + ENTRY);
      if (!payload) return;
      yield { type, session: head.readUInt32LE(1), offset: at + ENTRY, payload };
      at += ENTRY + length;
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * The sessions that journals in `dir` hold and never cut (and, in `closed`, those a CLOSE entry says were cut, which is not signed:
 * the caller cuts them again unless their recording verifies in full), each up to its last head a commit signed
 * by one of `keys` binds (a session no valid commit names has nothing that can be trusted, and
 * is left out, its id in `unbound`, for the caller to say so). Only where each block lies is kept: a session's blocks are read again as it is
 * cut. The journals (`found` of them) are removed by `done()`, once the caller has cut them.
 */
export function recoverJournals(dir: string, keys: readonly KeyObject[]): { sessions: RecoveredSession[]; closed: RecoveredSession[]; unbound: string[]; done: () => void; found: number } {
  let names: string[];
  try {
    names = readdirSync(dir)
      .filter((f) => JOURNAL_FILE.test(f))
      .sort();
  } catch {
    return { sessions: [], closed: [], unbound: [], done: () => undefined, found: 0 };
  }
  const publics = keys.map((k) => (k.type === 'private' ? createPublicKey(k) : k));
  const groups = new Map<string, string[]>();
  for (const n of names) {
    const thread = JOURNAL_FILE.exec(n)![1]!;
    groups.set(thread, [...(groups.get(thread) ?? []), join(dir, n)]);
  }
  const sessions: RecoveredSession[] = [];
  const closed: RecoveredSession[] = [];
  const unbound: string[] = [];
  for (const [thread, files] of groups) {
    const recovered = recoverThread(thread, files, publics);
    sessions.push(...recovered.sessions);
    closed.push(...recovered.closed);
    unbound.push(...recovered.unbound);
  }
  return {
    sessions,
    closed,
    unbound,
    found: names.length,
    done: () => {
      for (const n of names) unlinkSync(join(dir, n));
    },
  };
}

/** The sessions of one thread's journals, and the ids of those no commit binds (see {@link recoverJournals}). */
function recoverThread(thread: string, files: string[], keys: readonly KeyObject[]): { sessions: RecoveredSession[]; closed: RecoveredSession[]; unbound: string[] } {
  const found = new Map<number, Found>();
  for (const file of files) {
    for (const e of readEntries(file)) {
      const s = found.get(e.session);
      if (e.type === OPEN) {
        const meta = parseMeta(e.payload);
        if (!meta || (s && (s.meta.id !== meta.id || s.meta.protocol !== meta.protocol))) continue; // not an OPEN the thread wrote
        // The same session opened again: compaction wrote it again; what a commit bound of it before stands until a commit binds the new copy.
        const before = s && (s.committed >= 0 ? { blocks: s.blocks, committed: s.committed, committedHead: s.committedHead } : s.before);
        found.set(e.session, { meta, heads: [chainStart(meta)], blocks: [], committed: -1, committedHead: chainStart(meta), closed: false, ...(before ? { before } : {}) });
      } else if (e.type === DATA && s && !s.closed) {
        try {
          countRecords(e.payload);
        } catch {
          continue; // not whole records: no block the thread wrote, and the chain breaks at it
        }
        s.blocks.push({ file, offset: e.offset, length: e.payload.length });
        s.heads.push(createHash('sha256').update(s.heads.at(-1)!).update(e.payload).digest());
      } else if (e.type === CLOSE && s) s.closed = true;
      else if (e.type === COMMIT) applyCommit(thread, e.payload, found, keys);
    }
  }
  const all = [...found.values()].map((s) => (s.committed < 0 && s.before ? { ...s, ...s.before } : s));
  const unbound = all.filter((s) => s.committed < 0 && !s.closed).map((s) => s.meta.id);
  const cut = (s: Found): RecoveredSession => {
    const blocks = s.blocks.slice(0, s.committed);
    return {
      meta: s.meta,
      count: blocks.length,
      blocks: () =>
        chainedBlocks(
          s.meta,
          blocks.map((at) => ({ name: at.file, read: () => readFileAt(at) })),
          s.committedHead,
          'recovered',
        ),
    };
  };
  const bound = all.filter((s) => s.committed >= 0);
  // A CLOSE is not signed: what it says is proved by the recording it names, which the caller checks.
  return { sessions: bound.filter((s) => !s.closed).map(cut), closed: bound.filter((s) => s.closed).map(cut), unbound };
}

/** The bytes of one recovered block (undefined when its file ends first). */
function readFileAt(at: FoundBlock): Buffer | undefined {
  const fd = openSync(at.file, 'r');
  try {
    return readAt(fd, at.length, at.offset);
  } finally {
    closeSync(fd);
  }
}

/** A commit that verifies marks, for each session it names whose chain it matches, how many blocks are committed. */
function applyCommit(thread: string, payload: Buffer, found: Map<number, Found>, keys: readonly KeyObject[]): void {
  if (payload.length < 12 + 64) return;
  const body = payload.subarray(0, payload.length - 64);
  const signature = payload.subarray(payload.length - 64);
  if (!keys.some((k) => verify(null, commitMessage(thread, body), k, signature))) return;
  const count = body.readUInt32LE(8);
  if (body.length !== 12 + count * 40) return;
  for (let i = 0; i < count; i++) {
    const s = found.get(body.readUInt32LE(12 + i * 40));
    const blocks = body.readUInt32LE(16 + i * 40);
    // The chain as read must reach this head at this block (blocks written while the commit was synced come before it in the file): a block changed or dropped breaks it.
    const head = s?.heads[blocks];
    if (s && head && blocks >= s.committed && head.equals(body.subarray(20 + i * 40, 52 + i * 40))) {
      s.committed = blocks;
      s.committedHead = head;
    }
  }
}

function parseMeta(payload: Buffer): JournalSession | undefined {
  try {
    const m = JSON.parse(payload.toString('utf8')) as JournalSession;
    return typeof m.id === 'string' && typeof m.dir === 'string' && typeof m.protocol === 'string' ? m : undefined;
  } catch {
    return undefined;
  }
}
