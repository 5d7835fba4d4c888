/**
 * Recordings kept in memory, written by the real line encoder (src/recording/event-line.ts):
 * `events()` parses back what a recording's chunk would hold. {@link loopbackStream} hands a
 * stage's records straight to a protocol's encoder, as the recording thread would.
 */
import { type EventSink, LineBlocks, type RecordingEvent } from '../../src/recording/event-line.js';
import type { RecordingStream } from '../../src/recording/thread.js';

export interface MemorySink extends EventSink {
  /** The events written so far, parsed from their JSON lines. */
  events(): RecordingEvent[];
}

export function memorySink(): MemorySink {
  const blocks = new LineBlocks();
  const lines: string[] = [];
  return {
    append: (event) => blocks.add(JSON.stringify(event)),
    begin: (t, at) => blocks.begin(t, at),
    drained: async () => {},
    events() {
      for (const line of Buffer.concat(blocks.take()).toString('utf8').split('\n')) if (line) lines.push(line);
      return lines.map((l) => JSON.parse(l) as RecordingEvent);
    },
  };
}

/** A stream whose records go at once (copied, as staging copies them) to `encoder`, which writes to `sink`. */
export function loopbackStream(sink: EventSink, encoder: { record(kind: number, at: number, bytes: Buffer, start: number, end: number): void; flush(): void }): RecordingStream {
  return {
    record: (kind, at, bytes, start, end) => encoder.record(kind, at, Buffer.from(bytes.subarray(start, end)), 0, end - start),
    event(event) {
      encoder.flush();
      sink.append(event);
    },
    behind: undefined,
    failure: undefined,
    onFailure: undefined,
    closed: false,
    snapshot: () => Promise.reject(new Error('a loopback stream keeps no journal')),
    async close() {
      encoder.flush();
    },
  };
}
