/**
 * How shells and the programs that run another command read their options, as getopt does: which
 * word is a shell's `-c` script (the first operand after all its options, not the word after
 * `-c`), and where the command a wrapper (`env`, `sudo`, `nice`, `setpriv`…) runs starts. A
 * wrapper's options are a table per program; where a word is an option hoop does not know (which
 * may take the next word as its value), the command may start at any of the next words: each is
 * a command the line may run.
 *
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/utilities/sh.html
 * @see https://man7.org/linux/man-pages/man3/getopt.3.html
 */

/** A program's options as getopt reads them: `short` in getopt's spelling (`u:` takes a value, `d::` one joined to it), `long` names (`user=` takes a value, `mount=?` one after `=`). */
export interface OptionSpec {
  short?: string;
  long?: string[];
  /** Every `--name` and `--name=value` is an option taking no separate value (firejail's, valgrind's). */
  anyLong?: true;
  /** `-NUMBER` is an option (`nice -10`). */
  numeric?: true;
  /** GNU getopt's order: options are read after operands too, up to `--` (`sed p f -e 'cmd'`). */
  permute?: true;
}

/** The options read from the start of `args`, and the index of the first operand. `known`: every option word was one of the spec's. */
export interface ParsedOptions {
  operand: number;
  /** The indexes of the operands, in order (with `permute`, those between options too). */
  operands: number[];
  known: boolean;
  /** Each option read: its letter or long name, and its value if it took one. */
  options: Array<{ name: string; value?: string }>;
  /** The index of the first word that is an option hoop does not know, if any. */
  unknownAt?: number;
}

/** Reads the options at the start of `args` (from `from`) by `spec`; `--` ends them, as does the first operand unless the spec permutes. */
export function parseOptions(args: readonly string[], spec: OptionSpec, from = 0): ParsedOptions {
  const options: ParsedOptions['options'] = [];
  const operands: number[] = [];
  let known = true;
  let unknownAt: number | undefined;
  const unknown = (i: number) => {
    known = false;
    unknownAt ??= i;
  };
  const done = (operand: number, rest: number) => {
    for (let k = rest; k < args.length; k++) operands.push(k);
    return { operand: operands[0] ?? operand, operands, known, options, ...(unknownAt !== undefined ? { unknownAt } : {}) };
  };
  let i = from;
  while (i < args.length) {
    const a = args[i]!;
    if (a === '--') return done(i + 1, i + 1);
    if (!a.startsWith('-') || a === '-') {
      if (!spec.permute) break;
      operands.push(i++);
      continue;
    }
    const at = i++;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const def = longOption(spec, name);
      if (def === undefined) {
        if (!spec.anyLong) unknown(at);
        options.push({ name, ...(eq >= 0 ? { value: a.slice(eq + 1) } : {}) });
        continue;
      }
      if (eq >= 0) options.push({ name: def.name, value: a.slice(eq + 1) });
      else if (def.takes === 'required') options.push({ name: def.name, value: args[i++] ?? '' });
      else options.push({ name: def.name });
      continue;
    }
    if (spec.numeric && /^-\d+$/.test(a)) {
      options.push({ name: a.slice(1) });
      continue;
    }
    for (let j = 1; j < a.length; j++) {
      const c = a[j]!;
      const k = c === ':' ? -1 : (spec.short ?? '').indexOf(c);
      if (k < 0) {
        unknown(at);
        break;
      }
      const takes = spec.short![k + 1] === ':' ? (spec.short![k + 2] === ':' ? 'optional' : 'required') : 'none';
      if (takes === 'none') {
        options.push({ name: c });
        continue;
      }
      const joined = a.slice(j + 1);
      if (joined !== '' || takes === 'optional') options.push({ name: c, ...(joined !== '' ? { value: joined } : {}) });
      else options.push({ name: c, value: args[i++] ?? '' });
      break;
    }
  }
  return done(i, i);
}

