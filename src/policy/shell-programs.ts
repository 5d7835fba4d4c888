/**
 * Programs with an option whose value a program runs as a command, or an argument that is code
 * the program runs through a shell: `git -c core.pager=…`, `ssh -o ProxyCommand=…`, `rsync -e`,
 * `tar --checkpoint-action=exec=…`, `sort --compress-program`, `zip -TT`, `man -P`, `less '+!…'`,
 * sed's `e` command, awk's `system()`, `tmux new 'cmd'`, `make 'X:=$(shell …)'`. Such a command is
 * opaque: every deny and review rule may match it, no allow rule admits it. A table per program,
 * its options read as the program reads them; a program's own files (a script, a config file,
 * `sed -f`, `awk -f`) are its own code, as `./deploy.sh` is, unless they are its input. Programs
 * that take their commands from their input or terminal (editors, pagers) are listed apart
 * ({@link readsCommands}): the judge judges them as a shell.
 */
import { type OptionSpec, optionsEnd, parseOptions, readsInput } from './shell-options.js';
import { sed } from './shell-sed.js';

/** Why the command `program` with `args` runs a command given in its words, if it does. */
export function runsOptionCode(program: string, args: readonly string[]): string | undefined {
  const check = PROGRAMS[program] ?? (AWKS.has(program) ? awk : undefined);
  const what = check?.(args);
  return what === undefined ? undefined : `it has an option whose value a program runs as a command (${what})`;
}

const SFTP: OptionSpec = { short: '46AaCfNpqRrvB:b:c:D:F:i:J:l:o:P:S:s:X:' };

/**
 * Programs that take commands from their terminal: pagers (`!cmd` in less), and those that page
 * through one (man, git, systemd's tools, database shells), text interfaces with a shell escape.
 * With a terminal (`ssh -t`), such a command runs what its words do not show.
 */
const TERMINAL_READERS = new Set([
  ...['less', 'more', 'most', 'pg', 'pager', 'sensible-pager', 'bat', 'batcat', 'lv', 'jless', 'man', 'info', 'pinfo', 'git', 'tig', 'perf'],
  ...['systemctl', 'journalctl', 'loginctl', 'busctl', 'coredumpctl', 'networkctl', 'resolvectl', 'timedatectl', 'hostnamectl', 'localectl', 'bootctl'],
  ...['mc', 'ranger', 'nnn', 'vifm', 'mutt', 'neomutt', 'mail', 'mailx', 'w3m', 'lynx', 'links', 'elinks', 'crontab', 'aptitude', 'apt', 'apt-get', 'dpkg'],
  ...['python', 'python3', 'node', 'perl', 'irb', 'lua', 'php', 'tmux', 'screen'],
  // What pages through less by default, or has a key that starts a shell (ncdu's `b`).
  ...['zless', 'zmore', 'bzless', 'bzmore', 'xzless', 'xzmore', 'lzless', 'lzmore', 'zstdless', 'view'],
  ...['dpkg-query', 'dmesg', 'pydoc', 'pydoc3', 'perldoc', 'ri', 'ansible-doc', 'aws', 'gh', 'glab', 'delta', 'ncdu', 'lnav', 'irssi', 'weechat'],
  ...['systemd-analyze', 'systemd-cgls', 'systemd-delta', 'machinectl', 'homectl', 'userdbctl', 'portablectl', 'oomctl', 'systemd-resolve', 'systemd-inhibit', 'kernel-install'],
]);

/**
 * Why `program` with `args` takes its commands from its input or, with a `terminal`, from it, if it
 * does: an editor (`:!cmd`), a debugger or a database shell, `sudo -e`, `crontab -e`, `sftp`
 * without a batch file, `awk -D`, `tar -M`, `tmux -C`, `git difftool`; with a terminal, a pager or
 * what pages (`!cmd` in less). Such a command is judged as a shell is.
 */
export function readsCommands(program: string, args: readonly string[], terminal: boolean): string | undefined {
  if (COMMAND_READERS.has(program)) return `\`${program}\` reads its commands (an editor's \`:!cmd\`, a debugger's or a database shell's \`!cmd\`) from its input or terminal`;
  if ((program === 'sudo' && optionWords(args).some((w) => longIs(w, ['edit']) || groupHas(w, 'e', 'CcDghpRrTUu'))) || (program === 'crontab' && args.includes('-e')))
    return `\`${program} -e\` starts an editor, which reads its commands from its input`;
  if (terminal && TERMINAL_READERS.has(program) && !noPager(program, args)) return `with a terminal, \`${program}\` takes commands from it (a pager's \`!cmd\` runs one)`;
  if (program === 'sftp') {
    const batch = parseOptions(args, SFTP).options.find((o) => o.name === 'b');
    if (batch === undefined || readsInput(batch.value ?? '')) return '`sftp` reads its commands (`!cmd` runs one) from its input';
  }
  if (AWKS.has(program) && parseOptions(args, AWK).options.some((o) => o.name === 'D' || o.name === 'debug')) return '`awk -D` is a debugger, which reads its commands from its input';
  if (program === 'git') {
    const at = parseOptions(args, GIT).operand;
    const sub = args[at];
    if (sub === 'difftool' || sub === 'mergetool') return `\`git ${sub}\` starts a diff or merge tool (vimdiff by default), which reads its commands from its input`;
    if (sub !== undefined && gitEdits(sub, args.slice(at + 1), terminal)) return `\`git ${sub}\` may start the editor (vi by default) or ask what to do, reading its commands from its input`;
  }
  // tar's "prepare volume #2" prompt reads the input, and its `!` starts a shell.
  if (program === 'tar' && (optionWords(args, 'tar').some((w) => longIs(w, ['multi-volume', 'tape-length']) || groupHas(w, 'ML', 'bCfgHKLNTVX')) || /^[^-][^ ]*[ML]/.test(args[0] ?? '')))
    return '`tar -M` asks for each volume on its input, where `!` starts a shell';
  if (program === 'tmux' && parseOptions(args, TMUX).options.some((o) => o.name === 'C')) return '`tmux -C` reads its commands from its input';
  if ((program === 'kubectl' || program === 'systemctl') && args.includes('edit')) return `\`${program} edit\` starts an editor`;
  return undefined;
}

