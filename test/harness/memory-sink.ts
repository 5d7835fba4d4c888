/**
 * A recording sink that keeps its lines in memory, written by the real line encoder
 * (src/recording/event-line.ts): `events()` parses back what a recording's chunk would hold.
 */
import { type EventSink, LineBlocks, type RecordingEvent } from '../../src/recording/event-line.js';

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
      lines.push(...Buffer.concat(blocks.take()).toString('utf8').split('\n').filter(Boolean));
      return lines.map((l) => JSON.parse(l) as RecordingEvent);
    },
  };
}
