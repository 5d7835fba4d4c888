/**
 * A command line as the remote shell will run it: `ssh host <command>` hands the line to the
 * target user's shell (`$SHELL -c <command>`), so hoop parses it with a real shell grammar
 * (mvdan/sh's bash parser, which reads POSIX sh too) and judges each command the line runs, never
 * the text alone.
 *
 * A line becomes the list of commands it runs: every simple command (in pipelines, lists, `&&`/`||`,
 * subshells, blocks, loops, functions, `$(…)`, backticks, `<(…)`, here-documents), every other
 * construct as one command of its own (`if`, `for`, `[[ ]]`, `declare`, a block with a redirection),
 * and what wrappers run: the string of `sh -c` / `bash -c` / `su -c` / `eval` / `watch`, parsed in
 * turn, and the command after `env`, `sudo`, `nice`, `timeout`, `xargs`, `find -exec` and the like.
 *
 * A command's words are read as the shell reads them (quotes and escapes removed, `$'…'` decoded).
 * A word the shell builds when it runs (`$x`, `$(…)`, `$((…))`, `{a,b}`, a glob in the program's
 * name, arguments `xargs` reads) makes the command *opaque*: hoop cannot know what runs.
 *
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/utilities/V3_chap02.html (Shell Command Language)
 * @see https://www.gnu.org/software/bash/manual/bash.html#Shell-Syntax
 * @see https://github.com/mvdan/sh (the parser, `mvdan-sh` on npm)
 */
import { createRequire } from 'node:module';

/** One command a line runs. */
export interface ShellCommand {
  /** The words as the shell passes them (quotes and escapes removed); a word built at run time keeps its source text. */
  words: string[];
  /** The words joined by single spaces: what `commands` globs and `patterns` are matched against. */
  text: string;
  /** Its source text in the line (for a wrapper's command: the words). */
  source: string;
  /** The program's name (its last path part) when the shell knows it before the line runs. */
  program?: string;
  /** Words only, each known before the line runs: no assignments, redirections, `&`, `!`, substitutions or constructs. */
  simple: boolean;
  /** Why no rule can be sure it does not match (a word built when it runs, code read from input), if so. */
  opaque?: string;
  /**
   * Of an opaque command: the indexes of the words built when it runs, when only they are unknown
   * (its program is known and runs no code of its words). Absent, what it runs is unknown: every
   * deny and review rule may match it.
   */
  unknownWords?: number[];
  /** How the line reaches it when it is not a command of the line itself: `sh -c`, `eval`, `sudo`… */
  via?: string;
}

/** A parsed line: the commands it runs, or why hoop cannot be sure what it runs. */
export type ShellLine = { certain: true; commands: ShellCommand[] } | { certain: false; why: string };

/** Lines longer than this are not parsed (parsing takes ~3 ms per KiB): no allow rule matches them. The gateway's SSH server reads packets of up to 35,000 bytes, so longer lines never reach it. */
export const SHELL_LINE_MAX_BYTES = 32 * 1024;
/** How deep `sh -c "sh -c '…'"` is followed, and how many commands one line may run, before hoop stops being sure. */
const MAX_DEPTH = 8;
const MAX_COMMANDS = 4096;

/** Shells whose grammar hoop models (bash's, POSIX sh's, the Korn shell's where they agree): their `-c` script is parsed. */
const SHELLS = new Set(['sh', 'bash', 'dash', 'ksh', 'ksh93', 'mksh', 'ash', 'posh', 'rbash']);
/**
 * Shells hoop does not model (zsh's `=cmd`, fish's and csh's own grammars): what they run is
 * unknown, whether as the target's login shell or started by a line.
 */
const UNMODELLED_SHELLS = new Set(['zsh', 'fish', 'csh', 'tcsh', 'yash', 'elvish', 'nu', 'xonsh', 'pwsh', 'rc', 'es', 'oksh', 'loksh', 'scsh', 'ion', 'murex', 'oil', 'osh', 'ysh']);