/**
 * Whether `git sub rest` may start the editor (vi by default, whose `:!cmd` reads the input) or an
 * interactive loop: a commit, tag or note whose message its words do not give, `-e`/`--edit`,
 * `--edit-description`, `rebase -i`, patch modes (`add -p`: `e` edits a hunk); with a terminal,
 * a merge, pull, revert or cherry-pick (their message is edited then by default).
 */
function gitEdits(sub: string, rest: readonly string[], terminal: boolean): boolean {
  const words = optionWords(rest);
  const long = (...names: string[]) => words.some((w) => longIs(w, names));
  // A short option's letter, read up to one that takes the rest of the word as its value (`-Sm`: m is S's key id).
  const short = (letters: string) => words.some((w) => groupHas(w, letters, 'mFCctSu'));
  const message = long('message', 'file', 'reuse-message', 'no-edit') || short('mFC');
  const edit = long('edit', 'patch', 'interactive', 'edit-todo', 'edit-description', 'compose', 'annotate', 'continue');
  switch (sub) {
    case 'commit':
      return edit || short('epc') || !message;
    case 'tag':
      return edit || short('e') || ((long('annotate', 'sign', 'local-user') || short('asu')) && !message);
    case 'notes':
      // Its subcommand after its options (`git notes --ref x edit`).
      return edit || rest.includes('edit') || ((rest.includes('add') || rest.includes('append')) && !message) || short('c');
    case 'merge':
    case 'pull':
    case 'revert':
    case 'cherry-pick':
      return edit || short('e') || words.some((w) => /^--rebase=i/.test(w)) || (terminal && !message && !long('ff-only'));
    case 'add':
      return edit || short('epi');
    case 'checkout':
    case 'reset':
    case 'stash':
    case 'restore':
    case 'clean':
    case 'am':
    case 'rebase':
      return edit || short('pi');
    case 'branch':
    case 'replace':
    case 'send-email':
    case 'config':
      return edit || (sub === 'config' && short('e'));
    default:
      return false;
  }
}

/** apt's `-o`/`--option` and `-c`/`--config-file` set any configuration item, and some are commands (`APT::Update::Pre-Invoke`, `DPkg::Post-Invoke`). */
function aptOptions(apt: string): (args: readonly string[]) => string | undefined {
  return (args) => (optionWords(args).some((w) => longIs(w, ['option', 'config-file']) || /^-[^-]*[oc]/.test(w)) ? `\`${apt} -o\` or \`-c\`, which may set a hook it runs` : undefined);
}

/** Whether a pager's reader is told to page nothing: systemd's tools' and git's `--no-pager` (git's `-P`), before its operands. */
function noPager(program: string, args: readonly string[]): boolean {
  const words = optionWords(args);
  // git's help pages through man whatever git's own pager is.
  if (program === 'git' && args.includes('help')) return false;
  return (program === 'git' || /ctl$|^systemd-/.test(program)) && (words.includes('--no-pager') || (program === 'git' && args[0] === '-P'));
}

/** Whether `program` has options or arguments a program runs as a command: a word of it built when it runs may be one. */
export const hasOptionCode = (program: string): boolean => Object.hasOwn(PROGRAMS, program) || AWKS.has(program);

/** git's commands whose words past their `--` are paths (pathspecs) only; `git config -- *` is a setting and its value. */
const GIT_PATHS_PAST_DASHES = new Set(['add', 'rm', 'mv', 'restore', 'checkout', 'diff', 'log', 'status', 'ls-files', 'grep', 'blame', 'stash', 'reset', 'clean', 'commit']);

/** Whether `program` (with `args`) reads only file names past its `--`: tar, sort, zip; git's commands of {@link GIT_PATHS_PAST_DASHES}. */
export function filesPastDashes(program: string, args: readonly string[]): boolean {
  if (program === 'tar' || program === 'sort' || program === 'zip') return true;
  if (program !== 'git') return false;
  const sub = args[parseOptions(args, GIT).operand];
  return sub !== undefined && GIT_PATHS_PAST_DASHES.has(sub);
}

/**
 * Whether hoop reads `program`'s words as more than file names (code, option letters, a
 * subcommand that starts an editor): a glob among them is a word built when it runs, whatever it
 * starts with (`tar c* …` beside a file `cIf`, `awk BEGIN*`, `git c*`).
 */
export const readsItsWords = (program: string): boolean => hasOptionCode(program) || COMMAND_READERS.has(program) || program === 'systemctl' || program === 'crontab';

/** Whether the long option `name` (before any `=`) is one of `risky`, or abbreviates one (getopt_long reads `--to-c` as `--to-command`, git `--u=` as `--upload-pack=`). */
function longIs(word: string, risky: string[]): boolean {
  if (!word.startsWith('--') || word === '--') return false;
  const name = word.slice(2).replace(/=.*$/s, '');
  return name.length >= 1 && risky.some((r) => r.startsWith(name));
}

/** The short option groups and long options before a `--` (of `program`'s, when it reads old-style letters: tar), wherever they stand (GNU programs read options after operands too). */
const optionWords = (args: readonly string[], program = ''): string[] => args.slice(0, optionsEnd([program, ...args], 1) - 1).filter((a) => a.startsWith('-') && a !== '-' && a !== '--');

/** Whether a short option group (`-xzf`) holds `letter` before a letter that takes the rest as its value (`valued`). */
function groupHas(word: string, letters: string, valued: string): boolean {
  if (!/^-[^-]/.test(word)) return false;
  for (const c of word.slice(1)) {
    if (letters.includes(c)) return true;
    if (valued.includes(c)) return false;
  }
  return false;
}

/** Whether `path` is a file of the system's, which only root writes (`/etc/man.conf`): written in full, with no `.`, `..` or empty part. */
function systemFile(path: string): boolean {
  const parts = path.split('/');
  return parts[0] === '' && parts.length > 2 && ['etc', 'usr', 'lib'].includes(parts[1]!) && parts.slice(1).every((p) => p !== '' && p !== '.' && p !== '..');
}

const shown = (w: string) => `\`${w.length > 40 ? `${w.slice(0, 37)}...` : w}\``;

