/**
 * A runbook's typed parameters (issue 77; not yet read from `runbooks/*.yaml` nor run): each
 * declared once, each value given to a run checked against its type before anything runs, and
 * handed on as a value to bind, never as text to splice into a statement or a command line.
 *
 * ```yaml
 * parameters:
 *   order_id: { type: integer, min: 1 }
 *   amount:   { type: integer, min: 1, max: 10000, description: cents }
 *   reason:   { type: string, pattern: "[a-z ]{1,80}", default: customer request }
 *   kind:     { type: enum, values: [full, partial] }
 *   customer: { type: uuid }
 *   since:    { type: date, required: false }
 * ```
 *
 * A value is read one way per type, and everything else is refused naming the parameter: an
 * integer as ASCII digits (no `+`, spaces, leading zeros, other scripts' digits, exponents) within
 * PostgreSQL's int8 and the declared range; a uuid in its 8-4-4-4-12 form, given back lower-case; a
 * date as `YYYY-MM-DD` of the proleptic Gregorian calendar; an enum value exactly as declared; a
 * string of at most `maxLength` characters (default 256) with no control, format (bidi, zero-width)
 * or unpaired surrogate character, matched whole by its `pattern` in time linear in its length
 * (../linear-regex.ts). From the command line (`--param k=v`) a value is text; from JSON (MCP
 * tool arguments, the gateway's API) an integer must be a JSON number and the rest JSON strings.
 */
import * as z from 'zod';
import type { RunbookParamInfo } from '../api/answers.js';
import { ErrorCode, HoopError } from '../errors.js';
import { LinearRegex } from '../linear-regex.js';

/** The types a parameter may have. */
export const PARAM_TYPES = ['string', 'integer', 'enum', 'uuid', 'date'] as const;
export type ParamType = (typeof PARAM_TYPES)[number];

/** A parameter's name: what `--param name=…` and a step's binding say. */
export const PARAM_NAME = /^[a-z][a-z0-9_]{0,62}$/;

/** A string parameter's longest value by default, and the most any may declare (characters). */
export const DEFAULT_MAX_LENGTH = 256;
export const MAX_LENGTH = 65_536;

/** PostgreSQL's int8 range: the widest integer a step binds. */
const INT8_MIN = -(2n ** 63n);
const INT8_MAX = 2n ** 63n - 1n;

/** A value as checked: its type, and its one canonical text (what a step binds). */
export interface ParamValue {
  readonly type: ParamType;
  readonly text: string;
}

/** A parameter as declared. */
export type ParamSpec = { readonly name: string; readonly description?: string; readonly required: boolean; readonly default?: ParamValue } & (
  | { readonly type: 'string'; readonly maxLength: number; readonly pattern?: { readonly source: string; readonly regex: LinearRegex } }
  | { readonly type: 'integer'; readonly min?: bigint; readonly max?: bigint }
  | { readonly type: 'enum'; readonly values: readonly string[] }
  | { readonly type: 'uuid' }
  | { readonly type: 'date' }
);

/** A value refused: it names the parameter and says why, and nothing runs. */
export class RunbookParamError extends HoopError {
  constructor(
    readonly param: string,
    reason: string,
    hint?: string,
  ) {
    super(ErrorCode.RUNBOOK_PARAM, `parameter ${param}: ${reason}`, hint !== undefined ? { hint } : {});
  }
}

/**
 * Characters a string value may not hold: controls (C0, DEL, C1), formats (bidi controls,
 * zero-width, the BOM, tags), line and paragraph separators, and unpaired surrogates: what a
 * reviewer would not see as sent, or what is not text.
 */
