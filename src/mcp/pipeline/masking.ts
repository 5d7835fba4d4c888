/**
 * Masking, as a stage (./stages.ts): every string (and key) of what a call, a read, a prompt or a
 * completion returns, of the server's instructions, progress, log and requests, read by the masking
 * detectors; and an agent's line as the recording keeps it, what the detectors find in it as keyed hashes.
 */
import { JsonNumber, jsonText } from '../../json-number.js';
import { maskAhead } from '../../policy/masking/mask-ahead.js';
import { AHEAD_CHARS, type MaskedText, type MaskingRules } from '../../policy/masking/rules.js';
import { readableView } from '../../policy/masking/values.js';
import { isBinary, mapStrings } from '../../policy/masking/json-values.js';
import type { SessionReport } from '../../session/engine.js';
import type { InFlight, McpStage } from './stages.js';

/** The answers (results and errors) whose strings the masking detectors read: what a call, a read, a prompt or a completion returns. */
const MASKED: Record<string, true> = { 'tools/call': true, 'resources/read': true, 'prompts/get': true, 'completion/complete': true };
/** The server's notifications whose parameters the detectors read (a server may log the row it read). */
const MASKED_NOTIFICATIONS: Record<string, true> = { 'notifications/progress': true, 'notifications/message': true };

/** The strings and keys of `value` that {@link mapStrings} reads, of {@link AHEAD_CHARS} or more: masked ahead in the worker. */
function longStrings(value: unknown, into: string[] = []): string[] {
  if (typeof value === 'string') {
    if (value.length >= AHEAD_CHARS) into.push(value);
  } else if (value instanceof JsonNumber) {
    // A number of many digits is read as its text (`integerDigits` reads 40 at most).
    const text = jsonText(value);
    if (text.length >= AHEAD_CHARS) into.push(text);
  } else if (Array.isArray(value)) for (const v of value) longStrings(v, into);
  else if (typeof value === 'object' && value !== null)
    for (const [k, v] of Object.entries(value)) {
      longStrings(k, into);
      if (!isBinary(value, k)) longStrings(v, into);
    }
  return into;
}

/** A name per masking stage, for {@link maskAhead} to take each session's long texts in turn with others'. */
let maskers = 0;

/** See the module documentation. */
export class McpMasking implements McpStage {
  readonly #rules: MaskingRules;
  readonly #report: SessionReport | undefined;
  /** Whose long texts these are, for the worker's turns. */
  readonly #owner = `mcp-${++maskers}`;

  constructor(rules: MaskingRules, report: SessionReport | undefined) {
    this.#rules = rules;
    this.#report = report;
  }

  toAgent(raw: Record<string, unknown>, flight: InFlight | undefined): Record<string, unknown> | Promise<Record<string, unknown>> {
    const field = this.#field(raw, flight);
    if (field === undefined) return raw;
    // Long strings are masked in the worker first (a result may hold 4 MiB): the relay hands on nothing of the server's meanwhile.
    const long = longStrings(raw[field]);
    if (long.length === 0) return this.#masked(flight, raw, field);
    return this.#ahead(long).then((masked) => this.#rules.withMasked(masked, () => this.#masked(flight, raw, field)));
  }

  /** Which field of `raw` (an answer to `flight`, or the server's own message) the detectors read, if any. */
  #field(raw: Record<string, unknown>, flight: InFlight | undefined): string | undefined {
    // A notification the detectors read, or a request of the server's the policy lets it send the agent (`sampling/createMessage`).
    if (!flight) return typeof raw.method === 'string' && (Object.hasOwn(MASKED_NOTIFICATIONS, raw.method) || 'id' in raw) ? 'params' : undefined;
    // An error answer, to any request, is read as a result is: a server's error may quote the row it failed on, or echo what the agent sent (`Invalid cursor: …`).
    if ('error' in raw) return 'error';
    // The server's instructions go to the agent's model: read by the detectors as a result is.
    return Object.hasOwn(MASKED, flight.method) || flight.method === 'initialize' ? 'result' : undefined;
  }

  /** What the worker made of `texts`, and of how a reader reads what it made of them where that differs (as {@link #masked} reads each string twice). */
  async #ahead(texts: string[]): Promise<Map<string, MaskedText>> {
    const first = await maskAhead(texts, this.#rules, this.#owner);
    const read = texts.flatMap((t) => {
      const out = this.#rules.withMasked(first, () => this.#rules.maskText(t)).text;
      const view = readableView(out);
      return view === out ? [] : [view];
    });
    return read.length === 0 ? first : new Map([...first, ...(await maskAhead(read, this.#rules, this.#owner))]);
  }

  /** `raw` with every string (and key) of its `field` masked by the detectors; `raw` itself when none matched. */
  #masked(flight: InFlight | undefined, raw: Record<string, unknown>, field: string): Record<string, unknown> {
    let changed = false;
    const masked = mapStrings(raw[field], (s) => {
      const out = this.#rules.maskText(s);
      // What a reader of the text gets where it differs (JSON's `\u0034` escapes, XML's character references, hex runs): masked as read.
      const read = readableView(out.text);
      const again = read === out.text ? undefined : this.#rules.maskText(read);
      if (out.changed || again?.changed) changed = true;
      return again?.changed ? again.text : out.text;
    });
    if (!changed) return raw;
    this.#report?.masked(flight?.tool !== undefined ? `tool:${flight.tool}` : (flight?.method ?? String(raw.method)), 'detector');
    return { ...raw, [field]: masked };
  }
}
