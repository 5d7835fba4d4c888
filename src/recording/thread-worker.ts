/**
 * The recording thread (see ./thread.ts): for each open recording, its writer (./writer.ts) and
 * its protocol's encoder, fed the staged records in the order they were staged. A block is acked
 * once its events are written and the writer is not behind the disk; the first failure is reported
 * and the recording writes nothing more.
 *
 * @see https://nodejs.org/api/worker_threads.html#workerparentport
 */
import { join } from 'node:path';
import { parentPort } from 'node:worker_threads';
import { writeFileOnceOnThread } from '../durable-file.js';
import { loadSiblingModule, lowerThreadPriority } from '../worker-thread.js';
import { EVENT, forEachRecord, type FromThread, type RecordEncoder, type RecordEncoderModule, type ToThread } from './thread.js';
import { RecordingWriter } from './writer.js';

/** The encoder modules loaded, by URL (a process has one per protocol). */
const encoders = new Map<string, Promise<RecordEncoderModule>>();
function encoderModule(url: string): Promise<RecordEncoderModule> {
  let m = encoders.get(url);
  if (!m) encoders.set(url, (m = loadSiblingModule<RecordEncoderModule>(url)));
  return m;
}

interface Open {
  /** Its writer and its encoder, once open (undefined when it could not be opened). */
  opened: Promise<{ writer: RecordingWriter; encoder: RecordEncoder } | undefined>;
  writer?: RecordingWriter;
  /** The work on this recording, in order (its opening first). */
  queue: Promise<void>;
  failed: boolean;
}

lowerThreadPriority();

const port = parentPort!;
const recordings = new Map<number, Open>();
const say = (m: FromThread): void => port.postMessage(m);
const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** The recording cannot be written: said once; it writes nothing more. */
function fail(id: number, err: unknown): void {
  const r = recordings.get(id);
  if (r?.failed) return;
  if (r) {
    r.failed = true;
    r.writer?.abandon();
  }
  say({ op: 'failed', id, error: message(err) });
}

/**
 * Opens recording `id`; what comes for it meanwhile waits in its queue. (Its own scope: what its
 * writer keeps for its life, the callbacks below, holds only the id.)
 */
function open(id: number, o: Extract<ToThread, { op: 'open' }>['options']): void {
  const { encoder, announce, beside, ...options } = o;
  const onFile = announce ? (name: string, removed: boolean): void => say({ op: 'file', id, name, removed }) : undefined;
  const r: Open = { opened: Promise.resolve(undefined), queue: Promise.resolve(), failed: false };
  r.opened = (async () => {
    const writer = await RecordingWriter.create({ ...options, blocking: true, onFailure: (err) => fail(id, err), ...(onFile ? { onFile } : {}) });
    if (beside) await writeFileOnceOnThread(join(options.dir, beside.name), Buffer.from(beside.text), options.dir, options.durable !== false, options.durable !== false);
    const module = await encoderModule(encoder);
    r.writer = writer;
    say({ op: 'opened', id });
    return { writer, encoder: module.createRecordEncoder(writer) };
  })().catch((err: unknown) => {
    r.failed = true;
    say({ op: 'opened', id, error: message(err) });
    return undefined;
  });
  r.queue = r.opened.then(() => undefined);
  recordings.set(id, r);
}

port.on('message', (m: ToThread) => {
  if (m.op === 'open') {
    open(m.id, m.options);
    return;
  }
  const r = recordings.get(m.id);
  if (!r) return;
  if (m.op === 'data') {
    r.queue = r.queue.then(async () => {
      const w = await r.opened;
      if (r.failed || !w) return;
      try {
        forEachRecord(Buffer.from(m.buffer, 0, m.length), m.length, (kind, at, bytes, start, end) => {
          if (kind !== EVENT) return w.encoder.record(kind, at, bytes, start, end);
          w.encoder.flush();
          w.writer.appendJson(bytes.toString('utf8', start, end));
        });
        await w.writer.drained();
        if (!r.failed) say({ op: 'written', id: m.id, bytes: m.length });
      } catch (err) {
        fail(m.id, err);
      }
    });
    return;
  }
  r.queue = r.queue.then(async () => {
    recordings.delete(m.id);
    const w = await r.opened;
    if (r.failed || !w) return say({ op: 'closed', id: m.id, error: 'the recording failed' });
    try {
      w.encoder.flush();
      await w.writer.close();
      say({ op: 'closed', id: m.id });
    } catch (err) {
      say({ op: 'closed', id: m.id, error: message(err) });
    }
  });
});
