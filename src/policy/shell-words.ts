/**
 * A word of a shell line as the shell passes it to the program: quotes and escapes removed,
 * `$'…'` decoded (./shell-line.ts reads lines into words with these).
 *
 * @see https://www.gnu.org/software/bash/manual/bash.html#Quoting
 */
/** A node of mvdan/sh's syntax tree (GopherJS objects: fields are read by name). */
type Node = any;

/**
 * A word's text as the shell passes it, and whether that text is known before the line runs.
 * @see https://www.gnu.org/software/bash/manual/bash.html#Quoting
 */
export function wordOf(word: Node, isProgram: boolean, sourceOf: (n: Node) => string, nodeType: (n: Node) => string): { text: string; known: boolean; glob?: true; home?: true } {
  let text = '';
  let known = true;
  let glob = false;
  /** Whether an expansion builds part of it (a glob beside one makes no file names alone: `*"${u-…}"` runs what the expansion says). */
  let built = false;
  /** An unquoted `[` read: an unquoted `]` after it, in this part or a later one, closes a bracket expression (`["-"]rf`). */
  let bracket = false;
  /** The word with each quoted or escaped piece as a plain letter: what bash's brace expansion sees. */
  let shape = '';
  for (const part of word.Parts as Node[]) {
    const kind = nodeType(part);
    shape += kind === 'Lit' ? (part.Value as string).replace(/\\./gs, 'q') : 'q';
    if (kind === 'Lit') {
      const value = part.Value as string;
      // A glob in the program's name picks a file; one in an argument is file names (see mayBeOption).
      for (let i = 0; i < value.length; i++) {
        const c = value[i];
        if (c === '\\') i++;
        else if (c === '*' || c === '?' || (c === ']' && bracket)) glob = true;
        else if (c === '[') bracket = true;
      }
      if (glob && isProgram) known = false;
      text += value.replace(/\\(.)/gs, '$1');
    } else if (kind === 'SglQuoted') {
      text += part.Dollar ? ansiC(part.Value) : part.Value;
    } else if (kind === 'DblQuoted') {
      for (const inner of part.Parts as Node[]) {
        if (nodeType(inner) === 'Lit') text += (inner.Value as string).replace(/\\([$`"\\\n])/g, (_m, c: string) => (c === '\n' ? '' : c));
        else {
          known = false;
          built = true;
          text += sourceOf(inner);
        }
      }
    } else {
      known = false;
      built = true;
      text += sourceOf(part);
    }
  }
  // Brace expansion makes several words (`r{m,}` is `rm r`, `{'a',../b}` is `a ../b`), whatever of it is quoted;
  // an unquoted tilde at a word's start, or after `=` or `:` (bash expands `a=~` even in an argument), is a home directory.
  const braces = /\{[^{}]*(,|\.\.)[^{}]*\}/.test(shape);
  // A tilde at an argument's start alone (`~`, `~/app`) is a directory's path: never an option, never split (a file name, as a glob's).
  const home = known && !braces && !isProgram && /^~/.test(shape) && !/[=:]~/.test(shape);
  if (braces || /(^|[=:])~/.test(shape)) known = false;
  return { text, known, ...(glob && !built ? { glob } : {}), ...(home ? { home } : {}) };
}

/**
 * Whether an argument's glob may expand to a file name that starts with `-`, which the program
 * then reads as an option (`rm *` beside a file named `-rf`; ShellCheck's SC2035): a glob at the
 * word's start or after a leading `-`. `./*`, `dir/*` and `a*` cannot.
 * @see https://www.shellcheck.net/wiki/SC2035
 */
export function mayBeOption(word: { text: string; glob?: true }): boolean {
  return word.glob === true && /^(-|[*?[])/.test(word.text);
}

const C_ESCAPES: Record<string, string> = { a: '\x07', b: '\b', e: '\x1b', E: '\x1b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', "'": "'", '"': '"', '?': '?' };

/** The text of a `$'…'` string (bash's ANSI-C quoting). */
export function ansiC(value: string): string {
  return value.replace(/\\(x[0-9a-fA-F]{1,2}|u[0-9a-fA-F]{1,4}|U[0-9a-fA-F]{1,8}|[0-7]{1,3}|c.|.)/gs, (whole, e: string) => {
    if (e[0] === 'x' && e.length > 1) return String.fromCharCode(Number.parseInt(e.slice(1), 16));
    if ((e[0] === 'u' || e[0] === 'U') && e.length > 1) {
      const code = Number.parseInt(e.slice(1), 16);
      return code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    if (/^[0-7]/.test(e)) return String.fromCharCode(Number.parseInt(e, 8) & 0xff);
    if (e[0] === 'c' && e.length === 2) return String.fromCharCode((e.charCodeAt(1) & 0x1f) >>> 0);
    return C_ESCAPES[e] ?? whole;
  });
}
