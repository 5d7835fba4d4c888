/**
 * The `ssh` section of a policy bundle, and its judge: what a session on an SSH connection may do.
 *
 * ```yaml
 * ssh:
 *   default: allow               # shells and commands no rule matches: allow | deny | review
 *   sftp: allow                  # allow | read-only | deny (read-only access makes it read-only)
 *   forwarding: ["db.internal:5432", "*.internal:443"]   # where `ssh -L` may reach; none by default
 *   agentForwarding: false       # `ssh -A`: always refused (the only value accepted)
 *   x11Forwarding: false         # `ssh -X`: always refused (the only value accepted)
 *   env: [LANG, "LC_*"]          # variables a client may set (`SendEnv`); the default
 *   rules:                       # the most restrictive matching rule wins
 *     - { name: no-shell-for-agents, match: { shell: true, groups: [agents] }, action: deny }
 *     - { name: deploys, match: { commands: ["./deploy.sh *"] }, action: review }
 *     - { name: no-rm-rf, match: { patterns: ['\brm\s+-[a-z]*r'] }, action: deny, message: "no recursive deletes" }
 * ```
 *
 * A command line is judged as the target's shell will run it (src/policy/shell-line.ts): each
 * command it runs — in lists, pipelines, `$(…)`, subshells, `sh -c` strings, after `sudo` or `env` —
 * is judged, and the most restrictive decision wins. A rule's `commands` are globs over a
 * command's words (quotes removed): an allow rule's word by word, each `*` within one argument and
 * one path segment (no `/`, no `..`), a word `**` any number of arguments ({@link argumentsGlob});
 * a deny or review rule's over the words joined by spaces (and with the options first, as GNU
 * reads them), `*` matching anything, so that it matches at least what it says;
 * `patterns` are regular expressions searched in them (and in the line as sent). A rule that
 * allows by `commands` or `patterns` matches only *simple* commands — words known before the line
 * runs, with no assignments, redirections, `&` or substitutions — so `ls *` does not admit
 * `ls; rm x`, `ls $(rm x)` or `ls > f`; `shellSyntax: allow` opts a rule into matching the whole
 * line as sent instead. A command the line runs through a wrapper (`sudo`, `sh -c`, `find -exec`,
 * `xargs`) is judged as a command of the line: allow rules must admit it too, else the default
 * decides. A deny or review rule with `commands` or `patterns` also matches a command
 * whose words hoop cannot read before it runs (`$x`, `$(…)` as a word, `r{m,}`) wherever some text
 * in their place would make it match (`rm -rf $X` for `rm -rf *`, not `ls -d $HOME`), and every
 * command whose program or code is unknown (`$x -rf /`, `eval "$x"`, `fish -c …`, and code the
 * words do not show: `test -v 'a[$(…)]'`, `echo $((x))`, `alias`, `PATH=… ls`). A program that
 * takes its commands from its input or terminal (an editor; with `ssh -t`, a pager) is judged as
 * a shell. Lines are read
 * in the grammar of the target user's login shell, learned at sign-in (or the connection's
 * `shell:`): bash, dash, ash or ksh; any other shell (zsh, fish, tcsh…), or one not known, makes
 * every line uncertain. An uncertain line — one the gateway cannot parse, over 32 KiB, or for a
 * shell it does not model — is matched by no allow rule and by every deny and review rule. A rule that
 * names neither matches shells and commands alike; `shell: true` matches the SSH shell request only
 * (a command can start a shell too: `default: deny` is what keeps shells and unnamed commands out).
 *
 * @see https://man.openbsd.org/sshd_config (AcceptEnv, AllowTcpForwarding, PermitOpen, ForceCommand)
 * @see docs/internals.md (§4: ssh rules)
 */
import { combineReviewDecisions, defaultVerdict, type RuleVerdict, reviewSettingsFor, ruleVerdict } from './review-combine.js';
import { ruleApplies } from './rule-scope.js';
import type { ShellCommand } from './shell-line.js';
import { shellLineOf } from './shell-lines.js';
import { hasOptionCode, readsCommands, rsyncServer, scpServer } from './shell-programs.js';
import { optionsEnd } from './shell-options.js';
import { ACTIONS, SSH_DEFAULTS, type Action, type Policy, type ReviewSettings, type SshPolicy, type SshRule, type Who } from './schema.js';
import { argumentsGlob, glob, globMayMatch } from '../glob.js';
import { LinearRegex } from '../linear-regex.js';

