/**
 * One session channel of an SSH session at the gateway (RFC 4254 section 6): its requests (pty,
 * env, window-change, signal; agent and X11 forwarding refused), then the shell, command or sftp
 * subsystem it runs, judged by the policy, held for review, refused on its stderr with exit status
 * 126, or relayed to the target both ways, recorded.
 *
 * @see https://www.rfc-editor.org/rfc/rfc4254#section-6
 */
import { reviewAskOf } from '../../session/review-ask.js';
import { realClock } from '../../clock.js';
import { createHash } from 'node:crypto';
import type { Client as SshClient, ClientChannel, PseudoTtyInfo, ServerChannel, Session } from 'ssh2';
import type { SshConnection } from '../../config/connection.js';
import { describeError, hoopSays } from '../../errors.js';
import { fileTransferOf, lineReadableLocale, type SshRequest, type SshVerdict } from '../../policy/ssh.js';
import { readShellLine } from '../../policy/shell-lines.js';
import type { RecordingStream } from '../../recording/thread.js';
import type { TunnelSession } from '../../session/engine.js';
import { bridgeChannel, decisionCommand, endChannel, guarded, safely, SSH_DECISION } from '../common/channels.js';
import { SshDataRecorder, SshStream } from '../common/recorder.js';
import { subsystemRefusal } from '../common/reasons.js';
import { SftpStage } from '../common/sftp-stage.js';

/** Exit status of a command or shell the policy (or the gateway) refused, as shells use it for "cannot execute". */
export const REFUSED_EXIT_STATUS = 126;

/** A channel the client opened for a shell, a command or sftp, until it closes. */
export interface OpenChannel {
  /** Tells the client why the session ends: on the running channel's error output, or as why what it asked for did not start. */
  tell(message: string): void;
}

/** The client's open channels; `emptied` is told when the last one closes. */
export type OpenChannels = Set<OpenChannel> & { emptied?: () => void };

/** What a session channel shares with its session. */
export interface ChannelContext {
  session: TunnelSession<SshConnection>;
  /** The target's connection, once signed in (rejects when it could not be). */
  upstream: () => Promise<SshClient>;
  /** The target user's login shell, which reads command lines (`undefined`: not known). */
  loginShell: () => Promise<string | undefined>;
  /** Ends the session for what a client sent that tripped the engine. */
  fail: (err: unknown) => void;
  open: OpenChannels;
}

/** One session channel (the `n`th of the session): its requests, then the shell, command or subsystem it runs. */
export function serveSessionChannel(c: ChannelContext, s: Session, n: number): void {
  new SessionChannel(c, s, n);
}

/** What a session channel asked for before it runs something: a pty, the environment. */
class SessionChannel implements OpenChannel {
  readonly #c: ChannelContext;
  readonly #n: number;
  readonly #rec: RecordingStream | undefined;
  #pty: PseudoTtyInfo | undefined;
  readonly #env: Record<string, string> = {};
  /** The client's channel, once it asked for a shell, a command or sftp; what it asked for, in words. */
  #down: ServerChannel | undefined;
  #what = 'command';
  /** The target's channel, once it runs. */
  #running: ClientChannel | undefined;
  /** This end answered the channel itself (a refusal, a start that failed): it is told nothing more. */
  #answered = false;