/** The long option `name` (or the one it abbreviates unambiguously, as getopt_long reads it) of `spec`. */
function longOption(spec: OptionSpec, name: string): { name: string; takes: 'none' | 'required' | 'optional' } | undefined {
  const defs = (spec.long ?? []).map((l) => ({ name: l.replace(/=\??$/, ''), takes: l.endsWith('=?') ? ('optional' as const) : l.endsWith('=') ? ('required' as const) : ('none' as const) }));
  const exact = defs.find((d) => d.name === name);
  if (exact) return exact;
  const prefixed = name === '' ? [] : defs.filter((d) => d.name.startsWith(name));
  return prefixed.length === 1 ? prefixed[0] : undefined;
}

/** Whether an option `name` read by {@link parseOptions} is one of `names`. */
export const hasOption = (parsed: ParsedOptions, names: string[]): boolean => parsed.options.some((o) => names.includes(o.name));

/**
 * Where a program's options end, read without its table: its first `--`; with `valued`, the first
 * that is no option's value (an option before it may take it: `tar --exclude -- --to-command=…`,
 * `tar -cf -- *`), else the end.
 */
export function optionsEnd(words: readonly string[], from = 0, valued = true): number {
  // tar's old style: its first word's letters are options, each of b, C, f… taking the next word in turn (`tar cbf 20 -- *`).
  const old = valued && words[from - 1]?.split('/').pop() === 'tar' && !words[from]?.startsWith('-') ? [...(words[from] ?? '')].filter((c) => 'bCfgHKLNTVX'.includes(c)).length : 0;
  for (let i = from; i < words.length; i++) {
    if (words[i] !== '--' || (i > from && i <= from + old)) continue;
    const before = words[i - 1]!;
    if (!valued || i === from || before === '--' || !before.startsWith('-')) return i;
  }
  return words.length;
}

/** Letters of the shells' options (bash, dash, ash, ksh, mksh) that take no value; `o` and `O` take one. */
const SHELL_LETTERS = new Set([...'abcefhiklmnprsuvxBCDEHP']);
/** bash's long options that take no value. */
const SHELL_LONG = new Set([
  '--debugger',
  '--dump-po-strings',
  '--dump-strings',
  '--help',
  '--login',
  '--noediting',
  '--noprofile',
  '--norc',
  '--posix',
  '--pretty-print',
  '--restricted',
  '--verbose',
  '--version',
]);

/**
 * What a shell started with `args` runs, read as the shells read their options: with `-c`, the
 * script is the first operand after all the options (`sh -c -- 'x'`, `bash -c -e 'x'`,
 * `sh -c -o errexit 'x'`); without it, a script file (the first operand) or, with none or `-s`, its
 * input. `why`: an option hoop cannot place (or one that reads a file of commands).
 */
export function shellInvocation(args: readonly string[]): { script?: string; file?: string; stdin?: true } | { why: string } {
  let c = false;
  let s = false;
  let i = 0;
  for (; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--' || a === '-') {
      i++;
      break;
    }
    if (!/^[-+]./.test(a)) break;
    if (a === '--rcfile' || a === '--init-file') return { why: `it runs commands it reads from a file (${a})` };
    if (a.startsWith('--')) {
      if (!SHELL_LONG.has(a)) return { why: `the shell's option ${shownWord(a)} is one hoop does not know, so it cannot tell what the shell runs` };
      continue;
    }
    for (const letter of a.slice(1)) {
      if (letter === 'o' || letter === 'O') i++;
      else if (!SHELL_LETTERS.has(letter) || (a[0] === '+' && (letter === 'c' || letter === 's')))
        return { why: `the shell's option ${shownWord(a)} is one hoop does not know, so it cannot tell what the shell runs` };
      if (a[0] === '-' && letter === 'c') c = true;
      if (a[0] === '-' && letter === 's') s = true;
    }
  }
  const first = args[i];
  if (c) return first !== undefined ? { script: first } : {};
  if (first === undefined || s) return { stdin: true };
  return readsInput(first) ? { stdin: true } : { file: first };
}

