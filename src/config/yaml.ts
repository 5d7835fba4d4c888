/**
 * Configuration files in YAML, validated with zod, with every problem reported at once as
 * `<file>:<line>:<col>: <dotted.field.path>: <what is wrong>`: where a field is ({@link Locator}),
 * what zod's issues mean in words ({@link zodProblems}: the expected shape with an example, the
 * keys valid at that place for an unknown key), and schema helpers the config schemas share.
 *
 * @see https://yaml.org/spec/1.2.2/
 * @see https://eemeli.org/yaml/#linecounter
 */
import { LineCounter, isMap, isNode, isScalar, parseDocument, visit } from 'yaml';
import * as z from 'zod';
import { HoopError } from '../errors.js';
import { nearestName } from '../suggest.js';

export const nonEmpty = (what: string) =>
  z
    .string({ error: `must be ${what}` })
    .trim()
    .min(1, { error: `must be ${what}` });
export const stringList = z.array(nonEmpty('a non-empty string')).default([]);

/** A field's path in a parsed YAML document. */
export type Path = (string | number)[];
/** One validation problem, located later with {@link Locator}. */
export interface Problem {
  /** The field the message is about. */
  path: Path;
  message: string;
  /** Where to point when that is not the field itself. */
  at?: Path;
  /** Point at the key of the field rather than its value. */
  atKey?: boolean;
}

/** "unknown key", with the nearest of `knownKeys` (the keys valid where `key` was written) when one is close; never `key` itself. */
function unknownKeyMessage(key: string, knownKeys: readonly string[]): string {
  const near = nearestName(key, knownKeys);
  return near ? `unknown key (did you mean "${near}"?)` : 'unknown key';
}

/** A schema's definition, as far as {@link bareSchema} and {@link schemaAt} read it. */
interface SchemaDef {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  out?: z.ZodType;
}

/**
 * The schema under the wrappers that do not change what a value must look like: optional,
 * default, nullable, readonly, catch, and the pipes `.transform()` makes.
 *
 * @see https://zod.dev/api#optionals
 * @see https://zod.dev/api#transforms
 */
function bareSchema(schema: z.ZodType): z.ZodType {
  let s = schema;
  for (let i = 0; i < 32; i++) {
    const def = s.def as SchemaDef;
    if (def.innerType) s = def.innerType;
    else if (def.type === 'pipe' && def.in && def.out) s = def.in instanceof z.ZodTransform ? def.out : def.in;
    else break;
  }
  return s;
}

/** The option of a union that takes a value shaped like `value` (an object, a list or a scalar); else `schema`. */
function unionOption(schema: z.ZodType, value: unknown): z.ZodType {
  if (!(schema instanceof z.ZodUnion)) return schema;
  const options = (schema.options as readonly z.ZodType[]).map(bareSchema);
  const shaped = options.find((o) =>
    Array.isArray(value)
      ? o instanceof z.ZodArray
      : asRecord(value)
        ? o instanceof z.ZodObject || o instanceof z.ZodRecord
        : !(o instanceof z.ZodArray || o instanceof z.ZodObject || o instanceof z.ZodRecord),
  );
  return shaped ?? schema;
}

/**
 * The schema that validates the value at `path` of `raw` (unwrapped by {@link bareSchema}), or
 * undefined when `schema` has no such place.
 *
 * @see https://zod.dev/api#objects
 */
function schemaAt(schema: z.ZodType, path: Path, raw: unknown): z.ZodType | undefined {
  let s = unionOption(bareSchema(schema), raw);
  let v = raw;
  for (const p of path) {
    let next: z.ZodType | undefined;
    if (s instanceof z.ZodObject && typeof p === 'string') next = Object.hasOwn(s.shape, p) ? (s.shape[p] as z.ZodType) : undefined;
    else if (s instanceof z.ZodArray && typeof p === 'number') next = s.element as z.ZodType;
    else if (s instanceof z.ZodRecord) next = s.valueType as z.ZodType;
    if (!next) return undefined;
    v = valueAt(v, [p]);
    s = unionOption(bareSchema(next), v);
  }
  return s;
}

/** The keys an object may hold at `path` of `raw`, by `schema`; empty when that place is not an object. */
function keysAt(schema: z.ZodType, path: Path, raw: unknown): string[] {
  const s = schemaAt(schema, path, raw);
  return s instanceof z.ZodObject ? Object.keys(s.shape) : [];
}

/** A scalar the user wrote, when it is safe and plain enough to quote back in an example. */
function echoable(value: unknown): string | undefined {
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return typeof value === 'string' && /^[A-Za-z0-9_.@/+-]{1,64}$/.test(value) ? value : undefined;
}

/** How a field is shown in an example: `[...]` for a list, `{...}` for an object, the choices of a short enumeration, else `...`. */
function placeholder(schema: z.ZodType): string {
  const s = bareSchema(schema);
  if (s instanceof z.ZodArray) return '[...]';
  if (s instanceof z.ZodObject || s instanceof z.ZodRecord) return '{...}';
  if (s instanceof z.ZodBoolean) return 'true|false';
  if (s instanceof z.ZodLiteral && s.values.size === 1) return String([...s.values][0]);
  if (s instanceof z.ZodEnum && s.options.length <= 4) return s.options.join('|');
  return '...';
}

