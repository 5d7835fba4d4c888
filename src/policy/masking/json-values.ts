/**
 * JSON's strings, keys and numbers read as masking reads them (an MCP message, an HTTP body): each
 * mapped by what masks it, and a JSON text as a recording writes it down, what the detectors find in
 * it as keyed hashes.
 */
import { JsonNumber, jsonText, parseJson } from '../../json-number.js';
import { redactDetected } from '../sql/redact.js';
import { integerDigits } from './detectors.js';
import type { MaskingRules } from './rules.js';

/** Whether `value[k]` is binary content as base64 (an image's or audio's `data`, a resource's `blob`), which no detector reads as text. */
export function isBinary(value: object, k: string): boolean {
  return k === 'blob' || (k === 'data' && ((value as { type?: unknown }).type === 'image' || (value as { type?: unknown }).type === 'audio'));
}

/**
 * `value` with every string and every key replaced by `f` of it (a structured result may key its
 * data by it), and every number by `f` of its JSON when that changes it (a card sent as a number
 * comes back as its masked text), but for binary content as base64 (an image's or audio's `data`,
 * a resource's `blob`), which no detector reads as text.
 */
export function mapStrings(value: unknown, f: (s: string) => string): unknown {
  if (typeof value === 'string') return f(value);
  if (typeof value === 'number' || value instanceof JsonNumber) {
    // Read as the digits of its value, as its reader gets them (`4111111111111111e0` and `4111111111111111.0` are a card).
    const text = jsonText(value);
    const digits = /[.eE]/.test(text) ? integerDigits(text.replace(/^-/, '')) : undefined;
    const read = digits === undefined ? text : `${text.startsWith('-') ? '-' : ''}${digits}`;
    const out = f(read);
    return out === read ? value : out;
  }
  if (Array.isArray(value)) return value.map((v) => mapStrings(v, f));
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [f(k), isBinary(value, k) ? v : mapStrings(v, f)]));
}

/**
 * A JSON text (an agent's line, a request's body) as it is written down: what `rules`' detectors find in its strings and numbers
 * as JSON reads them (a card in a `write_file`'s content, `\u0034111 …` too) as keyed hashes
 * (src/policy/sql/redact.ts), the line as sent when they find nothing.
 */
export function redactedLine(text: string, rules: Pick<MaskingRules, 'detectors'> | undefined, key: Buffer | undefined): string {
  const detectors = rules?.detectors;
  if (!detectors?.length) return text;
  const o = { ...(key ? { key } : {}), detectors };
  // Without an escape, what JSON reads is what is written: nothing found in it, nothing is in its strings.
  if (!text.includes('\\') && !redactDetected(text, o).redacted) return text;
  try {
    let found = false;
    const read = mapStrings(parseJson(text), (s) => {
      const r = redactDetected(s, o);
      found ||= r.redacted;
      return r.text;
    });
    return found ? jsonText(read) : text;
  } catch {
    return redactDetected(text, o).text;
  }
}
