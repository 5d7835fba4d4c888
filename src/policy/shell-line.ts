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
 * turn, and the command after `env`, `sudo`, `nice`, `timeout`, `xargs`, `find -exec` and the like
 * (where their options are read: ./shell-options.ts; where the command may start at several words
 * when an option is not known, each is a command of the line).
 *
 * A command's words are read as the shell reads them (quotes and escapes removed, `$'…'` decoded).
 * A word the shell builds when it runs (`$x`, `$(…)`, `$((…))`, `{a,b}`, a glob in the program's
 * name, arguments `xargs` reads) makes the command *opaque*: hoop cannot know what runs. So does
 * code the words do not show: a builtin reading a word as a variable's name or arithmetic, whose
 * array subscript's `$(…)` runs (`test -v 'a[$(…)]'`), arithmetic naming a variable (`$((x))`), a
 * command changing what later ones run (`alias`, `hash -p`, `set -k`), setting a variable that is
 * code or where code is found (`PATH`, `PS4`, `LD_PRELOAD`), a shell reading its input,
 * an option whose value a program runs as a command (./shell-programs.ts), a wrapper nested too
 * deep. Reading a line is linear in it: no level of nesting is followed past a fixed depth, no
 * level copies more than the line, and the commands of a line hold at most 8 times its bytes
 * (and 64 KiB): past that the line is uncertain.
 *
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/utilities/V3_chap02.html (Shell Command Language)
 * @see https://www.gnu.org/software/bash/manual/bash.html#Shell-Syntax
 * @see https://github.com/mvdan/sh (the parser, `mvdan-sh` on npm)
 */
import { createRequire } from 'node:module';
import { INTEGER_VARIABLES, namesVariable, opacity, SHELLS, scriptOf, shown, variableRisk, wrapperOf } from './shell-code.js';
import { MAX_STARTS, optionsEnd, parseOptions, WATCH, wrappedStarts } from './shell-options.js';
import { mayBeOption, wordOf } from './shell-words.js';
import { filesPastDashes, hasOptionCode, readsItsWords } from './shell-programs.js';

export { ansiC } from './shell-words.js';

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
  /** Of a command `find -exec` runs: its unknown words are the paths find puts in place of `{}`, which an allow rule's `**` word may stand for. */
  paths?: true;
}

/** A parsed line: the commands it runs, or why hoop cannot be sure what it runs. */
export type ShellLine = { certain: true; commands: ShellCommand[] } | { certain: false; why: string };

/** Lines longer than this are not parsed (reading one takes 30-100 microseconds a byte; the gateway reads every line in a worker thread: ./shell-lines.ts): no allow rule matches them. The gateway's SSH server reads packets of up to 35,000 bytes, so longer lines never reach it. */
export const SHELL_LINE_MAX_BYTES = 32 * 1024;
/**
 * Words, quotes and expansions a line may hold to be parsed: the parser takes 0.1 to 0.5 ms of CPU
 * for each (a 32 KiB line of 16,000 `$a` took 10 s), whatever their bytes, and every line waits its
 * turn behind the one read; at this many a line is read in under a second on a slow machine.
 */
export const SHELL_LINE_MAX_TOKENS = 2048;

/** The characters a shell reads as syntax: quotes, expansions, brackets and operators. */
const SHELL_CHARACTERS = new Set('$`"\'\\(){};|&<>');

/** Whether `line` holds more than `max` words (runs of other than blanks) and {@link SHELL_CHARACTERS}, counted in one pass. */
function tokensOver(line: string, max: number): boolean {
  let n = 0;
  let inWord = false;
  for (const c of line) {
    const blank = c === ' ' || c === '\t' || c === '\n';
    if (!blank && !inWord) n++;
    inWord = !blank;
    if (SHELL_CHARACTERS.has(c)) n++;
    if (n > max) return true;
  }
  return false;
}

/**
 * How deep `sh -c "sh -c '…'"` and wrappers (`env nice sudo …`) are followed, and how many commands
 * one line may run, before hoop stops being sure: a shell string nested deeper makes the line
 * uncertain, a wrapper deeper its command opaque. Each level copies at most the line's words, so
 * following is linear in the line, and no recursion of hoop's goes deeper than this.
 */