/** Programs that run code given by their words, or by names in them: an unknown word in them is unknown code. */
const RUNS_WORDS = new Set(['eval', 'watch', 'find', 'su', '.', 'source', 'exec', 'command', 'builtin', 'trap', 'alias', 'function']);

/** The grammar a login shell reads lines in, or why hoop cannot judge its lines. */
export function loginShellGrammar(shell: string | undefined): { grammar: 'bash' | 'korn' } | { why: string } {
  const name = shell?.split('/').pop() ?? '';
  if (name === '') return { why: "the gateway does not know the target user's login shell" };
  if (SHELLS.has(name)) return { grammar: name.includes('ksh') ? 'korn' : 'bash' };
  return { why: `the target user's login shell is ${name}, whose grammar hoop does not model (it judges bash, dash, ash and ksh lines)` };
}
/**
 * Programs that run the rest of their words as a command: the options of theirs that take a value
 * (skipped with it), how many operands come before the command, and whether `NAME=value` words may.
 */
const WRAPPERS: Record<string, { valued?: string[]; operands?: number; assignments?: true; stdinArgs?: true }> = {
  env: { valued: ['-u', '--unset', '-C', '--chdir'], assignments: true },
  sudo: {
    valued: [
      '-u',
      '--user',
      '-g',
      '--group',
      '-C',
      '--close-from',
      '-h',
      '--host',
      '-p',
      '--prompt',
      '-r',
      '--role',
      '-t',
      '--type',
      '-U',
      '--other-user',
      '-D',
      '--chdir',
      '-R',
      '--chroot',
      '-T',
      '--command-timeout',
    ],
    assignments: true,
  },
  doas: { valued: ['-u', '-C'] },
  run0: { valued: ['-u', '--user', '-g', '--group', '-D', '--chdir'] },
  runuser: { valued: ['-u', '--user', '-g', '--group', '-G', '--supp-group'] },
  nice: { valued: ['-n', '--adjustment'] },
  ionice: { valued: ['-c', '--class', '-n', '--classdata', '-p', '-P', '-u'] },
  renice: { valued: ['-n', '-g', '-p', '-u'] },
  timeout: { valued: ['-s', '--signal', '-k', '--kill-after'], operands: 1 },
  nohup: {},
  exec: { valued: ['-a'] },
  command: {},
  builtin: {},
  time: { valued: ['-f', '--format', '-o', '--output'] },
  stdbuf: { valued: ['-i', '-o', '-e', '--input', '--output', '--error'] },
  setsid: {},
  chroot: { valued: ['--userspec', '--groups'], operands: 1 },
  flock: { valued: ['-w', '--timeout', '-E', '--conflict-exit-code'], operands: 1 },
  taskset: { operands: 1 },
  chrt: { operands: 1 },
  unshare: {},
  nsenter: { valued: ['-t', '--target', '-S', '--setuid', '-G', '--setgid'] },
  setpriv: { valued: ['--reuid', '--regid', '--groups', '--inh-caps', '--bounding-set'] },
  strace: { valued: ['-o', '-e', '-p', '-s', '-u', '-E'] },
  ltrace: { valued: ['-o', '-e', '-p', '-s', '-u'] },
  busybox: {},
  xargs: {
    valued: ['-a', '--arg-file', '-d', '--delimiter', '-E', '-e', '--eof', '-I', '-i', '--replace', '-L', '-l', '--max-lines', '-n', '--max-args', '-P', '--max-procs', '-s', '--max-chars'],
    stdinArgs: true,
  },
  parallel: { stdinArgs: true },
  caffeinate: {},
  firejail: {},
  proxychains: {},
  torsocks: {},
  catchsegv: {},
  valgrind: {},
  'systemd-run': {},
};