/** git: global `-c`, `--config-env`, `--exec-path=`, `--git-dir`; a subcommand's options that name a program (`--upload-pack`, `rebase --exec`…) or write a file (`log --output`), `bisect run`, `submodule foreach`, `filter-branch`, and `config` setting a value. */
function git(args: readonly string[]): string | undefined {
  const parsed = parseOptions(args, GIT);
  if (!parsed.known) return `\`git\` with an option hoop does not know`;
  const global = parsed.options.find((o) => o.name === 'c' || o.name === 'config-env' || o.name === 'git-dir' || (o.name === 'exec-path' && o.value !== undefined));
  if (global) return `\`git ${global.name.length === 1 ? '-' : '--'}${global.name}\``;
  // A work tree inside a repository's own directory writes its configuration and hooks from the tracked files (`--work-tree=.git/hooks checkout`).
  const tree = parsed.options.find((o) => o.name === 'work-tree' && /(^|\/)\.git(\/|$)|(^|\/)\.\.?(\/|$)|[*?[\]]/.test(o.value ?? ''));
  if (tree) return "`git --work-tree` inside a repository's own directory, where git keeps its configuration and hooks";
  const sub = args[parsed.operand];
  // A command with a `/` is a program's path: git runs `git-x/y` from where it stands.
  if (sub?.includes('/')) return `\`git ${shown(sub).slice(1, -1)}\`, which runs a program by its path`;
  // A remote helper (`git remote-ext URL 'cmd'`, `remote-fd`) runs what its URL names; `for-each-repo` and `hook run` run git or hooks with words they are given.
  if (sub?.startsWith('remote-')) return `\`git ${shown(sub).slice(1, -1)}\`, a remote helper that may run its URL`;
  if (sub === 'for-each-repo' || sub === 'hook' || sub === 'submodule--helper') return `\`git ${sub}\`, which runs what its words say`;
  // git-shell runs `~/git-shell-commands/<name>`, which a clone may have put there.
  if (sub === 'shell') return '`git shell`, which runs the programs in ~/git-shell-commands';
  const rest = args.slice(parsed.operand + 1);
  const risky: Record<string, { long: string[]; short?: string; valued?: string }> = {
    clone: { long: ['upload-pack', 'config', 'template'], short: 'uc', valued: 'obj' },
    fetch: { long: ['upload-pack'] },
    pull: { long: ['upload-pack', 'strategy'], short: 's' },
    'ls-remote': { long: ['upload-pack'], short: 'u' },
    push: { long: ['receive-pack', 'exec'] },
    'send-pack': { long: ['receive-pack', 'exec'] },
    'fetch-pack': { long: ['upload-pack', 'exec'] },
    archive: { long: ['exec', 'output'], short: 'o' },
    rebase: { long: ['exec', 'strategy'], short: 'xs' },
    'cherry-pick': { long: ['strategy'] },
    revert: { long: ['strategy'] },
    difftool: { long: ['extcmd'], short: 'x' },
    grep: { long: ['open-files-in-pager'], short: 'O' },
    'send-email': { long: ['sendmail-cmd', 'smtp-server', 'to-cmd', 'cc-cmd', 'header-cmd'] },
    daemon: { long: ['access-hook'] },
    'filter-branch': { long: ['env-filter', 'tree-filter', 'index-filter', 'parent-filter', 'msg-filter', 'commit-filter', 'tag-name-filter', 'setup'] },
    'filter-repo': { long: ['commit-callback', 'blob-callback', 'name-callback', 'email-callback', 'refname-callback', 'message-callback', 'filename-callback', 'tag-callback', 'reset-callback'] },
    commit: { long: ['template'] },
    // A template directory's config and hooks are copied into the new repository.
    init: { long: ['template'] },
    merge: { long: ['strategy'], short: 's' },
    instaweb: { long: ['httpd', 'browser'], short: 'db' },
    'web--browse': { long: ['browser'], short: 'bt' },
    // The diff family's --output writes a file whose every byte --format chooses (.git/config, ~/.bashrc).
    ...Object.fromEntries(['log', 'show', 'diff', 'whatchanged', 'diff-tree', 'diff-files', 'diff-index', 'range-diff'].map((c) => [c, { long: ['output'] }])),
    'format-patch': { long: ['output', 'output-directory'], short: 'o' },
  };
  const table = sub !== undefined ? risky[sub] : undefined;
  if (table) {
    const hit = optionWords(rest).find((w) => longIs(w, table.long) || (table.short !== undefined && groupHas(w, table.short, table.valued ?? '')));
    if (hit) return `\`git ${sub} ${shown(hit).slice(1, -1)}\``;
  }
  if (sub === 'bisect' && rest[0] === 'run') return '`git bisect run`';
  if (sub === 'submodule' && rest.includes('foreach')) return '`git submodule foreach`';
  if (sub === 'config' && !gitConfigReads(rest)) return '`git config` setting a value a later git command may run, or editing the file';
  return undefined;
}

/** git's global options (before its subcommand). */
const GIT: OptionSpec = {
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
};

/** `git config`'s options (builtin/config.c): the actions that only read, those that write, and the rest (where, how). */
const GIT_CONFIG_READS = ['get', 'get-all', 'get-regexp', 'get-urlmatch', 'list', 'l', 'get-color', 'get-colorbool'];
const GIT_CONFIG_WRITES = ['replace-all', 'add', 'unset', 'unset-all', 'rename-section', 'remove-section', 'edit', 'e'];
const GIT_CONFIG_SPEC: OptionSpec = {
  permute: true,
  short: 'lezf:t:',
  long: [
    ...['global', 'system', 'local', 'worktree', 'file=', 'blob=', ...GIT_CONFIG_READS.filter((r) => r !== 'l'), ...GIT_CONFIG_WRITES.filter((w) => w !== 'e')],
    ...['fixed-value', 'type=', 'no-type', 'bool', 'int', 'bool-or-int', 'bool-or-str', 'path', 'expiry-date', 'null', 'name-only', 'includes', 'no-includes'],
    ...['show-origin', 'show-scope', 'default='],
  ],
};

/**
 * Whether `git config ARGS` only reads, as builtin/config.c decides its action: a read action
 * (`--get…`, `--list`), or none and at most one operand (a name to get), or git 2.46's `get` and
 * `list`; anything else (a value, a value pattern, `--edit`, an option hoop does not know) may write.
 */
function gitConfigReads(args: readonly string[]): boolean {
  const parsed = parseOptions(args, GIT_CONFIG_SPEC);
  if (!parsed.known) return false;
  const actions = parsed.options.filter((o) => GIT_CONFIG_READS.includes(o.name) || GIT_CONFIG_WRITES.includes(o.name));
  if (actions.length > 0) return actions.every((o) => GIT_CONFIG_READS.includes(o.name));
  const first = parsed.operands[0] === undefined ? undefined : args[parsed.operands[0]];
  return parsed.operands.length <= 1 || first === 'get' || first === 'list';
}

