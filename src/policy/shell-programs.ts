/**
 * Programs with an option whose value a program runs as a command, or an argument that is code
 * the program runs through a shell: `git -c core.pager=…`, `ssh -o ProxyCommand=…`, `rsync -e`,
 * `tar --checkpoint-action=exec=…`, `sort --compress-program`, `zip -TT`, `man -P`, `less '+!…'`,
 * `vim -c '!…'`, sed's `e` command, awk's `system()`, `tmux new 'cmd'`, `make 'X:=$(shell …)'`. Such a
 * command is opaque: every deny and review rule may match it, no allow rule admits it. A table
 * per program; a program's own files (a script, a config file, `sed -f`, `awk -f`) are its own
 * code, as `./deploy.sh` is.
 */
import { type OptionSpec, parseOptions, readsInput } from './shell-options.js';

/** Why the command `program` with `args` runs a command given in its words, if it does. */
export function runsOptionCode(program: string, args: readonly string[]): string | undefined {
  const check = PROGRAMS[program] ?? (AWKS.has(program) ? awk : VIMS.has(program) ? vim : undefined);
  const what = check?.(args);
  return what === undefined ? undefined : `it has an option whose value a program runs as a command (${what})`;
}

/** Whether `program` has options or arguments a program runs as a command: a word of it built when it runs may be one. */
export const hasOptionCode = (program: string): boolean => Object.hasOwn(PROGRAMS, program) || AWKS.has(program) || VIMS.has(program);

/** Whether the long option `name` (before any `=`) is one of `risky`, or abbreviates one (getopt_long reads `--to-c` as `--to-command`, git `--u=` as `--upload-pack=`). */
function longIs(word: string, risky: string[]): boolean {
  if (!word.startsWith('--') || word === '--') return false;
  const name = word.slice(2).replace(/=.*$/s, '');
  return name.length >= 1 && risky.some((r) => r.startsWith(name));
}

/** The short option groups and long options before the first operand (or all words, when `anywhere`: GNU programs read options after operands too). */
const optionWords = (args: readonly string[], anywhere = true): string[] => {
  const end = args.indexOf('--');
  const upto = end < 0 ? args : args.slice(0, end);
  if (anywhere) return upto.filter((a) => a.startsWith('-') && a !== '-');
  const first = upto.findIndex((a) => !a.startsWith('-') || a === '-');
  return upto.slice(0, first < 0 ? undefined : first);
};

/** Whether a short option group (`-xzf`) holds `letter` before a letter that takes the rest as its value (`valued`). */
function groupHas(word: string, letters: string, valued: string): boolean {
  if (!/^-[^-]/.test(word)) return false;
  for (const c of word.slice(1)) {
    if (letters.includes(c)) return true;
    if (valued.includes(c)) return false;
  }
  return false;
}

const shown = (w: string) => `\`${w.length > 40 ? `${w.slice(0, 37)}...` : w}\``;

