/**
 * What a JSON body's masking does to each value (./json-stream.ts), by the policy's masking rules,
 * as an MCP result is masked (src/mcp/pipeline/masking.ts): a field whose name a `names` rule
 * matches is masked whole by its strategy (`null` where it says NULL); every other string, every
 * key, and every number read as the digits of its value, by the detectors, and again as a reader of
 * the text reads it where that differs (escapes and character references decoded, hex runs). A
 * string or key of {@link AHEAD_CHARS} or more is masked first in the masking worker
 * (../../policy/masking/mask-ahead.ts), the body's reading held meanwhile (an event stream's data of
 * that length likewise, read a slice a turn): no long text holds the event loop, and every other
 * session, while the detectors read it.
 */
import { JsonNumber, jsonText } from '../../json-number.js';
import { integerDigits } from '../../policy/masking/detectors.js';
import { maskAhead } from '../../policy/masking/mask-ahead.js';
import { AHEAD_CHARS, type MaskedText, type MaskingRules } from '../../policy/masking/rules.js';
import { readableView } from '../../policy/masking/values.js';
import { globMatches } from '../../glob.js';
import { dropFields } from './content-decoding.js';
import { JsonStream, type ScalarTransform, type ScalarValue, type TopValues } from './json-stream.js';
import { jsonShape, mediaTypes } from './media-type.js';
import { SseStream } from './sse-stream.js';
import type { HttpResponse, HttpStage, ResponseDecision } from './stages.js';

/** Keys whose masking a session remembers (keys repeat in every object of a list). */
const KEYS_KEPT = 1024;

/**
 * The transforms of a JSON body's values and keys under `rules`; `report` hears what masked one;
 * `first` rewrites a string (a value, a key) before the detectors read it (the credential's echo).
 * Made once per session: what keys become is remembered.
 */
export function jsonMasking(
  rules: MaskingRules,
  report?: (by: 'name' | 'detector') => void,
  first?: (text: string) => string | undefined,
): { value: ScalarTransform; key: (name: string) => string | undefined } {
  /** `text` with what the detectors find masked, as written and as read; undefined when they find nothing. */
  const detected = (raw: string): string | undefined => {
    const cleared = first?.(raw);
    const text = cleared ?? raw;
    const out = rules.maskText(text);
    const read = readableView(out.text);
    const again = read === out.text ? undefined : rules.maskText(read);
    if (!out.changed && !again?.changed) return cleared;
    report?.('detector');
    return again?.changed ? again.text : out.text;
  };
  const keys = new Map<string, string | null>();
  const strategies = new Map<string, ReturnType<MaskingRules['forName']> | null>();
  return {
    value: (path, value) => {
      const name = path.at(-1);
      let strategy: ReturnType<MaskingRules['forName']> | undefined;
      if (typeof name === 'string' && value !== null) {
        let known = strategies.get(name);
        if (known === undefined) {
          known = rules.forName(name) ?? null;
          if (strategies.size < KEYS_KEPT) strategies.set(name, known);
        }
        strategy = known ?? undefined;
      }
      if (strategy) {
        report?.('name');
        return rules.apply(typeof value === 'string' ? value : jsonText(value), strategy, true);
      }
      if (typeof value === 'string') return detected(value);
      if (typeof value !== 'number' && !(value instanceof JsonNumber)) return undefined;
      // A number as a reader may show it: as written, its whole part, and the digits of its value rounded (`4111111111111111e0`, `4111111111111111.5` are cards).
      const text = jsonText(value);
      if (!/[.eE]/.test(text)) return detected(text);
      const sign = text.startsWith('-') ? '-' : '';
      const whole = /[eE]/.test(text) ? undefined : text.slice(0, text.indexOf('.'));
      const rounded = integerDigits(text.replace(/^-/, ''));
      for (const shown of [text, whole, rounded === undefined ? undefined : `${sign}${rounded}`]) {
        const made = shown === undefined ? undefined : detected(shown);
        if (made !== undefined) return made;
      }
      return undefined;
    },
    key: (name) => {
      const known = keys.get(name);
      if (known !== undefined) {
        if (known !== null) report?.('detector');
        return known ?? undefined;
      }
      const made = detected(name);
      if (keys.size < KEYS_KEPT) keys.set(name, made ?? null);
      return made;
    },
  };
}

const EVENT_STREAM = 'text/event-stream';

/**
 * Masking, as a stage (./stages.ts): a response's JSON (or NDJSON) body masked value by value as
 * it streams, an event stream's data event by event (JSON data as JSON, other data as text); a
 * body of any other media type refused (an empty one passes), unless the policy's `http.unmasked` lists it.
 */
export class HttpMasking implements HttpStage {
  readonly #unmasked: ReadonlyArray<(type: string) => boolean>;
  readonly #json: ReturnType<typeof jsonMasking>;
  readonly #rules: MaskingRules;
  readonly #first: ((text: string) => string | undefined) | undefined;
  /** Whose long texts these are, for the worker to take in turn with other sessions'. */
  readonly #owner: string;
  /** What the worker made of the long text being read, lent to the detectors while its transform runs. */
  #lent: Map<string, MaskedText> | undefined;

