/**
 * GNU sed as the ssh judge reads it: its options (read after operands too), and whether a script
 * may run a command (`e`, `s///e`), read as GNU sed 4.9 reads a script (labels, bracket
 * expressions, comments, text), tested against GNU sed on generated scripts
 * (test/unit/ssh-program-references.test.ts).
 */
import { parseOptions, readsInput } from './shell-options.js';

/** sed: a script's `e` command or `s///e` flag (GNU sed runs them through a shell), or a `w` to a file (`~/.bashrc` runs later); `--sandbox` refuses them. */
export function sed(args: readonly string[]): string | undefined {
  const parsed = parseOptions(args, {
    permute: true,
    short: 'nrsuzEl:e:f:i::',
    long: [
      'quiet',
      'silent',
      'debug',
      'expression=',
      'file=',
      'follow-symlinks',
      'in-place=?',
      'line-length=',
      'posix',
      'regexp-extended',
      'separate',
      'sandbox',
      'unbuffered',
      'null-data',
      'zero-terminated',
      'binary',
    ],
  });
  // GNU sed compiles each `-e` and `-f` as it reads it: `--sandbox` refuses `e` only in scripts after it.
  const sandbox = parsed.options.findIndex((o) => o.name === 'sandbox');
  if (sandbox >= 0 && !parsed.options.slice(0, sandbox).some((o) => ['e', 'expression', 'f', 'file'].includes(o.name))) return undefined;
  if (!parsed.known) return '`sed` with an option hoop does not know';
  const scripts = parsed.options.filter((o) => o.name === 'e' || o.name === 'expression').map((o) => o.value ?? '');
  const files = parsed.options.filter((o) => o.name === 'f' || o.name === 'file').map((o) => o.value ?? '');
  if (files.some(readsInput)) return '`sed -f` reading its script from its input';
  // GNU sed reads options after operands too (`sed p f -e 'cmd'`: the script is the `-e`, `p` a file).
  if (scripts.length === 0 && files.length === 0 && parsed.operands.length > 0) scripts.push(args[parsed.operands[0]!]!);
  // GNU sed joins its `-e` scripts with line breaks (`-e 'a\\' -e 'e id'` is one `a` command): each is read alone and joined.
  return [...scripts, scripts.join('\n')].some((s) => sedRuns(s)) ? "sed's `e` command, a `w` to a file, or a script hoop cannot read to tell" : undefined;
}

/** Whether a GNU sed script may run a command (`e`, `s///e`) or write a file (`w`, `W`, `s///w`), or hoop cannot read it to tell (read as GNU sed 4.9 reads a script; tested against it). */
export function sedRuns(script: string): boolean {
  return new SedScript(script).runs();
}

/** What reading one command found: it may run a command; it is read and the next may follow at once (`}`, a label, a line's text); it is read and must end (`;`, a line break, `}`, `#`). */
type Read = 'runs' | 'next' | 'ends';

/** A sed script read command by command, as GNU sed's compile.c reads it. */
class SedScript {
  readonly #s: string;
  #i = 0;

  constructor(script: string) {
    this.#s = script;
  }