/** git: global `-c`, `--config-env`, `--exec-path=`, `--git-dir`; a subcommand's options that name a program (`--upload-pack`, `rebase --exec`…), `bisect run`, `submodule foreach`, `filter-branch`, and `config` setting a value. */
function git(args: readonly string[]): string | undefined {
  const parsed = parseOptions(args, {
    short: 'pPvhC:c:',
    long: [
      'paginate',
      'no-pager',
      'bare',
      'no-replace-objects',
      'literal-pathspecs',
      'glob-pathspecs',
      'noglob-pathspecs',
      'icase-pathspecs',
      'no-optional-locks',
      'no-lazy-fetch',
      'no-advice',
      'version',
      'help',
      'html-path',
      'man-path',
      'info-path',
      'exec-path=?',
      'git-dir=',
      'work-tree=',
      'namespace=',
      'super-prefix=',
      'config-env=',
      'list-cmds=',
      'attr-source=',
    ],
  });
  if (!parsed.known) return `\`git\` with an option hoop does not know`;
  const global = parsed.options.find((o) => o.name === 'c' || o.name === 'config-env' || o.name === 'git-dir' || (o.name === 'exec-path' && o.value !== undefined));
  if (global) return `\`git ${global.name.length === 1 ? '-' : '--'}${global.name}\``;
  const sub = args[parsed.operand];
  // A remote helper (`git remote-ext URL 'cmd'`, `remote-fd`) runs what its URL names.
  if (sub?.startsWith('remote-')) return `\`git ${shown(sub).slice(1, -1)}\`, a remote helper that may run its URL`;
  const rest = args.slice(parsed.operand + 1);
  const risky: Record<string, { long: string[]; short?: string; valued?: string }> = {
    clone: { long: ['upload-pack', 'config', 'template'], short: 'uc', valued: 'obj' },
    fetch: { long: ['upload-pack'] },
    pull: { long: ['upload-pack'] },
    'ls-remote': { long: ['upload-pack'], short: 'u' },
    push: { long: ['receive-pack', 'exec'] },
    'send-pack': { long: ['receive-pack', 'exec'] },
    'fetch-pack': { long: ['upload-pack', 'exec'] },
    archive: { long: ['exec'] },
    rebase: { long: ['exec'], short: 'x' },
    difftool: { long: ['extcmd'], short: 'x' },
    grep: { long: ['open-files-in-pager'], short: 'O' },
    'send-email': { long: ['sendmail-cmd', 'smtp-server', 'to-cmd', 'cc-cmd', 'header-cmd'] },
    daemon: { long: ['access-hook'] },
    'filter-branch': { long: ['env-filter', 'tree-filter', 'index-filter', 'parent-filter', 'msg-filter', 'commit-filter', 'tag-name-filter', 'setup'] },
    'filter-repo': { long: ['commit-callback', 'blob-callback', 'name-callback', 'email-callback', 'refname-callback', 'message-callback', 'filename-callback', 'tag-callback', 'reset-callback'] },
    commit: { long: ['template'] },
    merge: { long: ['strategy'], short: 's' },
    instaweb: { long: ['httpd', 'browser'], short: 'db' },
    'web--browse': { long: ['browser'], short: 'bt' },
  };
  const table = sub !== undefined ? risky[sub] : undefined;
  if (table) {
    const hit = optionWords(rest).find((w) => longIs(w, table.long) || (table.short !== undefined && groupHas(w, table.short, table.valued ?? '')));
    if (hit) return `\`git ${sub} ${shown(hit).slice(1, -1)}\``;
  }
  if (sub === 'bisect' && rest[0] === 'run') return '`git bisect run`';
  if (sub === 'submodule' && rest.includes('foreach')) return '`git submodule foreach`';
  if (sub === 'config') {
    // Reading a value changes nothing; setting one may change what a later git command runs (`core.pager`, `alias.x=!…`).
    const reads = [
      '--get',
      '--get-all',
      '--get-regexp',
      '--get-urlmatch',
      '--list',
      '-l',
      '--show-origin',
      '--show-scope',
      '--name-only',
      'get',
      'list',
      '--global',
      '--system',
      '--local',
      '--null',
      '-z',
      '--includes',
      '--no-includes',
    ];
    const operands = rest.filter((w) => !reads.includes(w) && !w.startsWith('--type') && !w.startsWith('--default'));
    const onlyReads = rest.some((w) => ['--get', '--get-all', '--get-regexp', '--get-urlmatch', '--list', '-l', 'get', 'list'].includes(w)) || operands.length <= 1;
    if (!onlyReads) return '`git config` setting a value a later git command may run';
  }
  return undefined;
}

/** The `-o` options of ssh, scp and sftp (and the programs they start: `scp -S`, `sftp -S`, `-D`; `ssh -I` loads a library). */
const SSH_OPTIONS = /^\s*(proxycommand|localcommand|permitlocalcommand|knownhostscommand|match|pkcs11provider|securitykeyprovider|include)\b/i;
const ssh =
  (spec: OptionSpec, programs: string[]) =>
  (args: readonly string[]): string | undefined => {
    const parsed = parseOptions(args, spec);
    if (!parsed.known && args.some((a) => /proxycommand|localcommand|knownhostscommand|match|pkcs11|securitykey|include/i.test(a))) return '`-o`';
    for (const o of parsed.options) {
      if (o.name === 'o' && o.value !== undefined && SSH_OPTIONS.test(o.value)) return `\`-o ${o.value.split(/[\s=]/)[0]}\``;
      if (programs.includes(o.name)) return `\`-${o.name}\``;
    }
    return undefined;
  };

