/**
 * The regular expressions of hoop's policy (SSH `patterns`, masking's column `names`), run in time
 * linear in their input: a pattern is compiled once to a program that a Pike VM runs over the input
 * a code unit at a time, with one thread per program position, so no input can make it backtrack.
 * It reads JavaScript's syntax (as `new RegExp(source)` without the `u` flag reads it) but for what
 * needs backtracking or more: lookaround and backreferences are refused when the policy loads.
 *
 * @see https://swtch.com/~rsc/regexp/regexp2.html (the Pike VM)
 * @see https://tc39.es/ecma262/#sec-regexp-regular-expression-objects (the syntax read)
 */
import { ErrorCode, HoopError } from './errors.js';

/** A pattern hoop cannot run in linear time, or not a regular expression at all. */
export class RegexSyntaxError extends HoopError {
  constructor(message: string) {
    super(ErrorCode.CONFIG_INVALID, message);
  }
}

/** Work done by matching, for tests: each thread added and each code unit tried is a step. */
export interface Steps {
  steps: number;
}

/** A set of code units, as a predicate. */
type CharTest = (c: number) => boolean;

/** One instruction: take a code unit the test accepts, branch, jump, assert, or match. */
type Op = { op: 'char'; test: CharTest } | { op: 'split'; x: number; y: number } | { op: 'jmp'; x: number } | { op: 'assert'; kind: '^' | '$' | 'b' | 'B' } | { op: 'match' };

/** The parsed pattern. */
type Node =
  | { t: 'char'; test: CharTest }
  | { t: 'seq'; items: Node[] }
  | { t: 'alt'; items: Node[] }
  | { t: 'repeat'; item: Node; min: number; max: number }
  | { t: 'assert'; kind: '^' | '$' | 'b' | 'B' };

/** An unknown run of characters in {@link LinearRegex.mayMatch}'s input. */
const HOLE = -1;
/** Instructions a pattern may compile to: a bound on `{n,m}` expansion. */
const MAX_PROGRAM = 20_000;
/** What a bounded repetition may name, `{n,m}` beyond it refused. */
const MAX_COUNT = 1_000;

const code = (s: string): number => s.charCodeAt(0);
const inRange =
  (lo: number, hi: number): CharTest =>
  (c) =>
    c >= lo && c <= hi;
const isDigit = inRange(48, 57);
const isWord: CharTest = (c) => isDigit(c) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
/** JavaScript's \s: white space and line terminators. */
const isSpace: CharTest = (c) =>
  (c >= 9 && c <= 13) || c === 32 || c === 0xa0 || c === 0x1680 || (c >= 0x2000 && c <= 0x200a) || c === 0x2028 || c === 0x2029 || c === 0x202f || c === 0x205f || c === 0x3000 || c === 0xfeff;
const isLineEnd: CharTest = (c) => c === 10 || c === 13 || c === 0x2028 || c === 0x2029;
const not =
  (t: CharTest): CharTest =>
  (c) =>
    !t(c);
const CLASS_ESCAPES: Record<string, CharTest> = { d: isDigit, D: not(isDigit), w: isWord, W: not(isWord), s: isSpace, S: not(isSpace) };
const CONTROL_ESCAPES: Record<string, number> = { n: 10, r: 13, t: 9, f: 12, v: 11, '0': 0 };
/** Characters an escape stands for itself: JavaScript's syntax characters, `/` and `-`. */
const SYNTAX = '^$\\.*+?()[]{}|/-';

/** Reads a pattern into its tree (see the module documentation for what is refused). */
class Parser {
  #i = 0;
  constructor(
    readonly src: string,
    readonly ignoreCase: boolean,
  ) {}

  parse(): Node {
    const node = this.#alternation();
    if (this.#i < this.src.length) this.#fail(this.src[this.#i] === ')' ? 'an unmatched )' : `an unexpected ${this.src[this.#i]}`);
    return node;
  }

  #fail(what: string): never {
    throw new RegexSyntaxError(`${what} at offset ${this.#i}`);
  }

  #peek(): string | undefined {
    return this.src[this.#i];
  }