interface Mvdan {
  syntax: {
    NewParser(...options: unknown[]): { Parse(src: string, name: string): Node };
    Variant(lang: unknown): unknown;
    LangBash: unknown;
    LangPOSIX: unknown;
    LangMirBSDKorn: unknown;
    KeepComments(keep: boolean): unknown;
    Walk(node: Node, visit: (node: Node | null) => boolean): void;
    NodeType(node: Node): string;
  };
}
/** A node of mvdan/sh's syntax tree (GopherJS objects: fields are read by name). */
type Node = any;

let parsers: Record<Grammar, { Parse(src: string, name: string): Node }> | undefined;
let nodeType: (node: Node) => string;
let walk: (node: Node, visit: (node: Node | null) => boolean) => void;
/** A grammar of mvdan/sh's: bash's, POSIX sh's (dash, ash), the MirBSD Korn shell's. */
type Grammar = 'bash' | 'posix' | 'korn';
/** The grammar lines are read in now: bash's, then the others the login shell asks for, to compare. */
let grammar: Grammar = 'bash';

/** The parser of {@link grammar}, loaded on first use (the module is 1.5 MB and takes ~100 ms to load). */
function shellParser(): { Parse(src: string, name: string): Node } {
  if (!parsers) {
    const { syntax } = createRequire(import.meta.url)('mvdan-sh') as Mvdan;
    // Comments are kept to be checked: the parser starts one where a shell reads a letter (see {@link collect}).
    const parser = (lang: unknown) => syntax.NewParser(syntax.KeepComments(true), syntax.Variant(lang));
    parsers = { bash: parser(syntax.LangBash), posix: parser(syntax.LangPOSIX), korn: parser(syntax.LangMirBSDKorn) };
    nodeType = (n) => syntax.NodeType(n);
    walk = (n, v) => syntax.Walk(n, v);
  }
  return parsers[grammar];
}

/**
 * The commands `line` runs, or why hoop cannot be sure: read as bash and as a POSIX sh (dash, ash)
 * would read it, and as the Korn shell too when the login shell is one (`korn`); a line they read
 * differently is not certain.
 */
export function parseShellLine(line: string, login: 'bash' | 'korn' = 'bash'): ShellLine {
  if (line === last?.line && login === last.login) return last.parsed;
  const parsed = parseUncached(line, login);
  last = { line, login, parsed };
  return parsed;
}
/** The line parsed last: a session's judge and its engine ask about the same line in turn. */
let last: { line: string; login: 'bash' | 'korn'; parsed: ShellLine } | undefined;

function parseUncached(line: string, login: 'bash' | 'korn'): ShellLine {
  if (line.includes('\0')) return { certain: false, why: 'it holds a NUL byte, where the target would cut it short' };
  // The parser reads a carriage return as a blank; bash and dash read it as a letter of the word.
  if (line.includes('\r')) return { certain: false, why: "it holds a carriage return, which the target's shell reads as part of a word" };
  // Shells join a backslash-newline before they read anything else (in `$\⏎(`, `"$\⏎NAME"`, `$\⏎'…'`), and not in a comment; the parser does neither alike.
  if (line.includes('\\\n')) return { certain: false, why: "it continues a line with a backslash-newline, which shells join in places hoop's parser does not" };
  if (Buffer.byteLength(line) > SHELL_LINE_MAX_BYTES) return { certain: false, why: `it is longer than ${SHELL_LINE_MAX_BYTES / 1024} KiB` };
  const commands: ShellCommand[] = [];
  const why = collect(line, 0, undefined, commands);
  if (why !== undefined) return { certain: false, why };
  // The target's login shell may be sh (dash on Debian, ash on Alpine): a line it would run otherwise than bash is not certain.
  for (const other of login === 'korn' ? (['posix', 'korn'] as const) : (['posix'] as const)) {
    const theirs: ShellCommand[] = [];
    grammar = other;
    try {
      const otherWhy = collect(line, 0, undefined, theirs);
      const name = other === 'posix' ? 'a POSIX sh (dash, ash)' : 'the Korn shell';
      if (otherWhy !== undefined || !sameCommands(commands, theirs))
        return { certain: false, why: `bash and ${name} would run it differently${otherWhy !== undefined ? ` (to it ${otherWhy.replace(/^it /, '')})` : ''}` };
    } finally {
      grammar = 'bash';
    }
  }
  return { certain: true, commands };
}