/**
 * Whether a shell's "script file" `path` is its input: `-`, `/dev/stdin`, `/dev/fd/N`,
 * `/proc/self/fd/N` (however spelt: `//dev/./stdin`, `../../dev/stdin`), or a name only `/dev` or
 * `/dev/fd` would make one (`stdin`, `0`).
 */
export function readsInput(path: string): boolean {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  const last = parts[parts.length - 1] ?? '';
  if (path === '-' || last === 'stdin' || /^\d+$/.test(last)) return true;
  return parts.some((p) => p === 'dev' || p === 'proc' || p === 'fd');
}

const shownWord = (w: string) => `\`${w.length > 40 ? `${w.slice(0, 37)}...` : w}\``;

/** A program that runs the rest of its words as a command, and how it reads its own. */
export interface Wrapper {
  options?: OptionSpec;
  /** Operands before the command (`timeout DURATION`, `chroot DIR`). */
  operands?: number;
  /** Options are read again after the operands (`setarch ARCH -R cmd`). */
  optionsAfter?: true;
  /** `NAME=value` words may come before the command (`env`, `sudo`). */
  assignments?: true;
  /** It adds words it reads from its input (`xargs`). */
  stdinArgs?: true;
  /** Options with which it runs no command (`sudo -l`, `taskset -p`, `command -v`). */
  noCommand?: string[];
  /** With no command, it starts the user's shell, which reads the rest of the input (`unshare`, `chroot DIR`, `setarch ARCH`). */
  shellWithout?: true;
}

const ARCH: Wrapper = {
  options: {
    short: '3BFILRSTXZv',
    long: [
      'addr-no-randomize',
      'fdpic-funcptrs',
      'mmap-page-zero',
      'addr-compat-layout',
      'read-implies-exec',
      '32bit',
      'short-inode',
      'whole-seconds',
      'sticky-timeouts',
      '3gb',
      '4gb',
      'uname-2.6',
      'verbose',
    ],
  },
  shellWithout: true,
};

const FAKEROOT: Wrapper = { options: { short: 'ub:l:i:s:', long: ['lib=', 'faked=', 'unknown-is-real', 'fd-base='] }, shellWithout: true };