  /** `first`: what a string becomes before the detectors read it (the credential's echo, when the connection has one); `owner`: the session. */
  constructor(rules: MaskingRules, unmasked: readonly string[], report?: (by: 'name' | 'detector') => void, first?: (text: string) => string | undefined, owner = '') {
    this.#unmasked = unmasked.map((g) => (type: string) => globMatches(g, type));
    this.#json = jsonMasking(rules, report, first);
    this.#rules = rules;
    this.#first = first;
    this.#owner = owner;
  }

  response(res: HttpResponse): ResponseDecision | undefined {
    if (!res.hasBody || res.fields.some(([n, v]) => n.toLowerCase() === 'content-length' && v.trim() === '0')) return undefined;
    const types = mediaTypes(res);
    const type = types.length === 1 ? types[0]! : '';
    const shape = jsonShape(type);
    if (shape) {
      const stream = this.#jsonStream(shape);
      dropFields(res, 'content-length');
      return { transform: { push: (c) => stream.push(c), end: () => stream.end() } };
    }
    if (type === EVENT_STREAM) {
      const stream = new SseStream(
        (data) => (data.length < AHEAD_CHARS ? this.#eventData(data) : this.#longEventData(data)),
        (line) => this.#text(line),
      );
      dropFields(res, 'content-length');
      return { transform: { push: (c) => stream.push(c), end: () => stream.end() } };
    }
    if (this.#unmasked.some((ok) => ok(type))) return undefined;
    const said = types.length > 1 ? 'more than one Content-Type' : type ? type : 'no Content-Type';
    return { emptyOnly: `the response is ${said}, which the gateway cannot mask; the policy's http.unmasked lists the media types that may pass unmasked` };
  }

  /** A JSON body's (or a long event's) stream: a string or key of {@link AHEAD_CHARS} or more masked in the worker first, the reading held meanwhile. */
  #jsonStream(top: TopValues): JsonStream {
    return new JsonStream(
      // Lent only after a long text's wait: no closure a value otherwise.
      (path, value) => (this.#lent ? this.#lending(() => this.#json.value(path, value)) : this.#json.value(path, value)),
      (name) => (this.#lent ? this.#lending(() => this.#json.key(name)) : this.#json.key(name)),
      top,
      (value) => this.#ahead(value),
    );
  }

  /**
   * An event's data of {@link AHEAD_CHARS} or more, masked while the loop turns: as JSON, its long
   * strings and keys in the worker and the rest a slice at a time; else as text, in the worker.
   */
  async #longEventData(data: string): Promise<string> {
    const bytes = Buffer.from(data, 'utf8');
    const stream = this.#jsonStream('one');
    try {
      const parts: Buffer[] = [];
      for (let at = 0; at < bytes.length; at += AHEAD_CHARS) {
        parts.push(await stream.push(bytes.subarray(at, at + AHEAD_CHARS)));
        await new Promise((resolve) => setImmediate(resolve));
      }
      parts.push(stream.end());
      return Buffer.concat(parts).toString('utf8');
    } catch {
      this.#lent = undefined;
      await this.#ahead(data);
      return this.#lending(() => this.#text(data));
    }
  }

  /** A string of {@link AHEAD_CHARS} or more masked in the worker as the detectors will read it (the credential's echo cleared), then as a reader reads what that made; undefined for any other scalar. */
  #ahead(value: ScalarValue): Promise<void> | undefined {
    if (typeof value !== 'string' || value.length < AHEAD_CHARS) return undefined;
    const text = this.#first?.(value) ?? value;
    return maskAhead([text], this.#rules, this.#owner).then(async (made) => {
      const masked = made.get(text)?.text ?? text;
      const read = readableView(masked);
      this.#lent = read === masked ? made : new Map([...made, ...(await maskAhead([read], this.#rules, this.#owner))]);
    });
  }

  /** `fn` with what the worker made of the scalar being read lent to the detectors (once). */
  #lending<T>(fn: () => T): T {
    const lent = this.#lent;
    if (!lent) return fn();
    this.#lent = undefined;
    return this.#rules.withMasked(lent, fn);
  }

  /** An event's data, masked: as JSON when it reads as JSON, else as text by the detectors. */
  #eventData(data: string): string {
    const bytes = Buffer.from(data, 'utf8');
    try {
      // Shorter than a long text: nothing in it waits for the worker.
      const stream = this.#jsonStream('one');
      return Buffer.concat([stream.pushNow(bytes), stream.end()]).toString('utf8');
    } catch {
      return this.#text(data);
    }
  }

  /** Text (an event's data that is not JSON, its other lines) masked by the detectors, as written and as read. */
  #text(text: string): string {
    const made = this.#json.value([], text);
    return typeof made === 'string' ? made : text;
  }
}
