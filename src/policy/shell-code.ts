/**
 * Which commands run code their words do not show, read from the words alone: the shells hoop
 * models, the wrappers that run another command (`env`, `sudo`, `nice`, `find -exec`), builtins
 * that read a word as a variable's name or arithmetic, commands that change what later ones run,
 * and variables a shell, the loader or an interpreter reads as code. ./shell-line.ts reads a line
 * into commands and asks these of each.
 *
 * @see https://www.gnu.org/software/bash/manual/bash.html#Shell-Builtin-Commands
 */
import { hasOption, type OptionSpec, parseOptions, shellInvocation, WRAPPERS, wrappedStarts, wrapperOf } from './shell-options.js';
import { readsItsWords, runsOptionCode } from './shell-programs.js';

export { WRAPPERS, wrapperOf } from './shell-options.js';
/** Shells whose grammar hoop models (bash's, POSIX sh's, the Korn shell's where they agree): their `-c` script is parsed. */
export const SHELLS = new Set(['sh', 'bash', 'dash', 'ksh', 'ksh93', 'mksh', 'ash', 'posh', 'rbash', 'rksh', 'rksh93', 'rmksh', 'lksh', 'rlksh', 'pdksh']);
/**
 * Shells hoop does not model (zsh's `=cmd`, fish's and csh's own grammars): what they run is
 * unknown, whether as the target's login shell or started by a line.
 */
export const UNMODELLED_SHELLS = new Set([
  // Programs whose words are shell commands hoop does not read (moreutils' pee and mispipe, entr -s).
  ...['pee', 'mispipe', 'entr'],
  'hush',
  'zsh',
  'fish',
  'csh',
  'tcsh',
  'yash',
  'elvish',
  'nu',
  'xonsh',
  'pwsh',
  'rc',
  'es',
  'oksh',
  'loksh',
  'scsh',
  'ion',
  'murex',
  'oil',
  'osh',
  'ysh',
  'sash',
  'bosh',
  'pfsh',
]);

/** Whether `program` is a shell hoop does not model: one of {@link UNMODELLED_SHELLS}, or its restricted variant (`rzsh`). */
export function unmodelledShell(program: string): boolean {
  return UNMODELLED_SHELLS.has(program) || (program.startsWith('r') && UNMODELLED_SHELLS.has(program.slice(1)));
}

/**
 * A command every shell runs alike: a program given by its absolute path (a file, never a builtin,
 * keyword, alias or function of any shell: zsh's `noglob`, tcsh's `hup`, fish's `begin`), then plain
 * words (no quote, expansion, glob, operator, comment, history mark or assignment in any shell; none
 * starts with `=`, zsh's path of a command, or `~`).
 */
const PATH_AND_PLAIN_WORDS = /^\/[A-Za-z0-9_./+-]+(?: +[A-Za-z0-9_./:,+@%-][A-Za-z0-9_./:,+@%=-]*)*$/;

/** Whether every shell reads `script` as bash does (see {@link PATH_AND_PLAIN_WORDS}). */
export function readAlikeByEveryShell(script: string): boolean {
  return PATH_AND_PLAIN_WORDS.test(script);
}

/** Programs that run what hoop does not see: a directory's programs, a command under a terminal of their own. */
const RUNS_ELSEWHERE: Record<string, string> = {
  'run-parts': 'it runs every program in a directory',
  dtach: 'it runs its command (or attaches to one) under a terminal of its own',
  abduco: 'it runs its command (or attaches to one) under a terminal of its own',
  openvt: 'it runs its command (a shell without one) on another virtual terminal',
};

/** Programs that run code given by their words, or by names in them: an unknown word in them is unknown code. */
export const RUNS_WORDS = new Set(['eval', 'watch', 'find', 'su', 'runuser', 'flock', 'script', 'sg', 'capsh', 'ip', '.', 'source', 'exec', 'command', 'builtin', 'trap', 'alias', 'function']);