  /** Whether some command of the script may run a command, or the script cannot be read to tell. */
  runs(): boolean {
    const s = this.#s;
    while (this.#i < s.length) {
      while (this.#i < s.length && /[\s;]/.test(s[this.#i]!)) this.#i++;
      if (this.#i >= s.length) return false;
      if (!this.#addresses()) return true;
      this.#blanks();
      while (s[this.#i] === '!') {
        this.#i++;
        this.#blanks();
      }
      const read = this.#command(s[this.#i++]);
      if (read === 'runs') return true;
      if (read === 'ends') {
        this.#blanks();
        if (this.#i < s.length && !/[;\n}#]/.test(s[this.#i]!)) return true;
      }
    }
    return false;
  }

  /** Past a command's letter `c`: what it is (`e`, `s///e` run a command; so does any letter hoop does not know, for all it can tell). */
  #command(c: string | undefined): Read {
    const s = this.#s;
    switch (c) {
      case '{':
      case '}':
        return 'next';
      case 'e':
        return 'runs';
      case 's': {
        const d = s[this.#i++];
        if (d === undefined || d === '\n' || d === '\\' || !this.#delimited(d, true) || !this.#delimited(d)) return 'runs';
        while (this.#i < s.length && /[gpiImMe0-9w]/.test(s[this.#i]!)) {
          if (s[this.#i] === 'e') return 'runs';
          if (s[this.#i] === 'w') {
            this.#i++;
            return this.#writes() ? 'runs' : 'next';
          }
          this.#i++;
        }
        return 'ends';
      }
      case 'y': {
        const d = s[this.#i++];
        return d === undefined || d === '\n' || d === '\\' || !this.#delimited(d) || !this.#delimited(d) ? 'runs' : 'ends';
      }
      case 'a':
      case 'i':
      case 'c':
        this.#toLineEnd(true);
        return 'next';
      case 'w':
      case 'W':
        return this.#writes() ? 'runs' : 'next';
      case 'r':
      case 'R':
      case '#':
        this.#toLineEnd();
        return 'next';
      case ':':
        return this.#label() === '' ? 'runs' : 'next';
      case 'b':
      case 't':
      case 'T':
      case 'v':
        this.#label();
        return 'next';
      case 'q':
      case 'Q':
      case 'l':
      case 'L':
        this.#blanks();
        while (this.#i < s.length && /[0-9]/.test(s[this.#i]!)) this.#i++;
        return 'ends';
      default:
        return c !== undefined && '=dDgGhHnNpPxzF'.includes(c) ? 'ends' : 'runs';
    }
  }

  /** Past a command's addresses (`1`, `$`, `/re/I`, `\%re%`, `1,+3`, `0~4`), if any: false when they cannot be read. */
  #addresses(): boolean {
    const s = this.#s;
    const first = this.#address();
    if (first === 'bad') return false;
    if (first === 'none') return true;
    this.#blanks();
    if (s[this.#i] !== ',') return true;
    this.#i++;
    this.#blanks();
    if (s[this.#i] === '+' || s[this.#i] === '~') {
      this.#i++;
      while (this.#i < s.length && /[0-9]/.test(s[this.#i]!)) this.#i++;
      return true;
    }
    return this.#address() === 'read';
  }

  /** Past one address: read, none here, or one that does not end. */
  #address(): 'read' | 'none' | 'bad' {
    const s = this.#s;
    const c = s[this.#i];
    if (c !== undefined && /[0-9]/.test(c)) {
      while (this.#i < s.length && /[0-9~]/.test(s[this.#i]!)) this.#i++;
      return 'read';
    }
    if (c === '$') {
      this.#i++;
      return 'read';
    }
    if (c !== '/' && c !== '\\') return 'none';
    const d = c === '/' ? '/' : s[this.#i + 1];
    this.#i += c === '/' ? 1 : 2;
    if (d === undefined || d === '\n' || !this.#delimited(d, true)) return 'bad';
    while (this.#i < s.length && /[IM]/.test(s[this.#i]!)) this.#i++;
    return 'read';
  }

  #blanks(): void {
    while (this.#i < this.#s.length && (this.#s[this.#i] === ' ' || this.#s[this.#i] === '\t')) this.#i++;
  }

  /** Past a delimited part (after its opening delimiter `d`): false when it does not end. In a regular expression, GNU sed reads a bracket expression whole (`s/[/]/x/`: its `/` is no delimiter). */
  #delimited(d: string, regex = false): boolean {
    const s = this.#s;
    while (this.#i < s.length && s[this.#i] !== d) {
      if (s[this.#i] === '\\') this.#i++;
      else if (regex && s[this.#i] === '[' && !this.#bracket()) return false;
      this.#i++;
    }
    if (this.#i >= s.length) return false;
    this.#i++;
    return true;
  }

  /** From a bracket expression's `[` to its `]` (`[]/]`, `[^]/]`, `[[:alpha:]/]`, `[[.a.]/]`): false when it does not end. */
  #bracket(): boolean {
    const s = this.#s;
    this.#i++;
    if (s[this.#i] === '^') this.#i++;
    if (s[this.#i] === ']') this.#i++;
    while (this.#i < s.length && s[this.#i] !== ']') {
      const open = s[this.#i] === '[' ? s[this.#i + 1] : undefined;
      if (open === ':' || open === '.' || open === '=') {
        const close = s.indexOf(`${open}]`, this.#i + 2);
        if (close < 0) return false;
        this.#i = close + 1;
      }
      this.#i++;
    }
    return this.#i < s.length;
  }

  /** Past a label (`:x`, `b x`, `v 4.2`): GNU sed skips blanks, then ends it at a blank, `;`, `}`, `#` or a line's end, and reads the next command right after it (`:x e cmd`). */
  #label(): string {
    this.#blanks();
    const start = this.#i;
    while (this.#i < this.#s.length && !/[\s;}#]/.test(this.#s[this.#i]!)) this.#i++;
    return this.#s.slice(start, this.#i);
  }

  /** Past the rest of a line: text (`a`, `i`, `c`) goes on past a backslash-newline; a file name or a comment does not. */
  /** Past a `w` command's or flag's file name (the rest of the line): whether it names a file, not the output streams or /dev/null. */
  #writes(): boolean {
    const from = this.#i;
    this.#toLineEnd();
    return !['/dev/stdout', '/dev/stderr', '/dev/null'].includes(this.#s.slice(from, this.#i).trim());
  }

  #toLineEnd(text = false): void {
    while (this.#i < this.#s.length && this.#s[this.#i] !== '\n') {
      if (text && this.#s[this.#i] === '\\') this.#i++;
      this.#i++;
    }
  }
}