/**
 * Characters of what a line runs times the rules' weights it is matched against, at most (a 32 KiB line's one command
 * against 40 rules): matching is linear, but runs on the event loop (a 30 KB line that runs ten commands
 * took 0.8 s against 21 rules, the seventeenth attack).
 */
const MATCH_BUDGET = 1_500_000;
/** Program steps of a pattern that weigh as one rule: a pattern's matching costs up to its program's length per character (`[a-z]{1,1000}` is thousands). */
const STEPS_PER_WEIGHT = 32;
/** What the judge answers for a shell, a command or an sftp session. */
export type SshVerdict = RuleVerdict;

/** What a session channel asks for; an exec's `terminal`: the client asked for one (a pager on it takes commands). */
export type SshRequest = { kind: 'shell' } | { kind: 'exec'; command: string; terminal?: boolean } | { kind: 'sftp' };

/** A file-transfer program named anywhere in a command line (as a word or a path's last part). */
const TRANSFER_PROGRAM = /(?<![\w.-])(sftp-server|scp|rsync)(?![\w.-])/;
const TRANSFER_PROGRAMS = new Set(['sftp-server', 'scp', 'rsync']);

/**
 * The file transfer a command starts the way OpenSSH's and rsync's clients start one: an sftp
 * server by path (`sftp -s /usr/lib/openssh/sftp-server`), `scp -t` (an upload, `scp -O`) or
 * `scp -f` (a download), `rsync --server …` (its first word: an upload, or a download with `--sender`), each as the
 * whole command (after an optional `exec`, as one simple command). `unknown`: the line runs one of
 * these programs some other way (`sh -c …`, `nice rsync …`, `s'c'p …`), names one, runs a program
 * whose name is built when it runs (`$x …`), or cannot be parsed, so hoop cannot tell what it
 * transfers. `ssh.sftp` governs all of these as it governs the sftp subsystem; a command that
 * moves files some other way (`cat > f`, `tar x`) is for the ssh rules to decide.
 */
export function fileTransferOf(command: string, loginShell: string | undefined = 'bash'): 'sftp' | 'upload' | 'download' | 'unknown' | undefined {
  const parsed = shellLineOf(command, loginShell);
  if (!parsed.certain) return 'unknown';
  const named = TRANSFER_PROGRAM.test(command) || parsed.commands.some((c) => (c.words.length > 0 && c.program === undefined) || TRANSFER_PROGRAMS.has(c.program ?? ''));
  if (!named) return undefined;
  const top = parsed.commands.filter((c) => c.via === undefined);
  const only = top.length === 1 ? top[0] : undefined;
  if (!only?.simple) return 'unknown';
  const words = only.words[0] === 'exec' ? only.words.slice(1) : only.words;
  const program = systemProgram(words[0] ?? '');
  if (program === 'sftp-server') return 'sftp';
  if (program === 'rsync') return rsyncServer(words.slice(1));
  if (program === 'scp') return scpServer(words.slice(1));
  return 'unknown';
}

/**
 * The name of the program `word` starts when it is the system's: a bare name (found on the
 * target's PATH) or a path in the directories only root writes (`/usr/lib/openssh/sftp-server`);
 * undefined for any other path (`./scp`, `/tmp/sftp-server`), which is a program of its own.
 */
function systemProgram(word: string): string | undefined {
  if (!word.includes('/')) return word;
  const parts = word.split('/');
  if (parts[0] !== '' || parts.slice(1).some((p) => p === '' || p === '.' || p === '..')) return undefined;
  const [top, second] = [parts[1], parts[2]];
  const system = ['bin', 'sbin', 'lib', 'lib64', 'libexec'];
  return system.includes(top!) || (top === 'usr' && (system.includes(second!) || second === 'local')) ? parts.at(-1) : undefined;
}

/** A command's text as a reason quotes it. */
function quoted(c: ShellCommand): string {
  // An assignment alone (`PS4=…`) runs no words: its source says what it is.
  const whole = c.text !== '' ? c.text : c.source.replace(/\s+/g, ' ').replace(/;$/, '').trim();
  const text = whole.length > 80 ? `${whole.slice(0, 77)}...` : whole;
  return `\`${text}\``;
}