/** Builtins that give a variable a value (a later program may find it in its environment). */
const DECLARES = ['declare', 'typeset', 'local', 'export', 'readonly', 'global'];
/**
 * Builtins that read a word as a variable name, which may carry an array subscript, or as an
 * arithmetic expression, whose variables may hold one: bash and mksh work a subscript out as
 * arithmetic and run its `$(…)` (`test -v 'a[$(rm -rf x)]'`, `printf -v 'a[$(…)]' x`,
 * `read 'a[$(…)]'`; mksh's `[ x -eq 1 ]`, `shift x`, `ulimit -t x` with `x='a[$(…)]'`). Such a
 * command is opaque when a word it may read so could hold a subscript or an expansion when re-read
 * (`[`, `$`, a backquote, or a word built when it runs), or names a variable where it takes a number.
 */
export const NAME_BUILTINS = new Set(['test', '[', 'read', 'unset', 'wait', 'mapfile', 'readarray', 'getopts', 'printf', 'let', 'shift', 'ulimit', ...DECLARES]);
/** Of {@link NAME_BUILTINS}, those that set the variables they name. */
export const SETS_NAMES = new Set(['unset', 'read', 'mapfile', 'readarray', 'getopts', 'wait', 'printf', ...DECLARES]);
/**
 * Builtins that run code given as a word (`bind -x`, `complete -C`, `fc`, `enable -f` loads a
 * library), or change what a later command of the line runs or how the shell reads it (`alias`,
 * `hash -p`, `shopt`, `set -k`, `integer`, `nameref`): with any argument, opaque. The model is the
 * simplest sound one: such a command is itself unknown code, so every deny and review rule matches
 * the line it is in and no allow rule admits it, whatever the later commands look like.
 */
export const CODE_BUILTINS = new Set(['alias', 'unalias', 'enable', 'bind', 'complete', 'compgen', 'compopt', 'fc', 'hist', 'autoload', 'enum', 'integer', 'float', 'nameref']);
/** `set` options that change neither what a later command runs nor how the shell reads it (errexit, nounset, xtrace, verbose, noglob, noclobber, noexec). */
export const SAFE_SET_LETTERS = new Set([...'euxvfCn']);
export const SAFE_SET_NAMES = new Set(['errexit', 'nounset', 'xtrace', 'verbose', 'noglob', 'noclobber', 'noexec', 'pipefail']);

/**
 * Variables a shell or the dynamic loader reads as code or as where code is found: the startup
 * files (`BASH_ENV`, `ENV`), prompts and hooks (`PS0`–`PS4`, `PROMPT_COMMAND`: command
 * substitutions in them run), options (`SHELLOPTS`, `BASHOPTS`), the program search and what it
 * skips (`PATH`, `EXECIGNORE`, `FPATH`), word splitting and globbing (`IFS`, `GLOBIGNORE`),
 * `HOME` (where `~/.bashrc`, `~/.gitconfig` are), the loader's `LD_*`, and interpreters' and
 * tools' own (`NODE_OPTIONS`, `PERL5OPT`, `PYTHONPATH`, `GIT_SSH_COMMAND`, `PAGER`, `EDITOR`…).
 * Setting one (`X=… cmd`, `X=…;`, `env X=…`, `export X`, `read X`, `for X in`) makes the command opaque.
 */