/** Whether two grammars read a line as the same commands, word for word. */
function sameCommands(a: readonly ShellCommand[], b: readonly ShellCommand[]): boolean {
  return a.length === b.length && a.every((c, i) => c.text === b[i]!.text && c.simple === b[i]!.simple && c.opaque === b[i]!.opaque && c.via === b[i]!.via);
}

/** Adds the commands of `script` (reached `via` a wrapper, if given) to `out`; returns why it cannot, if it cannot. */
function collect(script: string, depth: number, via: string | undefined, out: ShellCommand[]): string | undefined {
  if (depth > MAX_DEPTH) return `it nests shells more than ${MAX_DEPTH} deep`;
  let file: Node;
  try {
    file = shellParser().Parse(script, '');
  } catch (err) {
    const e = err as { Error?: () => string; message?: string };
    return `it is not a complete shell command line (${typeof e.Error === 'function' ? e.Error().replace(/^1:/, '').replace(/^\?: /, '') : String(e.message ?? err)})`;
  }
  const bytes = Buffer.from(script);
  const sourceOf = (n: Node): string => bytes.subarray(n.Pos().Offset(), n.End().Offset()).toString();
  let failed: string | undefined;
  walk(file, (node) => {
    // A `#` starts a comment only at the start of a word (after a blank or an operator); the parser also starts one right after a quote or a substitution.
    if (node && failed === undefined && nodeType(node) === 'Comment' && !COMMENT_MAY_FOLLOW.has(bytes[node.Pos().Offset() - 1] ?? 0x0a))
      failed = "a # inside a word (right after a quote or a substitution) would start a comment only to hoop's parser; the target's shell reads it as a letter";
    if (!node || failed !== undefined || nodeType(node) !== 'Stmt') return failed === undefined;
    const stmt = node;
    const kind = stmt.Cmd ? nodeType(stmt.Cmd) : 'Redirect';
    const plain = stmt.Redirs.length === 0 && !stmt.Negated && !stmt.Background && !stmt.Coprocess;
    if (kind === 'CallExpr') {
      const words = (stmt.Cmd.Args as Node[]).map((w, i) => wordOf(w, i === 0, sourceOf));
      const program = words[0]?.known ? words[0].text.split('/').pop() : undefined;
      const command: ShellCommand = {
        words: words.map((w) => w.text),
        ...(program !== undefined ? { program } : {}),
        text: words.map((w) => w.text).join(' '),
        source: sourceOf(stmt),
        simple: plain && stmt.Cmd.Assigns.length === 0 && words.length > 0 && words.every((w) => w.known),
        ...opacity(words, program),
        ...(via ? { via } : {}),
      };
      out.push(command);
      failed = command.opaque ? undefined : followWrappers(command.words, depth, out);
    } else if (kind === 'BinaryCmd' || kind === 'Subshell' || kind === 'Block') {
      // Their commands are Stmts of their own; only a redirection, `&` or `!` on the whole is a command here.
      if (!plain) out.push(construct(sourceOf(stmt), via));
    } else {
      out.push(construct(sourceOf(stmt), via));
    }
    if (out.length > MAX_COMMANDS) failed = `it runs more than ${MAX_COMMANDS} commands`;
    return failed === undefined;
  });
  return failed;
}

/** The bytes after which a shell starts a comment at `#`: blanks, a newline, and the operators' characters. */
const COMMENT_MAY_FOLLOW = new Set([...' \t\n;&|()<>'].map((c) => c.charCodeAt(0)));

/** A construct (`if`, `for`, `[[ ]]`, `declare`, a redirected block…): judged as a whole, never simple. */
function construct(source: string, via: string | undefined): ShellCommand {
  return { words: [], text: source.replace(/\s+/g, ' ').trim(), source, simple: false, ...(via ? { via } : {}) };
}