/**
 * The `-o` keywords of ssh, scp and sftp that run nothing and name no code (lowercase): any other
 * (`ProxyCommand`, `LocalCommand`, `Match exec`, `Include`, `PKCS11Provider`, `XAuthLocation`…),
 * or one hoop cannot read as readconf.c does, makes the command opaque.
 */
const SSH_SAFE_KEYWORDS = new Set([
  ...['addressfamily', 'addkeystoagent', 'batchmode', 'bindaddress', 'bindinterface', 'casignaturealgorithms', 'certificatefile', 'checkhostip', 'ciphers'],
  ...['clearallforwardings', 'compression', 'connectionattempts', 'connecttimeout', 'controlmaster', 'controlpath', 'controlpersist', 'dynamicforward'],
  ...['escapechar', 'exitonforwardfailure', 'fingerprinthash', 'forkafterauthentication', 'forwardagent', 'forwardx11', 'forwardx11timeout', 'forwardx11trusted'],
  ...['gatewayports', 'globalknownhostsfile', 'gssapiauthentication', 'gssapidelegatecredentials', 'hashknownhosts', 'hostbasedauthentication'],
  ...['hostkeyalgorithms', 'hostkeyalias', 'hostname', 'identitiesonly', 'identityagent', 'identityfile', 'ipqos', 'kbdinteractiveauthentication'],
  ...['kexalgorithms', 'localforward', 'loglevel', 'logverbose', 'macs', 'nohostauthenticationforlocalhost', 'numberofpasswordprompts'],
  ...['obscurekeystroketiming', 'passwordauthentication', 'permitremoteopen', 'port', 'preferredauthentications', 'pubkeyacceptedalgorithms'],
  ...['pubkeyauthentication', 'rekeylimit', 'remoteforward', 'requesttty', 'requiredrsasize', 'revokedhostkeys', 'sendenv', 'serveralivecountmax'],
  ...['serveraliveinterval', 'sessiontype', 'setenv', 'stdinnull', 'streamlocalbindmask', 'streamlocalbindunlink', 'stricthostkeychecking'],
  ...['tcpkeepalive', 'tunnel', 'tunneldevice', 'updatehostkeys', 'user', 'userknownhostsfile', 'verifyhostkeydns', 'visualhostkey'],
]);

/** An `-o` value's keyword as readconf.c reads it (blanks and `=` before it, quotes around it), when hoop can be sure of it. */
function sshKeyword(value: string): string | undefined {
  const m = /^[\s=]*([A-Za-z0-9]+)(?=[\s=]|$)/.exec(value);
  return m ? m[1]!.toLowerCase() : undefined;
}

/**
 * ssh, scp and sftp: an `-o` keyword not known to run nothing, a program option (`scp -S`, `sftp
 * -S`/`-D`, `ssh -I`), a configuration file (`-F`: it may name programs). ssh reads its
 * options again after the destination (`ssh host -o ProxyCommand=… cmd`, ssh.c's `again:`);
 * scp and sftp stop at the first operand.
 */
const ssh =
  (spec: OptionSpec, programs: string[], kind: 'ssh' | 'scp' | 'sftp') =>
  (args: readonly string[]): string | undefined => {
    let parsed = parseOptions(args, spec);
    const options = [...parsed.options];
    if (kind === 'ssh' && parsed.known && args[parsed.operand] !== undefined && args[parsed.operand - 1] !== '--') {
      parsed = parseOptions(args, spec, parsed.operand + 1);
      options.push(...parsed.options);
    }
    if (!parsed.known) return `\`${kind}\` with an option hoop does not know`;
    for (const o of options) {
      if (o.name === 'o' && !SSH_SAFE_KEYWORDS.has(sshKeyword(o.value ?? '') ?? '')) return `\`-o ${shown(o.value ?? '').slice(1, -1)}\``;
      // A configuration file names programs ssh runs (ProxyCommand, LocalCommand, KnownHostsCommand): any file the line names, which it may have written.
      if (o.name === 'F' && !systemFile(o.value ?? '')) return '`-F` naming a file the line may have written, whose configuration may name a program ssh runs';
      if (programs.includes(o.name)) return `\`-${o.name}\``;
    }
    return undefined;
  };

const AWKS = new Set(['awk', 'gawk', 'mawk', 'nawk', 'original-awk', 'bwk-awk']);

/** gawk's long options (mawk and the one true awk take only letters; mawk's `-W` words are opaque). */
const AWK_LONG = [
  ...['field-separator=', 'assign=', 'file=', 'source=', 'exec=', 'include=', 'load=', 'characters-as-bytes', 'traditional', 'copyright', 'debug=?', 'dump-variables=?'],
  ...['gen-pot', 'help', 'lint=?', 'bignum', 'use-lc-numeric', 'no-optimize', 'optimize', 'non-decimal-data', 'posix', 'pretty-print=?', 'profile=?', 're-interval'],
  ...['sandbox', 'trace', 'version', 'csv', 'persist=?', 'lint-old', 'compat'],
];

const AWK: OptionSpec = { short: 'F:f:v:W:bcCd::D::e:E:ghi:l:L::nNo::Op::MPrSstVYZ:', long: AWK_LONG };

/** awk: a program calling `system()`, piping to or from a command (`|`, `|&`), or calling a function by name (gawk's `@f()`, `@load`); `-W` (mawk's and gawk's `-W source 'text'`) and a program file that is its input are opaque. */
function awk(args: readonly string[]): string | undefined {
  // gawk's own getopt string (main.c; it stops at the program, no permuting): `-dfile`, `-Dfile`, `-Lfatal` take the rest of their word.
  const parsed = parseOptions(args, AWK);
  if (!parsed.known) return '`awk` with an option hoop does not know';
  if (parsed.options.some((o) => o.name === 'W')) return '`awk -W`';
  const programs = parsed.options.filter((o) => o.name === 'e' || o.name === 'source').map((o) => o.value ?? '');
  if (parsed.options.some((o) => o.name === 'l' || o.name === 'load')) return '`awk -l`';
  const files = parsed.options.filter((o) => ['f', 'E', 'i', 'file', 'exec', 'include'].includes(o.name)).map((o) => o.value ?? '');
  if (files.some(readsInput)) return '`awk -f` reading its program from its input';
  if (programs.length === 0 && files.length === 0 && args[parsed.operand] !== undefined) programs.push(args[parsed.operand]!);
  return programs.some((p) => /system|@|\|/.test(p.replace(/\|\|/g, ''))) ? "awk's `system()` or a pipe to a command" : undefined;
}