export const CODE_VARIABLES = new Set([
  ...['BASH_ENV', 'ENV', 'PS0', 'PS1', 'PS2', 'PS3', 'PS4', 'PROMPT_COMMAND', 'SHELLOPTS', 'BASHOPTS', 'BASH_XTRACEFD', 'BASH_LOADABLES_PATH', 'BASH_COMPAT', 'POSIXLY_CORRECT'],
  // bash's table of commands found (`BASH_CMDS=/bin/rm; 0 -rf x` runs rm) and of aliases.
  ...['BASH_CMDS', 'BASH_ALIASES'],
  ...['PATH', 'EXECIGNORE', 'FPATH', 'IFS', 'GLOBIGNORE', 'HOME', 'XDG_CONFIG_HOME', 'SHELL', 'FCEDIT'],
  ...['NODE_OPTIONS', 'NODE_PATH', 'PERL5OPT', 'PERL5LIB', 'PERLLIB', 'PYTHONSTARTUP', 'PYTHONPATH', 'PYTHONHOME', 'PYTHONUSERBASE', 'RUBYOPT', 'RUBYLIB'],
  ...['JAVA_TOOL_OPTIONS', '_JAVA_OPTIONS', 'JDK_JAVA_OPTIONS', 'LUA_INIT', 'LUA_PATH', 'LUA_CPATH', 'GCONV_PATH', 'OPENSSL_CONF', 'PHPRC', 'PHP_INI_SCAN_DIR', 'TCLLIBPATH'],
  ...['GIT_SSH', 'GIT_SSH_COMMAND', 'GIT_EXEC_PATH', 'GIT_ASKPASS', 'GIT_EDITOR', 'GIT_PAGER', 'GIT_EXTERNAL_DIFF', 'GIT_PROXY_COMMAND', 'GIT_DIR', 'GIT_TEMPLATE_DIR'],
  ...['SSH_ASKPASS', 'SUDO_ASKPASS', 'SUDO_EDITOR', 'PAGER', 'MANPAGER', 'MANOPT', 'SYSTEMD_PAGER', 'SYSTEMD_EDITOR', 'EDITOR', 'VISUAL', 'BROWSER', 'GIT_SEQUENCE_EDITOR'],
  // Options programs read from the environment, which may name a command to run (`LESS='+!…'`, `TAR_OPTIONS=--to-command=…`).
  ...['LESSOPEN', 'LESSCLOSE', 'LESS', 'LESSKEY', 'LESSKEYIN', 'LESSKEY_CONTENT', 'MAKEFLAGS', 'MFLAGS', 'GNUMAKEFLAGS', 'TAR_OPTIONS', 'ZIPOPT', 'RSYNC_RSH', 'RSYNC_CONNECT_PROG'],
  ...['BAT_PAGER', 'BAT_OPTS', 'BAT_CONFIG_PATH', 'RIPGREP_CONFIG_PATH'],
]);
export const CODE_VARIABLE_PREFIXES = ['LD_', 'DYLD_', 'BASH_FUNC_', 'GIT_CONFIG'];
/** Variables bash or mksh keep as integers: a value given to one is worked out as arithmetic (`RANDOM='a[$(…)]'` runs it). */
export const INTEGER_VARIABLES = new Set([
  ...['RANDOM', 'SRANDOM', 'SECONDS', 'OPTIND', 'HISTCMD', 'LINENO', 'COLUMNS', 'LINES', 'TMOUT', 'PPID', 'BASHPID', 'PIPESTATUS'],
  ...['USER_ID', 'KSHUID', 'KSHGID', 'KSHEGID', 'PGRP', 'EPOCHREALTIME', 'EPOCHSECONDS'],
]);

/** Why setting variable `name` (to `value`, when known) may run code, if it may. */
export function variableRisk(name: string, value?: { text: string; known: boolean }): string | undefined {
  if (CODE_VARIABLES.has(name) || CODE_VARIABLE_PREFIXES.some((p) => name.startsWith(p))) return `it changes ${name}, which a shell or a program reads as code or as where to find the code it runs`;
  if (INTEGER_VARIABLES.has(name) && !(value?.known && /^\s*[-+]?\d*\s*$/.test(value.text)))
    return `it changes ${name}, whose value the shell works out as arithmetic (an array subscript's \`$(…)\` in it runs)`;
  return undefined;
}

/**
 * Variables a wrapper (`env`, `sudo`) may pass to the program it runs: the locale, the time zone,
 * the terminal's and colours' settings. Any other is the program's configuration as far as hoop
 * can tell (`GIT_ALLOW_PROTOCOL=ext`, `KUBECONFIG=/dev/stdin`, `MANROFFOPT=-U`, `MAKEFILES=…`
 * each make a program run code): a name not here makes the command opaque.
 */
const ENVIRONMENT_SAFE = new Set([
  'LANG',
  'LANGUAGE',
  'TZ',
  'TERM',
  'COLUMNS',
  'LINES',
  'NO_COLOR',
  'CLICOLOR',
  'CLICOLOR_FORCE',
  'FORCE_COLOR',
  'TMPDIR',
  'NODE_ENV',
  'RAILS_ENV',
  'RACK_ENV',
  'APP_ENV',
  'PYTHONUNBUFFERED',
]);