const UNSEEN = /[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/u;

/** Why string `v` may not be any parameter's value, or undefined. */
function unseenCharacter(v: string): string | undefined {
  const m = UNSEEN.exec(v);
  return m ? `holds U+${m[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}, a control, invisible or unpaired character` : undefined;
}

/** An integer written as ASCII digits, one way: no sign but a minus, no leading zero. */
const INTEGER_TEXT = /^(?:0|-?[1-9][0-9]*)$/;
const UUID_TEXT = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const DATE_TEXT = /^([0-9]{4})-([0-9]{2})-([0-9]{2})$/;

/** Whether year `y`, month `m`, day `d` name a day of the proleptic Gregorian calendar (years 1 to 9999). */
function isDay(y: number, m: number, d: number): boolean {
  if (y < 1 || m < 1 || m > 12 || d < 1) return false;
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]!;
  return d <= days;
}

/** What `spec` takes, as said to whoever gave a value it refused. */
export function describeParam(spec: ParamSpec): string {
  switch (spec.type) {
    case 'string':
      return `a string of at most ${spec.maxLength} characters${spec.pattern ? ` matching ${spec.pattern.source}` : ''}`;
    case 'integer':
      return `an integer${spec.min !== undefined ? ` ≥ ${spec.min}` : ''}${spec.max !== undefined ? ` ≤ ${spec.max}` : ''}`;
    case 'enum':
      return `one of ${spec.values.join(', ')}`;
    case 'uuid':
      return 'a uuid (8-4-4-4-12 hex digits)';
    case 'date':
      return 'a date (YYYY-MM-DD)';
  }
}

/** Text `v` checked as `spec`'s value; throws {@link RunbookParamError} naming it. */
function checkText(spec: ParamSpec, v: string): ParamValue {
  const refuse = (why: string): never => {
    throw new RunbookParamError(spec.name, why, `it takes ${describeParam(spec)}`);
  };
  switch (spec.type) {
    case 'string': {
      const unseen = unseenCharacter(v);
      if (unseen) refuse(unseen);
      const length = [...v].length;
      if (length > spec.maxLength) refuse(`${length} characters, more than its ${spec.maxLength}`);
      if (spec.pattern && !spec.pattern.regex.test(v)) refuse(`does not match ${spec.pattern.source}`);
      return { type: 'string', text: v };
    }
    case 'integer': {
      if (v.length > 20 || !INTEGER_TEXT.test(v)) refuse('is not an integer written in ASCII digits (no +, spaces, leading zeros or exponent)');
      const n = BigInt(v);
      if (n < INT8_MIN || n > INT8_MAX) refuse('is outside the 64-bit integers');
      if (spec.min !== undefined && n < spec.min) refuse(`is less than ${spec.min}`);
      if (spec.max !== undefined && n > spec.max) refuse(`is more than ${spec.max}`);
      return { type: 'integer', text: n.toString() };
    }
    case 'enum':
      if (!spec.values.includes(v)) refuse(`is none of ${spec.values.join(', ')}`);
      return { type: 'enum', text: v };
    case 'uuid':
      if (!UUID_TEXT.test(v)) refuse('is not a uuid');
      return { type: 'uuid', text: v.toLowerCase() };
    case 'date': {
      const m = DATE_TEXT.exec(v);
      if (!m || !isDay(Number(m[1]), Number(m[2]), Number(m[3]))) refuse('is not a day written YYYY-MM-DD');
      return { type: 'date', text: v };
    }
  }
}

/** JSON value `v` checked as `spec`'s value: an integer as a JSON number, every other type as a JSON string. */
function checkJson(spec: ParamSpec, v: unknown): ParamValue {
  if (spec.type === 'integer') {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
      throw new RunbookParamError(spec.name, `${jsonKind(v)}, not an integer`, `it takes ${describeParam(spec)}`);
    }
    return checkText(spec, String(v));
  }
  if (typeof v !== 'string') throw new RunbookParamError(spec.name, `${jsonKind(v)}, not a string`, `it takes ${describeParam(spec)}`);
  return checkText(spec, v);
}

/** What kind of JSON value `v` is, as a refusal says it. */
function jsonKind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'number') return Number.isInteger(v) ? 'an integer beyond 2^53' : 'a number with a fraction';
  return `a ${typeof v === 'object' ? 'JSON object' : typeof v}`;
}