/** netcat and ncat: a program run for each connection (`-e`, `-c`, `--exec`, `--sh-exec`, `--lua-exec`). */
function netcat(args: readonly string[]): string | undefined {
  return optionWords(args).some((w) => longIs(w, ['exec', 'sh-exec', 'lua-exec']) || groupHas(w, 'ec', 'gGiIOpPqsTVwWxX')) ? '`nc -e`, `-c` or `--sh-exec`' : undefined;
}

/** docker, podman, nerdctl: a command run in a container (`run`, `exec`, `create`, `compose run`…) is one hoop cannot see. */
function containers(args: readonly string[]): string | undefined {
  const sub = args.find((a) => ['run', 'exec', 'create', 'attach', 'debug', 'start', 'build', 'plugin', 'up'].includes(a));
  return sub === undefined ? undefined : `\`${sub}\`, which runs a command in a container`;
}

/** man-db's options: flags, options taking a value, and `-H`, `-T`, `-X` taking one joined to them. */
const MAN: OptionSpec = {
  permute: true,
  short: 'acdDfhiIkKluwWtZ7C:e:E:L:m:M:p:P:r:R:s:S:H::T::X::',
  long: [
    'config-file=',
    'locale=',
    'systems=',
    'manpath=',
    'sections=',
    'extension=',
    'pager=',
    'prompt=',
    'encoding=',
    'preprocessor=',
    'recode=',
    'troff-device=?',
    'html=?',
    'gxditview=?',
    'warnings=?',
  ],
  anyLong: true,
};

/** tmux's own getopt string. */
const TMUX: OptionSpec = { short: '2CDdlNqUuvVc:f:L:S:T:' };

/** GNU make's long options that take a value (the others take none). */
const MAKE_VALUED = [
  'file=',
  'makefile=',
  'directory=',
  'include-dir=',
  'jobs=?',
  'load-average=?',
  'old-file=',
  'assume-old=',
  'what-if=',
  'new-file=',
  'assume-new=',
  'eval=',
  'debug=?',
  'output-sync=?',
  'jobserver-style=',
];