const MAX_DEPTH = 8;
const MAX_COMMANDS = 4096;
/** How many bytes of commands a wrapper may run one command of a line may derive, per byte of its text. */
const DERIVED_PER_BYTE = 8;
/**
 * How many bytes of text and source the commands of a line may hold, per byte of the line (and
 * 64 KiB more): each construct keeps its whole source (`( ( … ) >f ) >f` nests them), so a line past
 * this is uncertain rather than read into text the judge would match rule by rule.
 */
const STORED_PER_BYTE = 8;
const STORED_SLACK = 64 * 1024;
/** The bytes the commands of the line being read hold so far, and the most they may. */
let stored = { used: 0, cap: 0 };
/**
 * How deep the syntax tree is walked before the line is uncertain: mvdan/sh's parser and walker
 * recurse once per level (`$($($(…)))`, `a && b && …`), and a 32 KiB line could overflow the stack.
 */
const MAX_NESTING = 256;

/** The grammar a login shell reads lines in, or why hoop cannot judge its lines. */
export function loginShellGrammar(shell: string | undefined): { grammar: 'bash' | 'korn' } | { why: string } {
  const name = shell?.split('/').pop() ?? '';
  if (name === '') return { why: "the gateway does not know the target user's login shell" };
  if (SHELLS.has(name)) return { grammar: name.includes('ksh') ? 'korn' : 'bash' };
  return { why: `the target user's login shell is ${name}, whose grammar hoop does not model (it judges bash, dash, ash and ksh lines)` };
}

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
  if (tokensOver(line, SHELL_LINE_MAX_TOKENS)) return { certain: false, why: `it holds more than ${SHELL_LINE_MAX_TOKENS} words, quotes and expansions, more than the gateway reads in time` };
  try {
    return readLine(line, login);
  } catch (err) {
    // mvdan/sh's parser and walker recurse once per level: a stack overflow the nesting cap did not foresee is a line hoop cannot read.
    if (err instanceof RangeError) return { certain: false, why: TOO_DEEP };
    throw err;
  } finally {
    grammar = 'bash';
  }
}

/**
 * Why the shells hoop models would not read `script`'s characters alike, if they would not: a lone
 * backslash at its end (a letter to bash and dash, dropped by ksh93 and mksh), or a character above
 * ASCII before one of @ [ \ ] ^ ` { | } ~ (in a double-byte locale, Big5 or GBK, bash and ksh read the
 * two as one character, and `中\;` is no escaped semicolon).
 */
