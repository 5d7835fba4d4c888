/**
 * One output contract for every command: `--json` prints one JSON document (pretty on a terminal,
 * one compact line when piped), and colour marks decisions, states and headers on a terminal only:
 * never when NO_COLOR is set, with `--no-color`, with TERM=dumb, or into a pipe.
 *
 * @see https://no-color.org/
 */
import { ErrorCode, HoopError } from '../errors.js';
import type { CliIo } from '../io.js';
import { parseJsonPath, selectJsonPath } from '../json-path.js';
import { columns } from '../text-format.js';
import { jsonText } from '../json-number.js';

const isTerminal = (stream: unknown): boolean => (stream as { isTTY?: boolean } | undefined)?.isTTY === true;

/**
 * Prints `value` as the command's JSON: indented for a person at a terminal, one line for a program;
 * with `--jq PATH` (io.jq) only what the path selects, one per line, strings bare (as `gh --jq`).
 */
export function printJson(io: CliIo, value: unknown): void {
  const indent = isTerminal(io.stdout) ? 2 : undefined;
  if (io.jq === undefined) {
    io.stdout.write(`${jsonText(value, indent)}\n`);
    return;
  }
  const steps = parseJsonPath(io.jq);
  if (!steps)
    throw new HoopError(ErrorCode.USAGE, `--jq ${JSON.stringify(io.jq)} is not a path hoop reads`, { hint: 'a path such as .sessions[].id or .connections[0].name; for more, pipe --json to jq' });
  for (const v of selectJsonPath(value, steps)) io.stdout.write(`${typeof v === 'string' ? v : jsonText(v, indent)}\n`);
}

/** Whether what a command prints on stdout may be coloured. */
export function colourOn(io: CliIo): boolean {
  const off = io.noColor === true || (io.env.NO_COLOR !== undefined && io.env.NO_COLOR !== '') || io.env.TERM === 'dumb';
  return !off && isTerminal(io.stdout);
}

/** The colours a command paints with: each returns its text unchanged when colour is off. */
export interface Palette {
  good(text: string): string;
  bad(text: string): string;
  warn(text: string): string;
  header(text: string): string;
  dim(text: string): string;
  /** A decision or state word in its colour: allow/approved/complete green, deny/denied/refused red, review/pending yellow. */
  word(text: string): string;
}

const sgr =
  (on: boolean, open: number, close: number) =>
  (text: string): string =>
    on && text !== '' ? `\u001b[${open}m${text}\u001b[${close}m` : text;

const GOOD = new Set(['allow', 'allowed', 'approved', 'complete', 'verified', 'open', 'ok', 'read-write']);
const BAD = new Set(['deny', 'denied', 'refused', 'failed', 'expired', 'truncated', 'suspended']);
const WARN = new Set(['review', 'pending', 'running', 'withdrawn', 'read-only']);

/** The palette of `io`'s stdout. */
export function palette(io: CliIo): Palette {
  const on = colourOn(io);
  const good = sgr(on, 32, 39);
  const bad = sgr(on, 31, 39);
  const warn = sgr(on, 33, 39);
  return {
    good,
    bad,
    warn,
    header: sgr(on, 1, 22),
    dim: sgr(on, 2, 22),
    word: (text) => (GOOD.has(text) ? good(text) : BAD.has(text) ? bad(text) : WARN.has(text) ? warn(text) : text),
  };
}

/** Rows as columns two spaces apart, the first row (the headers) in bold and state words in their colour. */
export function paintedTable(io: CliIo, rows: string[][]): string {
  const p = palette(io);
  return `${columns(rows, (cell, r) => (r === 0 ? p.header(cell) : p.word(cell))).join('\n')}\n`;
}
