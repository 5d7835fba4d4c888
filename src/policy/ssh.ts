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
 * A rule's `commands` are globs over the whole command line (`*` matches anything, spaces and
 * slashes too); `patterns` are regular expressions searched in it; both see runs of whitespace as
 * one space. A rule that names neither matches shells and commands alike; `shell: true` matches the
 * SSH shell request only (a command can start a shell too: `default: deny` is what keeps shells
 * and unnamed commands out). Rules read the command line as sent, not as a shell will parse it.
 *
 * @see https://man.openbsd.org/sshd_config (AcceptEnv, AllowTcpForwarding, PermitOpen, ForceCommand)
 * @see /work/shared/ARCHITECTURE.md ("Policy as code": ssh rules)
 */
import { combineReviewDecisions, reviewSettingsFor } from './decide.js';
import { ACTIONS, SSH_DEFAULTS, type Action, type Policy, type ReviewSettings, type SshPolicy, type SshRule, type SshRuleMatch, type Who } from './schema.js';

/** A glob where `*` matches any run of characters (anchored at both ends). */
export function globRegex(glob: string, flags = ''): RegExp {
  return new RegExp(`^${glob.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, `s${flags}`);
}

/** What the judge answers for a shell, a command or an sftp session. */
export interface SshVerdict {
  action: Action;
  rule?: string;
  message?: string;
  /** A human sentence: which rule, and why. */
  reason: string;
  review?: ReviewSettings;
}

/** What a session channel asks to run. */
export type SshRequest = { kind: 'shell' } | { kind: 'exec'; command: string } | { kind: 'sftp' };

/** Shell syntax that could run something besides the program a command line starts. */
const SHELL_SYNTAX = /[;&|`$()<>\n\r\\]/;
/** A file-transfer program named anywhere in a command line (as a word or a path's last part). */
const TRANSFER_PROGRAM = /(?<![\w.-])(sftp-server|scp|rsync)(?![\w.-])/;

/**
 * The file transfer a command starts the way OpenSSH's and rsync's clients start one: an sftp
 * server by path (`sftp -s /usr/lib/openssh/sftp-server`), `scp -t` (an upload, `scp -O`) or
 * `scp -f` (a download), `rsync --server` (an upload, or a download with `--sender`), each as the
 * whole command (after an optional `exec`, with no shell syntax). `unknown`: the command names one
 * of these programs some other way (`sh -c …`, `nice rsync …`), so hoop cannot tell what it
 * transfers. `ssh.sftp` governs all of these as it governs the sftp subsystem; a command that
 * moves files some other way (`cat > f`, `tar x`) is for the ssh rules to decide.
 */
export function fileTransferOf(command: string): 'sftp' | 'upload' | 'download' | 'unknown' | undefined {
  if (!TRANSFER_PROGRAM.test(command)) return undefined;
  if (SHELL_SYNTAX.test(command)) return 'unknown';
  const all = command.trim().split(/\s+/);
  const words = all[0] === 'exec' ? all.slice(1) : all;
  const program = words[0]?.split('/').pop();
  if (program === 'sftp-server') return 'sftp';
  if (program === 'rsync' && words.includes('--server')) return words.includes('--sender') ? 'download' : 'upload';
  if (program !== 'scp') return 'unknown';
  const flags = words
    .slice(1)
    .filter((w) => /^-[a-zA-Z]+$/.test(w))
    .join('');
  return flags.includes('t') ? 'upload' : flags.includes('f') ? 'download' : 'unknown';
}

/**
 * The `ssh` policy of one session (identity, connection, access mode), as the SSH engine asks it.
 * Regular expressions and globs are compiled once per session.
 */
export class SshJudge {
  readonly sftp: SshPolicy['sftp'];
  readonly #readOnlyAccess: boolean;
  readonly #rules: Array<{ rule: SshRule; commands?: RegExp[]; patterns?: RegExp[] }>;
  readonly #default: Action;
  readonly #env: RegExp[];
  readonly #forwarding: Array<{ host: RegExp; port: string }>;
  readonly #reviewers: (rule?: Partial<ReviewSettings>) => ReviewSettings | undefined;

  constructor(ssh: SshPolicy, who: Who, connection: string, mode: 'read-only' | 'read-write', reviewers: (rule?: Partial<ReviewSettings>) => ReviewSettings | undefined = () => undefined) {
    const applies = (m: SshRuleMatch): boolean =>
      (!m.connections || m.connections.includes(connection) || m.connections.includes('*')) &&
      (!m.subjects || m.subjects.includes(who.subject)) &&
      (!m.groups || m.groups.some((g) => who.groups.includes(g)));
    this.#rules = ssh.rules
      .filter((r) => applies(r.match))
      .map((rule) => ({
        rule,
        ...(rule.match.commands ? { commands: rule.match.commands.map((g) => globRegex(g)) } : {}),
        ...(rule.match.patterns ? { patterns: rule.match.patterns.map((p) => new RegExp(p)) } : {}),
      }));
    this.#default = ssh.default;
    this.sftp = mode === 'read-only' && ssh.sftp === 'allow' ? 'read-only' : ssh.sftp;
    this.#readOnlyAccess = mode === 'read-only';
    this.#env = ssh.env.map((g) => globRegex(g));
    this.#forwarding = ssh.forwarding.map((t) => {
      const at = t.lastIndexOf(':');
      return { host: globRegex(t.slice(0, at).toLowerCase()), port: t.slice(at + 1) };
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
  decide(request: SshRequest): SshVerdict {
    if (request.kind === 'sftp') return this.#transfer('sftp') ?? { action: 'allow', reason: `ssh.sftp is ${this.sftp}` };
    const transfer = request.kind === 'exec' ? fileTransferOf(request.command) : undefined;
    let verdict = this.#byRules(request);
    if (verdict.rule === undefined && transfer !== undefined && transfer !== 'unknown') verdict = { action: 'allow', reason: `ssh.sftp is ${this.sftp}` };
    if (this.#readOnlyAccess && verdict.rule === undefined && verdict.action === 'allow' && transfer !== 'sftp' && transfer !== 'download') {
      const what = request.kind === 'shell' ? 'shell' : 'command';
      verdict = { action: 'deny', rule: 'hoop:read-only-access', message: `read-only access runs only the commands an ssh rule allows, and downloads`, reason: `no ssh rule allows this ${what}, and the gateway cannot tell whether it writes` };
    }
    const refused = transfer && this.#transfer(transfer);
    return refused && ACTIONS.indexOf(refused.action) >= ACTIONS.indexOf(verdict.action) ? refused : verdict;
  }

  /** ssh.sftp's refusal of a file transfer, if it refuses it (read-only refuses uploads and what it cannot tell; sftp's writes are refused per operation). */
  #transfer(kind: NonNullable<ReturnType<typeof fileTransferOf>>): SshVerdict | undefined {
    if (this.sftp === 'deny') return { action: 'deny', rule: 'hoop:ssh-sftp', message: 'the policy does not allow file transfers (sftp, scp, rsync) on this connection', reason: 'ssh.sftp is deny' };
    if (this.sftp !== 'read-only') return undefined;
    if (kind === 'upload') return { action: 'deny', rule: 'hoop:ssh-sftp', message: 'file transfers to this connection are read-only: downloads only', reason: 'ssh.sftp is read-only' };
    if (kind === 'unknown') return { action: 'deny', rule: 'hoop:ssh-sftp', message: 'file transfers to this connection are read-only, and this command runs sftp-server, scp or rsync in a way the gateway cannot judge (start it as the whole command)', reason: 'ssh.sftp is read-only' };
    return undefined;
  }

  /** The most restrictive ssh rule matching a shell or a command, else the default. */
  #byRules(request: { kind: 'shell' } | { kind: 'exec'; command: string }): SshVerdict {
    let best: SshVerdict | undefined;
    // Any run of whitespace (tabs, newlines) matches a space: `./deploy.sh<TAB>v2` is `./deploy.sh v2`.
    const line = request.kind === 'exec' ? request.command.replace(/\s+/g, ' ').trim() : '';
    for (const { rule, commands, patterns } of this.#rules) {
      const m = rule.match;
      if (request.kind === 'shell') {
        if (commands || patterns) continue;
      } else {
        if (m.shell) continue;
        if (commands && !commands.some((r) => r.test(line))) continue;
        if (patterns && !patterns.some((r) => r.test(line))) continue;
      }
      const review = rule.action === 'review' ? this.#reviewers(rule.review) : undefined;
      const verdict: SshVerdict = {
        action: rule.action,
        rule: rule.name,
        ...(rule.message !== undefined ? { message: rule.message } : {}),
        reason: `ssh rule "${rule.name}" matches this ${request.kind === 'shell' ? 'shell' : 'command'}`,
        ...(review ? { review } : {}),
      };
      best = best === undefined ? verdict : ACTIONS.indexOf(verdict.action) > ACTIONS.indexOf(best.action) ? verdict : verdict.action === best.action && verdict.action === 'review' ? combineReviewDecisions(best, verdict) : best;
    }
    if (best) return best;
    const review = this.#default === 'review' ? this.#reviewers() : undefined;
    return { action: this.#default, reason: `no ssh rule matches; the default is ${this.#default}`, ...(review ? { review } : {}) };
  }

  /** Whether a client may set environment variable `name`. */
  env(name: string): boolean {
    return this.#env.some((r) => r.test(name));
  }

  /** Whether a `direct-tcpip` channel may reach `host:port`. */
  forward(host: string, port: number): boolean {
    const h = host.toLowerCase();
    return this.#forwarding.some((t) => t.host.test(h) && (t.port === '*' || Number(t.port) === port));
  }
}

/** The judge of a session on SSH connection `connection`, reviews settled as the bundle's reviewers say. */
export function sshJudgeFor(policy: Policy, who: Who, connection: string, mode: 'read-only' | 'read-write'): SshJudge {
  return new SshJudge(policy.ssh ?? SSH_DEFAULTS, who, connection, mode, (rule) => reviewSettingsFor(policy, connection, rule));
}
