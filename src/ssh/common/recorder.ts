/**
 * What an SSH session's recording keeps of the bytes of its channels, and how the recording
 * thread writes them as events (docs/recording-format.md, "SSH sessions").
 *
 * The data path stages two kinds of records: {@link SSH_STREAM} (5 bytes: the channel as u32 BE,
 * then the stream: 0 output, 1 error output, 2 input), written only when the stream changes, and
 * {@link SSH_DATA} (the bytes, as they crossed). The thread writes each `SSH_DATA` as an
 * `ssh-data` event `{ ch, s: "o"|"e"|"i", data }`, `data` being the bytes as UTF-8 text when they
 * are, else `data64` (base64); a UTF-8 character cut between two records is joined to the second.
 *
 * @see https://www.rfc-editor.org/rfc/rfc4254#section-5.2 (channel data, extended data)
 */
import { realClock } from '../../clock.js';
import { isUtf8 } from 'node:buffer';
import type { EventSink } from '../../recording/event-line.js';
import type { RecordEncoder, RecordingStream } from '../../recording/thread.js';

/** Record kind: the channel and stream of the {@link SSH_DATA} records that follow. */
export const SSH_STREAM = 2;
/** Record kind: bytes of the current stream. */
export const SSH_DATA = 3;

/** The streams of a channel, as a record and an event name them. */
export const SshStream = { out: 0, err: 1, in: 2 } as const;
const STREAM_NAMES = ['o', 'e', 'i'] as const;

/** Bytes of each stream of a channel a recording keeps; past this they are counted, not kept. */
export const SSH_RECORD_BYTES = 8 * 1024 * 1024;

/**
 * The data path's side: stages a channel stream's bytes in the recording, up to
 * {@link SSH_RECORD_BYTES} per stream; `cut` says once when a stream goes past it.
 */
export class SshDataRecorder {
  readonly #stream: RecordingStream;
  #current = -1;
  readonly #head = Buffer.alloc(5);

  constructor(stream: RecordingStream) {
    this.#stream = stream;
  }

  /** Records `chunk` of `channel`'s `stream`; false when the stream is past its cap (nothing kept). */
  data(channel: number, stream: number, kept: { bytes: number }, chunk: Buffer): boolean {
    if (kept.bytes >= SSH_RECORD_BYTES) return false;
    const n = Math.min(chunk.length, SSH_RECORD_BYTES - kept.bytes);
    kept.bytes += n;
    const at = realClock.now();
    const key = channel * 4 + stream;
    if (key !== this.#current) {
      this.#current = key;
      this.#head.writeUInt32BE(channel, 0);
      this.#head[4] = stream;
      this.#stream.record(SSH_STREAM, at, this.#head, 0, 5);
    }
    this.#stream.record(SSH_DATA, at, chunk, 0, n);
    return n === chunk.length;
  }
}

/** The reader's side: turns the records into `ssh-data` events. */
export class SshRecorder {
  readonly #sink: EventSink;
  #channel = 0;
  #stream = 0;
  /** An incomplete UTF-8 character at the end of a stream's last record, by channel*4+stream. */
  readonly #tails = new Map<number, Buffer>();

  constructor(sink: EventSink) {
    this.#sink = sink;
  }

  record(kind: number, at: number, bytes: Buffer, start: number, end: number): void {
    if (kind === SSH_STREAM) {
      this.#channel = bytes.readUInt32BE(start);
      this.#stream = bytes[start + 4]!;
      return;
    }
    if (kind !== SSH_DATA) return;
    const key = this.#channel * 4 + this.#stream;
    const tail = this.#tails.get(key);
    let data = tail ? Buffer.concat([tail, bytes.subarray(start, end)]) : bytes.subarray(start, end);
    this.#tails.delete(key);
    const cut = incompleteTail(data);
    if (cut > 0 && cut < data.length) {
      this.#tails.set(key, Buffer.from(data.subarray(data.length - cut)));
      data = data.subarray(0, data.length - cut);
    }
    const line = this.#sink
      .begin('ssh-data', at)
      .key('ch')
      .number(this.#channel)
      .key('s')
      .string(STREAM_NAMES[this.#stream] ?? 'o');
    if (isUtf8(data)) line.key('data').utf8(data, 0, data.length);
    else line.key('data64').string(data.toString('base64'));
    line.end();
  }

  flush(): void {
    for (const [key, tail] of this.#tails) {
      this.#sink.append({ t: 'ssh-data', at: realClock.now(), ch: Math.floor(key / 4), s: STREAM_NAMES[key % 4] ?? 'o', data64: tail.toString('base64') });
    }
    this.#tails.clear();
  }
}

/** How many bytes at the end of `b` begin a UTF-8 character that is not complete (0 when none). */
function incompleteTail(b: Buffer): number {
  for (let back = 1; back <= Math.min(3, b.length); back++) {
    const c = b[b.length - back]!;
    if ((c & 0xc0) === 0x80) continue; // a continuation byte: look further back
    const need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

/** The decoder of SSH sessions' records (see RecordEncoderModule in src/recording/thread.ts). */
export function createRecordEncoder(sink: EventSink): RecordEncoder {
  return new SshRecorder(sink);
}