/** Why passing variable `name` (set to `value`) in a program's environment may run code, unless {@link ENVIRONMENT_SAFE} names it (or a `LC_*`; `DEBIAN_FRONTEND=noninteractive`: its `editor` frontend starts vi). */
function environmentRisk(name: string, value?: string): string | undefined {
  if (ENVIRONMENT_SAFE.has(name) || /^LC_[A-Z]+$/.test(name) || (name === 'DEBIAN_FRONTEND' && value === 'noninteractive')) return undefined;
  return `it passes ${name} in the environment of the program it runs, which may read it as configuration that runs code (the locale, TZ, TERM, colours and run modes such as NODE_ENV are known not to)`;
}

/** Why a wrapper that sets its command's environment some other way than `NAME=value` words may run code: from a directory's files (`envdir`, `chpst -e`), or by an option (`systemd-run -E`, `run0 --setenv`, `firejail --env`), a name not {@link ENVIRONMENT_SAFE}. */
function environmentFrom(program: string, args: readonly string[]): string | undefined {
  if (program === 'envdir' || (program === 'chpst' && args.some((a) => /^-[^-]*e/.test(a)))) return `\`${program}\` sets the environment from files hoop does not read`;
  if (program !== 'systemd-run' && program !== 'run0' && program !== 'firejail') return undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const next = (): string => args[i + 1] ?? '';
    // `-E NAME=v`, `-qENAME=v`, `--setenv=` and its prefixes (`--set=`), firejail's `--env=`; `-p Environment=…`, `--property=EnvironmentFile=…`.
    const short = /^-[^-]*?([Ep])(.*)$/s.exec(a);
    const long = /^--(s(?:e(?:t(?:e(?:nv?)?)?)?)?|env|property)(?:=(.*))?$/s.exec(a);
    const [kind, value] = short ? [short[1] === 'E' ? 'env' : 'property', short[2] || next()] : long ? [long[1] === 'property' ? 'property' : 'env', long[2] ?? next()] : [undefined, ''];
    if (kind === undefined) continue;
    if (kind === 'property') {
      if (/^EnvironmentFile/i.test(value)) return `\`${program}\` sets the environment from a file hoop does not read`;
      if (!/^Environment=/i.test(value)) continue;
    }
    const pair = kind === 'property' ? value.slice(value.indexOf('=') + 1) : value;
    const name = pair.replace(/=.*$/s, '');
    const set = pair.includes('=') ? pair.slice(pair.indexOf('=') + 1) : undefined;
    const risk = variableRisk(name, set === undefined ? undefined : { text: set, known: true }) ?? environmentRisk(name, set);
    if (risk !== undefined) return risk;
  }
  return undefined;
}

/** `$#`, `$?`, `$$`, `$!` (bare or in double quotes): built when the line runs, but always a number. */
export const NUMERIC_PARAMETER = /^"?\$(\{[#?$!]\}|[#?$!])"?$/;