/**
 * An example of what `object` takes, such as `{ subject: alice, groups: [...] }`: its required
 * fields and its lists (or its first three fields when it has none), the first one filled with
 * `input` when the user wrote a plain scalar that field accepts.
 */
function objectExample(object: z.ZodObject, input: unknown): string {
  const entries = Object.entries(object.shape) as [string, z.ZodType][];
  let shown = entries.filter(([, s]) => !s.safeParse(undefined).success || bareSchema(s) instanceof z.ZodArray);
  if (shown.length === 0) shown = entries.slice(0, 3);
  shown = shown.slice(0, 6);
  const echo = echoable(input);
  const seed = echo && shown[0]?.[1].safeParse(input).success ? echo : undefined;
  return `{ ${shown.map(([k, s], i) => `${k}: ${i === 0 && seed !== undefined ? seed : placeholder(s)}`).join(', ')} }`;
}

/** An example of what `list` takes: `[x]` when the user wrote one plain value `x` it would take, else `[...]` or `[{ ... }]`. */
function listExample(list: z.ZodArray, input: unknown): string {
  const element = bareSchema(list.element as z.ZodType);
  const echo = echoable(input);
  if (echo !== undefined && (list.element as z.ZodType).safeParse(input).success) return `[${echo}]`;
  if (element instanceof z.ZodObject) return `[${objectExample(element, input)}]`;
  return `[${placeholder(element)}]`;
}

/** What a value is, in words: "a list", "an object", "a string", "a number", "true", "an empty value". */
function describeValue(value: unknown): string {
  if (value === null) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'number') return 'a number';
  return String(value);
}

/**
 * Words a type issue the schema left to zod's default message ("Invalid input: expected object,
 * received string"): what was expected, with an example for objects and lists, and what was
 * written instead. Given as the error map of a parse, it applies only where the schema did not
 * word the issue itself.
 *
 * @see https://zod.dev/error-customization#per-parse-error-customization
 */
export function issueWording(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.code !== 'invalid_type') return undefined;
  const input = issue.input;
  const got = input === undefined ? '' : `, not ${describeValue(input)}`;
  const inst = issue.inst;
  switch (issue.expected) {
    case 'object':
      if (inst instanceof z.ZodObject) return `expected an object like ${objectExample(inst, input)}`;
      return `expected a mapping (key: value)${got}`;
    case 'array':
      return inst instanceof z.ZodArray ? `expected a list like ${listExample(inst, input)}` : `expected a list${got}`;
    case 'string':
      return `expected a string${got}`;
    case 'number':
      return typeof input === 'string' && input.trim() !== '' && Number.isFinite(Number(input)) ? `expected a number, not a string (write ${input.trim()} without quotes)` : `expected a number${got}`;
    case 'boolean':
      return `expected true or false${got}`;
    default:
      return undefined;
  }
}

/**
 * Validates `raw` with `schema`, type issues the schema does not word itself worded by
 * {@link issueWording}; turn a failure into problems with {@link zodProblems}.
 *
 * @see https://zod.dev/error-customization#per-parse-error-customization
 */
export function parseWithSchema<S extends z.ZodType>(schema: S, raw: unknown): z.ZodSafeParseResult<z.output<S>> {
  return schema.safeParse(raw, { error: issueWording });
}

export function dotted(path: Path): string {
  return path.length === 0 ? '(top level)' : path.map(String).join('.');
}

/** A problem as every reader of configuration says it: `file:line:col: path: message` (no path for a problem of the text itself, such as its syntax). */
export function problemLine(file: string, pos: { line: number; col: number }, path: Path | undefined, message: string): string {
  return `${file}:${pos.line}:${pos.col}: ${path ? `${dotted(path)}: ` : ''}${message}`;
}

/** The problems of one file, each at its place (as {@link Locator} finds it), in the order they appear in the file. */
export function locatedProblems(file: string, problems: readonly Problem[], locator: Locator): string[] {
  return problems
    .map((p) => ({ p, pos: locator.position(p.at ?? p.path, p.atKey) }))
    .sort((a, b) => a.pos.line - b.pos.line || a.pos.col - b.pos.col)
    .map(({ p, pos }) => problemLine(file, pos, p.path, p.message));
}

/** A file's YAML syntax problems, said as {@link problemLine} says them. */
export function syntaxProblems(file: string, problems: readonly YamlSyntaxProblem[]): string[] {
  return problems.map((p) => problemLine(file, p, undefined, p.message));
}

/**
 * A YAML syntax error message without the source excerpt the library appends (it may hold a secret).
 *
 * @see https://eemeli.org/yaml/#errors
 */
export function yamlMessage(message: string): string {
  return message.split('\n')[0]!.replace(/ at line \d+, column \d+:?\s*$/, '');
}

/** A YAML syntax problem: where (1-based) and what, the source left out. */
export interface YamlSyntaxProblem {
  line: number;
  col: number;
  message: string;
}

