/**
 * Reading a recording's events back, one chunk at a time (never a whole recording in memory), in
 * the order a verified manifest names the chunks (src/ui/transcript.ts shows them as psql would have).
 *
 * @see ./writer.ts for the format
 */
import { SEALED } from './writer.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RecordingEvent } from './event-line.js';
import type { RecordEncoderModule } from './thread.js';
import { chunkText } from './verify.js';
import { decodeWire } from './wire.js';

/**
 * The events of the chunks `manifest` names (a verified SHA256SUMS or checkpoint), headers left
 * out. `wire` events (a CLI's record, ./wire.ts) are read by the encoder their record names among
 * `decoders`. A small result's one `result` event is read as the `columns`, `row`s and `complete`
 * a larger result is written as, and an `execute` with `params` as its `bind` and `execute`, so
 * every reader sees one shape.
 */
export async function* readEvents(dir: string, manifest: string, decoders: Readonly<Record<string, RecordEncoderModule>> = {}): AsyncGenerator<RecordingEvent> {
  for await (const e of decodeWire(chunkEvents(dir, manifest), decoders)) {
    if (e.t === 'result') yield* expandResult(e);
    else if (e.t === 'execute' && 'params' in e) yield* expandExecute(e);
    else if (e.t !== SEALED) yield e; // the writer's mark of its end (./verify.ts reads it), no event of the session
  }
}

/** The events of the chunks `manifest` names, as they were written. */
async function* chunkEvents(dir: string, manifest: string): AsyncGenerator<RecordingEvent> {
  const text = await readFile(join(dir, manifest), 'utf8');
  for (const line of text.split('\n')) {
    const name = line.split('  ')[1];
    if (!name) continue;
    const lines = (await chunkText(await readFile(join(dir, name)))).split('\n');
    for (const l of lines.slice(1)) if (l) yield JSON.parse(l) as RecordingEvent;
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