/** Programs that run the rest of their words as a command. */
export const WRAPPERS: Record<string, Wrapper> = {
  env: {
    options: {
      short: '0ivu:C:S:a:',
      long: ['ignore-environment', 'null', 'unset=', 'chdir=', 'split-string=', 'argv0=', 'default-signal=?', 'ignore-signal=?', 'block-signal=?', 'list-signal-handling', 'debug'],
    },
    assignments: true,
  },
  sudo: {
    options: {
      short: 'ABbEeHh::iKklNnPSsVvC:c:D:g:p:R:r:T:t:U:u:a:',
      long: [
        ...['askpass', 'bell', 'background', 'close-from=', 'chdir=', 'preserve-env=?', 'edit', 'group=', 'set-home', 'help', 'host=', 'login', 'login-class=', 'auth-type='],
        ...['remove-timestamp', 'reset-timestamp', 'list', 'non-interactive', 'preserve-groups', 'prompt=', 'chroot=', 'role=', 'stdin', 'shell', 'type=', 'command-timeout='],
        ...['other-user=', 'user=', 'validate', 'version'],
      ],
    },
    assignments: true,
    noCommand: ['e', 'edit', 'l', 'list', 'v', 'validate', 'V', 'version', 'K', 'remove-timestamp'],
  },
  doas: { options: { short: 'Lnsa:C:u:' }, noCommand: ['C', 'L'] },
  run0: {
    options: {
      short: 'u:g:D:',
      long: ['user=', 'group=', 'chdir=', 'nice=', 'setenv=', 'unit=', 'property=', 'description=', 'slice=', 'slice-inherit', 'background=', 'machine=', 'pty', 'pipe', 'no-ask-password'],
    },
    shellWithout: true,
  },
  runuser: { options: { short: 'flmpPg:G:s:u:w:', long: ['login', 'preserve-environment', 'pty', 'group=', 'supp-group=', 'shell=', 'user=', 'whitelist-environment=', 'fast'] } },
  nice: { options: { short: 'n:', long: ['adjustment='], numeric: true } },
  ionice: { options: { short: 'tc:n:p:P:u:', long: ['class=', 'classdata=', 'pid=', 'pgid=', 'uid=', 'ignore'] }, noCommand: ['p', 'P', 'u', 'pid', 'pgid', 'uid'] },
  timeout: { options: { short: 'fpvs:k:', long: ['foreground', 'preserve-status', 'verbose', 'signal=', 'kill-after='] }, operands: 1 },
  nohup: {},
  exec: { options: { short: 'cla:' } },
  command: { options: { short: 'pvV' }, noCommand: ['v', 'V'] },
  builtin: {},
  time: { options: { short: 'apqvf:o:', long: ['portability', 'append', 'verbose', 'quiet', 'format=', 'output='] } },
  stdbuf: { options: { short: 'i:o:e:', long: ['input=', 'output=', 'error='] } },
  setsid: { options: { short: 'cfw', long: ['ctty', 'fork', 'wait'] } },
  chroot: { options: { long: ['userspec=', 'groups=', 'skip-chdir'] }, operands: 1, shellWithout: true },
  flock: { options: { short: 'sexnoFuw:E:', long: ['shared', 'exclusive', 'nonblock', 'nb', 'close', 'no-fork', 'unlock', 'timeout=', 'wait=', 'conflict-exit-code=', 'verbose'] }, operands: 1 },
  taskset: { options: { short: 'apc', long: ['all-tasks', 'pid', 'cpu-list'] }, operands: 1, noCommand: ['p', 'pid'] },
  chrt: {
    options: {
      short: 'bdfiormRaepvT:P:D:',
      long: ['batch', 'deadline', 'fifo', 'idle', 'other', 'rr', 'reset-on-fork', 'all-tasks', 'pid', 'max', 'verbose', 'ext', 'sched-runtime=', 'sched-period=', 'sched-deadline='],
    },
    operands: 1,
    noCommand: ['p', 'pid', 'm', 'max'],
  },
  unshare: {
    options: {
      short: 'fmuinpUCTrclw:S:G:R:',
      long: [
        ...['fork', 'mount=?', 'uts=?', 'ipc=?', 'net=?', 'pid=?', 'user=?', 'cgroup=?', 'time=?', 'map-root-user', 'map-current-user', 'map-user=', 'map-group='],
        ...['map-users=', 'map-groups=', 'map-auto', 'mount-proc=?', 'mount-binfmt=?', 'propagation=', 'setgroups=', 'keep-caps', 'kill-child=?', 'root=', 'wd='],
        ...['setuid=', 'setgid=', 'monotonic=', 'boottime=', 'load-interp='],
      ],
    },
    shellWithout: true,
  },
  nsenter: {
    options: {
      short: 'at:m::u::i::n::p::U::C::T::r::w::S:G:FZec',
      long: [
        'all',
        'target=',
        'mount=?',
        'uts=?',
        'ipc=?',
        'net=?',
        'pid=?',
        'cgroup=?',
        'user=?',
        'time=?',
        'user-parent',
        'setuid=',
        'setgid=',
        'preserve-credentials',
        'root=?',
        'wd=?',
        'env',
        'no-fork',
        'follow-context',
        'keep-caps',
        'join-cgroup',
      ],
    },
    shellWithout: true,
  },
  setpriv: {
    options: {
      short: 'd',
      long: [
        ...['dump', 'nnp', 'no-new-privs', 'ambient-caps=', 'inh-caps=', 'bounding-set=', 'ruid=', 'euid=', 'rgid=', 'egid=', 'reuid=', 'regid=', 'clear-groups'],
        ...['keep-groups', 'init-groups', 'groups=', 'securebits=', 'pdeathsig=', 'selinux-label=', 'apparmor-profile=', 'landlock-access=', 'landlock-rule=', 'reset-env'],
      ],
    },
  },
  strace: { options: { short: 'cCdDfFhikqrtTvVwxyzZa:b:e:E:I:o:O:p:P:s:S:u:U:X:' } },
  ltrace: { options: { short: 'bcCdfhiLrStTVa:A:D:e:F:l:n:o:p:s:u:w:x:' } },
  busybox: {},
  toybox: {},
  cttyhack: {},
  // Wrappers from util-linux, OpenSSH, D-Bus, systemd, daemontools/runit and moreutils: each runs the command after its options.
  choom: { options: { short: 'n:p:', long: ['adjust=', 'pid='] }, noCommand: ['p', 'pid'] },
  uclampset: { options: { short: 'aRsvVpm:M:', long: ['all-tasks', 'pid', 'reset-on-fork', 'system', 'verbose', 'max'] }, noCommand: ['p', 'pid', 's', 'system', 'max'] },
  'ssh-agent': { options: { short: 'cDdksa:E:O:P:t:' }, noCommand: ['k'] },
  'dbus-run-session': { options: { long: ['config-file=', 'dbus-daemon=', 'help', 'version'] } },
  'dbus-launch': {
    options: { long: ['sh-syntax', 'csh-syntax', 'auto-syntax', 'binary-syntax', 'close-stderr', 'exit-with-session', 'exit-with-x11', 'autolaunch=', 'config-file=', 'version', 'help'] },
  },
  'systemd-cat': { options: { short: 't:p:', long: ['identifier=', 'priority=', 'stderr-priority=', 'level-prefix=', 'namespace='] } },
  'systemd-inhibit': { options: { long: ['what=', 'who=', 'why=', 'mode=', 'list', 'no-pager', 'no-legend', 'no-ask-password'] }, noCommand: ['list'] },
  chpst: { options: { short: 'vP012u:U:b:e:/:C:n:l:L:m:d:o:p:f:c:r:t:' } },
  setuidgid: { operands: 1 },
  envuidgid: { operands: 1 },
  envdir: { operands: 1 },
  softlimit: { options: { short: 'a:c:d:f:l:m:o:p:r:s:t:' } },
  setlock: { options: { short: 'nNxX' }, operands: 1 },
  pgrphack: {},
  fakeroot: FAKEROOT,
  // fakeroot's own programs (the seventeenth attack), and debconf, which runs its command under a frontend.
  'fakeroot-sysv': FAKEROOT,
  'fakeroot-tcp': FAKEROOT,
  debconf: { options: { short: 'o:f:p:', long: ['owner=', 'frontend=', 'priority=', 'terse'] } },
  eatmydata: {},
  nocache: {},
  faketime: { options: { short: 'fm' }, operands: 1 },
  sshpass: { options: { short: 'evf:d:p:P:' } },
  chronic: { options: { short: 'ev' } },
  zrun: {},
  // e2fsprogs, sysvinit-utils, daemontools (the fifteenth attack).
  logsave: { options: { short: 'asv' }, operands: 1 },
  'fstab-decode': {},
  fghack: {},
  ifne: { options: { short: 'n' } },
  lckdo: { options: { short: 'qw' }, operands: 1 },
  tini: { options: { short: 'hsvwgl:p:e:' } },
  'dumb-init': { options: { short: 'cvr:', long: ['single-child', 'rewrite=', 'verbose'] } },
  gosu: { operands: 1 },
  'su-exec': { operands: 1 },
  'xvfb-run': { options: { short: 'ae:f:n:ls:w:p:', long: ['auto-servernum', 'auto-display', 'error-file=', 'server-args=', 'server-num=', 'listen-tcp', 'xauth-protocol=', 'wait=', 'auth-file='] } },
  trickle: { options: { short: 'sVu:d:w:t:l:n:' } },
  rlwrap: { options: { short: 'AcinNrRtUvWb:C:D:e:f:g:H:l:M:O:P:q:s:S:w:z:a::m::p::' } },
  cpulimit: { options: { short: 'vzikp:e:P:l:', long: ['pid=', 'exe=', 'path=', 'limit=', 'verbose', 'lazy', 'include-children', 'kill'] }, noCommand: ['p', 'pid', 'e', 'exe', 'P', 'path'] },
  xargs: {
    options: {
      short: '0prtxoa:d:E:e::i::I:L:l::n:P:s:',
      long: [
        'null',
        'arg-file=',
        'delimiter=',
        'eof=?',
        'replace=?',
        'max-lines=?',
        'max-args=',
        'max-procs=',
        'interactive',
        'process-slot-var=',
        'no-run-if-empty',
        'max-chars=',
        'verbose',
        'exit',
        'open-tty',
      ],
    },
    stdinArgs: true,
  },
  parallel: { stdinArgs: true },
  caffeinate: { options: { short: 'dimsut:w:' } },
  firejail: { options: { anyLong: true }, shellWithout: true },
  proxychains: { options: { short: 'qf:' } },
  proxychains4: { options: { short: 'qf:' } },
  torsocks: { options: { short: 'diqa:P:u:p:' } },
  catchsegv: {},
  valgrind: { options: { short: 'qvh', anyLong: true } },
  'systemd-run': {
    options: {
      short: 'u:p:M:H:E:drGtPSq',
      long: [
        ...['user', 'system', 'scope', 'unit=', 'property=', 'description=', 'slice=', 'slice-inherit', 'remain-after-exit', 'send-sighup', 'service-type=', 'uid=', 'gid=', 'nice='],
        ...['working-directory=', 'same-dir', 'setenv=', 'pty', 'pipe', 'shell', 'quiet', 'wait', 'collect', 'no-block', 'no-ask-password', 'machine=', 'host=', 'on-active='],
        ...['on-boot=', 'on-startup=', 'on-unit-active=', 'on-unit-inactive=', 'on-calendar=', 'timer-property=', 'expand-environment=', 'job-mode=', 'background='],
      ],
    },
  },
  setarch: { ...ARCH, operands: 1, optionsAfter: true },
  ...Object.fromEntries(['linux32', 'linux64', 'i386', 'i686', 'x86_64', 'aarch64', 'arm64', 'uname26'].map((a) => [a, ARCH])),
  prlimit: {
    options: {
      short: 'c::d::e::f::i::l::m::n::q::r::s::t::u::v::x::y::o:p:',
      long: [
        ...['core', 'data', 'nice', 'fsize', 'sigpending', 'memlock', 'rss', 'nofile', 'msgqueue', 'rtprio', 'stack', 'cpu', 'nproc', 'as', 'locks', 'rttime'].map((r) => `${r}=?`),
        'noheadings',
        'raw',
        'verbose',
        'output=',
        'pid=',
      ],
    },
    noCommand: ['p', 'pid'],
  },
  numactl: {
    options: {
      short: 'ablHsSi:m:N:C:p:P:w:',
      long: [
        'interleave=',
        'membind=',
        'cpunodebind=',
        'physcpubind=',
        'preferred=',
        'preferred-many=',
        'weighted-interleave=',
        'localalloc',
        'all',
        'balancing',
        'hardware',
        'show',
        'huge',
        'offset=',
        'length=',
      ],
    },
    noCommand: ['H', 's', 'hardware', 'show'],
  },
  cgexec: { options: { short: 'hg:', long: ['sticky'] } },
  unbuffer: { options: { short: 'p' } },
  daemonize: { options: { short: 'avc:e:E:o:p:l:u:' } },
  bwrap: {},
  runcon: { options: { short: 'cu:r:t:l:', long: ['compute', 'user=', 'role=', 'type=', 'range='] } },
  pkexec: { options: { long: ['user=', 'disable-internal-agent', 'keep-cwd', 'help', 'version'] }, noCommand: ['help', 'version'], shellWithout: true },
};

