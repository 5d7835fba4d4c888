/**
 * GNU sed as the ssh judge reads it: its options (read after operands too), and whether a script
 * may run a command (`e`, `s///e`), read as GNU sed 4.9 reads a script (labels, bracket
 * expressions, comments, text), tested against GNU sed on generated scripts
 * (test/unit/ssh-program-references.test.ts).
 */
import { parseOptions, readsInput } from './shell-options.js';

/** sed: a script's `e` command or `s///e` flag (GNU sed runs them through a shell); `--sandbox` refuses them. */
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
  return [...scripts, scripts.join('\n')].some((s) => sedRuns(s)) ? "sed's `e` command, or a script hoop cannot read to tell" : undefined;
}

/** Whether a GNU sed script may run a command (`e`, `s///e`), or hoop cannot read it to tell (read as GNU sed 4.9 reads a script; tested against it). */
export function sedRuns(s: string): boolean {
  let i = 0;
  const n = s.length;
  const blanks = () => {
    while (i < n && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  /** Past a delimited part (i after its opening delimiter): false when it does not end. In a regular expression, GNU sed reads a bracket expression whole (`s/[/]/x/`: its `/` is no delimiter). */
  const delimited = (d: string, regex = false): boolean => {
    while (i < n && s[i] !== d) {
      if (s[i] === '\\') i++;
      else if (regex && s[i] === '[' && !bracket()) return false;
      i++;
    }
    if (i >= n) return false;
    i++;
    return true;
  };
  /** From a bracket expression's `[` to its `]` (`[]/]`, `[^]/]`, `[[:alpha:]/]`, `[[.a.]/]`): false when it does not end. */
  const bracket = (): boolean => {
    i++;
    if (s[i] === '^') i++;
    if (s[i] === ']') i++;
    while (i < n && s[i] !== ']') {
      const open = s[i] === '[' ? s[i + 1] : undefined;
      if (open === ':' || open === '.' || open === '=') {
        const close = s.indexOf(`${open}]`, i + 2);
        if (close < 0) return false;
        i = close + 1;
      }
      i++;
    }
    return i < n;
  };
  /** Past a label (`:x`, `b x`, `v 4.2`): GNU sed skips blanks, then ends it at a blank, `;`, `}`, `#` or a line's end, and reads the next command right after it (`:x e cmd`). */
  const label = (): string => {
    blanks();
    const start = i;
    while (i < n && !/[\s;}#]/.test(s[i]!)) i++;
    return s.slice(start, i);
  };
  /** Past the rest of a line: text (`a`, `i`, `c`) goes on past a backslash-newline; a file name or a comment does not. */
  const toLineEnd = (text = false) => {
    while (i < n && s[i] !== '\n') {
      if (text && s[i] === '\\') i++;
      i++;
    }
  };
  const address = (): boolean => {
    const c = s[i];
    if (c !== undefined && /[0-9]/.test(c)) {
      while (i < n && /[0-9~]/.test(s[i]!)) i++;
      return true;
    }
    if (c === '$') {
      i++;
      return true;
    }
    if (c === '/' || c === '\\') {
      const d = c === '/' ? '/' : s[i + 1];
      i += c === '/' ? 1 : 2;
      if (d === undefined || d === '\n' || !delimited(d, true)) throw new Error('address');
      while (i < n && /[IM]/.test(s[i]!)) i++;
      return true;
    }
    return false;
  };
  try {
    while (i < n) {
      while (i < n && /[\s;]/.test(s[i]!)) i++;
      if (i >= n) return false;
      if (address()) {
        blanks();
        if (s[i] === ',') {
          i++;
          blanks();
          if (s[i] === '+' || s[i] === '~') {
            i++;
            while (i < n && /[0-9]/.test(s[i]!)) i++;
          } else if (!address()) return true;
        }
      }
      blanks();
      while (s[i] === '!') {
        i++;
        blanks();
      }
      const c = s[i++];
      switch (c) {
        case '{':
        case '}':
          continue;
        case 'e':
          return true;
        case 's': {
          const d = s[i++];
          if (d === undefined || d === '\n' || d === '\\' || !delimited(d, true) || !delimited(d)) return true;
          while (i < n && /[gpiImMe0-9w]/.test(s[i]!)) {
            if (s[i] === 'e') return true;
            if (s[i] === 'w') {
              toLineEnd();
              break;
            }
            i++;
          }
          break;
        }
        case 'y': {
          const d = s[i++];
          if (d === undefined || d === '\n' || d === '\\' || !delimited(d) || !delimited(d)) return true;
          break;
        }
        case 'a':
        case 'i':
        case 'c':
          toLineEnd(true);
          continue;
        case 'r':
        case 'R':
        case 'w':
        case 'W':
        case '#':
          toLineEnd();
          continue;
        case ':':
          if (label() === '') return true;
          continue;
        case 'b':
        case 't':
        case 'T':
        case 'v':
          label();
          continue;
        case 'q':
        case 'Q':
        case 'l':
        case 'L':
          blanks();
          while (i < n && /[0-9]/.test(s[i]!)) i++;
          break;
        default:
          if (c === undefined || !'=dDgGhHnNpPxzF'.includes(c)) return true;
      }
      blanks();
      if (i < n && !/[;\n}#]/.test(s[i]!)) return true;
    }
    return false;
  } catch {
    return true;
  }
}
