/**
 * One session channel of an SSH session at the gateway (RFC 4254 section 6): its requests (pty,
 * env, window-change, signal; agent and X11 forwarding refused), then the shell, command or sftp
 * subsystem it runs, judged by the policy, held for review, refused on its stderr with exit status
 * 126, or relayed to the target both ways, recorded.
 *
 * @see https://www.rfc-editor.org/rfc/rfc4254#section-6
 */
import { createHash } from 'node:crypto';
import type { Client as SshClient, ClientChannel, PseudoTtyInfo, ServerChannel, Session } from 'ssh2';
import type { SshConnection } from '../../config/connection.js';
import { describeError, hoopSays } from '../../errors.js';
import { fileTransferOf, type SshRequest, type SshVerdict } from '../../policy/ssh.js';
import type { RecordingStream } from '../../recording/thread.js';
import type { TunnelSession } from '../../session/engine.js';
import { bridgeChannel, decisionCommand, endChannel, guarded, safely, SSH_DECISION } from '../common/channels.js';
import { SshDataRecorder, SshStream } from '../common/recorder.js';
import { SftpStage } from '../common/sftp-stage.js';

/** Exit status of a command or shell the policy (or the gateway) refused, as shells use it for "cannot execute". */
export const REFUSED_EXIT_STATUS = 126;

/** The client's running channels; `emptied` is told when the last one closes. */
export type OpenChannels = Set<ServerChannel> & { emptied?: () => void };

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
class SessionChannel {
  readonly #c: ChannelContext;
  readonly #n: number;
  readonly #rec: RecordingStream | undefined;
  #pty: PseudoTtyInfo | undefined;
  readonly #env: Record<string, string> = {};
  /** The target's channel, once it runs. */
  #running: ClientChannel | undefined;

  constructor(c: ChannelContext, s: Session, n: number) {
    this.#c = c;
    this.#n = n;
    this.#rec = c.session.recording?.stream;
    this.#requests(s);
    s.on('shell', (accept) => this.#run({ kind: 'shell' }, accept()));
    s.on('exec', (accept, _reject, { command }) => this.#run({ kind: 'exec', command }, accept()));
    s.on('subsystem', (accept, reject, { name }) => {
      if (name === 'sftp') return this.#run({ kind: 'sftp' }, accept());
      this.#rec?.event({ t: 'ssh-refused', at: Date.now(), ch: n, what: `subsystem ${name}` });
      reject?.();
    });
  }

  /** The requests that shape what runs: pty, window-change, env (allow-listed), signal; agent and X11 forwarding refused. */
  #requests(s: Session): void {
    const rec = this.#rec;
    const ch = this.#n;
    s.on('pty', (accept, _reject, info) => {
      this.#pty = info;
      rec?.event({ t: 'ssh-pty', at: Date.now(), ch, term: info.term, cols: info.cols, rows: info.rows });
      accept?.();
    });
    s.on('window-change', (accept, _reject, info) => {
      if (this.#pty) this.#pty = { ...this.#pty, cols: info.cols, rows: info.rows, width: info.width, height: info.height };
      rec?.event({ t: 'ssh-resize', at: Date.now(), ch, cols: info.cols, rows: info.rows });
      this.#running?.setWindow(info.rows, info.cols, info.height, info.width);
      accept?.();
    });
    s.on('env', (accept, reject, { key, val }) => {
      const { ssh } = this.#c.session;
      const allowed = ssh ? ssh.env(key) : /^(LANG|LC_\w+)$/.test(key);
      rec?.event({ t: 'ssh-env', at: Date.now(), ch, name: key, allowed });
      if (!allowed) return reject?.();
      this.#env[key] = val;
      accept?.();
    });
    s.on('signal', (accept, reject, { name }) => {
      rec?.event({ t: 'ssh-signal', at: Date.now(), ch, signal: name });
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
        rec?.event({ t: 'ssh-refused', at: Date.now(), ch, what });
        reject?.();
      });
    }
  }

  /** A shell, command or sftp session: judged, told, then refused, held for review or started. */
  #run(request: SshRequest, accepted: ServerChannel | undefined): void {
    // ssh2 accepts one shell, exec or subsystem per channel: a second one gets nothing.
    if (!accepted) return;
    const { fail, open } = this.#c;
    const down = guarded(accepted, fail);
    open.add(down);
    down.on('close', () => {
      open.delete(down);
      if (open.size === 0) open.emptied?.();
    });
    const refuse = (message: string): void => {
      this.#rec?.event({ t: 'ssh-exit', at: Date.now(), ch: this.#n, status: REFUSED_EXIT_STATUS, refused: true });
      endChannel(down, REFUSED_EXIT_STATUS, `${hoopSays(message)}\r\n`, fail);
    };
    // A command line is judged in the grammar of the shell that will read it, once the target is signed in to (else its failure is told).
    const shell = request.kind === 'exec' ? this.#c.upstream().then(() => this.#c.loginShell()) : Promise.resolve(undefined);
    void shell
      .then(
        (loginShell) => this.#start(request, this.#decide(request, loginShell), down, refuse, loginShell),
        (err: unknown) => refuse(describeError(err)),
      )
      .catch((err: unknown) => refuse(`the gateway failed: ${describeError(err)}`));
  }