  #alternation(): Node {
    const items = [this.#sequence()];
    while (this.#peek() === '|') {
      this.#i++;
      items.push(this.#sequence());
    }
    return items.length === 1 ? items[0]! : { t: 'alt', items };
  }

  #sequence(): Node {
    const items: Node[] = [];
    for (let c = this.#peek(); c !== undefined && c !== '|' && c !== ')'; c = this.#peek()) items.push(this.#quantified(this.#atom()));
    return { t: 'seq', items };
  }

  #quantified(item: Node): Node {
    const c = this.#peek();
    let min: number;
    let max: number;
    if (c === '*') [min, max] = [0, Number.POSITIVE_INFINITY];
    else if (c === '+') [min, max] = [1, Number.POSITIVE_INFINITY];
    else if (c === '?') [min, max] = [0, 1];
    else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.#i));
      if (!m) return item; // a brace that is not a quantifier is itself, as JavaScript reads it
      min = Number(m[1]);
      max = m[2] === undefined ? min : m[3] === '' ? Number.POSITIVE_INFINITY : Number(m[3]);
      if (min > MAX_COUNT || (max !== Number.POSITIVE_INFINITY && max > MAX_COUNT)) this.#fail(`a repetition over ${MAX_COUNT}`);
      if (max < min) this.#fail('a repetition whose numbers are out of order');
      this.#i += m[0].length - 1;
    } else return item;
    this.#i++;
    if (this.#peek() === '?') this.#i++; // lazy or greedy: the same for whether it matches
    if (item.t === 'assert') this.#fail('a repeated assertion');
    if (['*', '+', '?', '{'].includes(this.#peek() ?? '') && !(this.#peek() === '{' && !/^\{\d+(,\d*)?\}/.test(this.src.slice(this.#i)))) this.#fail('nothing to repeat');
    return { t: 'repeat', item, min, max };
  }

  #atom(): Node {
    const c = this.src[this.#i++]!;
    switch (c) {
      case '(': {
        if (this.src.startsWith('?:', this.#i)) this.#i += 2;
        else if (this.src[this.#i] === '?') {
          if (this.src.startsWith('?<', this.#i) && !/^\?<[=!]/.test(this.src.slice(this.#i))) {
            const end = this.src.indexOf('>', this.#i);
            if (end < 0) this.#fail('an unterminated group name');
            this.#i = end + 1;
          } else this.#fail('lookaround, which hoop does not run (it cannot in linear time)');
        }
        const inner = this.#alternation();
        if (this.#peek() !== ')') this.#fail('an unterminated group');
        this.#i++;
        return inner;
      }
      case '[':
        return { t: 'char', test: this.#class() };
      case '.':
        return { t: 'char', test: not(isLineEnd) };
      case '^':
        return { t: 'assert', kind: '^' };
      case '$':
        return { t: 'assert', kind: '$' };
      case '\\':
        return this.#escape();
      case '*':
      case '+':
      case '?':
        return this.#fail('nothing to repeat');
      case ')':
        return this.#fail('an unmatched )');
      default: {
        if (c === '{' && /^\d+(,\d*)?\}/.test(this.src.slice(this.#i))) this.#fail('nothing to repeat');
        const u = code(c);
        return { t: 'char', test: this.#fold((x) => x === u) };
      }
    }
  }

  /** An escape outside a class. */
  #escape(): Node {
    const c = this.src[this.#i++];
    if (c === undefined) this.#fail('a \\ at the end of the pattern');
    if (c === 'b' || c === 'B') return { t: 'assert', kind: c };
    const cls = CLASS_ESCAPES[c];
    if (cls) return { t: 'char', test: cls };
    if (/[1-9]/.test(c) || c === 'k') this.#fail('a backreference, which hoop does not run (it cannot in linear time)');
    const u = this.#escapedUnit(c);
    return { t: 'char', test: this.#fold((x) => x === u) };
  }

  /** The code unit escape `\c…` stands for (its letter read already). */
  #escapedUnit(c: string): number {
    if (c in CONTROL_ESCAPES) {
      if (c === '0' && /[0-9]/.test(this.#peek() ?? '')) this.#fail('an octal escape');
      return CONTROL_ESCAPES[c]!;
    }
    const hex = (n: number): number => {
      const h = this.src.slice(this.#i, this.#i + n);
      if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(h)) this.#fail(`an escape \\${c} without ${n} hex digits`);
      this.#i += n;
      return Number.parseInt(h, 16);
    };
    if (c === 'x') return hex(2);
    if (c === 'u') return hex(4);
    if (c === 'c') {
      const l = this.src[this.#i++];
      if (l === undefined || !/[a-zA-Z]/.test(l)) this.#fail('an escape \\c without a letter');
      return code(l) % 32;
    }
    if (SYNTAX.includes(c)) return code(c);
    return this.#fail(`an escape \\${c} hoop does not read (escape only punctuation)`);
  }

  /** A class `[...]` (its `[` read already). */
  #class(): CharTest {
    const negated = this.#peek() === '^';
    if (negated) this.#i++;
    const parts: CharTest[] = [];
    let first = true;
    for (;;) {
      const c = this.src[this.#i];
      if (c === undefined) this.#fail('an unterminated class');
      if (c === ']' && !first) break;
      if (c === ']' && first) {
        // `[]` matches nothing, `[^]` anything, as JavaScript reads them.
        break;
      }
      first = false;
      const lo = this.#classAtom();
      if (this.#peek() === '-' && this.src[this.#i + 1] !== ']' && this.src[this.#i + 1] !== undefined) {
        this.#i++;
        const hi = this.#classAtom();
        if (typeof lo !== 'number' || typeof hi !== 'number') this.#fail('a range with a class at one end');
        if (hi < lo) this.#fail('a range out of order');
        parts.push(inRange(lo, hi));
      } else parts.push(typeof lo === 'number' ? (x) => x === lo : lo);
    }
    this.#i++;
    // A class's members are case-folded before it is negated, as JavaScript reads `[^a]` with `i`.
    const any = this.#fold((x) => parts.some((p) => p(x)));
    return negated ? not(any) : any;
  }

  /** One member of a class: a code unit, or a class escape's set. */
  #classAtom(): number | CharTest {
    const c = this.src[this.#i++]!;
    if (c !== '\\') return code(c);
    const e = this.src[this.#i++];
    if (e === undefined) this.#fail('a \\ at the end of the pattern');
    if (e === 'b') return 8;
    const cls = CLASS_ESCAPES[e];
    if (cls) return cls;
    if (/[1-9]/.test(e)) this.#fail('an octal escape');
    return this.#escapedUnit(e);
  }

  /** `test` as the pattern's case applies it. */
  #fold(test: CharTest): CharTest {
    if (!this.ignoreCase) return test;
    return (c) => {
      if (test(c)) return true;
      const s = String.fromCharCode(c);
      const upper = s.toUpperCase();
      const lower = s.toLowerCase();
      const both = upper.toLowerCase();
      return (upper.length === 1 && test(code(upper))) || (lower.length === 1 && test(code(lower))) || (both.length === 1 && test(code(both)));
    };
  }
}

/** Compiles `node` onto `prog`. */
function emit(node: Node, prog: Op[]): void {
  if (prog.length > MAX_PROGRAM) throw new RegexSyntaxError(`a pattern too large to run (over ${MAX_PROGRAM} instructions once its repetitions are counted out)`);
  switch (node.t) {
    case 'char':
      prog.push({ op: 'char', test: node.test });
      return;
    case 'assert':
      prog.push({ op: 'assert', kind: node.kind });
      return;
    case 'seq':
      for (const item of node.items) emit(item, prog);
      return;
    case 'alt': {
      const jumps: Array<{ op: 'jmp'; x: number }> = [];
      node.items.forEach((item, k) => {
        if (k < node.items.length - 1) {
          const split: Op = { op: 'split', x: prog.length + 1, y: 0 };
          prog.push(split);
          emit(item, prog);
          const jmp = { op: 'jmp' as const, x: 0 };
          prog.push(jmp);
          jumps.push(jmp);
          split.y = prog.length;
        } else emit(item, prog);
      });
      for (const j of jumps) j.x = prog.length;
      return;
    }
    case 'repeat': {
      for (let k = 0; k < node.min; k++) emit(node.item, prog);
      if (node.max === Number.POSITIVE_INFINITY) {
        const split: Op = { op: 'split', x: prog.length + 1, y: 0 };
        const at = prog.length;
        prog.push(split);
        emit(node.item, prog);
        prog.push({ op: 'jmp', x: at });
        split.y = prog.length;
        return;
      }
      const splits: Array<{ op: 'split'; x: number; y: number }> = [];
      for (let k = node.min; k < node.max; k++) {
        const split = { op: 'split' as const, x: prog.length + 1, y: 0 };
        prog.push(split);
        splits.push(split);
        emit(node.item, prog);
      }
      for (const s of splits) s.y = prog.length;
      return;
    }
  }
}

/** A compiled pattern (see the module documentation). */
export class LinearRegex {
  readonly #prog: Op[];

  /** Throws {@link RegexSyntaxError} for what is not a pattern hoop runs, saying what and where. */
  constructor(
    readonly source: string,
    o: { ignoreCase?: boolean } = {},
  ) {
    const prog: Op[] = [];
    emit(new Parser(source, o.ignoreCase ?? false).parse(), prog);
    prog.push({ op: 'match' });
    this.#prog = prog;
  }

  /** Its program's length: a match takes at most twice this many steps per code unit of input. */
  get size(): number {
    return this.#prog.length;
  }

  /** Whether the pattern matches anywhere in `input` (as RegExp's `test`), in at most (input length + 1) × program length steps. */
  test(input: string, steps?: Steps): boolean {
    return this.#run(input.length, (i) => input.charCodeAt(i), steps);
  }

  /**
   * Whether the pattern may match some text made of `pieces`, each `null` standing for any run of
   * characters (none included): what a deny rule asks of a command whose words are built when it
   * runs. Anchors and word boundaries next to an unknown run count as met.
   */
  mayMatch(pieces: ReadonlyArray<string | null>, steps?: Steps): boolean {
    const units: number[] = [];
    for (const piece of pieces) {
      if (piece === null) {
        if (units.at(-1) !== HOLE) units.push(HOLE);
      } else for (let i = 0; i < piece.length; i++) units.push(piece.charCodeAt(i));
    }
    return this.#run(units.length, (i) => units[i]!, steps);
  }

  /** The Pike VM over `n` code units read by `at` ({@link HOLE} for any run of them). */
  #run(n: number, at: (i: number) => number, steps?: Steps): boolean {
    const prog = this.#prog;
    const seen = new Int32Array(prog.length).fill(-1);
    let current: number[] = [];
    let next: number[] = [];
    const stack: number[] = [];
    /** Whether the unit at `i` is a word character: `undefined` for an unknown run, `false` outside the text. */
    const wordAt = (i: number): boolean | undefined => {
      if (i < 0 || i >= n) return false;
      const c = at(i);
      return c === HOLE ? undefined : isWord(c);
    };
    /** Whether only unknown runs lie before (`dir` -1) or from (`dir` 1) position `i`. */
    const onlyHoles = (i: number, dir: -1 | 1): boolean => {
      for (let k = dir < 0 ? i - 1 : i; k >= 0 && k < n; k += dir) if (at(k) !== HOLE) return false;
      return true;
    };
    const assertion = (kind: '^' | '$' | 'b' | 'B', i: number): boolean => {
      if (kind === '^') return i === 0 || onlyHoles(i, -1);
      if (kind === '$') return i === n || onlyHoles(i, 1);
      const before = wordAt(i - 1);
      const after = wordAt(i);
      return before === undefined || after === undefined || (before !== after) === (kind === 'b');
    };
    /** Adds the thread at `pc` (and those its branches reach) for position `i`; true when one matches. */
    const add = (list: number[], pc0: number, i: number): boolean => {
      stack.push(pc0);
      while (stack.length > 0) {
        const pc = stack.pop()!;
        if (seen[pc] === i) continue;
        seen[pc] = i;
        if (steps) steps.steps++;
        const op = prog[pc]!;
        switch (op.op) {
          case 'match':
            stack.length = 0;
            return true;
          case 'jmp':
            stack.push(op.x);
            break;
          case 'split':
            stack.push(op.y, op.x);
            break;
          case 'assert':
            if (assertion(op.kind, i)) stack.push(pc + 1);
            break;
          case 'char':
            list.push(pc);
            break;
        }
      }
      return false;
    };
    for (let i = 0; ; i++) {
      // Unanchored: a thread begins at every position.
      if (add(current, 0, i)) return true;
      if (i === n) return false;
      const c = at(i);
      if (c === HOLE) {
        // An unknown run: every thread stays (an empty run) or takes any characters, as often as it likes.
        for (let k = 0; k < current.length; k++) {
          if (steps) steps.steps++;
          if (add(current, current[k]! + 1, i)) return true;
        }
        for (const pc of current) seen[pc] = i + 1;
        continue;
      }
      for (const pc of current) {
        if (steps) steps.steps++;
        const op = prog[pc] as { op: 'char'; test: CharTest };
        if (op.test(c) && add(next, pc + 1, i + 1)) return true;
      }
      [current, next] = [next, current];
      next.length = 0;
    }
  }
}