/**
 * One YAML document as every configuration file of hoop is read: duplicate keys refused, at most
 * 100 alias expansions; its value and a {@link Locator} of its nodes, or its syntax problems at
 * their lines and columns (an alias that cannot be expanded: at the alias).
 *
 * @see https://eemeli.org/yaml/#parsing-yaml
 */
export function readYaml(text: string): { raw: unknown; locator: Locator } | { problems: YamlSyntaxProblem[] } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return { problems: doc.errors.map((e) => ({ ...(e.linePos?.[0] ?? lineCounter.linePos(e.pos[0])), message: yamlMessage(e.message) })) };
  }
  try {
    return { raw: doc.toJS({ maxAliasCount: 100 }) ?? {}, locator: new Locator(doc, lineCounter) };
  } catch (err) {
    let pos = { line: 1, col: 1 };
    visit(doc, {
      Alias(_key, node) {
        if (node.range && (err as Error).message.includes(node.source)) {
          pos = lineCounter.linePos(node.range[0]);
          return visit.BREAK;
        }
        return undefined;
      },
    });
    return { problems: [{ ...pos, message: yamlMessage((err as Error).message) }] };
  }
}

/**
 * A YAML document read with {@link readYaml} and validated with `schema`: its data, or its
 * problems (syntax problems located; schema problems to locate with the returned locator).
 */
export function readYamlWith<S extends z.ZodType>(text: string, schema: S): { data: z.output<S>; locator: Locator } | { problems: YamlSyntaxProblem[] } | { invalid: Problem[]; locator: Locator } {
  const read = readYaml(text);
  if ('problems' in read) return read;
  const parsed = parseWithSchema(schema, read.raw);
  return parsed.success ? { data: parsed.data, locator: read.locator } : { invalid: zodProblems(parsed.error, read.raw, schema), locator: read.locator };
}

/**
 * Finds the 1-based line and column of a field of a parsed YAML document.
 *
 * @see https://eemeli.org/yaml/#linecounter
 */
export class Locator {
  constructor(
    private readonly doc: ReturnType<typeof parseDocument>,
    private readonly lines: LineCounter,
  ) {}

  /** 1-based line and column of the node at `path`, or of its nearest existing ancestor. */
  position(path: Path, atKey = false): { line: number; col: number } {
    for (let n = path.length; n >= 0; n--) {
      const sub = path.slice(0, n);
      if (atKey && n === path.length && n > 0) {
        const parent = sub.length > 1 ? this.doc.getIn(sub.slice(0, -1), true) : this.doc.contents;
        if (isMap(parent)) {
          const pair = parent.items.find((p) => isScalar(p.key) && p.key.value === sub[sub.length - 1]);
          if (pair && isNode(pair.key) && pair.key.range) return this.lines.linePos(pair.key.range[0]);
        }
        continue;
      }
      const node = sub.length === 0 ? this.doc.contents : this.doc.getIn(sub, true);
      if (isNode(node) && node.range) return this.lines.linePos(node.range[0]);
    }
    return { line: 1, col: 1 };
  }
}

function valueAt(raw: unknown, path: Path): unknown {
  let v = raw;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[p];
  }
  return v;
}

/** For a number or true/false written in quotes (`port: "5432"`), how to write it; else empty. */
function quotedScalarHint(issue: z.core.$ZodIssue, value: unknown): string {
  if (issue.code !== 'invalid_type' || typeof value !== 'string' || issue.message.includes('without quotes')) return '';
  const text = value.trim();
  const fits = issue.expected === 'number' ? text !== '' && Number.isFinite(Number(text)) : issue.expected === 'boolean' && (text === 'true' || text === 'false');
  return fits ? ` (write ${text} without quotes)` : '';
}

/**
 * Turns the issues of validating `raw` with `schema` into problems; an unknown key gets a "did
 * you mean" from the keys `schema` allows where it was written (never the key itself).
 *
 * @see https://zod.dev/error-customization
 */
export function zodProblems(error: z.ZodError, raw: unknown, schema: z.ZodType): Problem[] {
  const out: Problem[] = [];
  for (const issue of error.issues) {
    const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
    if (issue.code === 'unrecognized_keys') {
      const known = keysAt(schema, path, raw);
      for (const key of issue.keys) out.push({ path: [...path, key], message: unknownKeyMessage(key, known), atKey: true });
    } else if (path.length > 0 && valueAt(raw, path) === undefined) {
      out.push({ path, message: `is missing (${issue.message})` });
    } else {
      out.push({ path, message: issue.message + quotedScalarHint(issue, valueAt(raw, path)) });
    }
  }
  return out;
}

export function asRecord(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/** Why `file` could not be read (`cannot read x: no such file`), or why it may not be trusted (a HoopError's message and hint). */
export function unreadable(file: string, err: unknown): string {
  return err instanceof HoopError ? `${err.message} (${err.hint ?? ''})` : `cannot read ${file}: ${readErrorMessage(err)}`;
}

export function readErrorMessage(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  return code ?? 'unreadable';
}