/** sed: a script's `e` command or `s///e` flag (GNU sed runs them through a shell); `--sandbox` refuses them. */
function sed(args: readonly string[]): string | undefined {
  const parsed = parseOptions(args, {
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
  if (parsed.options.some((o) => o.name === 'sandbox')) return undefined;
  if (!parsed.known) return '`sed` with an option hoop does not know';
  const scripts = parsed.options.filter((o) => o.name === 'e' || o.name === 'expression').map((o) => o.value ?? '');
  const files = parsed.options.filter((o) => o.name === 'f' || o.name === 'file').map((o) => o.value ?? '');
  if (files.some(readsInput)) return '`sed -f` reading its script from its input';
  if (scripts.length === 0 && files.length === 0 && args[parsed.operand] !== undefined) scripts.push(args[parsed.operand]!);
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

const AWKS = new Set(['awk', 'gawk', 'mawk', 'nawk', 'original-awk', 'bwk-awk']);

/** gawk's long options (mawk and the one true awk take only letters; mawk's `-W` words are opaque). */
const AWK_LONG = [
  ...['field-separator=', 'assign=', 'file=', 'source=', 'exec=', 'include=', 'load=', 'characters-as-bytes', 'traditional', 'copyright', 'debug=?', 'dump-variables=?'],
  ...['gen-pot', 'help', 'lint=?', 'bignum', 'use-lc-numeric', 'no-optimize', 'optimize', 'non-decimal-data', 'posix', 'pretty-print=?', 'profile=?', 're-interval'],
  ...['sandbox', 'trace', 'version', 'csv', 'persist=?', 'lint-old', 'compat'],
];

/** awk: a program calling `system()`, piping to or from a command (`|`, `|&`), or calling a function by name (gawk's `@f()`, `@load`); `-W` (mawk's and gawk's `-W source 'text'`) and a program file that is its input are opaque. */
function awk(args: readonly string[]): string | undefined {
  const parsed = parseOptions(args, { short: 'bcCdDgGhLMnNOPrsStVy-F:v:f:e:E:i:l:o::p::W:', long: AWK_LONG });
  if (!parsed.known) return '`awk` with an option hoop does not know';
  if (parsed.options.some((o) => o.name === 'W')) return '`awk -W`';
  const programs = parsed.options.filter((o) => o.name === 'e' || o.name === 'source').map((o) => o.value ?? '');
  if (parsed.options.some((o) => o.name === 'l' || o.name === 'load')) return '`awk -l`';
  const files = parsed.options.filter((o) => ['f', 'E', 'i', 'file', 'exec', 'include'].includes(o.name)).map((o) => o.value ?? '');
  if (files.some(readsInput)) return '`awk -f` reading its program from its input';
  if (programs.length === 0 && files.length === 0 && args[parsed.operand] !== undefined) programs.push(args[parsed.operand]!);
  return programs.some((p) => /system|@|\|/.test(p.replace(/\|\|/g, ''))) ? "awk's `system()` or a pipe to a command" : undefined;
}

const VIMS = new Set(['vi', 'vim', 'nvim', 'view', 'vimdiff', 'gvim', 'rvim', 'ex', 'vimx', 'nano']);

/** vi and vim: `-c`, `--cmd` and `+command` run editor commands (`:!…` runs a shell); `+N` and `+/pattern` only move the cursor. */
function vim(args: readonly string[]): string | undefined {
  const hit = args.find((a) => a === '-c' || a === '--cmd' || /^-[^-]*c/.test(a) || (a.startsWith('+') && !/^\+(\d*|\/.*)$/s.test(a)));
  return hit ? shown(hit) : undefined;
}

const PROGRAMS: Record<string, (args: readonly string[]) => string | undefined> = {
  git,
  sed,
  ssh: ssh({ short: '1246AaCfGgKkMNnqsTtVvXxYyB:b:c:D:E:e:F:I:i:J:L:l:m:O:o:p:Q:R:S:W:w:P:' }, ['I']),
  scp: ssh({ short: '346ABCOpqRrsTvc:D:F:i:J:l:o:P:S:X:' }, ['S']),
  sftp: ssh({ short: '46AaCfNpqRrvB:b:c:D:F:i:J:l:o:P:S:s:X:' }, ['S', 'D']),
  rsync: (args) => {
    // The server side (`rsync --server`, as a client starts it) reads `-e` as the protocol's letters and starts no shell.
    if (args.includes('--server')) return undefined;
    const hit = optionWords(args).find((w) => longIs(w, ['rsh', 'rsync-path']) || groupHas(w, 'e', 'BfMT@'));
    return hit ? `\`rsync ${hit.startsWith('--') ? hit.replace(/=.*$/s, '') : '-e'}\`` : undefined;
  },
  tar: (args) => {
    const risky = ['checkpoint-action', 'to-command', 'use-compress-program', 'rsh-command', 'info-script', 'new-volume-script'];
    // The first word may be the old style's letters without a dash (`tar cIf prog …`).
    const old = args[0] !== undefined && !args[0].startsWith('-') && /[IF]/.test(args[0]);
    const hit = optionWords(args).find((w) => longIs(w, risky) || groupHas(w, 'IF', 'bCfgHKLNTVX'));
    return old ? '`tar I` or `F`' : hit ? `\`tar ${hit.replace(/=.*$/s, '')}\`` : undefined;
  },
  sort: (args) => (optionWords(args).some((w) => longIs(w, ['compress-program'])) ? '`sort --compress-program`' : undefined),
  zip: (args) => (args.some((a) => a.startsWith('-TT') || longIs(a, ['unzip-command'])) ? '`zip -TT`' : undefined),
  man: (args) => {
    const hit = optionWords(args).find((w) => longIs(w, ['pager', 'html', 'browser']) || groupHas(w, 'PH', 'CMmLSseprRtTEKI'));
    return hit ? `\`man ${hit.replace(/=.*$/s, '')}\`` : undefined;
  },
  less: (args) => {
    const hit = args.find((a) => (a.startsWith('+') && /[!|v]/.test(a)) || longIs(a, ['lesskey-src', 'lesskey-content', 'lesskey-file']) || /^-[^-]*k/.test(a));
    return hit ? `\`less ${shown(hit).slice(1, -1)}\`` : undefined;
  },
  more: (args) => (args.some((a) => a.startsWith('+') && /[!|v]/.test(a)) ? '`more +…`' : undefined),
  'start-stop-daemon': (args) => (args.some((a) => /^(-[^-]*[xa]|--(exec|startas)\b)/.test(a)) ? '`start-stop-daemon --exec`' : undefined),
  make: (args) => (args.some((a) => /\$[({]/.test(a) || longIs(a, ['eval']) || /^-[^-]*E/.test(a)) ? '`make --eval` or a variable with `$(…)`' : undefined),
  gmake: (args) => (args.some((a) => /\$[({]/.test(a) || longIs(a, ['eval']) || /^-[^-]*E/.test(a)) ? '`make --eval` or a variable with `$(…)`' : undefined),
  tmux: (args) => {
    // tmux's commands take shell commands as words (`new 'cmd'`, `run-shell`, `if-shell`, `send-keys`): only listing and attaching are read.
    const quiet = new Set([
      'ls',
      'list-sessions',
      'list-windows',
      'lsw',
      'list-panes',
      'lsp',
      'attach',
      'attach-session',
      'a',
      'at',
      'has-session',
      'has',
      'kill-session',
      'kill-server',
      'detach',
      'detach-client',
    ]);
    const parsed = parseOptions(args, { short: '2CDluNvVc:f:L:S:T:' });
    if (parsed.options.some((o) => o.name === 'c' || o.name === 'f')) return '`tmux -c`';
    const rest = args.slice(parsed.operand);
    return rest.length > 0 && quiet.has(rest[0]!) && !rest.includes(';') && !rest.includes('\\;') ? undefined : '`tmux` running a command';
  },
  screen: (args) => {
    const quiet = new Set(['-ls', '-list', '-wipe', '-r', '-x', '-R', '-d', '-D', '-RR', '-DR', '-rd', '-dr', '-v', '-version']);
    return args.length > 0 && quiet.has(args[0]!) ? undefined : '`screen` running a command';
  },
};
