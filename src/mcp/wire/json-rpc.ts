/**
 * MCP's messages as they cross a stdio stream: JSON-RPC 2.0, one message per line (UTF-8, no
 * embedded newline). A line is read whole up to a cap, parsed once, and classified: a request
 * (`id` and `method`), a notification (`method` alone), or a response (`id` with `result` or
 * `error`). Batches (a JSON array) were dropped from MCP in 2025-06-18; a line holding one is
 * classified as such, for its reader to refuse.
 *
 * @see https://modelcontextprotocol.io/specification/2025-06-18/basic/transports#stdio
 * @see https://www.jsonrpc.org/specification
 */
import { StringDecoder } from 'node:string_decoder';
import { JsonNumber, jsonText, parseJson } from '../../json-number.js';

/** The longest line (one message) either side may send: 4 MiB, as hoop's other protocols bound a message. */
export const MAX_LINE_BYTES = 4 * 1024 * 1024;

/**
 * The deepest a message's arrays and objects may nest. Deeper ones are refused as they come: every
 * reader after the parser (the judge, the masking, the recording's reader) walks a message
 * recursively, and a few megabytes of `[` would overflow its stack.
 */
export const MAX_DEPTH = 256;

/** A JSON-RPC id: a string or a number (one past a double's precision kept as written; null only in an error answering what had none). */
export type JsonRpcId = string | number | JsonNumber;

/** One MCP message, classified. */
export type McpMessage =
  | { kind: 'request'; id: JsonRpcId; method: string; params: Record<string, unknown> | undefined; raw: Record<string, unknown> }
  | { kind: 'notification'; method: string; params: Record<string, unknown> | undefined; raw: Record<string, unknown> }
  | { kind: 'response'; id: JsonRpcId; raw: Record<string, unknown> };

/** What a line held when it was not one message: a reason, and the id to answer when one could be read. */
export interface NotAMessage {
  invalid: string;
  /** JSON-RPC's code for it: -32700 (not JSON), -32600 (not a message). */
  code: -32700 | -32600;
  id: JsonRpcId | null;
}

/** JSON-RPC's error codes, and the one hoop answers a policy refusal with. */
export const RpcError = {
  parse: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internal: -32603,
  /** A request the policy (or the gateway's limits) refused; `data` says which rule and why. */
  refused: -32001,
  /** A request withdrawn by its client, or cut by the session's end. */
  cancelled: -32800,
} as const;

/** Whether `v` may be a request's id. */
export const isId = (v: unknown): v is JsonRpcId => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v)) || v instanceof JsonNumber;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Classifies one line's text (its numbers as written: ../../json-number.ts); never throws. */
export function parseMessage(text: string): McpMessage | NotAMessage {
  let value: unknown;
  try {
    value = parseJson(text);
  } catch {
    return { invalid: 'not JSON', code: RpcError.parse, id: null };
  }
  return classify(value);
}

/** Classifies one parsed message; never throws. */
export function classify(value: unknown): McpMessage | NotAMessage {
  if (nestedPast(value, MAX_DEPTH)) return { invalid: `a message nested deeper than ${MAX_DEPTH} levels`, code: RpcError.invalidRequest, id: null };
  if (Array.isArray(value)) return { invalid: 'a batch (MCP 2025-06-18 has none): send one message per line', code: RpcError.invalidRequest, id: null };
  if (!isObject(value)) return { invalid: 'not a JSON-RPC message (an object)', code: RpcError.invalidRequest, id: null };
  const id = isId(value.id) ? value.id : null;
  if (value.jsonrpc !== '2.0') return { invalid: 'not JSON-RPC 2.0 ("jsonrpc": "2.0")', code: RpcError.invalidRequest, id };
  const params = value.params;
  if (params !== undefined && !isObject(params)) return { invalid: 'params must be an object', code: RpcError.invalidRequest, id };
  if (typeof value.method === 'string') {
    if (value.id === undefined) return { kind: 'notification', method: value.method, params, raw: value };
    if (id === null) return { invalid: 'a request id must be a string or a number', code: RpcError.invalidRequest, id: null };
    return { kind: 'request', id, method: value.method, params, raw: value };
  }
  if (value.method !== undefined) return { invalid: 'method must be a string', code: RpcError.invalidRequest, id };
  if (id === null) return { invalid: 'an answer must carry the id of its request', code: RpcError.invalidRequest, id: null };
  const answers = ('result' in value ? 1 : 0) + (isObject(value.error) ? 1 : 0);
  if (answers !== 1) return { invalid: 'an answer carries exactly one of result and error', code: RpcError.invalidRequest, id };
  return { kind: 'response', id, raw: value };
}

/** Whether `value`'s arrays and objects nest deeper than `max` levels (walked without recursion). */
export function nestedPast(value: unknown, max: number): boolean {
  const stack: Array<{ v: object; depth: number }> = typeof value === 'object' && value !== null ? [{ v: value, depth: 1 }] : [];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    if (top.depth > max) return true;
    for (const x of Array.isArray(top.v) ? top.v : Object.values(top.v)) if (typeof x === 'object' && x !== null) stack.push({ v: x as object, depth: top.depth + 1 });
  }
  return false;
}

/** An error answer to request `id`, as one line. */
export function errorLine(id: JsonRpcId | null, code: number, message: string, data?: unknown): string {
  return `${jsonText({ jsonrpc: '2.0', id, error: { code, message, ...(data !== undefined ? { data } : {}) } })}\n`;
}

/** A message as one line, its numbers as they were read. */
export function messageLine(message: Record<string, unknown>): string {
  return `${jsonText(message)}\n`;
}

/** The key an id is tracked by: a number and the string of its digits are different ids. */
export function idKey(id: JsonRpcId): string {
  return typeof id === 'string' ? `s${id}` : `n${typeof id === 'number' ? id : id.text}`;
}

/**
 * Splits a byte stream into lines of at most `max` bytes (a `\r` before the newline dropped, as
 * the MCP SDK does); `onLine` gets each whole line's text, `onTooLong` is called once when a line
 * grows past the cap (the reader then takes nothing more). Holds at most one line.
 */
export class LineReader {
  readonly #decoder = new StringDecoder('utf8');
  #parts: string[] = [];
  #bytes = 0;
  #broken = false;

  constructor(
    private readonly onLine: (text: string) => void,
    private readonly onTooLong: (bytes: number) => void,
    private readonly max = MAX_LINE_BYTES,
  ) {}

  /** Takes a chunk of the stream. */
  push(chunk: Buffer): void {
    let from = 0;
    while (!this.#broken) {
      const nl = chunk.indexOf(0x0a, from);
      const end = nl < 0 ? chunk.length : nl;
      this.#bytes += end - from;
      if (this.#bytes > this.max) {
        this.#broken = true;
        this.#parts = [];
        this.onTooLong(this.#bytes);
        return;
      }
      if (end > from) this.#parts.push(this.#decoder.write(chunk.subarray(from, end)));
      if (nl < 0) return;
      let text = this.#parts.join('') + this.#decoder.end();
      if (text.endsWith('\r')) text = text.slice(0, -1);
      this.#parts = [];
      this.#bytes = 0;
      from = nl + 1;
      if (text.trim() !== '') this.onLine(text);
    }
  }

  /** Bytes of the line being read. */
  get pending(): number {
    return this.#bytes;
  }
}