/** watch's options (procps-ng 4.0.2's `watch --help`): `-d` takes a value only joined (`-d=permanent`, `--differences=permanent`). */
export const WATCH: OptionSpec = {
  short: 'bcd::eghq:n:ptwxv',
  long: ['beep', 'color', 'differences=?', 'errexit', 'chgexit', 'equexit=', 'interval=', 'precise', 'no-title', 'no-wrap', 'exec', 'help', 'version'],
};

/** The dynamic loader run as a program (`/lib64/ld-linux-x86-64.so.2 /bin/rm …`, `ld.so`, `ld-2.31.so`): its first operand is the program it loads and runs. */
const LOADER: Wrapper = {
  options: {
    long: [
      ...['library-path=', 'preload=', 'audit=', 'argv0=', 'inhibit-rpath=', 'glibc-hwcaps-prefix=', 'glibc-hwcaps-mask=', 'inhibit-cache', 'list', 'verify'],
      ...['help', 'version', 'list-tunables', 'list-diagnostics'],
    ],
  },
  noCommand: ['help', 'version', 'list-tunables', 'list-diagnostics'],
};
const LOADER_NAME = /^ld(64)?(-[^/]*)?\.so(\.[0-9.]+)?$/;

/** The wrapper named `program` (a command's name without its directory), if it is one. */
export const wrapperOf = (program: string): Wrapper | undefined => (Object.hasOwn(WRAPPERS, program) ? WRAPPERS[program] : LOADER_NAME.test(program) ? LOADER : undefined);