/** make: `--eval`, a variable whose value runs a command (`X=$(shell …)`), a makefile that is its input (`-f -`). */
function make(args: readonly string[]): string | undefined {
  if (args.some((a) => /\$[({]/.test(a) || longIs(a, ['eval']) || /^-[^-]*E/.test(a))) return '`make --eval` or a variable with `$(…)`';
  // A variable set on make's command line is code: its built-in rules run `$(AR)`, `$(CC)`… through a shell.
  const set = args.find((a) => !a.startsWith('-') && /^[^=\s]+[:+?!]*=/.test(a));
  if (set !== undefined) return `\`make\` setting a variable its recipes run (${shown(set)})`;
  const parsed = parseOptions(args, { permute: true, short: 'bmBC:deE:f:hiI:j::kl::LnNo:O::pqrRsStvwW:', long: MAKE_VALUED, anyLong: true });
  if (!parsed.known) return '`make` with an option hoop does not know';
  return parsed.options.some((o) => ['f', 'file', 'makefile'].includes(o.name) && readsInput(o.value ?? '')) ? '`make -f` reading its makefile from its input' : undefined;
}

/** Programs that read their commands from their input or terminal, whatever their words: editors, debuggers, database shells. */
const COMMAND_READERS = new Set([
  ...['vi', 'vim', 'nvim', 'view', 'vimdiff', 'gvim', 'rvim', 'rview', 'ex', 'vimx', 'vim.basic', 'vim.tiny', 'vim.nox', 'vim.gtk3', 'gview', 'gvimdiff', 'evim', 'vimtutor'],
  ...['nvi', 'elvis', 'vile', 'nano', 'rnano', 'ed', 'red', 'emacs', 'mg', 'jed', 'joe', 'pico', 'editor', 'sensible-editor', 'hx', 'helix', 'micro', 'kak'],
  ...['mcedit', 'ne', 'zile', 'jove', 'ee', 'sudoedit', 'visudo', 'vipw', 'vigr', 'vidir', 'vipe'],
  // Debuggers and database shells read their commands (`!cmd`, `shell`, `\\!`, `system`) from their input too.
  ...['gdb', 'lldb', 'psql', 'mysql', 'mariadb', 'sqlite3', 'redis-cli', 'mongo', 'mongosh', 'sqlplus', 'ftp', 'dc'],
  // Network clients and interpreters with a shell escape (`!cmd`, `.shell`, Tcl's `exec`) that read their input.
  ...['telnet', 'telnet.netkit', 'inetutils-telnet', 'lftp', 'ncftp', 'smbclient', 'cadaver', 'gnuplot', 'bconsole', 'duckdb', 'cqlsh', 'tclsh', 'wish', 'expect'],
]);

/**
 * The options an rsync client sends its server that change neither what the server runs nor
 * what it reads or writes past the transfer's paths (rsync's `server_options()`): each by name
 * (before any `=`).
 * @see https://github.com/RsyncProject/rsync/blob/master/options.c
 */
const RSYNC_SERVER_OPTIONS = new Set(
  (
    'delete delete-before delete-during delete-after delete-delay delete-excluded delete-missing-args force partial timeout bwlimit ' +
    'compress-level checksum-choice compress-choice max-size min-size max-delete size-only ignore-times existing ignore-existing ' +
    'inplace append append-verify no-implied-dirs numeric-ids safe-links copy-unsafe-links fake-super fuzzy delay-updates ' +
    'iconv modify-window ignore-errors no-whole-file whole-file sparse preallocate open-noatime info debug msgs2stderr ' +
    'no-msgs2stderr stats human-readable list-only mkpath'
  ).split(' '),
);

/**
 * An rsync server command as rsync's client starts it (`rsync --server [--sender] -<letters>
 * [options] . <paths>`): an upload, or a download with `--sender`; `unknown` for any other word
 * (`--daemon`, `--config`, `--log-file`, `--remove-source-files`, an option its client does not
 * send), so the ssh rules judge it as any command.
 */
export function rsyncServer(args: readonly string[]): 'upload' | 'download' | 'unknown' {
  if (args[0] !== '--server') return 'unknown';
  let sender = false;
  let k = 1;
  for (; k < args.length && args[k] !== '.'; k++) {
    const w = args[k]!;
    if (w === '--sender') sender = true;
    // The short options' letters, `e` taking the protocol's letters after it (`-vlogDtpre.iLsfxCIvu`).
    // Not `-s` (--protect-args: the server reads its real arguments from its input) nor `-M`.
    else if (/^-([a-zA-Z]*e\.[a-zA-Z]*|[a-zA-Z]+)$/.test(w) && !/^-[^e]*[Ms]/.test(w)) continue;
    else if (!(w.startsWith('--') && RSYNC_SERVER_OPTIONS.has(w.slice(2).replace(/=.*$/s, '')))) return 'unknown';
  }
  // Past `.`, paths; rsync reads an option among them too.
  return k < args.length && args.slice(k + 1).every((w) => !w.startsWith('-')) ? (sender ? 'download' : 'upload') : 'unknown';
}

/**
 * The server side of scp as OpenSSH's client starts it (`scp -O` sends `scp -v -r -p -d -t -- PATH`,
 * or `-f`): an upload (`-t`) or a download (`-f`), whose options are only the letters that client
 * sends, each word of them before its paths. Anything else (a letter that takes a value, `-i -f`,
 * a client's option, an option among the paths) is `unknown`: scp would run as a client (a local
 * copy, an ssh of the line's choosing), so the ssh rules judge it as any command.
 */
export function scpServer(args: readonly string[]): 'upload' | 'download' | 'unknown' {
  let letters = '';
  let k = 0;
  for (; k < args.length && args[k]!.startsWith('-'); k++) {
    if (args[k] === '--') {
      k++;
      break;
    }
    if (!/^-[dfprtv]+$/.test(args[k]!)) return 'unknown';
    letters += args[k]!.slice(1);
  }
  const paths = args.slice(k);
  const upload = letters.includes('t');
  if (upload === letters.includes('f') || paths.length === 0 || (upload && paths.length !== 1)) return 'unknown';
  return upload ? 'upload' : 'download';
}

/** kubectl's own commands (`kubectl help`): any other first word names a plugin. */
const KUBECTL_COMMANDS = new Set(
  'create expose run set explain get edit delete rollout scale autoscale certificate cluster-info top cordon uncordon drain taint describe logs attach exec port-forward proxy cp auth debug events diff apply patch replace wait kustomize label annotate completion alpha api-resources api-versions config plugin version options help'.split(
    ' ',
  ),
);

const PROGRAMS: Record<string, (args: readonly string[]) => string | undefined> = {
  git,
  'git-shell': () => '`git-shell`, which runs the programs in ~/git-shell-commands',
  sed,
  ssh: ssh({ short: '1246AaCfGgKkMNnqsTtVvXxYyB:b:c:D:E:e:F:I:i:J:L:l:m:O:o:p:Q:R:S:W:w:P:' }, ['I'], 'ssh'),
  scp: ssh({ short: '12346ABCOTdfpqRrstvc:D:F:i:J:l:o:P:S:X:' }, ['S', 'D'], 'scp'),
  sftp: ssh(SFTP, ['S', 'D'], 'sftp'),
  rsync: (args) => {
    // The server side, as a client starts it ({@link rsyncServer}), reads `-e` as the protocol's letters and starts no shell;
    // `--server` elsewhere, or with what its client never sends (`--daemon --config=… -M 'pre-xfer exec=…'`), is read as a client.
    if (rsyncServer(args) !== 'unknown') return undefined;
    // A daemon runs what its configuration says (`pre-xfer exec`); `-M` hands options to the other side's rsync.
    const hit = optionWords(args).find((w) => longIs(w, ['rsh', 'rsync-path', 'daemon', 'config', 'remote-option']) || groupHas(w, 'eM', 'BfT@'));
    return hit ? `\`rsync ${hit.startsWith('--') ? hit.replace(/=.*$/s, '') : hit.slice(0, 2)}\`` : undefined;
  },
  tar: (args) => {
    const risky = ['checkpoint-action', 'to-command', 'use-compress-program', 'rsh-command', 'rmt-command', 'info-script', 'new-volume-script'];
    // The first word may be the old style's letters without a dash (`tar cIf prog …`).
    const old = args[0] !== undefined && !args[0].startsWith('-') && /[IF]/.test(args[0]);
    const hit = optionWords(args, 'tar').find((w) => longIs(w, risky) || groupHas(w, 'IF', 'bCfgHKLNTVX'));
    return old ? '`tar I` or `F`' : hit ? `\`tar ${hit.replace(/=.*$/s, '')}\`` : undefined;
  },
  sort: (args) => (optionWords(args).some((w) => longIs(w, ['compress-program'])) ? '`sort --compress-program`' : undefined),
  // Remote archives through a program of the line's choosing (paxutils' rtapelib, as tar's `--rsh-command`).
  cpio: (args) => (optionWords(args).some((w) => longIs(w, ['rsh-command'])) ? '`cpio --rsh-command`' : undefined),
  mt: (args) => (optionWords(args).some((w) => longIs(w, ['rsh-command'])) ? '`mt --rsh-command`' : undefined),
  'mt-gnu': (args) => (optionWords(args).some((w) => longIs(w, ['rsh-command'])) ? '`mt-gnu --rsh-command`' : undefined),
  // dpkg's hooks run shell commands (before its privilege check, as any user).
  dpkg: (args) => (optionWords(args).some((w) => longIs(w, ['pre-invoke', 'post-invoke', 'status-logger'])) ? '`dpkg --pre-invoke`, `--post-invoke` or `--status-logger`' : undefined),
  ...Object.fromEntries(['apt', 'apt-get', 'apt-cache', 'apt-mark', 'apt-config', 'aptitude'].map((apt) => [apt, aptOptions(apt)])),
  // Info-ZIP reads a two-letter option anywhere in a group of short ones (`-TqTT cmd` is `-T -q -TT cmd`).
  zip: (args) => (args.some((a) => /^-[^-]*TT/s.test(a) || longIs(a, ['unzip-command'])) ? '`zip -TT`' : undefined),
  man: (args) => {
    // man-db's options (argp: read after operands too); its configuration names the programs it runs (`DEFINE tbl …`).
    const parsed = parseOptions(args, MAN);
    if (!parsed.known) return '`man` with an option hoop does not know';
    const hit = parsed.options.find((o) => ['P', 'H', 'pager', 'html'].includes(o.name));
    if (hit) return `\`man ${hit.name.length === 1 ? '-' : '--'}${hit.name}\``;
    return parsed.options.some((o) => (o.name === 'C' || o.name === 'config-file') && !systemFile(o.value ?? ''))
      ? '`man -C` naming a file the line may have written, whose configuration names the programs man runs'
      : undefined;
  },
  less: (args) => {
    const hit = args.find((a) => (a.startsWith('+') && /[!|v]/.test(a)) || longIs(a, ['lesskey-src', 'lesskey-content', 'lesskey-file']) || /^-[^-]*k/.test(a));
    return hit ? `\`less ${shown(hit).slice(1, -1)}\`` : undefined;
  },
  more: (args) => (args.some((a) => a.startsWith('+') && /[!|v]/.test(a)) ? '`more +…`' : undefined),
  // ripgrep runs `--pre`'s program on each file it searches (and 14's `--hostname-bin` to learn the host name).
  rg: (args) => (optionWords(args).some((w) => longIs(w, ['pre', 'hostname-bin'])) ? '`rg --pre` or `--hostname-bin`' : undefined),
  // fd runs `-x`'s command on each result, `-X`'s on all of them (as find's -exec).
  ...Object.fromEntries(
    ['fd', 'fdfind'].map((fd) => [
      fd,
      (args: readonly string[]) => (optionWords(args).some((w) => longIs(w, ['exec', 'exec-batch']) || groupHas(w, 'xX', 'dteEcjSo')) ? `\`${fd} -x\` or \`-X\`` : undefined),
    ]),
  ),
  // bat runs `--pager`'s command line as its pager, terminal or not, with `--paging always`.
  ...Object.fromEntries(['bat', 'batcat'].map((bat) => [bat, (args: readonly string[]) => (optionWords(args).some((w) => longIs(w, ['pager'])) ? `\`${bat} --pager\`` : undefined)])),
  // Debian's and GnuPG's tools that run a command given in their words.
  'dpkg-architecture': (args) => (optionWords(args).some((w) => longIs(w, ['command']) || groupHas(w, 'c', 'aAtTeEfFqsulL')) ? '`dpkg-architecture -c`' : undefined),
  'gpg-agent': (args) => (optionWords(args).some((w) => longIs(w, ['daemon', 'server'])) ? '`gpg-agent --daemon`, which runs the command after its options' : undefined),
  'gpg-connect-agent': (args) => (optionWords(args).some((w) => longIs(w, ['exec', 'run']) || groupHas(w, 'Er', 'SU')) ? '`gpg-connect-agent -E` or `--run`' : undefined),
  'systemd-socket-activate': () => '`systemd-socket-activate`, which runs the command after its options on each connection',
  'start-stop-daemon': (args) => (args.some((a) => /^(-[^-]*[xa]|--(exec|startas)\b)/.test(a)) ? '`start-stop-daemon --exec`' : undefined),
  make,
  gmake: make,
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
    const parsed = parseOptions(args, TMUX);
    if (!parsed.known) return '`tmux` with an option hoop does not know';
    if (parsed.options.some((o) => o.name === 'c' || o.name === 'f')) return '`tmux -c` or `-f`';
    const rest = args.slice(parsed.operand);
    // tmux ends a command at a word ending in `;` (`ls -F 'x;' new 'cmd'`): a list is more than one command.
    return rest.length > 0 && quiet.has(rest[0]!) && !rest.some((w) => w.endsWith(';')) ? undefined : '`tmux` running a command';
  },
  wget: (args) => {
    const hit = optionWords(args).find((w) => longIs(w, ['use-askpass', 'execute']) || groupHas(w, 'e', 'oaiBtOTwQPlARDIXUn'));
    if (hit) return `\`wget ${shown(hit).slice(1, -1)}\``;
    // A wgetrc may name programs (`use_askpass`): any file the line names, which it may have written.
    const config = optionWords(args).find((w) => longIs(w, ['config']));
    return config !== undefined && !systemFile(config.replace(/^[^=]*=?/, '')) ? '`wget --config` naming a file the line may have written, which may name a program wget runs' : undefined;
  },
  kubectl: (args) => {
    // A kubeconfig names a credential plugin kubectl runs before it connects, from any file the line points it at.
    const config = optionWords(args).find((w) => longIs(w, ['kubeconfig']));
    if (config !== undefined) return '`kubectl --kubeconfig`, whose file may name a credential plugin kubectl runs';
    // The words before its first option name a plugin (`kubectl-a-b`, found on PATH or by a path: `kubectl x/y`) unless the first is kubectl's own.
    const option = args.findIndex((a) => a.startsWith('-'));
    const leading = option < 0 ? args : args.slice(0, option);
    if (leading.length > 0 && !KUBECTL_COMMANDS.has(leading[0]!)) return `\`kubectl ${shown(leading[0]!).slice(1, -1)}\`, a plugin (a program kubectl runs by that name)`;
    // Any word may be the subcommand past a global option's value (`kubectl -n x exec …`).
    const sub = args.find((a) => ['exec', 'debug', 'attach', 'run', 'plugin'].includes(a));
    return sub !== undefined ? `\`kubectl ${sub}\`, which runs a command in a container` : undefined;
  },
  strace: (args) =>
    optionWords(args).some((w) => (longIs(w, ['output']) && /=[|!]/.test(w)) || /^-[^-]*o[|!]/.test(w)) || args.some((a, i) => args[i - 1] === '-o' && /^[|!]/.test(a))
      ? '`strace -o |cmd`'
      : // `-E NAME=VALUE` sets the traced command's environment (BASH_FUNC_…, GIT_*, LD_PRELOAD), past the checks env gets.
        optionWords(args).some((w) => longIs(w, ['env']) || groupHas(w, 'E', 'abeIoOpPsSuUX'))
        ? '`strace -E`, which sets the environment of the command it runs'
        : undefined,
  // fakeroot runs its `--faked` value as a command line and evals its `-l` value.
  fakeroot: (args) => (optionWords(args).some((w) => longIs(w, ['faked', 'lib']) || groupHas(w, 'l', 'bils')) ? '`fakeroot --faked` or `-l`, which run or load what the line names' : undefined),
  'dbus-run-session': (args) =>
    optionWords(args).some((w) => longIs(w, ['dbus-daemon', 'config-file'])) ? '`dbus-run-session --dbus-daemon` or `--config-file`, which name the program it runs' : undefined,
  // A tool is a program valgrind loads by its name: a path (`../../x`) is one the line chose.
  valgrind: (args) => (optionWords(args).some((w) => longIs(w, ['tool']) && !/^--tool=[a-z]+$/.test(w)) ? '`valgrind --tool` naming a path' : undefined),
  socat: (args) => (args.some((a) => /(^|[!,])\s*(exec|system)\s*:/i.test(a)) ? '`socat exec:` or `system:`' : undefined),
  perf: (args) => {
    const sub = args.find((a) => !a.startsWith('-'));
    return sub !== undefined && ['list', 'report', 'annotate', 'version', 'help', 'evlist', 'buildid-list', 'diff'].includes(sub)
      ? undefined
      : `\`perf ${sub ?? ''}\`, which may run a command or a script`;
  },
  nc: netcat,
  ncat: netcat,
  netcat: netcat,
  'nc.traditional': netcat,
  'nc.openbsd': netcat,
  bpftrace: (args) => (args.some((a) => a === '-c' || /^-[^-]*c/.test(a) || /system|unsafe/.test(a)) ? '`bpftrace -c` or `system()`' : undefined),
  tcpdump: (args) => (optionWords(args).some((w) => longIs(w, ['postrotate-command']) || groupHas(w, 'z', 'BcCDEFGiMrsTVwWyZjQ')) ? '`tcpdump -z`' : undefined),
  ansible: () => '`ansible`, which runs modules (a shell among them) on hosts',
  'ansible-playbook': () => '`ansible-playbook`, which runs modules (a shell among them) on hosts',
  helm: (args) => (args.includes('plugin') || optionWords(args).some((w) => longIs(w, ['post-renderer'])) ? '`helm plugin` or `--post-renderer`' : undefined),
  // ip's options are whole words (`-br` is -brief): `-b` and any spelling of `-batch` read commands.
  ip: (args) => (args.includes('exec') || args.some((w) => w === '-b' || /^--?ba/.test(w)) ? '`ip netns exec` or `ip -batch`' : undefined),
  docker: containers,
  podman: containers,
  nerdctl: containers,
  screen: (args) => {
    const quiet = new Set(['-ls', '-list', '-wipe', '-r', '-x', '-R', '-d', '-D', '-RR', '-DR', '-rd', '-dr', '-v', '-version']);
    return args.length > 0 && quiet.has(args[0]!) ? undefined : '`screen` running a command';
  },
  // The fifteenth attack: options whose value is a command line, a program or a library (coreutils, diffutils, util-linux, OpenSSL, OpenSSH).
  split: (args) => (optionWords(args).some((w) => longIs(w, ['filter'])) ? '`split --filter`, which runs its value with the shell' : undefined),
  install: (args) => (optionWords(args).some((w) => longIs(w, ['strip-program'])) ? '`install --strip-program`, which runs the program it names' : undefined),
  diff3: diffProgram('diff3'),
  sdiff: diffProgram('sdiff'),
  scriptlive: () => '`scriptlive`, which types a log the line names into a shell (or runs its -c command)',
  openssl: (args) =>
    args[0] === 'engine' || args.some((a) => /^--?(engine|provider|provider-path|config)(=|$)/.test(a))
      ? '`openssl engine`, `-engine`, `-provider` or `-config`, which load a library the line names'
      : undefined,
  'ssh-keygen': (args) => (optionWords(args).some((w) => groupHas(w, 'Dw', 'abCEfFgIjJmMnNOPrsSttVWYzZ')) ? '`ssh-keygen -D` or `-w`, which load a library the line names' : undefined),
  // groff's -U lets a document run what its `.sy` and `.pso` requests say (the document may be the line's own file, or its input).
  ...Object.fromEntries(
    ['groff', 'nroff', 'troff', 'grog'].map((g) => [g, (args: readonly string[]) => (args.some((a) => /^-[^-]*U/.test(a)) ? `\`${g} -U\`, which runs what the document says` : undefined)]),
  ),
  // binutils load a plugin the line names.
  ...Object.fromEntries(
    ['nm', 'ar', 'ranlib', 'ld', 'ld.bfd', 'ld.gold', 'objdump'].map((b) => [
      b,
      (args: readonly string[]) => (args.some((a) => /^--?plugin/.test(a)) ? `\`${b} --plugin\`, which loads the library it names` : undefined),
    ]),
  ),
  cmake: (args) => (args.some((a, i) => a === '-E' && ['env', 'time', 'chdir'].includes(args[i + 1] ?? '')) ? '`cmake -E env`, `time` or `chdir`, which run a command' : undefined),
  ...Object.fromEntries(['gcc', 'g++', 'cc', 'c++', 'cpp', 'clang', 'clang++', 'gcc-12', 'g++-12', 'cpp-12', 'x86_64-linux-gnu-gcc-12'].map((cc) => [cc, compiler(cc)])),
};

/** `PROGRAM --diff-program=…` runs the program it names (diffutils' diff3 and sdiff). */
function diffProgram(program: string): (args: readonly string[]) => string | undefined {
  return (args) => (optionWords(args).some((w) => longIs(w, ['diff-program'])) ? `\`${program} --diff-program\`, which runs the program it names` : undefined);
}

/** A compiler driver runs the programs and loads the plugins its options name (`-wrapper`, `-B`, `-fplugin`, specs, a linker, options read from a file the line names). */
function compiler(program: string): (args: readonly string[]) => string | undefined {
  const runs = /^(-wrapper|-B|--?specs|-fplugin|-fuse-ld|-Xlinker|-Xassembler|-Xpreprocessor|-iplugindir|@)|^-W[alp],/;
  return (args) => {
    const hit = args.find((a) => runs.test(a));
    return hit === undefined ? undefined : `\`${program} ${hit.replace(/^(@|-[^=,]*).*$/s, '$1')}\`, which runs or loads a program the line names`;
  };
}