  /** The policy's verdict on `request`, recorded, told to the CLI, and counted as one of the session's statements. */
  #decide(request: SshRequest, loginShell: string | undefined): SshVerdict {
    const { session } = this.#c;
    const stopped = session.recording?.stopping?.();
    const verdict: SshVerdict = stopped ? { action: 'deny', rule: 'hoop:recording', reason: stopped } : (session.ssh?.decide(request, loginShell) ?? { action: 'allow', reason: 'no ssh policy' });
    this.#rec?.event({
      t: request.kind === 'exec' ? 'ssh-exec' : request.kind === 'shell' ? 'ssh-shell' : 'ssh-sftp-start',
      at: Date.now(),
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
    session.recording?.notes?.statement();
    return verdict;
  }

  /** Refuses what the verdict denies or a review does not approve; else starts it on the target and relays it. */
  async #start(request: SshRequest, verdict: SshVerdict, down: ServerChannel, refuse: (message: string) => void, loginShell: string | undefined): Promise<void> {
    const { session, fail } = this.#c;
    if (verdict.action === 'deny') {
      session.recording?.notes?.refused();
      session.report?.refused({ action: 'deny', rule: verdict.rule ?? 'hoop:ssh', reason: verdict.reason, message: verdict.message ?? '' });
      return refuse(`${verdict.message ?? `the policy does not allow this ${request.kind === 'exec' ? 'command' : request.kind}`} (${verdict.reason})`);
    }
    if (verdict.action === 'review') {
      const approved = await holdForReview(session, request, verdict, down);
      if (approved !== true) {
        session.recording?.notes?.refused();
        return refuse(approved);
      }
    }
    let u: SshClient;
    try {
      u = await this.#c.upstream();
    } catch (err) {
      return refuse(describeError(err));
    }
    // An sftp server started as a command meets the same read-only checks as the subsystem.
    const stage = request.kind === 'sftp' || (request.kind === 'exec' && fileTransferOf(request.command, loginShell) === 'sftp') ? 'sftp' : request.kind;
    const opened = safely(fail, (err: Error | undefined, up: ClientChannel): void => {
      if (err) return refuse(`the target refused to start the ${request.kind === 'exec' ? 'command' : request.kind}: ${err.message}`);
      this.#running = guarded(up, fail);
      relayRunning(session, this.#n, stage, this.#running, down, fail);
    });
    const pty = this.#pty;
    const options = { ...(Object.keys(this.#env).length > 0 ? { env: this.#env } : {}) };
    if (request.kind === 'exec') u.exec(request.command, { ...options, ...(pty ? { pty } : {}) }, opened);
    else if (request.kind === 'shell') u.shell(pty ?? false, options, opened);
    else u.subsys('sftp', opened);
  }
}

/** Holds a command for review: true once approved, else what to tell the client. */
async function holdForReview(session: TunnelSession<SshConnection>, request: SshRequest, verdict: SshVerdict, down: ServerChannel): Promise<true | string> {
  const what = request.kind === 'exec' ? request.command : `(${request.kind})`;
  if (!session.reviews || !verdict.review) return `${verdict.message ?? 'this needs a review'}, and no reviewers are set for this connection (${verdict.reason})`;
  const pending = session.reviews.request({
    sql: what,
    digest: createHash('sha256').update(`ssh\0${request.kind}\0${what}`).digest('hex'),
    ...(verdict.rule ? { rule: verdict.rule } : {}),
    ...(verdict.message ? { message: verdict.message } : {}),
    reason: verdict.reason,
    settings: verdict.review,
  });
  down.stderr.write(`hoop: ${verdict.message ?? 'this command needs a review'}; it waits for review ${pending.id} (a reviewer runs: hoop review approve ${pending.id})\r\n`);
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
  if (outcome.state === 'denied') return `review ${pending.id} was denied by ${outcome.by}${outcome.reason ? `: ${outcome.reason}` : ''}`;
  if (outcome.state === 'expired') return `review ${pending.id} expired without a decision`;
  return `review ${pending.id} was withdrawn`;
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
      ? new SftpStage(session.ssh?.sftp === 'read-only', (e) => {
          rec?.stream.event({ at: Date.now(), ch: n, ...e, t: 'ssh-sftp' });
          if (e.failed === undefined && e.op !== 'close') rec?.notes?.statement();
          if (e.refused) rec?.notes?.refused();
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
      exited: (exit, bytes) => rec?.stream.event({ t: 'ssh-exit', at: Date.now(), ch: n, ...(exit ?? {}), bytes, ...(sftp ? { sftp: sftp.summary() } : {}) }),
    },
    fail,
  );
}