/**
 * The `ssh` policy of one session (identity, connection, access mode), as the SSH engine asks it.
 * Regular expressions and globs are compiled once per session.
 */
export class SshJudge {
  readonly sftp: SshPolicy['sftp'];
  readonly #readOnlyAccess: boolean;
  readonly #rules: CompiledRule[];
  readonly #default: Action;
  readonly #env: Array<(name: string) => boolean>;
  readonly #forwarding: Array<{ host: (host: string) => boolean; port: string }>;
  readonly #reviewers: (rule?: Partial<ReviewSettings>) => ReviewSettings | undefined;

  constructor(ssh: SshPolicy, who: Who, connection: string, mode: 'read-only' | 'read-write', reviewers: (rule?: Partial<ReviewSettings>) => ReviewSettings | undefined = () => undefined) {
    this.#rules = ssh.rules
      .filter((r) => ruleApplies(r.match, who, connection))
      .map((rule) => ({
        rule,
        ...(rule.match.commands ? { commands: rule.match.commands.map((g) => glob(g)), globs: rule.match.commands } : {}),
        // An allow rule's globs read each word as one argument, each `*` as within one path segment.
        ...(rule.match.commands && rule.action === 'allow' ? { arguments: rule.match.commands.map((g) => argumentsGlob(g)) } : {}),
        ...(rule.match.patterns ? { patterns: rule.match.patterns.map((p) => new LinearRegex(p)) } : {}),
        wholeLine: rule.match.shellSyntax === 'allow',
      }))
      .map((c) => ({
        ...c,
        weight: Math.max(
          1,
          (c.patterns ?? []).reduce((n, r) => n + Math.ceil(r.size / STEPS_PER_WEIGHT), 0),
        ),
      }));
    this.#default = ssh.default;
    this.sftp = mode === 'read-only' && ssh.sftp === 'allow' ? 'read-only' : ssh.sftp;
    this.#readOnlyAccess = mode === 'read-only';
    this.#env = ssh.env.map((g) => glob(g));
    this.#forwarding = ssh.forwarding.map((t) => {
      const at = t.lastIndexOf(':');
      return { host: glob(t.slice(0, at), { lowerCase: true }), port: t.slice(at + 1) };
    });
    this.#reviewers = reviewers;
  }

  /**
   * The decision on a shell, a command or an sftp session: the most restrictive matching rule,
   * else the default; a file transfer (sftp, or a command that plainly starts one) is decided by
   * `ssh.sftp` in place of the default, and by `ssh.sftp` too when a rule allows it.
   * Under read-only access, a shell or a command runs only when an ssh rule allows it (the gateway
   * cannot tell whether it writes), or when it is a download (sftp with its writes refused, `scp -f`,
   * `rsync --sender`).
   */
  decide(request: SshRequest, loginShell: string | undefined): SshVerdict {
    if (request.kind === 'sftp') return this.#transfer('sftp') ?? { action: 'allow', reason: `ssh.sftp is ${this.sftp}` };
    const transfer = request.kind === 'exec' ? fileTransferOf(request.command, loginShell) : undefined;
    let verdict = this.#byRules(request, loginShell);
    if (verdict.rule === undefined && transfer !== undefined && transfer !== 'unknown') verdict = { action: 'allow', reason: `ssh.sftp is ${this.sftp}` };
    if (this.#readOnlyAccess && verdict.rule === undefined && verdict.action === 'allow' && transfer !== 'sftp' && transfer !== 'download') {
      const what = request.kind === 'shell' ? 'shell' : 'command';
      verdict = {
        action: 'deny',
        rule: 'hoop:read-only-access',
        message: `read-only access runs only the commands an ssh rule allows, and downloads`,
        reason: `no ssh rule allows this ${what}, and the gateway cannot tell whether it writes`,
      };
    }
    const refused = transfer && this.#transfer(transfer);
    return refused && ACTIONS.indexOf(refused.action) >= ACTIONS.indexOf(verdict.action) ? refused : verdict;
  }

  /** ssh.sftp's refusal of a file transfer, if it refuses it (read-only refuses uploads and what it cannot tell; sftp's writes are refused per operation). */
  #transfer(kind: NonNullable<ReturnType<typeof fileTransferOf>>): SshVerdict | undefined {
    if (this.sftp === 'deny') return { action: 'deny', rule: 'hoop:ssh-sftp', message: 'the policy does not allow file transfers (sftp, scp, rsync) on this connection', reason: 'ssh.sftp is deny' };
    if (this.sftp !== 'read-only') return undefined;
    if (kind === 'upload') return { action: 'deny', rule: 'hoop:ssh-sftp', message: 'file transfers to this connection are read-only: downloads only', reason: 'ssh.sftp is read-only' };
    if (kind === 'unknown')
      return {
        action: 'deny',
        rule: 'hoop:ssh-sftp',
        message:
          'file transfers to this connection are read-only, and this command may run sftp-server, scp or rsync in a way the gateway cannot judge (start it as the whole command, its name spelled out)',
        reason: 'ssh.sftp is read-only',
      };
    return undefined;
  }

  /** The most restrictive ssh rule matching a shell or a command, else the default. */
  #byRules(request: Exclude<SshRequest, { kind: 'sftp' }>, loginShell: string | undefined): SshVerdict {
    if (request.kind === 'shell') {
      const matching = this.#rules.filter(({ commands, patterns }) => !commands && !patterns);
      return mostRestrictive(matching.map((c) => this.#verdict(c.rule, `ssh rule "${c.rule.name}" matches this shell`))) ?? this.#byDefault('no ssh rule matches');
    }
    const rules = this.#rules.filter((c) => !c.rule.match.shell);
    // Any run of whitespace (tabs, newlines) matches a space: `./deploy.sh<TAB>v2` is `./deploy.sh v2`.
    const line = request.command.replace(/\s+/g, ' ').trim();
    const parsed = shellLineOf(request.command, loginShell);
    // Matching runs on the event loop, in time linear in what the line runs (and the line as sent) times the rules' weights: past a budget the line is uncertain.
    const weight = rules.reduce((n, c) => n + c.weight, 0);
    const chars = parsed.certain ? parsed.commands.reduce((n, c) => n + c.text.length + (c.source === c.text ? 0 : c.source.length), 0) : 0;
    const tooMuch = Math.max(chars, line.length) * weight > MATCH_BUDGET;
    const why = tooMuch ? `what it runs is more than the gateway matches against its ${rules.length} rules in time` : parsed.certain ? undefined : parsed.why;
    const verdicts: SshVerdict[] = [];
    // Rules read the line as sent too: a `shellSyntax: allow` rule only so, a deny or review pattern also so (past the budget, not read: the line is uncertain).
    const wholeLine = tooMuch ? [] : rules.filter((c) => (c.wholeLine || (c.rule.action !== 'allow' && c.patterns)) && matchesText(c, line));
    const asSent = wholeLine.filter((c) => c.rule.action !== 'allow' || why === undefined).map((c) => this.#verdict(c.rule, `ssh rule "${c.rule.name}" matches this command`));
    if (!parsed.certain || why !== undefined) {
      verdicts.push(...asSent);
      for (const c of rules)
        if (c.rule.action !== 'allow' && (!c.wholeLine || tooMuch) && (c.commands || c.patterns))
          verdicts.push(this.#verdict(c.rule, `the gateway cannot parse this command line (${why}), so ssh rule "${c.rule.name}" may match it`));
      verdicts.push(this.#byDefault(`no allow rule matches a command line the gateway cannot parse as a shell would (${why})`));
      return mostRestrictive(verdicts) as SshVerdict;
    }
    const single = parsed.commands.length === 1;
    // A command the line runs through a wrapper (`sudo`, `sh -c`, `find -exec`, `xargs`) is a command of the line: allow rules must admit it too, else the default decides.
    for (const command of parsed.commands) {
      const derived = command.via !== undefined;
      // A program that takes its commands from its input or terminal (an editor, a pager on a terminal) is a shell: allowed where a shell is.
      const interactive = command.program === undefined ? undefined : readsCommands(command.program, command.words.slice(1), request.terminal === true);
      const matching: SshVerdict[] = [];
      const source = command.source === command.text ? command.text : command.source.replace(/\s+/g, ' ').trim();
      const order = optionsFirst(command.words, command.unknownWords);
      for (const c of rules) {
        if (c.wholeLine) {
          if (wholeLine.includes(c)) matching.push(this.#verdict(c.rule, `ssh rule "${c.rule.name}" matches this command line`));
          continue;
        }
        const how = matches(c, command, source, order);
        if (how === undefined || (interactive && c.rule.action === 'allow' && (c.commands || c.patterns))) continue;
        const what = single ? 'this command' : `${quoted(command)}, which this command line runs${derived ? ` (through ${command.via})` : ''}`;
        matching.push(
          this.#verdict(
            c.rule,
            how === 'opaque' ? `ssh rule "${c.rule.name}" may match ${quoted(command)}: ${command.opaque}, so the gateway cannot tell` : `ssh rule "${c.rule.name}" matches ${what}`,
          ),
        );
      }
      if (interactive) {
        const shell = this.#byRules({ kind: 'shell' }, loginShell);
        matching.push({ ...shell, reason: `${quoted(command)} is judged as a shell: ${interactive}; ${shell.reason}` });
      }
      const verdict = mostRestrictive(matching);
      if (verdict) verdicts.push(verdict);
      else verdicts.push(this.#byDefault(single ? 'no ssh rule matches' : `no ssh rule matches ${quoted(command)}, which this command line runs${derived ? ` (through ${command.via})` : ''}`));
    }
    // Last, so that of equal decisions the one naming a command of the line is said.
    verdicts.push(...asSent);
    return mostRestrictive(verdicts) ?? this.#byDefault('the command line runs nothing');
  }

  /** What `rule` decides, for `reason`. */
  #verdict(rule: SshRule, reason: string): SshVerdict {
    return ruleVerdict(rule, reason, this.#reviewers);
  }

  /** The default's decision (no `rule`: read-only access refuses it), for `why`. */
  #byDefault(why: string): SshVerdict {
    return defaultVerdict(this.#default, why, this.#reviewers);
  }

  /** Whether a client may set environment variable `name` to `value` (a locale only to one hoop reads lines in: {@link lineReadableLocale}). */
  env(name: string, value: string): boolean {
    return this.#env.some((matches) => matches(name)) && lineReadableLocale(name, value);
  }

  /** Whether a `direct-tcpip` channel may reach `host:port`. */
  forward(host: string, port: number): boolean {
    return this.#forwarding.some((t) => t.host(host) && (t.port === '*' || Number(t.port) === port));
  }
}

/** An ssh rule as a session's judge holds it: globs and patterns compiled once. */
interface CompiledRule {
  rule: SshRule;
  commands?: Array<(text: string) => boolean>;
  /** The `commands` globs as written (a refusing rule's are matched against unknown words too). */
  globs?: string[];
  /** An allow rule's `commands` over a command's arguments ({@link argumentsGlob}). */
  arguments?: Array<(words: readonly string[]) => boolean>;
  patterns?: LinearRegex[];
  /** `shellSyntax: allow`: the rule reads the whole line as sent. */
  wholeLine: boolean;
  /** What matching a character against it costs, in rules of ordinary patterns (see {@link STEPS_PER_WEIGHT}). */
  weight: number;
}

/** Whether a rule's globs and patterns (those it has) match `text`. */
function matchesText(c: CompiledRule, text: string): boolean {
  return (!c.commands || c.commands.some((matches) => matches(text))) && (!c.patterns || c.patterns.some((r) => r.test(text)));
}

/**
 * Whether rule `c` matches one command of a line: a rule with neither globs nor patterns matches
 * every command; an allowing one only simple commands; a refusing one (deny, review) also a
 * command whose words are built when it runs (`opaque`) where they may make it match: wherever
 * what it runs is unknown, else where its globs and patterns match with each unknown word read as
 * any text (`ls -d $HOME` is no `rm -rf *`; `rm -rf $X` may be); a refusing one reads the words in
 * `order` too (options first: {@link optionsFirst}).
 */
function matches(c: CompiledRule, command: ShellCommand, source: string, order: number[] | undefined): 'yes' | 'opaque' | undefined {
  if (!c.commands && !c.patterns) return 'yes';
  if (c.rule.action === 'allow') {
    if (command.paths && command.unknownWords && c.arguments && !c.patterns) {
      // The paths `find -exec` puts in place of `{}`: only a `**` word of the glob stands for any text (a `*` matches no word with a glob character).
      const unknown = new Set(command.unknownWords);
      const words = command.words.map((w, i) => (unknown.has(i) ? '*' : w));
      return c.arguments.some((matches) => matches(words)) ? 'yes' : undefined;
    }
    const byArguments = !c.arguments || c.arguments.some((matches) => matches(command.words));
    return command.simple && byArguments && (!c.patterns || c.patterns.some((r) => r.test(command.text))) ? 'yes' : undefined;
  }
  const permuted = order?.map((i) => command.words[i]).join(' ');
  if (matchesText(c, command.text) || (source !== command.text && matchesText(c, source)) || (permuted !== undefined && matchesText(c, permuted))) return 'yes';
  if (!command.opaque) return undefined;
  if (!command.unknownWords) return 'opaque';
  const unknown = new Set(command.unknownWords);
  const may = (indexes: readonly number[]): boolean => {
    const pieces = indexes.flatMap((w, k) => [...(k > 0 ? [' '] : []), unknown.has(w) ? null : command.words[w]]);
    return (!c.globs || c.globs.some((g) => globMayMatch(g, pieces))) && (!c.patterns || c.patterns.some((r) => r.mayMatch(pieces)));
  };
  return may(command.words.map((_, i) => i)) || (order !== undefined && may(order)) ? 'opaque' : undefined;
}

/**
 * The order in which GNU getopt reads a command's words, when it differs from the line's: the
 * program, its options (words starting with `-`, before a `--`), then its operands. GNU programs
 * take options after operands (`rm x -rf` is `rm -rf x`), so a refusing rule also reads the
 * options first (and a word built when it runs among them); it may then match more than a program
 * that stops at its first operand runs.
 */
function optionsFirst(words: readonly string[], unknownWords: readonly number[] = []): number[] | undefined {
  const unknown = new Set(unknownWords);
  const options: number[] = [];
  const operands: number[] = [];
  const end = optionsEnd(
    words.map((w, i) => (unknown.has(i) ? '' : w)),
    1,
    hasOptionCode(words[0]?.split('/').pop() ?? ''),
  );
  for (let i = 1; i < words.length; i++) {
    const word = words[i] as string;
    // A word built when it runs (a glob's file names) may be an option too.
    (i < end && ((word.length > 1 && word.startsWith('-')) || unknown.has(i)) ? options : operands).push(i);
  }
  if (options.every((o, k) => o === k + 1)) return undefined;
  return [0, ...options, ...operands];
}

/** The most restrictive of `verdicts` (reviews of the same rank combined), if any. */
function mostRestrictive(verdicts: SshVerdict[]): SshVerdict | undefined {
  let best: SshVerdict | undefined;
  for (const v of verdicts) {
    if (best === undefined || ACTIONS.indexOf(v.action) > ACTIONS.indexOf(best.action)) best = v;
    else if (v.action === best.action && v.action === 'review') best = combineReviewDecisions(best, v);
    // Of equal decisions, the default's is kept: no rule covers the whole line (read-only access asks).
    else if (v.action === best.action && v.rule === undefined) best = v;
  }
  return best;
}

/** The judge of a session on SSH connection `connection`, reviews settled as the bundle's reviewers say. */
export function sshJudgeFor(policy: Policy, who: Who, connection: string, mode: 'read-only' | 'read-write'): SshJudge {
  return new SshJudge(policy.ssh ?? SSH_DEFAULTS, who, connection, mode, (rule) => reviewSettingsFor(policy, connection, rule));
}

/**
 * Whether setting `name` to `value` leaves the target's shell reading lines as hoop does: a
 * locale variable only to C, POSIX or a UTF-8 locale. In a double-byte character set (Big5, GBK,
 * Shift_JIS) bash and ksh read a byte above 0x7F and the backslash after it as one character, so
 * `中\;rm …` runs the `rm` hoop read after an escaped semicolon.
 */
export function lineReadableLocale(name: string, value: string): boolean {
  return !/^(LANG|LC_\w+)$/.test(name) || /^(|C|POSIX|[A-Za-z]{1,3}(_[A-Za-z]{2})?\.(UTF-?8|utf-?8)(@\w+)?)$/.test(value);
}