/** Why a command's words (or the code it runs) are not known before it runs, if they are not. */
function opacity(words: Array<{ text: string; known: boolean }>, program: string | undefined): Pick<ShellCommand, 'opaque' | 'unknownWords'> {
  if (program !== undefined && UNMODELLED_SHELLS.has(program)) return { opaque: `it runs ${program}, whose grammar hoop does not model` };
  if (words.some((w) => !w.known)) {
    const runsWords = program === undefined || SHELLS.has(program) || RUNS_WORDS.has(program) || Object.hasOwn(WRAPPERS, program) || program === 'flock';
    const unknownWords = words.flatMap((w, i) => (w.known ? [] : [i]));
    return { opaque: `${builtWords(unknownWords.map((i) => words[i]!.text))} built when it runs`, ...(runsWords ? {} : { unknownWords }) };
  }
  if (program === '.' || program === 'source') return { opaque: 'it runs commands it reads from a file' };
  const args = words.slice(1).map((w) => w.text);
  if (program !== undefined && SHELLS.has(program) && scriptOf(program, args) === undefined) {
    const operands = skipOptions(args, ['-o', '+o', '-O', '+O']);
    if (operands.length === 0 || args.includes('-s')) return { opaque: 'it runs commands it reads from its input' };
  }
  return {};
}

/** The words a reason names as built when the line runs: "`$x` is", "`$a` and `$b` are" (the first three, then how many more). */
function builtWords(texts: string[]): string {
  const shown = texts.slice(0, 3).map((t) => `\`${t.length > 40 ? `${t.slice(0, 37)}...` : t}\``);
  const more = texts.length > 3 ? [`${texts.length - 3} more`] : [];
  const all = [...shown, ...more];
  return `${all.length > 1 ? `${all.slice(0, -1).join(', ')} and ${all[all.length - 1]}` : all[0]} ${texts.length > 1 ? 'are' : 'is'}`;
}

/** The commands a wrapper among `words` runs, added to `out` (marked with how they are reached). */
function followWrappers(words: string[], depth: number, out: ShellCommand[]): string | undefined {
  const program = words[0]?.split('/').pop() ?? '';
  const args = words.slice(1);
  const derived = (rest: string[], via: string, readsArgs = false): string | undefined => {
    if (rest.length === 0) return undefined;
    const program = rest[0]?.split('/').pop() ?? '';
    const opaque = readsArgs
      ? { opaque: `${via} adds words it reads from its input` }
      : opacity(
          rest.map((text) => ({ text, known: true })),
          program,
        );
    out.push({ words: rest, text: rest.join(' '), source: rest.join(' '), program, simple: false, ...opaque, via });
    return opaque.opaque !== undefined ? undefined : followWrappers(rest, depth + 1, out);
  };
  if (program === 'eval') return args.length ? collect(args.join(' '), depth + 1, 'eval', out) : undefined;
  if (program === 'watch') {
    const rest = skipOptions(args, ['-n', '--interval', '-d', '--differences', '-q', '--equexit']);
    return rest.length ? collect(rest.join(' '), depth + 1, 'watch', out) : undefined;
  }
  const script = scriptOf(program, args);
  if (script !== undefined) return collect(script, depth + 1, `${program} -c`, out);
  if (program === 'find') {
    for (let i = 0; i < args.length; i++) {
      if (!['-exec', '-execdir', '-ok', '-okdir'].includes(args[i] as string)) continue;
      const end = args.findIndex((a, j) => j > i && (a === ';' || a === '+'));
      const why = derived(args.slice(i + 1, end < 0 ? undefined : end), `find ${args[i]}`);
      if (why) return why;
    }
    return undefined;
  }
  const wrapper = WRAPPERS[program];
  if (!wrapper) return undefined;
  let rest = skipOptions(args, wrapper.valued ?? []);
  if (wrapper.assignments) while (rest[0] !== undefined && /^[A-Za-z_][A-Za-z0-9_]*=/.test(rest[0])) rest = rest.slice(1);
  rest = rest.slice(wrapper.operands ?? 0);
  if (program === 'busybox' && rest[0] !== undefined && SHELLS.has(rest[0])) return followWrappers(rest, depth + 1, out);
  return derived(rest, program, wrapper.stdinArgs === true);
}