/** A runbook's parameters, declared once: checks what a run is given. */
export class RunbookParams {
  readonly #specs: ReadonlyMap<string, ParamSpec>;

  constructor(specs: readonly ParamSpec[]) {
    this.#specs = new Map(specs.map((s) => [s.name, s]));
  }

  /** The parameters, in the order declared. */
  get specs(): readonly ParamSpec[] {
    return [...this.#specs.values()];
  }

  /**
   * The values of a run: each given one checked (`text` from the command line, `json` from MCP
   * or the API), each missing one its default; throws {@link RunbookParamError} for the first
   * parameter unknown, missing, given twice (`given` as pairs) or refused, before anything runs.
   */
  check(given: Iterable<readonly [string, unknown]>, from: 'text' | 'json'): ReadonlyMap<string, ParamValue> {
    const values = new Map<string, ParamValue>();
    for (const [name, v] of given) {
      const spec = this.#specs.get(name);
      if (!spec) {
        const known = [...this.#specs.keys()];
        throw new RunbookParamError(name, 'the runbook has no such parameter', known.length > 0 ? `it takes ${known.join(', ')}` : 'it takes none');
      }
      if (values.has(name)) throw new RunbookParamError(name, 'given twice');
      if (from === 'text' && typeof v !== 'string') throw new RunbookParamError(name, 'given without a value', `write --param ${name}=VALUE`);
      values.set(name, from === 'text' ? checkText(spec, v as string) : checkJson(spec, v));
    }
    for (const spec of this.#specs.values()) {
      if (values.has(spec.name)) continue;
      if (spec.default) values.set(spec.name, spec.default);
      else if (spec.required) throw new RunbookParamError(spec.name, 'is required', `it takes ${describeParam(spec)}`);
    }
    return values;
  }

  /** The parameters as a JSON Schema object (an MCP tool's `inputSchema`): what {@link check} takes from JSON. */
  jsonSchema(): { type: 'object'; properties: Record<string, Record<string, unknown>>; required: string[]; additionalProperties: false } {
    const properties: Record<string, Record<string, unknown>> = {};
    for (const s of this.#specs.values()) {
      const described = { ...(s.description !== undefined ? { description: s.description } : {}), ...(s.default ? { default: s.type === 'integer' ? Number(s.default.text) : s.default.text } : {}) };
      if (s.type === 'integer') {
        properties[s.name] = { type: 'integer', ...(s.min !== undefined ? { minimum: Number(s.min) } : {}), ...(s.max !== undefined ? { maximum: Number(s.max) } : {}), ...described };
      } else if (s.type === 'enum') properties[s.name] = { type: 'string', enum: [...s.values], ...described };
      else if (s.type === 'string') properties[s.name] = { type: 'string', maxLength: s.maxLength, ...(s.pattern ? { pattern: `^(?:${s.pattern.source})$` } : {}), ...described };
      else properties[s.name] = { type: 'string', format: s.type === 'uuid' ? 'uuid' : 'date', ...described };
    }
    const required = [...this.#specs.values()].filter((s) => s.required && !s.default).map((s) => s.name);
    return { type: 'object', properties, required, additionalProperties: false };
  }
}

/** Parameter `p` as JSON describes it (the gateway's API, `policy show --json`): its bounds as numbers, its pattern as written, its default's text. */
export function paramInfo(p: ParamSpec): RunbookParamInfo {
  return {
    name: p.name,
    type: p.type,
    required: p.required && !p.default,
    ...(p.description !== undefined ? { description: p.description } : {}),
    ...(p.default ? { default: p.default.text } : {}),
    ...(p.type === 'integer' && p.min !== undefined ? { min: Number(p.min) } : {}),
    ...(p.type === 'integer' && p.max !== undefined ? { max: Number(p.max) } : {}),
    ...(p.type === 'enum' ? { values: [...p.values] } : {}),
    ...(p.type === 'string' ? { maxLength: p.maxLength, ...(p.pattern ? { pattern: p.pattern.source } : {}) } : {}),
  };
}

/* ------------------------------------------------------------------ the YAML */

const safeInteger = z.number({ error: 'must be an integer' }).int({ error: 'must be an integer' }).refine(Number.isSafeInteger, { error: 'must be an integer within ±2^53' });
const common = { description: z.string().min(1).max(500).optional(), required: z.boolean().optional() };

/** One parameter's declaration, before its default is checked against it. */
const paramSchema = z.discriminatedUnion(
  'type',
  [
    z.strictObject({ type: z.literal('string'), ...common, default: z.string().optional(), maxLength: safeInteger.min(1).max(MAX_LENGTH).optional(), pattern: z.string().min(1).optional() }),
    z.strictObject({ type: z.literal('integer'), ...common, default: safeInteger.optional(), min: safeInteger.optional(), max: safeInteger.optional() }),
    z.strictObject({
      type: z.literal('enum'),
      ...common,
      default: z.string().optional(),
      values: z
        .array(z.string().min(1).max(DEFAULT_MAX_LENGTH), { error: 'must be a list of strings' })
        .min(1, { error: 'must list at least one value' })
        .refine((vs) => new Set(vs).size === vs.length, { error: 'must not list a value twice' }),
    }),
    z.strictObject({ type: z.literal('uuid'), ...common, default: z.string().optional() }),
    z.strictObject({ type: z.literal('date'), ...common, default: z.string().optional() }),
  ],
  { error: `type must be one of ${PARAM_TYPES.join(', ')}` },
);

/** The `parameters` map of a runbook file, as its schema reads it: names to declarations, checked whole (a pattern hoop cannot run, a default its own type refuses, min above max) into {@link ParamSpec}s. */
export const paramsSchema = z.record(z.string(), paramSchema).transform((decls, ctx): ParamSpec[] => {
  const specs: ParamSpec[] = [];
  for (const [name, d] of Object.entries(decls)) {
    const issue = (message: string): void => void ctx.issues.push({ code: 'custom', input: d, path: [name], message });
    if (!PARAM_NAME.test(name)) {
      issue('a parameter name is lower-case letters, digits and _, starting with a letter (at most 63)');
      continue;
    }
    const base = { name, ...(d.description !== undefined ? { description: d.description } : {}), required: d.required ?? true };
    let spec: ParamSpec;
    if (d.type === 'string') {
      let pattern: { source: string; regex: LinearRegex } | undefined;
      if (d.pattern !== undefined) {
        try {
          pattern = { source: d.pattern, regex: new LinearRegex(`^(?:${d.pattern})$`) };
        } catch (err) {
          issue(`pattern is not a regular expression hoop runs: ${(err as Error).message}`);
          continue;
        }
      }
      spec = { ...base, type: 'string', maxLength: d.maxLength ?? DEFAULT_MAX_LENGTH, ...(pattern ? { pattern } : {}) };
    } else if (d.type === 'integer') {
      if (d.min !== undefined && d.max !== undefined && d.min > d.max) {
        issue(`min ${d.min} is more than max ${d.max}`);
        continue;
      }
      spec = { ...base, type: 'integer', ...(d.min !== undefined ? { min: BigInt(d.min) } : {}), ...(d.max !== undefined ? { max: BigInt(d.max) } : {}) };
    } else if (d.type === 'enum') spec = { ...base, type: 'enum', values: d.values };
    else spec = { ...base, type: d.type };
    if (d.default !== undefined) {
      try {
        spec = { ...spec, default: d.type === 'integer' ? checkJson(spec, d.default) : checkText(spec, d.default as string) };
      } catch (err) {
        issue(`default: ${(err as Error).message}`);
        continue;
      }
    }
    specs.push(spec);
  }
  return specs;
});