/**
 * Where the command wrapper `program` runs, given its arguments, may start (indexes into `args`):
 * one place when each of its options is known; else each of the first {@link MAX_STARTS} words
 * that do not start with `-` after the first option hoop does not know (that option may take the
 * next word as its value), `beyond` when more such words follow. None: it runs no command.
 */
export function wrappedStarts(program: string, args: readonly string[]): { starts: number[]; certain: boolean; beyond?: true } {
  const wrapper = wrapperOf(program);
  if (!wrapper) return { starts: [], certain: true };
  const spec = wrapper.options ?? {};
  let parsed = parseOptions(args, spec);
  if (wrapper.noCommand && hasOption(parsed, wrapper.noCommand)) return { starts: [], certain: true };
  let start = parsed.operand;
  // env and sudo read each word with a `=` before the command as an assignment, whatever its name.
  if (wrapper.assignments) while (args[start]?.includes('=')) start++;
  // runcon's first operand is a context unless it is given by options.
  // setarch's ARCH is there only when its first word is no option (util-linux 2.33: `setarch -R cmd` runs cmd).
  const operands = program === 'runcon' && parsed.options.length === 0 ? 1 : program === 'setarch' && args[0]?.startsWith('-') ? 0 : (wrapper.operands ?? 0);
  start += operands;
  if (wrapper.optionsAfter) {
    const again = parseOptions(args, spec, Math.min(start, args.length));
    parsed = {
      ...again,
      known: parsed.known && again.known,
      ...(parsed.unknownAt !== undefined ? { unknownAt: parsed.unknownAt } : again.unknownAt !== undefined ? { unknownAt: again.unknownAt } : {}),
    };
    start = again.operand;
  }
  if (parsed.known) return { starts: start < args.length ? [start] : [], certain: true };
  const starts: number[] = [];
  for (let i = parsed.unknownAt! + 1; i < args.length; i++) {
    if (args[i]!.startsWith('-')) continue;
    if (starts.length === MAX_STARTS) return { starts, certain: false, beyond: true };
    starts.push(i);
  }
  return { starts, certain: false };
}

/** How many places a wrapped command whose wrapper's options hoop cannot all read may start at. */
export const MAX_STARTS = 8;
