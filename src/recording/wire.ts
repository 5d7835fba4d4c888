/**
 * Reading the `wire` events of a CLI's records of format 2 (docs/recording-format.md): each staged
 * record was written as it came, `{"t":"wire","at":…,"k":<kind>,"b":"<base64>"}`, and reading the
 * record runs the protocol's decoder over them, in order, so a reader sees the events it always
 * did. (Format 3 keeps the records themselves, ./record-chunks.ts.) Which decoder reads them is
 * named by the record's `start` event (`wire: "postgres"`), from the decoders the reader is given:
 * this module knows no protocol.
 */
import type { EventLine, EventSink, RecordingEvent } from './event-line.js';
import { LineBlocks } from './event-line.js';
import type { RecordEncoder, RecordEncoderModule } from './thread.js';
import { parseJson } from '../json-number.js';

/** An {@link EventSink} that keeps the events written into it, in order, to be taken as objects. */
export class EventCollector implements EventSink {
  readonly #lines = new LineBlocks();

  append(event: RecordingEvent): boolean {
    return this.#lines.add(JSON.stringify(event));
  }

  begin(t: string, at: number): EventLine {
    return this.#lines.begin(t, at);
  }

  drained(): Promise<void> {
    return Promise.resolve();
  }

  /** The events written since the last take. */
  take(): RecordingEvent[] {
    const out: RecordingEvent[] = [];
    for (const block of this.#lines.take()) {
      for (const line of block.toString('utf8').split('\n')) if (line) out.push(parseJson(line) as RecordingEvent);
    }
    return out;
  }
}

/**
 * `events` with their `wire` events read by the encoder their `start` event names, among
 * `decoders`. Wire events of a protocol it has no decoder for, or before any `start`, make it
 * throw: a record is read whole or said to be unreadable.
 */
export async function* decodeWire(events: AsyncIterable<RecordingEvent>, decoders: Readonly<Record<string, RecordEncoderModule>>): AsyncGenerator<RecordingEvent> {
  const sink = new EventCollector();
  let encoder: RecordEncoder | undefined;
  let protocol: string | undefined;
  for await (const e of events) {
    if (e.t !== 'wire') {
      if (encoder) {
        encoder.flush();
        yield* sink.take();
      }
      if (e.t === 'start' && typeof e.wire === 'string') protocol = e.wire;
      yield e;
      continue;
    }
    if (!encoder) {
      const module = protocol !== undefined && Object.hasOwn(decoders, protocol) ? decoders[protocol] : undefined;
      if (!module) throw new Error(`the record keeps ${protocol === undefined ? 'messages of no protocol it names' : `${protocol} messages`}, which this hoop cannot read`);
      encoder = module.createRecordEncoder(sink);
    }
    if (typeof e.k !== 'number' || typeof e.b !== 'string') throw new Error('a wire event without its kind and bytes');
    const bytes = Buffer.from(e.b, 'base64');
    encoder.record(e.k, e.at, bytes, 0, bytes.length);
    yield* sink.take();
  }
  if (encoder) {
    encoder.flush();
    yield* sink.take();
  }
}