function unreadBytes(script: string): string | undefined {
  let end = script.length;
  while (end > 0 && script.charCodeAt(end - 1) === 0x5c) end--;
  if ((script.length - end) % 2 === 1) return 'it ends in a backslash, which some shells keep as a letter and others drop';
  if (/[^\x00-\x7f][@[\\\]^`{|}~]/.test(script)) return 'a character above ASCII stands before one of @[\\]^`{|}~, which a double-byte locale reads as one character with it';
  return undefined;
}

const TOO_DEEP = `it nests constructs more than ${MAX_NESTING} levels deep`;
const STORED_TOO_MUCH = `its constructs and wrappers repeat more of it than hoop reads (over ${STORED_PER_BYTE} times its length)`;

/** Counts `command`'s text and source among what the line's commands hold ({@link stored}). */
function counted(command: ShellCommand): ShellCommand {
  stored.used += command.text.length + (command.source === command.text ? 0 : command.source.length);
  return command;
}

/** The commands `line` runs in each grammar `login` asks for, if they agree. */
function readLine(line: string, login: 'bash' | 'korn'): ShellLine {
  const commands: ShellCommand[] = [];
  const cap = STORED_PER_BYTE * Buffer.byteLength(line) + STORED_SLACK;
  stored = { used: 0, cap };
  const why = collect(line, 0, undefined, commands);
  if (why !== undefined) return { certain: false, why };
  // The target's login shell may be sh (dash on Debian, ash on Alpine): a line it would run otherwise than bash is not certain.
  for (const other of login === 'korn' ? (['posix', 'korn'] as const) : (['posix'] as const)) {
    const theirs: ShellCommand[] = [];
    grammar = other;
    stored = { used: 0, cap };
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
  const unread = unreadBytes(script);
  if (unread) return unread;
  let file: Node;
  try {
    file = shellParser().Parse(script, '');
  } catch (err) {
    if (err instanceof RangeError) return TOO_DEEP;
    const e = err as { Error?: () => string; message?: string };
    return `it is not a complete shell command line (${typeof e.Error === 'function' ? e.Error().replace(/^1:/, '').replace(/^\?: /, '') : String(e.message ?? err)})`;
  }
  const bytes = Buffer.from(script);
  const sourceOf = (n: Node): string => bytes.subarray(n.Pos().Offset(), n.End().Offset()).toString();
  let failed: string | undefined;
  /** A statement being walked, and the command hoop made of it (if any yet). */
  type Frame = { stmt: Node; command?: ShellCommand };
  /** Per node whose children are being walked, outermost first: its frame if it is a statement, else its type. */
  const path: Array<Frame | string> = [];
  /** Per command substitution being walked (and the line), how many double quotes are open in it. */
  const doubleQuotes = [0];
  /** The statements being walked, innermost last. */
  const stmts: Frame[] = [];
  /** Where here-document bodies lie (start and end offsets): their quotes are letters to the shells. */
  const bodies: Array<[number, number]> = [];
  const inBody = (at: number): boolean => bodies.some(([from, to]) => at >= from && at < to);
  walk(file, (node) => {
    // The walker calls back with null after a node's children.
    if (!node) {
      const left = path.pop();
      if (typeof left === 'object') stmts.pop();
      else if (left === 'DblQuoted') doubleQuotes[doubleQuotes.length - 1]!--;
      else if (left === 'CmdSubst' || left === 'ProcSubst') doubleQuotes.pop();
      return true;
    }
    if (failed !== undefined) return false;
    if (path.length >= MAX_NESTING) {
      failed = TOO_DEEP;
      return false;
    }
    const type = nodeType(node);
    // A `#` starts a comment only at the start of a word (after a blank or an operator); the parser also starts one right after a quote or a substitution.
    if (type === 'Comment' && !COMMENT_MAY_FOLLOW.has(bytes[node.Pos().Offset() - 1] ?? 0x0a)) {
      failed = "a # inside a word (right after a quote or a substitution) would start a comment only to hoop's parser; the target's shell reads it as a letter";
      return false;
    }
    if (type === 'Redirect' && node.Hdoc) bodies.push([node.Hdoc.Pos().Offset(), node.Hdoc.End().Offset()]);
    // In `"${u-'…'}"` and a here-document's `${u-'…'}` the shells read the quotes as letters (and run a `$(…)` between them), hoop's parser as quotes.
    if (type === 'SglQuoted' && (doubleQuotes[doubleQuotes.length - 1]! > 0 || inBody(node.Pos().Offset()))) {
      failed = "a quote inside a double-quoted ${…} or a here-document's is a letter to the shells (what is between runs), not a quote as hoop's parser reads it";
      return false;
    }
    // In "`…`" the shells drop a backslash before `"` (and `$`, `` ` ``, `\`) before they read what is inside; hoop's parser keeps it before `"`, and reads other quotes.
    if (type === 'CmdSubst' && node.Backquotes && doubleQuotes[doubleQuotes.length - 1]! > 0 && sourceOf(node).includes('\\')) {
      failed = "a backslash inside a backquoted command in double quotes is dropped by the shells before they read the command, not by hoop's parser";
      return false;
    }
    if (type === 'DblQuoted') doubleQuotes[doubleQuotes.length - 1]!++;
    else if (type === 'CmdSubst' || type === 'ProcSubst') doubleQuotes.push(0);
    if (type !== 'Stmt') {
      // Arithmetic on a variable, a subscript, an assignment the shell reads as code: the statement it is in runs what hoop cannot see.
      const why = evaluates(node, type, sourceOf, stmts[stmts.length - 1]?.command?.program);
      const frame = stmts[stmts.length - 1];
      if (why !== undefined && frame) {
        if (!frame.command) out.push((frame.command = counted(construct(sourceOf(frame.stmt), via))));
        makeOpaque(frame.command, why);
      }
      path.push(type);
      return true;
    }
    const stmt = node;
    const kind = stmt.Cmd ? nodeType(stmt.Cmd) : 'Redirect';
    const plain = stmt.Redirs.length === 0 && !stmt.Negated && !stmt.Background && !stmt.Coprocess;
    let command: ShellCommand | undefined;
    // `export NAME=literal` in bash is a declaration the POSIX grammar reads as a command: the same words either way.
    const declared = kind === 'DeclClause' ? declarationWords(stmt.Cmd, sourceOf) : undefined;
    if (kind === 'CallExpr' || declared) {
      const words = declared ?? optionGlobsUnknown((stmt.Cmd.Args as Node[]).map((w, i) => wordOf(w, i === 0, sourceOf, nodeType)));
      const program = words[0]?.known ? words[0].text.split('/').pop() : undefined;
      const opaque = opacity(words, program);
      command = {
        words: words.map((w) => w.text),
        ...(program !== undefined ? { program } : {}),
        text: words.map((w) => w.text).join(' '),
        source: sourceOf(stmt),
        simple: plain && (stmt.Cmd.Assigns?.length ?? 0) === 0 && words.length > 0 && words.every((w) => w.known) && opaque.opaque === undefined,
        ...opaque,
        // File names a glob or a tilde makes (nothing else unknown): an allow rule's `**` word may stand for them.
        ...(opaque.unknownWords?.every((i) => i > 0 && (words[i]!.glob || words[i]!.home)) ? { paths: true as const } : {}),
        ...(via ? { via } : {}),
      };
      out.push(counted(command));
      failed = command.opaque ? undefined : followWrappers(command.words, depth, out, { bytes: DERIVED_PER_BYTE * command.text.length + 64 });
    } else if (kind === 'BinaryCmd' || kind === 'Subshell' || kind === 'Block') {
      // Their commands are Stmts of their own; only a redirection, `&` or `!` on the whole is a command here.
      if (!plain) out.push((command = counted(construct(sourceOf(stmt), via))));
    } else {
      out.push((command = counted(construct(sourceOf(stmt), via))));
    }
    if (out.length > MAX_COMMANDS) failed = `it runs more than ${MAX_COMMANDS} commands`;
    if (failed === undefined && stored.used > stored.cap) failed = STORED_TOO_MUCH;
    if (failed !== undefined) return false;
    const frame: Frame = { stmt, ...(command ? { command } : {}) };
    path.push(frame);
    stmts.push(frame);
    return true;
  });
  return failed;
}

/** The declarations bash, dash and ash run alike when their words are plain: `NAME=value` and `NAME`. */
const PLAIN_DECLARATIONS = new Set(['export', 'readonly', 'local']);

/**
 * The words of a bash declaration (`export FOO=bar`) as the POSIX grammar reads the same line (a
 * command `export` with the argument `FOO=bar`), when they mean the same to both: each a name, or a
 * name and a value of literal text with no glob or tilde (which only one of them would expand);
 * undefined for any other (options, arrays, `$x` in a value: the grammars differ, the line is uncertain).
 */
function declarationWords(decl: Node, sourceOf: (n: Node) => string): Array<{ text: string; known: boolean; glob?: true; home?: true }> | undefined {
  const variant = decl.Variant?.Value as string | undefined;
  if (variant === undefined || !PLAIN_DECLARATIONS.has(variant)) return undefined;
  const words: Array<{ text: string; known: boolean; glob?: true; home?: true }> = [{ text: variant, known: true }];
  for (const a of (decl.Args ?? []) as Node[]) {
    const name = a.Name?.Value as string | undefined;
    if (name === undefined || a.Array || a.Index || a.Append) return undefined;
    if (a.Naked) {
      words.push({ text: name, known: true });
      continue;
    }
    const value = a.Value ? wordOf(a.Value, false, sourceOf, nodeType) : { text: '', known: true };
    if (!value.known || value.glob || /^~|:~/.test(sourceOf(a.Value ?? a))) return undefined;
    words.push({ text: `${name}=${value.text}`, known: true });
  }
  return words;
}

/** Programs that read a `./x` word as code: make as a variable (`./x:=$(shell …)`), git and kubectl as a command's path (`git ./x` runs `./git-x`). */
const PATHS_READ_AS_CODE = new Set(['make', 'gmake', 'git', 'kubectl']);

/**
 * The words with each argument glob that may expand to an option ({@link mayBeOption}) unknown:
 * before the program's `--` ({@link optionsEnd}); anywhere in a wrapper's words (its `--` is not the
 * command's) and in find's (file names are its expressions: `-delete`); every glob of a program
 * whose words hoop reads as more than file names ({@link readsItsWords}).
 */
function optionGlobsUnknown<W extends { text: string; known: boolean; glob?: true }>(words: W[]): W[] {
  const program = words[0]?.known ? words[0].text.split('/').pop()! : '';
  if (readsItsWords(program)) {
    // Past the `--` of a program that reads only file names after it ({@link filesPastDashes}), and after `./` (paths no table reads as code, letters or a subcommand; but {@link PATHS_READ_AS_CODE}), a glob is file names.
    const texts = words.map((w) => (w.known ? w.text : ''));
    const files = filesPastDashes(program, texts.slice(1)) ? optionsEnd(texts, 1) : words.length;
    const paths = (w: W, i: number): boolean => i > files || (w.text.startsWith('./') && !PATHS_READ_AS_CODE.has(program));
    return words.map((w, i) => (i > 0 && w.known && w.glob && !paths(w, i) ? { ...w, known: false } : w));
  }
  const end =
    program === 'find' || wrapperOf(program) !== undefined
      ? words.length
      : optionsEnd(
          words.map((w) => (w.known ? w.text : '')),
          1,
          hasOptionCode(program),
        );
  return words.map((w, i) => (i > 0 && i < end && w.known && mayBeOption(w) ? { ...w, known: false } : w));
}

/** Marks `command` as running what hoop cannot see, for `why` (its unknown words no longer the only unknown). */
function makeOpaque(command: ShellCommand, why: string): void {
  if (command.opaque === undefined || command.unknownWords !== undefined) command.opaque = why;
  delete command.unknownWords;
  command.simple = false;
}

/**
 * Why a node of a statement makes the shell run code hoop cannot see, if it does: arithmetic that
 * names a variable (`$((x))`, `((x))`, `let x`, `${a[i]}`, `${s:i}`, whose value may hold a
 * subscript with a `$(…)`), an indirect `${!x}` or `${x@P}`, and setting a variable a shell or a
 * program reads as code ({@link variableRisk}: `PS4=…`, `for PATH in …`, `${PATH:=…}`).
 */
function evaluates(node: Node, type: string, sourceOf: (n: Node) => string, program: string | undefined): string | undefined {
  const arithmetic = (expr: string) => `it works out ${shown(expr)} as arithmetic, and a variable it names may hold an array subscript whose \`$(…)\` runs`;
  const subscript = (index: Node | null | undefined) => (index ? !/^\s*(-?\d+|@|\*)\s*$/.test(sourceOf(index).replace(/\$(\{[#?$!]\}|[#?$!])/g, '0')) : false);
  switch (type) {
    case 'ArithmExp':
    case 'ArithmCmd':
      return namesVariable(node.X ? sourceOf(node.X) : '') ? arithmetic(sourceOf(node)) : undefined;
    case 'LetClause':
    case 'CStyleLoop':
      return namesVariable(
        sourceOf(node)
          .replace(/^let\s/, '')
          .replace(/;/g, ','),
      )
        ? arithmetic(sourceOf(node))
        : undefined;
    case 'TestClause':
      return /\s-(eq|ne|lt|le|gt|ge|v|R)\s/.test(sourceOf(node))
        ? `it works out ${shown(sourceOf(node))} as arithmetic or a variable's name, which may hold an array subscript whose \`$(…)\` runs`
        : undefined;
    case 'ParamExp': {
      const name: string = node.Param?.Value ?? '';
      if (node.Excl && !node.Names) return `it reads the variable that ${name}'s value names, which may hold an array subscript whose \`$(…)\` runs`;
      if (subscript(node.Index)) return arithmetic(sourceOf(node.Index));
      if (node.Slice && [node.Slice.Offset, node.Slice.Length].some((n: Node | null) => n && namesVariable(sourceOf(n)))) return arithmetic(sourceOf(node));
      if (!node.Exp) return undefined;
      const src = sourceOf(node);
      if (src.startsWith(`\${${name}@`)) return `it expands ${shown(src)}, whose operator may read ${name}'s value as a prompt and run its \`$(…)\``;
      if (src.startsWith(`\${${name}=`) || src.startsWith(`\${${name}:=`)) return variableRisk(name);
      return undefined;
    }
    case 'Assign': {
      const name: string | undefined = node.Name?.Value;
      // The value matters only to an integer variable (`RANDOM=42` is a seed); a name alone (`export PATH`) or an array may hold anything.
      const value = () => (node.Value ? wordOf(node.Value, false, sourceOf, nodeType) : node.Naked || node.Array ? undefined : { text: '', known: true });
      // `IFS=… read` splits only what read reads (`while IFS= read -r line`).
      const splitsInput = name === 'IFS' && (program === 'read' || program === 'mapfile' || program === 'readarray');
      const risk = name !== undefined && !splitsInput ? variableRisk(name, INTEGER_VARIABLES.has(name) ? value() : undefined) : undefined;
      if (risk !== undefined) return risk;
      if (subscript(node.Index)) return arithmetic(sourceOf(node.Index));
      // A declaration's own words: an integer or name-reference attribute (later values are worked out as arithmetic, or as names), or a name with a subscript.
      if (node.Naked && name === undefined && node.Value) {
        const text = sourceOf(node.Value);
        if (/^[-+][a-zA-Z]*[in]/.test(text)) return `it gives a variable the ${shown(text)} attribute, so a value it is given later is worked out as arithmetic or a name`;
        if (/[[$`]/.test(text)) return `it reads ${shown(text)} as a variable's name, whose subscript's \`$(…)\` runs`;
      }
      return undefined;
    }
    case 'ArrayElem':
      return subscript(node.Index) ? arithmetic(sourceOf(node.Index)) : undefined;
    case 'WordIter':
      return node.Name?.Value !== undefined ? variableRisk(node.Name.Value) : undefined;
    default:
      return undefined;
  }
}

/** The bytes after which a shell starts a comment at `#`: blanks, a newline, and the operators' characters. */
const COMMENT_MAY_FOLLOW = new Set([...' \t\n;&|()<>'].map((c) => c.charCodeAt(0)));

/** A construct (`if`, `for`, `[[ ]]`, `declare`, a redirected block…): judged as a whole, never simple. */
function construct(source: string, via: string | undefined): ShellCommand {
  return { words: [], text: source.replace(/\s+/g, ' ').trim(), source, simple: false, ...(via ? { via } : {}) };
}

/**
 * The commands a wrapper among `words` (a command `depth` levels in) runs, added to `out` (marked
 * with how they are reached). Each level copies at most the words it has, at most {@link MAX_DEPTH}
 * levels are followed, and the words copied for one command of the line are at most
 * {@link DERIVED_PER_BYTE} times its text (`budget`): a command wrapped deeper, or past that, is
 * opaque, so following is linear in the line.
 */
function followWrappers(words: string[], depth: number, out: ShellCommand[], budget: { bytes: number }): string | undefined {
  const program = words[0]?.split('/').pop() ?? '';
  const args = words.slice(1);
  /** Adds the command `rest` (`certain`: it is the one the wrapper runs, not one it may run) and follows it. */
  const derived = (rest: string[], via: string, how: { readsArgs?: boolean; certain?: boolean; paths?: boolean; opaqueWhy?: string } = {}): string | undefined => {
    // Past the budget, one opaque command stands for the rest (every deny rule matches it).
    if (rest.length === 0 || budget.bytes < 0) return undefined;
    const program = rest[0]?.split('/').pop() ?? '';
    const text = rest.join(' ');
    budget.bytes -= text.length;
    // find puts the paths it finds in place of `{}` (in any word, GNU find): such a word is built when it runs.
    const filled = new Set(how.paths ? rest.flatMap((w, i) => (i > 0 && w.includes('{}') ? [i] : [])) : []);
    const opaque =
      depth + 1 > MAX_DEPTH || budget.bytes < 0
        ? { opaque: `it is wrapped in more than ${MAX_DEPTH} commands, or in more than hoop follows (${via}…)` }
        : how.readsArgs || how.opaqueWhy
          ? { opaque: how.opaqueWhy ?? `${via} adds words it reads from its input` }
          : how.paths && rest[0]!.includes('{}')
            ? { opaque: `its program is a path ${via} finds, known only when it runs` }
            : opacity(
                rest.map((w, i) => ({ text: w, known: !filled.has(i) })),
                program,
              );
    out.push(
      counted({
        words: rest,
        text,
        source: text,
        program,
        simple: how.certain === true && opaque.opaque === undefined,
        ...opaque,
        ...(filled.size > 0 && opaque.unknownWords ? { paths: true as const } : {}),
        via,
      }),
    );
    return opaque.opaque !== undefined && !(filled.size > 0 && opaque.unknownWords) ? undefined : followWrappers(rest, depth + 1, out, budget);
  };
  if (program === 'eval') {
    // bash and ksh read a first `--` as the end of eval's options (dash runs a command `--`).
    const code = args[0] === '--' ? args.slice(1) : args;
    return code.length ? collect(code.join(' '), depth + 1, 'eval', out) : undefined;
  }
  if (program === 'watch') {
    // procps-ng 4: with `-x` watch runs its words as a command; else `sh -c` runs them joined by blanks. An option hoop does not know may take the next word.
    const parsed = parseOptions(args, WATCH);
    const rest = args.slice(parsed.operand);
    if (!parsed.known) return derived(args.slice(parsed.unknownAt!), 'watch', { opaqueWhy: 'it is run by watch, whose options hoop cannot all read' });
    if (parsed.options.some((o) => o.name === 'x' || o.name === 'exec')) return derived(rest, 'watch -x', { certain: true });
    return rest.length ? collect(rest.join(' '), depth + 1, 'watch', out) : undefined;
  }
  if (program === 'trap') {
    // `trap ACTION SIGNAL…` runs ACTION when a signal comes (or the shell exits); one word, `-` or a number resets.
    const rest = args[0] === '--' ? args.slice(1) : args;
    const action = rest[0];
    return action !== undefined && rest.length > 1 && !action.startsWith('-') && !/^\d+$/.test(action) ? collect(action, depth + 1, 'trap', out) : undefined;
  }
  const script = scriptOf(program, args);
  if (script !== undefined) return collect(script, depth + 1, `${program} -c`, out);
  if (program === 'find') {
    for (let i = 0; i < args.length; i++) {
      if (!['-exec', '-execdir', '-ok', '-okdir'].includes(args[i] as string)) continue;
      // The command ends at a `;`, or at a `+` right after a `{}`: each word is in one command.
      let end = i + 1;
      while (end < args.length && args[end] !== ';' && !(args[end] === '+' && args[end - 1] === '{}')) end++;
      const why = derived(args.slice(i + 1, end), `find ${args[i]}`, { certain: true, paths: true });
      if (why) return why;
      i = end;
    }
    return undefined;
  }
  if (program === 'capsh') {
    // capsh runs what follows `--` with its shell (bash, or `--shell=`).
    const end = args.indexOf('--');
    const shell = args.findLast((a, i) => a.startsWith('--shell=') && (end < 0 || i < end))?.slice('--shell='.length) ?? '/bin/bash';
    return end < 0 ? undefined : derived([shell, ...args.slice(end + 1)], 'capsh', { certain: args.slice(0, end).every((a) => a.startsWith('--') && a !== '==') });
  }
  if (program === 'ip') {
    // `ip [options] netns exec NAME command…` (any abbreviation, `-all` without NAME): the command may start at any word after `exec`.
    const ns = args.findIndex((a) => a.length >= 3 && 'netns'.startsWith(a));
    const exec = ns < 0 ? -1 : args.findIndex((a, i) => i > ns && a.length >= 1 && 'exec'.startsWith(a));
    if (exec < 0) return undefined;
    for (let start = exec + 1, n = 0; start < args.length && n < MAX_STARTS; start++, n++) {
      const why = derived(args.slice(start), 'ip netns exec');
      if (why) return why;
    }
    return undefined;
  }
  const wrapper = wrapperOf(program);
  if (!wrapper) return undefined;
  const { starts, certain, beyond } = wrappedStarts(program, args);
  const stdinArgs = wrapper.stdinArgs === true;
  for (const start of starts) {
    const why = derived(args.slice(start), program, { readsArgs: stdinArgs, certain });
    if (why) return why;
  }
  if (beyond && budget.bytes >= 0) {
    const rest = args.slice(starts.at(-1)! + 1);
    const text = rest.join(' ');
    budget.bytes -= text.length;
    out.push(
      counted({
        words: rest,
        text,
        source: text,
        simple: false,
        opaque: `it is run by ${program}, whose options hoop cannot all read (one may take a value), and may start past the ${MAX_STARTS}th word after them`,
        via: program,
      }),
    );
  }
  return undefined;
}