  constructor(c: ChannelContext, s: Session, n: number) {
    this.#c = c;
    this.#n = n;
    this.#rec = c.session.recording?.stream;
    this.#requests(s);
    s.on('shell', (accept) => this.#run({ kind: 'shell' }, accept()));
    s.on('exec', (accept, _reject, { command }) => this.#run({ kind: 'exec', command }, accept()));
    s.on('subsystem', (accept, _reject, { name }) => {
      if (name === 'sftp') return this.#run({ kind: 'sftp' }, accept());
      this.#rec?.event({ t: 'ssh-refused', at: realClock.now(), ch: n, what: `subsystem ${name}` });
      this.#answer(accept(), `subsystem "${name}"`, subsystemRefusal(name));
    });
  }

  /** The requests that shape what runs: pty, window-change, env (allow-listed), signal; agent and X11 forwarding refused. */
  #requests(s: Session): void {
    const rec = this.#rec;
    const ch = this.#n;
    s.on('pty', (accept, _reject, info) => {
      this.#pty = info;
      rec?.event({ t: 'ssh-pty', at: realClock.now(), ch, term: info.term, cols: info.cols, rows: info.rows });
      accept?.();
    });
    s.on('window-change', (accept, _reject, info) => {
      if (this.#pty) this.#pty = { ...this.#pty, cols: info.cols, rows: info.rows, width: info.width, height: info.height };
      rec?.event({ t: 'ssh-resize', at: realClock.now(), ch, cols: info.cols, rows: info.rows });
      this.#running?.setWindow(info.rows, info.cols, info.height, info.width);
      accept?.();
    });
    s.on('env', (accept, reject, { key, val }) => {
      const ssh = this.#c.session.lane?.ssh;
      const allowed = ssh ? ssh.env(key, val) : /^(LANG|LC_\w+)$/.test(key) && lineReadableLocale(key, val);
      rec?.event({ t: 'ssh-env', at: realClock.now(), ch, name: key, allowed });
      if (!allowed) return reject?.();
      this.#env[key] = val;
      accept?.();
    });
    s.on('signal', (accept, reject, { name }) => {
      rec?.event({ t: 'ssh-signal', at: realClock.now(), ch, signal: name });
      try {
        this.#running?.signal(name);
      } catch {
        return reject?.(); // not a signal name of RFC 4254 section 6.10
      }
      accept?.();
    });
    for (const [event, what] of [
      ['auth-agent', 'agent-forwarding'],
      ['x11', 'x11-forwarding'],
    ] as const) {
      s.on(event, (_accept: unknown, reject?: () => void) => {
        rec?.event({ t: 'ssh-refused', at: realClock.now(), ch, what });
        reject?.();
      });
    }
  }

  /** A shell, command or sftp session: judged, told, then refused, held for review or started. */
  #run(request: SshRequest, accepted: ServerChannel | undefined): void {
    // ssh2 accepts one shell, exec or subsystem per channel: a second one gets nothing.
    if (!this.#open(accepted, whatOf(request))) return;
    // A command line is judged in the grammar of the shell that will read it, once the target is signed in to (else its failure is told).
    // Read (a long line off the event loop) before it is judged: the judge and the transfer check then answer from what was read.
    const shell =
      request.kind === 'exec'
        ? this.#c
            .upstream()
            .then(() => this.#c.loginShell())
            .then(async (login) => {
              // One person's lines take turns with everyone else's: many long ones hold back only their own.
              const who = this.#c.session.identity;
              await readShellLine(request.command, login, `${who.issuer}\n${who.subject}`);
              return login;
            })
        : Promise.resolve(undefined);
    void shell
      .then(
        (loginShell) => this.#start(request, this.#decide(request, loginShell), loginShell),
        (err: unknown) => this.#refuse(describeError(err), false),
      )
      .catch((err: unknown) => this.#refuse(`the gateway failed: ${describeError(err)}`, false));
  }

  /** Keeps the client's channel for `what` among the session's open ones, until it closes; false when there is none. */
  #open(accepted: ServerChannel | undefined, what: string): boolean {
    if (!accepted) return false;
    const { fail, open } = this.#c;
    this.#down = guarded(accepted, fail);
    this.#what = what;
    open.add(this);
    this.#down.on('close', () => {
      open.delete(this);
      if (open.size === 0) open.emptied?.();
    });
    return true;
  }

  /** Answers a channel here whatever the policy: `message` on its error output, exit status 126 (a subsystem other than sftp). */
  #answer(accepted: ServerChannel | undefined, what: string, message: string): void {
    if (this.#open(accepted, what)) this.#refuse(message, true);
  }

  /** See {@link OpenChannel.tell}. */
  tell(message: string): void {
    const said = message.replace(/^hoop: /, '');
    if (!this.#running) return this.#refuse(`the ${this.#what}${this.#pty ? ' (with a terminal)' : ''} did not start: ${said}`, false);
    const down = this.#down;
    if (down && !down.destroyed && down.stderr.writable) down.stderr.write(`\r\n${hoopSays(said)}\r\n`);
  }

  /** Ends the channel here, once: `message` on its error output, exit status 126, recorded (as a refusal when `refused`, the policy's or the gateway's own). */
  #refuse(message: string, refused: boolean): void {
    if (this.#answered || this.#running || !this.#down) return;
    this.#answered = true;
    const said = hoopSays(message);
    this.#rec?.event({ t: 'ssh-exit', at: realClock.now(), ch: this.#n, status: REFUSED_EXIT_STATUS, ...(refused ? { refused: true } : {}), message: said });
    endChannel(this.#down, REFUSED_EXIT_STATUS, `${said}\r\n`, this.#c.fail);
  }

  /** The policy's verdict on `request`, recorded, told to the CLI, and counted as one of the session's statements. */
  #decide(request: SshRequest, loginShell: string | undefined): SshVerdict {
    const { session } = this.#c;
    const stopped = session.recording?.stopping?.();
    const verdict: SshVerdict = stopped
      ? { action: 'deny', rule: 'hoop:recording', reason: stopped }
      : (session.lane?.ssh?.decide(request.kind === 'exec' && this.#pty ? { ...request, terminal: true } : request, loginShell) ?? { action: 'allow', reason: 'no ssh policy' });
    this.#rec?.event({
      t: request.kind === 'exec' ? 'ssh-exec' : request.kind === 'shell' ? 'ssh-shell' : 'ssh-sftp-start',
      at: realClock.now(),
      ch: this.#n,
      ...(request.kind === 'exec' ? { command: request.command } : {}),
      ...(this.#pty ? { pty: true } : {}),
      decision: verdict.action,
      ...(verdict.rule ? { rule: verdict.rule } : {}),
    });
    // The CLI's own record keeps what the gateway decided, to be checked against this record later
    // (a message that cannot be sent is the CLI's loss, never the session's end).
    try {
      session.channel.sendControl({
        type: SSH_DECISION,
        kind: request.kind,
        ...(request.kind === 'exec' ? decisionCommand(request.command) : {}),
        decision: verdict.action,
        ...(verdict.rule ? { rule: verdict.rule } : {}),
      });
    } catch (err) {
      session.log.debug('ssh.decision-not-sent', { session: session.id, error: describeError(err) });
    }
    // Each command, shell and sftp session is a statement of the session, as each SQL statement is; a refusal is counted as one.
    session.report?.ran();
    return verdict;
  }

  /** Refuses what the verdict denies or a review does not approve; else starts it on the target and relays it. */
  async #start(request: SshRequest, verdict: SshVerdict, loginShell: string | undefined): Promise<void> {
    const { session } = this.#c;
    // An sftp server started as a command meets the same read-only checks as the subsystem: told now, while the line read for the judge is at hand (a review may outlast it).
    const stage = request.kind === 'sftp' || (request.kind === 'exec' && fileTransferOf(request.command, loginShell) === 'sftp') ? 'sftp' : request.kind;
    if (verdict.action === 'deny') {
      session.report?.refused({ action: 'deny', rule: verdict.rule ?? 'hoop:ssh', reason: verdict.reason, message: verdict.message ?? '' });
      return this.#refuse(`${verdict.message ?? `the policy does not allow this ${this.#what}`} (${verdict.reason})`, true);
    }
    if (verdict.action === 'review') {
      const approved = await holdForReview(session, request, verdict, this.#down!);
      if (approved !== true) {
        session.report?.refused({ action: 'review', rule: verdict.rule ?? 'hoop:ssh', reason: approved, message: '' });
        return this.#refuse(approved, true);
      }
    }
    let u: SshClient;
    try {
      u = await this.#c.upstream();
    } catch (err) {
      return this.#refuse(describeError(err), false);
    }
    this.#launch(u, request, stage, this.#pty);
  }

  /**
   * Opens what `request` asks for on the target, with `pty` if any, and relays it. A failure is
   * told a moment later, once the target's connection has said whether it closed (then its close is
   * the reason); a terminal the target refused is done without, as OpenSSH's client does.
   */
  #launch(u: SshClient, request: SshRequest, stage: 'shell' | 'exec' | 'sftp', pty: PseudoTtyInfo | undefined): void {
    const { session, fail } = this.#c;
    const down = this.#down!;
    const opened = safely(fail, (err: Error | undefined, up: ClientChannel): void => {
      if (err) return void setImmediate(() => this.#startFailed(u, request, stage, pty, err));
      if (this.#answered || down.destroyed) return void up.close();
      this.#running = guarded(up, fail);
      relayRunning(session, this.#n, stage, this.#running, down, fail);
    });
    const options = { ...(Object.keys(this.#env).length > 0 ? { env: this.#env } : {}) };
    if (request.kind === 'exec') u.exec(request.command, { ...options, ...(pty ? { pty } : {}) }, opened);
    else if (request.kind === 'shell') u.shell(pty ?? false, options, opened);
    else u.subsys('sftp', opened);
  }

  /** What the target did not start: without the terminal it refused, else refused with the target's reason. */
  #startFailed(u: SshClient, request: SshRequest, stage: 'shell' | 'exec' | 'sftp', pty: PseudoTtyInfo | undefined, err: Error): void {
    if (this.#answered || !this.#down) return;
    if (pty && /pseudo-terminal/.test(err.message) && !this.#down.destroyed) return this.#withoutTerminal(u, request, stage);
    this.#refuse(`the SSH server of "${this.#c.session.connection.name}" did not start the ${this.#what}: ${err.message}`, false);
  }

  /** Starts what the target gave no terminal without one, as OpenSSH's client does, saying so on the error output. */
  #withoutTerminal(u: SshClient, request: SshRequest, stage: 'shell' | 'exec' | 'sftp'): void {
    const name = this.#c.session.connection.name;
    this.#down!.stderr.write(`${hoopSays(`the SSH server of "${name}" gave the ${this.#what} no terminal (it refused the pty); it runs without one`)}\r\n`);
    try {
      this.#launch(u, request, stage, undefined);
    } catch (err) {
      this.#refuse(`the SSH server of "${name}" did not start the ${this.#what}: ${describeError(err)}`, false); // ssh2 throws once the target's connection is gone
    }
  }
}

/** What a channel asks for, in words. */
function whatOf(request: SshRequest): string {
  return request.kind === 'exec' ? 'command' : request.kind === 'shell' ? 'shell' : 'sftp session';
}

/** Holds a command for review: true once approved, else what to tell the client. */
async function holdForReview(session: TunnelSession<SshConnection>, request: SshRequest, verdict: SshVerdict, down: ServerChannel): Promise<true | string> {
  const what = request.kind === 'exec' ? request.command : `(${request.kind})`;
  if (!session.reviews || !verdict.review) return `${verdict.message ?? 'this needs a review'}, and no reviewers are set for this connection (${verdict.reason})`;
  const pending = session.reviews.request(reviewAskOf(what, createHash('sha256').update(`ssh\0${request.kind}\0${what}`).digest('hex'), { ...verdict, review: verdict.review }));
  const kind = request.kind === 'exec' ? 'command' : request.kind === 'shell' ? 'shell' : 'sftp session';
  down.stderr.write(`hoop: ${verdict.message ?? `this ${kind} needs a review`} (${verdict.reason}); it waits for review ${pending.id} (a reviewer runs: hoop review approve ${pending.id})\r\n`);
  const onClose = (): void => pending.withdraw('cancel');
  const onEnd = (): void => pending.withdraw('session-ended');
  down.once('close', onClose);
  session.signal.addEventListener('abort', onEnd, { once: true });
  const outcome = await pending.decided;
  down.off('close', onClose);
  session.signal.removeEventListener('abort', onEnd);
  if (outcome.state === 'approved') {
    down.stderr.write(`hoop: review ${pending.id} approved by ${outcome.by.join(', ')}\r\n`);
    return true;
  }
  const held = `held because ${verdict.reason}`;
  if (outcome.state === 'denied') return `review ${pending.id} was denied by ${outcome.by}${outcome.reason ? `: ${outcome.reason}` : ''} (${held})`;
  if (outcome.state === 'expired') return `review ${pending.id} expired without a decision (${held})`;
  return `review ${pending.id} was withdrawn (${held})`;
}

/** Relays a running channel both ways, recorded, then its exit and close in order. */
function relayRunning(session: TunnelSession<SshConnection>, n: number, kind: 'shell' | 'exec' | 'sftp', up: ClientChannel, down: ServerChannel, fail: (err: unknown) => void): void {
  const rec = session.recording;
  const data = rec ? new SshDataRecorder(rec.stream) : undefined;
  const kept = { out: { bytes: 0 }, err: { bytes: 0 }, in: { bytes: 0 } };
  const input = rec?.sshInput ?? 'exec';
  const recordInput = input === 'all' || (input === 'exec' && kind === 'exec');
  // Each sftp operation is a statement too; a refused one is counted as a refusal.
  const sftp =
    kind === 'sftp'
      ? new SftpStage(session.lane?.ssh?.sftp === 'read-only', (e) => {
          rec?.stream.event({ at: realClock.now(), ch: n, ...e, t: 'ssh-sftp' });
          if (e.failed === undefined && e.op !== 'close') session.report?.ran();
          if (e.refused) session.report?.refused({ action: 'deny', rule: 'hoop:sftp-read-only', reason: `sftp ${e.op} of a read-only session`, message: '' });
        })
      : undefined;
  bridgeChannel(
    up,
    down,
    {
      ...(sftp ? { sftp } : {}),
      observe: (stream, chunk) => {
        if (data && (stream !== 'in' || recordInput)) data.data(n, SshStream[stream], kept[stream], chunk);
        return rec?.stream.behind;
      },
      exited: (exit, bytes) => rec?.stream.event({ t: 'ssh-exit', at: realClock.now(), ch: n, ...(exit ?? {}), bytes, ...(sftp ? { sftp: sftp.summary() } : {}) }),
    },
    fail,
  );
}