/** Whether arithmetic `expr` may read a variable (names one, or expands one into its text): anything but numbers and operators. */
export function namesVariable(expr: string): boolean {
  const bare = expr.replace(/\$(\{[#?$!]\}|[#?$!])/g, '0').replace(/\b0[xX][0-9a-fA-F]+\b/g, '0');
  return !/^[\s\d+\-*/%<>=!&|^~?:(),]*$/.test(bare);
}

/** A piece of source as a reason quotes it. */
export function shown(text: string): string {
  const one = text.replace(/\s+/g, ' ');
  return `\`${one.length > 40 ? `${one.slice(0, 37)}...` : one}\``;
}

/** Why a command's words (or the code it runs) are not known before it runs, if they are not. */
export function opacity(words: Array<{ text: string; known: boolean; glob?: true }>, program: string | undefined): { opaque?: string; unknownWords?: number[] } {
  if (program !== undefined && unmodelledShell(program)) return { opaque: `it runs ${program}, whose grammar hoop does not model` };
  const code = program !== undefined ? runsCode(words, program) : undefined;
  if (code !== undefined) return { opaque: code };
  if (words.some((w) => !w.known)) {
    const readsWords = program !== undefined && readsItsWords(program);
    const runsWords = program === undefined || SHELLS.has(program) || RUNS_WORDS.has(program) || wrapperOf(program) !== undefined || readsWords;
    const unknownWords = words.flatMap((w, i) => (w.known ? [] : [i]));
    const texts = unknownWords.map((i) => words[i]!.text);
    const globs = unknownWords.every((i) => i > 0 && words[i]!.glob);
    const why =
      globs && readsWords
        ? `${builtWords(texts)} ${texts.length > 1 ? 'globs' : 'a glob'} whose file names \`${program}\` may read as code, option letters or a subcommand (name the files)`
        : globs
          ? `${builtWords(texts)} ${texts.length > 1 ? 'globs' : 'a glob'} whose file names may start with \`-\`, read as options (write \`./${texts[0]}\`, or \`--\` before it)`
          : `${builtWords(texts)} built when it runs`;
    return { opaque: why, ...(runsWords ? {} : { unknownWords }) };
  }
  if (program === '.' || program === 'source') return { opaque: 'it runs commands it reads from a file' };
  return {};
}

/**
 * Why a command whose program is known runs code hoop cannot see although its words may be
 * known, if it does: a shell reading its script from its input (`-`, `/dev/stdin`) or with an
 * option hoop cannot place, an option whose value a program runs as a command (./shell-programs.ts),
 * `env -S` (split by env's own rules), a builtin that reads a
 * word as code, a variable's name or arithmetic ({@link NAME_BUILTINS}, {@link CODE_BUILTINS}),
 * `set` and `shopt` options that change how later commands run, and `env`/`sudo` setting a
 * variable that is code ({@link variableRisk}, `BASH_FUNC_x%%=() {…}`).
 */
export function runsCode(words: Array<{ text: string; known: boolean }>, program: string): string | undefined {
  const args = words.slice(1);
  const texts = args.map((w) => w.text);
  const envSet = environmentFrom(program, texts);
  if (envSet !== undefined) return envSet;
  if (SHELLS.has(program)) {
    if (args.some((w) => !w.known)) return undefined;
    const run = shellInvocation(texts);
    if ('why' in run) return run.why;
    // A script file is a program of its own, as `./deploy.sh` is: what it runs is its code, not the line's.
    return run.stdin ? 'it runs commands it reads from its input' : undefined;
  }
  if (args.every((w) => w.known)) {
    const option = runsOptionCode(program, texts);
    if (option !== undefined) return option;
  }
  const input = 'it starts a shell that runs commands it reads from its input';
  // su without -c, `sudo -s`, `sudo -i`, `newgrp`, `script` without -c and the like without a command start a shell that reads the rest of the input.
  const likeSu = program === 'su' || (program === 'runuser' && !hasOption(parseOptions(texts, SU_OPTIONS.runuser!), ['u', 'user'])) || program === 'script';
  if ((likeSu && scriptOf(program, texts) === undefined) || program === 'newgrp') return input;
  // su's -c string runs in the shell -s names, else the target user's login shell: one hoop may not model, unless every shell reads the string alike.
  if (likeSu && program !== 'script') {
    const shell = parseOptions(texts, SU_OPTIONS[program]!).options.findLast((o) => o.name === 's' || o.name === 'shell')?.value;
    if ((shell === undefined || !SHELLS.has(shell.split('/').pop()!)) && !readAlikeByEveryShell(scriptOf(program, texts)!))
      return `it runs its -c string in ${shell ?? "the target user's login shell"}, whose grammar hoop does not know to be one it models`;
  }
  // at's own getopt string: only listing, removing, showing a job or the version runs nothing (`-qd` is queue d).
  if ((program === 'at' || program === 'batch') && !hasOption(parseOptions(texts, { short: 'q:f:MmbvlrdhVct:' }), ['l', 'd', 'r', 'c', 'V']))
    return 'it runs commands it reads from its input (or a file) later';
  const wrapper = wrapperOf(program);
  if (['sudo', 'doas', 'run0'].includes(program)) {
    const parsed = parseOptions(texts, wrapper!.options ?? {});
    // With a command, `sudo -s` and `-i` escape its words and hand them to the target's shell with -c, which reads them again (`r$1m` is rm).
    if (hasOption(parsed, ['s', 'i', 'shell', 'login']))
      return texts.slice(parsed.operand).every((t) => t.includes('=')) ? input : "it runs its command through the target user's shell (-s, -i), which reads its words again";
  }
  // A directory's programs, a terminal of its own, a machine's or a unit's shell: what hoop does not judge.
  if (Object.hasOwn(RUNS_ELSEWHERE, program)) return RUNS_ELSEWHERE[program];
  if ((program === 'machinectl' && texts.some((t) => t === 'shell' || t === 'login')) || (program === 'systemd-run' && texts.some((t) => t === '--shell' || /^-[^-]*S/.test(t)))) return input;
  // sg GROUP and parallel without a command start a shell, or run the lines they read as commands.
  if (program === 'sg' && texts.filter((t) => !t.startsWith('-')).length <= 1) return input;
  if (program === 'parallel' && texts.every((t) => t.startsWith('-'))) return input;
  // setarch, unshare, chroot, fakeroot and the like with no command start the user's shell.
  if (wrapper?.shellWithout && !(wrapper.noCommand && hasOption(parseOptions(texts, wrapper.options ?? {}), wrapper.noCommand)) && wrappedStarts(program, texts).starts.length === 0) return input;
  if (program === 'env') {
    const parsed = parseOptions(texts, wrapper!.options!);
    const split = hasOption(parsed, ['S', 'split-string']) || (!parsed.known && texts.some((t) => /^-[^-]*S/.test(t) || /^--s/.test(t)));
    if (split) return 'env splits the string by its own rules (`env -S`)';
  }
  if (wrapper?.assignments) {
    const parsed = parseOptions(texts, wrapper.options ?? {});
    // With an option hoop does not know, any later word may be an assignment.
    const from = parsed.known ? parsed.operand : parsed.unknownAt! + 1;
    for (let i = from; i < texts.length && (texts[i]!.includes('=') || !parsed.known); i++) {
      if (!texts[i]!.includes('=')) continue;
      const [name, value] = [texts[i]!.slice(0, texts[i]!.indexOf('=')), texts[i]!.slice(texts[i]!.indexOf('=') + 1)];
      // bash imports `BASH_FUNC_name%%` (and, before Shellshock's fix, any `() {` value) as a function.
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) || value.startsWith('()')) {
        if (!parsed.known && name.startsWith('-')) continue;
        return `it passes ${shown(name)} in the environment, which bash may read as a function`;
      }
      const risk = variableRisk(name, { text: value, known: true }) ?? environmentRisk(name, value);
      if (risk !== undefined) return risk;
    }
    return undefined;
  }
  /** The option words before the first operand (`--` ends them), as `set`, `shopt`, `hash` read them. */
  const options = (): string[] => {
    const end = texts.findIndex((t) => !/^[-+][a-zA-Z]/.test(t));
    return texts.slice(0, end < 0 ? undefined : end);
  };
  const unknown = args.some((w) => !w.known && !NUMERIC_PARAMETER.test(w.text));
  // `fc` alone runs the last command again (through an editor); the rest only list with no arguments.
  if (CODE_BUILTINS.has(program)) return args.length > 0 || program === 'fc' ? `it runs code given in its words, or changes what later commands run (\`${program}\`)` : undefined;
  if (program === 'hash' || program === 'shopt' || program === 'jobs' || program === 'builtin' || program === 'set') {
    if (unknown && program !== 'set' && program !== 'builtin') return `\`${program}\` with words built when it runs may change what later commands run`;
    const letters = options().join('');
    if (program === 'hash' && letters.includes('p')) return 'it changes which program a later command name runs (`hash -p`)';
    if (program === 'shopt' && /[su]/.test(letters)) return 'it changes how the shell reads or runs later commands (`shopt`)';
    if (program === 'jobs' && letters.includes('x')) return 'it runs the command in its words (`jobs -x`)';
    if (program === 'builtin' && /^-./.test(texts[0] ?? '') && texts[0] !== '--') return 'it may load code into the shell (`builtin -f`)';
    if (program === 'set') return setRisk(args);
    return undefined;
  }
  if (!NAME_BUILTINS.has(program)) return undefined;
  // printf reads only its -v word as a name: the format and the rest are text.
  const read = program === 'printf' ? printfNames(args) : args;
  const hidden = read.find((w) => !w.known && !NUMERIC_PARAMETER.test(w.text));
  if (hidden) return `it reads ${shown(hidden.text)}, built when it runs, as a variable's name or arithmetic, which may hold an array subscript whose \`$(…)\` runs`;
  const marked = read.find((w) => w.known && /[[$`]/.test(w.text));
  if (marked) return `it reads ${shown(marked.text)} as a variable's name or arithmetic, whose array subscript's \`$(…)\` runs`;
  if (SETS_NAMES.has(program)) {
    // What a declaration gives a value, or exports (`export NAME` of a value `read` or `printf -v` set), may reach later programs' environment.
    const exports = program === 'export' || (DECLARES.includes(program) && read.some((w) => /^-[a-zA-Z]*x/.test(w.text)));
    for (const w of read) {
      const name = w.text.replace(/\+?=.*$/s, '');
      const value = DECLARES.includes(program) && w.text.includes('=') ? w.text.slice(w.text.indexOf('=') + 1) : undefined;
      const passed = value !== undefined || (exports && !w.text.startsWith('-'));
      const risk = variableRisk(name) ?? (passed ? environmentRisk(name, value) : undefined);
      if (risk !== undefined) return risk;
    }
  }
  const numeric = (t: string | undefined) => t !== undefined && (/^\s*[-+]?\d+\s*$/.test(t) || NUMERIC_PARAMETER.test(t));
  const onVariable = `it works out a variable it names as arithmetic (\`${program}\`), and the value may hold an array subscript whose \`$(…)\` runs`;
  switch (program) {
    case 'let':
      return texts.some((t) => namesVariable(t)) ? onVariable : undefined;
    case 'shift':
      return texts.some((t) => !numeric(t)) ? onVariable : undefined;
    case 'ulimit':
      return texts.some((t) => !t.startsWith('-') && !numeric(t) && !['unlimited', 'hard', 'soft'].includes(t)) ? onVariable : undefined;
    case 'test':
    case '[':
      // mksh works out both sides of -eq, -lt… as arithmetic (bash only in `[[ ]]`).
      return texts.some((t, i) => /^-(eq|ne|lt|le|gt|ge)$/.test(t) && !(numeric(texts[i - 1]) && numeric(texts[i + 1]))) ? onVariable : undefined;
    case 'mapfile':
    case 'readarray':
      // Its options take values (`-c 1 -C cb`): any word that may be `-C` counts.
      return texts.some((t) => /^-[a-zA-Z]*C/.test(t)) ? `it runs the callback in its words (\`${program} -C\`)` : undefined;
    case 'declare':
    case 'typeset':
    case 'local':
    case 'export':
    case 'readonly':
    case 'global':
      return /[in]/.test(options().join('')) ? 'it gives a variable an integer or name-reference attribute, so a value it is given later is worked out as arithmetic or a name' : undefined;
    default:
      return undefined;
  }
}

/** The words of a `printf` read as a variable's name: `-v NAME` (`-vNAME`), and an unknown word where an option may stand. */
export function printfNames(args: Array<{ text: string; known: boolean }>): Array<{ text: string; known: boolean }> {
  const names: Array<{ text: string; known: boolean }> = [];
  for (let i = 0; i < args.length; i++) {
    const w = args[i]!;
    if (!w.known) return [...names, w];
    if (w.text === '--' || !w.text.startsWith('-') || w.text === '-') break;
    if (w.text === '-v') {
      if (args[i + 1]) names.push(args[i + 1]!);
      i++;
    } else if (w.text.startsWith('-v')) names.push({ text: w.text.slice(2), known: true });
  }
  return names;
}

/** Why `set` with `args` may change how the shell reads or runs later commands, if it may: any option but errexit, nounset, xtrace, verbose, noglob, noclobber, noexec, pipefail. */
export function setRisk(args: Array<{ text: string; known: boolean }>): string | undefined {
  const why = (o: string) => `it changes how the shell reads or runs later commands (\`set ${o}\`)`;
  for (let i = 0; i < args.length; i++) {
    const w = args[i]!;
    if (!w.known) return why(w.text);
    if (w.text === '--' || w.text === '-' || !/^[-+]./.test(w.text)) return undefined;
    const letters = w.text.slice(1);
    if ([...letters].some((c) => c !== 'o' && !SAFE_SET_LETTERS.has(c))) return why(w.text);
    if (letters.includes('o')) {
      const name = args[i + 1];
      if (name !== undefined && !(name.known && SAFE_SET_NAMES.has(name.text))) return why(`${w.text} ${name.text}`);
      i++;
    }
  }
  return undefined;
}

/** The words a reason names as built when the line runs: "`$x` is", "`$a` and `$b` are" (the first three, then how many more). */
export function builtWords(texts: string[]): string {
  const shown = texts.slice(0, 3).map((t) => `\`${t.length > 40 ? `${t.slice(0, 37)}...` : t}\``);
  const more = texts.length > 3 ? [`${texts.length - 3} more`] : [];
  const all = [...shown, ...more];
  return `${all.length > 1 ? `${all.slice(0, -1).join(', ')} and ${all[all.length - 1]}` : all[0]} ${texts.length > 1 ? 'are' : 'is'}`;
}

/** How su, runuser, flock and script read their options: `-c`/`--command` takes the string a shell runs. */
const SU_OPTIONS: Record<string, OptionSpec> = {
  su: {
    short: 'flmpPhVc:g:G:s:w:',
    long: ['command=', 'session-command=', 'fast', 'group=', 'supp-group=', 'login', 'preserve-environment', 'pty', 'shell=', 'whitelist-environment=', 'help', 'version'],
  },
  runuser: {
    short: 'flmpPhVc:g:G:s:u:w:',
    long: ['command=', 'session-command=', 'fast', 'group=', 'supp-group=', 'login', 'preserve-environment', 'pty', 'shell=', 'user=', 'whitelist-environment=', 'help', 'version'],
  },
  script: {
    short: 'aefqhVc:E:I:O:B:T:t::m:o:',
    long: ['append', 'command=', 'return', 'echo=', 'flush', 'force', 'quiet', 'log-in=', 'log-out=', 'log-io=', 'log-timing=', 'timing=?', 'logging-format=', 'output-limit=', 'help', 'version'],
  },
};

/**
 * The shell string of `sh -c SCRIPT` (the first operand after all the shell's options), `su -c`,
 * `runuser -c`, `script -c`, `flock FILE -c`, `sg GROUP [-c] STRING`, if `program` is one of these.
 */
export function scriptOf(program: string, args: string[]): string | undefined {
  if (SHELLS.has(program)) {
    const run = shellInvocation(args);
    return 'script' in run ? run.script : undefined;
  }
  const spec = SU_OPTIONS[program];
  if (spec) {
    // util-linux reads these options after operands too (`su root -c …`, `script /dev/null -c …`), as GNU getopt does,
    // and runs the last command given (`command = optarg` each time: `su -c ls -c 'rm …'` runs rm).
    let last: string | undefined;
    for (let from = 0; from < args.length; ) {
      const parsed = parseOptions(args, spec, from);
      last = parsed.options.findLast((o) => o.name === 'c' || o.name === 'command' || o.name === 'session-command')?.value ?? last;
      if (args[parsed.operand - 1] === '--' && parsed.operand > from) return last;
      from = parsed.operand + 1;
    }
    return last;
  }
  if (program === 'flock') {
    const operand = parseOptions(args, WRAPPERS.flock!.options!).operand;
    return args[operand + 1] === '-c' || args[operand + 1] === '--command' ? args[operand + 2] : undefined;
  }
  if (program === 'sg') {
    const rest = args[0] === '-' ? args.slice(2) : args.slice(1);
    return rest[0] === '-c' ? rest[1] : rest[0];
  }
  return undefined;
}
