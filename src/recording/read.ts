/**
 * Reading a recording's events back, one chunk at a time (never a whole recording in memory), in
 * the order a verified manifest names the chunks (src/ui/transcript.ts shows them as psql would have).
 *
 * @see ./writer.ts for the format
 */
import { SEALED } from './writer.js';
import type { RecordingEvent } from './event-line.js';
import type { RecordEncoderModule } from './thread.js';
import { splitChunk } from './record-chunks.js';
import { recordingFiles } from './recording-files.js';
import { EVENT, forEachRecord, type RecordEncoder } from './thread.js';
import { chunkBytes } from './verify.js';
import { decodeWire, EventCollector } from './wire.js';

/**
 * The events of the chunks `manifest` names (a verified SHA256SUMS or checkpoint), headers left
 * out. The records of format 3's chunks (./record-chunks.ts), and the `wire` events of a CLI's
 * record of format 2 (./wire.ts), are read by the decoder of the protocol they name among
 * `decoders`. A small result's one `result` event is read as the `columns`, `row`s and `complete`
 * a larger result is written as, and an `execute` with `params` as its `bind` and `execute`, so
 * every reader sees one shape.
 */
export async function* readEvents(dir: string, manifest: string, decoders: Readonly<Record<string, RecordEncoderModule>> = {}): AsyncGenerator<RecordingEvent> {
  for await (const e of decodeWire(chunkEvents(dir, manifest, decoders), decoders)) {
    if (e.t === 'result') yield* expandResult(e);
    else if (e.t === 'execute' && 'params' in e) yield* expandExecute(e);
    else if (e.t !== SEALED) yield e; // the writer's mark of its end (./verify.ts reads it), no event of the session
  }
}

/** The events of the chunks `manifest` names: as they were written, or decoded from the records they hold. */
async function* chunkEvents(dir: string, manifest: string, decoders: Readonly<Record<string, RecordEncoderModule>>): AsyncGenerator<RecordingEvent> {
  const at = recordingFiles(dir);
  const read = async (name: string): Promise<Buffer> => {
    const data = await at.read(name);
    if (!data) throw new Error(`${dir} holds no ${name}`);
    return data;
  };
  const text = (await read(manifest)).toString('utf8');
  let records: RecordDecoder | undefined;
  for (const line of text.split('\n')) {
    const name = line.split('  ')[1];
    if (!name) continue;
    const data = await chunkBytes(await read(name));
    if (name.startsWith('records-')) {
      const { header, records: from } = splitChunk(data);
      records ??= new RecordDecoder(header.protocol, decoders);
      yield* records.chunk(data, from);
      continue;
    }
    for (const l of data.toString('utf8').split('\n').slice(1)) if (l) yield JSON.parse(l) as RecordingEvent;
  }
  if (records) yield* records.end();
}

/** Turns a recording's records into events: whole events as they are, the rest by the protocol's decoder, in order. */
class RecordDecoder {
  readonly #sink = new EventCollector();
  readonly #decoder: RecordEncoder;

  constructor(protocol: string | undefined, decoders: Readonly<Record<string, RecordEncoderModule>>) {
    const module = protocol !== undefined && Object.hasOwn(decoders, protocol) ? decoders[protocol] : undefined;
    if (!module) throw new Error(`the recording keeps ${protocol === undefined ? 'records of no protocol it names' : `${protocol} records`}, which this hoop cannot read`);
    this.#decoder = module.createRecordEncoder(this.#sink);
  }

  /** The events of one chunk's records, from `from`. */
  chunk(data: Buffer, from: number): RecordingEvent[] {
    const out: RecordingEvent[] = [];
    forEachRecord(
      data,
      data.length,
      (kind, at, bytes, start, end) => {
        if (kind !== EVENT) return this.#decoder.record(kind, at, bytes, start, end);
        this.#decoder.flush();
        out.push(...this.#sink.take(), JSON.parse(bytes.toString('utf8', start, end)) as RecordingEvent);
      },
      from,
    );
    out.push(...this.#sink.take());
    return out;
  }

  /** What the decoder still held. */
  end(): RecordingEvent[] {
    this.#decoder.flush();
    return this.#sink.take();
  }
}

/** A `result` event as `columns`, `row`s (at the first row's time) and `complete`. */
function expandResult(e: RecordingEvent): RecordingEvent[] {
  const { names, types, masked, values, at, t: _t, ...outcome } = e;
  const rowsAt = typeof outcome.ms === 'number' && typeof outcome.firstRowMs === 'number' ? at - outcome.ms + outcome.firstRowMs : at;
  return [
    { t: 'columns', at: rowsAt, names, ...(types !== undefined ? { types } : {}), ...(masked !== undefined ? { masked } : {}) },
    ...(Array.isArray(values) ? values : []).map((v: unknown) => ({ t: 'row', at: rowsAt, values: v })),
    { t: 'complete', at, ...outcome },
  ];
}

/** An `execute` with its Bind's `params` as the `bind` and `execute` it stands for. */
function expandExecute(e: RecordingEvent): RecordingEvent[] {
  const { params, ...execute } = e;
  return [{ t: 'bind', at: e.at, portal: e.portal, statement: e.statement, params }, execute];
}
