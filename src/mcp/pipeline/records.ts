/**
 * What an MCP session's recording keeps, and how readers turn it into events
 * (docs/recording-format.md, "MCP sessions"): each line the agent sent ({@link MCP_FROM_AGENT}) and
 * each line it received ({@link MCP_TO_AGENT}: what the server answered as filtered and masked, and
 * the gateway's own refusals), as the bytes crossed. A reader writes each as an `mcp` event
 * `{ d: "c" | "s", m: <the message> }` (`c`: from the agent, `s`: to it); a line that is not JSON
 * is kept as `text`.
 */
import { realClock } from '../../clock.js';
import type { EventSink } from '../../recording/event-line.js';
import type { RecordEncoder, RecordingStream } from '../../recording/thread.js';
import { MAX_DEPTH, nestedPast } from '../wire/json-rpc.js';
import { parseJson } from '../../json-number.js';

/** Record kind: a line the agent sent. */
export const MCP_FROM_AGENT = 2;
/** Record kind: a line sent to the agent. */
export const MCP_TO_AGENT = 3;

/** Stages one line of `direction` (a string, so that a message is copied once, by the recording). */
export function recordLine(stream: RecordingStream, kind: typeof MCP_FROM_AGENT | typeof MCP_TO_AGENT, line: string): void {
  const bytes = Buffer.from(line, 'utf8');
  stream.record(kind, realClock.now(), bytes, 0, bytes.length && bytes[bytes.length - 1] === 0x0a ? bytes.length - 1 : bytes.length);
}

/** The reader's side: turns the records into `mcp` events. */
class McpRecordReader implements RecordEncoder {
  constructor(private readonly sink: EventSink) {}

  record(kind: number, at: number, bytes: Buffer, start: number, end: number): void {
    if (kind !== MCP_FROM_AGENT && kind !== MCP_TO_AGENT) return;
    const line = this.sink
      .begin('mcp', at)
      .key('d')
      .string(kind === MCP_FROM_AGENT ? 'c' : 's');
    let message: unknown;
    try {
      message = parseJson(bytes.toString('utf8', start, end));
    } catch {
      message = undefined;
    }
    // A line the gateway refused for its nesting is kept as text: writing it as JSON would overflow the reader's stack.
    if (message === undefined || nestedPast(message, MAX_DEPTH)) {
      line.key('text').text(bytes, start, end).end();
      return;
    }
    line.key('m').json(message).end();
  }

  flush(): void {}
}

/** The decoder of MCP sessions' records (see RecordEncoderModule in src/recording/thread.ts). */
export function createRecordEncoder(sink: EventSink): RecordEncoder {
  return new McpRecordReader(sink);
}