/** The script of `sh -c SCRIPT`, `su -c SCRIPT`, `flock … -c SCRIPT`, `env -S STRING`, if `program` is one of these. */
function scriptOf(program: string, args: string[]): string | undefined {
  const valueOf = (flags: string[]): string | undefined => {
    for (let i = 0; i < args.length; i++) {
      const a = args[i] as string;
      if (a === '--') return undefined;
      for (const f of flags) {
        if (a === f) return args[i + 1];
        if (f.startsWith('--') && a.startsWith(`${f}=`)) return a.slice(f.length + 1);
      }
      // Short options run together (`sh -ec 'script'`, `bash -lc …`): the script is the next word.
      if (flags.includes('-c') && /^-[a-zA-Z]*c[a-zA-Z]*$/.test(a)) return args[i + 1];
    }
    return undefined;
  };
  if (SHELLS.has(program)) return valueOf(['-c']);
  if (program === 'su' || program === 'runuser') return valueOf(['-c', '--command']);
  if (program === 'flock') return valueOf(['-c', '--command']);
  if (program === 'env') return valueOf(['-S', '--split-string']);
  return undefined;
}

/** `args` after a wrapper's options (`--` ends them; `valued` options take the next word unless written `--opt=value`). */
function skipOptions(args: string[], valued: string[]): string[] {
  let i = 0;
  while (i < args.length) {
    const a = args[i] as string;
    if (a === '--') return args.slice(i + 1);
    if (!a.startsWith('-') || a === '-') break;
    i += valued.includes(a) ? 2 : 1;
  }
  return args.slice(i);
}

/**
 * A word's text as the shell passes it, and whether that text is known before the line runs.
 * @see https://www.gnu.org/software/bash/manual/bash.html#Quoting
 */
function wordOf(word: Node, isProgram: boolean, sourceOf: (n: Node) => string): { text: string; known: boolean } {
  let text = '';
  let known = true;
  /** The word with each quoted or escaped piece as a plain letter: what bash's brace expansion sees. */
  let shape = '';
  for (const part of word.Parts as Node[]) {
    const kind = nodeType(part);
    shape += kind === 'Lit' ? (part.Value as string).replace(/\\./gs, 'q') : 'q';
    if (kind === 'Lit') {
      const value = part.Value as string;
      // A glob in the program's name picks a file.
      if (isProgram && /(^|[^\\])([*?]|\[[^\]]*\])/.test(value)) known = false;
      text += value.replace(/\\(.)/gs, '$1');
    } else if (kind === 'SglQuoted') {
      text += part.Dollar ? ansiC(part.Value) : part.Value;
    } else if (kind === 'DblQuoted') {
      for (const inner of part.Parts as Node[]) {
        if (nodeType(inner) === 'Lit') text += (inner.Value as string).replace(/\\([$`"\\\n])/g, (_m, c: string) => (c === '\n' ? '' : c));
        else {
          known = false;
          text += sourceOf(inner);
        }
      }
    } else {
      known = false;
      text += sourceOf(part);
    }
  }
  // Brace expansion makes several words (`r{m,}` is `rm r`, `{'a',../b}` is `a ../b`), whatever of it is quoted;
  // an unquoted tilde at a word's start, or after `=` or `:` (bash expands `a=~` even in an argument), is a home directory.
  if (/\{[^{}]*(,|\.\.)[^{}]*\}/.test(shape) || /(^|[=:])~/.test(shape)) known = false;
  return { text, known };
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
