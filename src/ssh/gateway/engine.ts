/**
 * The gateway side of SSH sessions. The tunnel carries an SSH connection: the client's own, or
 * the CLI's when it ends the client's SSH to keep its own record (src/ssh/local/terminator.ts).
 * The gateway ends it with an ssh2 server (its host key, which the client or the CLI pins; the
 * client proves the per-session key the CLI named in the tunnel's `Hoop-Ssh-Key`), tells the CLI
 * each decision (`ssh-decision`), opens the target with the credential only it holds, and relays
 * each channel the policy allows:
 *
 * - session channels: pty-req, env (allow-listed), window-change, signal, shell, exec and the sftp
 *   subsystem, then exit-status / exit-signal, EOF and close in the order the target sent them;
 * - direct-tcpip (`ssh -L`) to the `host:port` targets the policy lists;
 * - agent and X11 forwarding, remote forwarding (`ssh -R`) and other subsystems are refused.
 *
 * Refusals of a command, a shell or an sftp session are said on the channel's stderr, which the
 * ssh client prints, with exit status 126; a forwarding refused is a channel open failure with
 * the reason. A `review` holds the exec (nothing reaches the target) until a reviewer decides.
 * Bytes flow with back-pressure both ways: a channel's source is paused while its destination
 * (an ssh2 channel, whose window is SSH's own flow control) or the recording is behind.
 *
 * @see https://www.rfc-editor.org/rfc/rfc4254 (connection protocol)
 * @see https://github.com/gravitational/teleport/tree/master/lib/srv/forward (a recording SSH proxy)
 */
import { createHash } from 'node:crypto';
import ssh2 from 'ssh2';
import type { AuthContext, ClientChannel, Client as SshClient, Connection, PseudoTtyInfo, ServerChannel, Session } from 'ssh2';
import type { SshConnection } from '../../config/connection.js';
import type { SecretRef } from '../../config/secrets.js';
import { describeError } from '../../errors.js';
import { fileTransferOf, type SshRequest, type SshVerdict } from '../../policy/ssh.js';
import { sessionEndOf, type CloseReason, type Engine, type SessionOutcome, type TunnelSession } from '../../session/engine.js';
import { VERSION } from '../../version.js';
import { bridgeChannel, bridgeForward, decisionCommand, endChannel, guarded, safely, SSH_DECISION } from '../common/channels.js';
import { SSH_RECORD_ENCODER, SshDataRecorder, SshStream } from '../common/recorder.js';
import { parsedKey, provesKey } from '../common/keys.js';
import { SftpStage } from '../common/sftp-stage.js';
import { openUpstreamSsh, UpstreamSshError } from './upstream.js';

/** Options of the {@link SshEngine}. */
export interface SshEngineOptions {
  /** The gateway's SSH host key (OpenSSH private key text). */
  hostKey: string;
  resolveSecret: (ref: SecretRef) => Promise<string>;
  /** Deadline for the client to sign in (default 30 s). */
  handshakeTimeoutMs?: number;
  /** Deadline for connecting and signing in to the target (default 15 s). */
  upstreamTimeoutMs?: number;
}

/** Exit status of a command or shell the policy (or the gateway) refused, as shells use it for "cannot execute". */
export const REFUSED_EXIT_STATUS = 126;

/** How long a client has to close its side once the gateway ended the session; then the tunnel is cut. */
const END_GRACE_MS = 5_000;

/** The client's running channels; `emptied` is told when the last one closes. */
type OpenChannels = Set<ServerChannel> & { emptied?: () => void };

/** The gateway side of SSH sessions; see the module documentation. */
export class SshEngine implements Engine<SshConnection> {
  readonly recordEncoder = SSH_RECORD_ENCODER;
  readonly #o: SshEngineOptions;

  constructor(o: SshEngineOptions) {
    this.#o = o;
  }

  serve(session: TunnelSession<SshConnection>): Promise<SessionOutcome> {
    return new Promise<SessionOutcome>((resolve) => {
      const counts = { fromClient: 0, toClient: 0 };
      let reason: CloseReason | undefined;
      let detail: string | undefined;
      let upstream: Promise<SshClient> | undefined;
      let upstreamClient: SshClient | undefined;
      const { channel, log } = session;
      const who = { session: session.id, connection: session.connection.name };
      const end = (why: CloseReason, what?: string): void => {
        reason ??= why;
        detail ??= what;
        client?.end();
        upstreamClient?.end();
        if (channel.destroyed) return;
        channel.end();
        // A client that never closes its side must not keep the session (and the gateway's shutdown) waiting.
        setTimeout(() => channel.destroy(), END_GRACE_MS).unref();
      };
      /** The client's running channels: told on their stderr why the gateway ends the session. */
      const open: OpenChannels = new Set<ServerChannel>();
      const onAbort = (): void => {
        const e = sessionEndOf(session.signal);
        session.recording?.stream.event({ t: 'ssh-end', at: Date.now(), reason: e.reason, message: e.message });
        for (const down of open) down.stderr.write(`\r\n${e.message}${e.hint ? ` (${e.hint})` : ''}\r\n`);
        // A moment for those lines to leave before the connection ends.
        setTimeout(() => end(e.reason, e.message), open.size > 0 ? 100 : 0).unref();
      };
      session.signal.addEventListener('abort', onAbort, { once: true });
      /** Whatever a client sends that trips the engine (or ssh2) ends that one session, never the gateway. */
      const fail = (err: unknown): void => {
        log.warn('ssh.session-failed', { ...who, error: describeError(err) });
        end('protocol-violation', describeError(err));
      };
      channel.on('data', (b: Buffer) => (counts.fromClient += b.length));
      const write = channel.write.bind(channel);
      channel.write = ((chunk: Buffer, ...rest: never[]) => {
        counts.toClient += chunk.length;
        return write(chunk, ...rest);
      }) as typeof channel.write;
      const expected = session.sshClientKey ? parsedKey(session.sshClientKey) : undefined;
      const server = new ssh2.Server({ hostKeys: [this.#o.hostKey], ident: `hoop_${VERSION}` });
      let client: Connection | undefined;
      const signIn = setTimeout(() => end('handshake-timeout', 'the client did not sign in in time'), this.#o.handshakeTimeoutMs ?? 30_000);
      signIn.unref();
      server.on('connection', (c: Connection) => {
        client = guarded(c, fail);
        c.on('error', (err: Error) => log.debug('ssh.client-error', { ...who, error: describeError(err) }));
        c.on('authentication', (ctx: AuthContext) => {
          if (ctx.method !== 'publickey' || !expected || !provesKey(ctx, expected)) return ctx.reject(['publickey']);
          ctx.accept();
        });
        c.on('ready', () => {
          clearTimeout(signIn);
          session.recording?.stream.event({ t: 'ssh-signed-in', at: Date.now(), user: session.connection.user, target: `${session.connection.host}:${session.connection.port}` });
          upstream = openUpstreamSsh(session.connection, this.#o.resolveSecret, this.#o.upstreamTimeoutMs ?? 15_000).then((u) => {
            upstreamClient = guarded(u, fail);
            u.on('error', (err: Error) => log.debug('ssh.upstream-error', { ...who, error: describeError(err) }));
            u.on('close', () => end('upstream-closed'));
            return u;
          });
          upstream.catch((err: unknown) => {
            const e = err instanceof UpstreamSshError ? err : new UpstreamSshError('upstream-unavailable', describeError(err));
            log.warn('ssh.upstream-failed', { ...who, reason: e.reason, message: e.message });
            session.recording?.stream.event({ t: 'ssh-upstream-failed', at: Date.now(), reason: e.reason, message: e.message });
            reason ??= e.reason === 'host-key-mismatch' ? 'upstream-unavailable' : e.reason;
            detail ??= e.message;
            // The client's channels say why (those open, or the next it opens: a client that ends SSH
            // locally asks for its command a moment after signing in); then the connection ends.
            const said = (): void => void setTimeout(() => end(reason!, e.message), 100).unref();
            if (open.size > 0) setTimeout(said, 100).unref();
            else {
              open.emptied = said;
              setTimeout(said, END_GRACE_MS).unref();
            }
          });
          let channels = 0;
          c.on('session', (accept) => this.#session(session, guarded(accept(), fail), ++channels, () => upstream!, fail, open));
          c.on('tcpip', (accept, reject, info) => {
            const n = ++channels;
            const target = `${info.destIP}:${info.destPort}`;
            const allowed = session.ssh ? session.ssh.forward(info.destIP, info.destPort) : false;
            session.recording?.stream.event({ t: 'ssh-forward', at: Date.now(), ch: n, target, allowed });
            if (!allowed) {
              log.info('ssh.refused', { ...who, what: 'forward', target });
              session.recording?.notes?.refused();
              session.onRefusal?.({ action: 'deny', rule: 'hoop:ssh-forwarding', reason: `${target} is not in the policy's ssh.forwarding`, message: '' });
              return reject();
            }
            upstream!.then(
              (u) =>
                u.forwardOut(
                  info.srcIP,
                  info.srcPort,
                  info.destIP,
                  info.destPort,
                  safely(fail, (err: Error | undefined, up: ClientChannel) => {
                    if (err) {
                      session.recording?.stream.event({ t: 'ssh-forward-failed', at: Date.now(), ch: n, message: err.message });
                      return reject();
                    }
                    bridgeForward(guarded(up, fail), guarded(accept(), fail));
                  }),
                ),
              () => reject(),
            );
          });
          // Remote forwarding (`ssh -R`) and streamlocal forwarding: refused.
          c.on('request', (_accept, reject, name) => {
            session.recording?.stream.event({ t: 'ssh-refused', at: Date.now(), what: name });
            reject?.();
          });
        });
        c.on('close', () => {
          clearTimeout(signIn);
          upstream?.then(
            (u) => u.end(),
            () => undefined,
          );
          session.signal.removeEventListener('abort', onAbort);
          resolve({ reason: reason ?? 'client-disconnected', bytesFromClient: counts.fromClient, bytesToClient: counts.toClient, ...(detail !== undefined ? { detail } : {}) });
        });
      });
      // SSH has no half-closed connections: the client's end is the session's (ssh2 waits for the socket to close).
      channel.on('end', () => channel.end());
      channel.on('error', (err: Error) => {
        reason ??= 'client-disconnected';
        detail ??= describeError(err);
      });
      channel.on('close', () => {
        if (!client) resolve({ reason: reason ?? 'client-disconnected', bytesFromClient: counts.fromClient, bytesToClient: counts.toClient });
      });
      server.injectSocket(channel as never);
    });
  }

  /** One session channel: its requests, then the shell, command or subsystem it runs. */
  #session(session: TunnelSession<SshConnection>, s: Session, n: number, upstream: () => Promise<SshClient>, fail: (err: unknown) => void, open: OpenChannels): void {
    const rec = session.recording?.stream;
    let pty: PseudoTtyInfo | undefined;
    const env: Record<string, string> = {};
    let running: ClientChannel | undefined;
    s.on('pty', (accept, _reject, info) => {
      pty = info;
      rec?.event({ t: 'ssh-pty', at: Date.now(), ch: n, term: info.term, cols: info.cols, rows: info.rows });
      accept?.();
    });
    s.on('window-change', (accept, _reject, info) => {
      if (pty) pty = { ...pty, cols: info.cols, rows: info.rows, width: info.width, height: info.height };
      rec?.event({ t: 'ssh-resize', at: Date.now(), ch: n, cols: info.cols, rows: info.rows });
      running?.setWindow(info.rows, info.cols, info.height, info.width);
      accept?.();
    });
    s.on('env', (accept, reject, { key, val }) => {
      const allowed = session.ssh ? session.ssh.env(key) : /^(LANG|LC_\w+)$/.test(key);
      rec?.event({ t: 'ssh-env', at: Date.now(), ch: n, name: key, allowed });
      if (!allowed) return reject?.();
      env[key] = val;
      accept?.();
    });
    s.on('signal', (accept, reject, { name }) => {
      rec?.event({ t: 'ssh-signal', at: Date.now(), ch: n, signal: name });
      try {
        running?.signal(name);
      } catch {
        return reject?.(); // not a signal name of RFC 4254 section 6.10
      }
      accept?.();
    });
    s.on('auth-agent', (_accept, reject) => {
      rec?.event({ t: 'ssh-refused', at: Date.now(), ch: n, what: 'agent-forwarding' });
      reject?.();
    });
    s.on('x11', (_accept, reject) => {
      rec?.event({ t: 'ssh-refused', at: Date.now(), ch: n, what: 'x11-forwarding' });
      reject?.();
    });
    const run = (request: SshRequest, accepted: ServerChannel | undefined): void => {
      // ssh2 accepts one shell, exec or subsystem per channel: a second one gets nothing.
      if (!accepted) return;
      const down = guarded(accepted, fail);
      open.add(down);
      down.on('close', () => {
        open.delete(down);
        if (open.size === 0) open.emptied?.();
      });
      const verdict: SshVerdict = session.ssh?.decide(request) ?? { action: 'allow', reason: 'no ssh policy' };
      // An sftp server started as a command meets the same read-only checks as the subsystem.
      const stage = request.kind === 'sftp' || (request.kind === 'exec' && fileTransferOf(request.command) === 'sftp') ? 'sftp' : request.kind;
      rec?.event({
        t: request.kind === 'exec' ? 'ssh-exec' : request.kind === 'shell' ? 'ssh-shell' : 'ssh-sftp-start',
        at: Date.now(),
        ch: n,
        ...(request.kind === 'exec' ? { command: request.command } : {}),
        ...(pty ? { pty: true } : {}),
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
      const refuse = (message: string): void => {
        rec?.event({ t: 'ssh-exit', at: Date.now(), ch: n, status: REFUSED_EXIT_STATUS, refused: true });
        endChannel(down, REFUSED_EXIT_STATUS, `hoop: ${message}\r\n`, fail);
      };
      // Each command, shell and sftp session is a statement of the session, as each SQL statement is; a refusal is counted as one.
      session.recording?.notes?.statement();
      const start = async (): Promise<void> => {
        if (verdict.action === 'deny') {
          session.recording?.notes?.refused();
          session.onRefusal?.({ action: 'deny', rule: verdict.rule ?? 'hoop:ssh', reason: verdict.reason, message: verdict.message ?? '' });
          return refuse(`${verdict.message ?? `the policy does not allow this ${request.kind === 'exec' ? 'command' : request.kind}`} (${verdict.reason})`);
        }
        if (verdict.action === 'review') {
          const approved = await this.#review(session, request, verdict, down);
          if (approved !== true) {
            session.recording?.notes?.refused();
            return refuse(approved);
          }
        }
        let u: SshClient;
        try {
          u = await upstream();
        } catch (err) {
          return refuse(describeError(err));
        }
        const opened = safely(fail, (err: Error | undefined, up: ClientChannel): void => {
          if (err) return refuse(`the target refused to start the ${request.kind === 'exec' ? 'command' : request.kind}: ${err.message}`);
          running = guarded(up, fail);
          this.#bridge(session, n, stage, running, down, fail);
        });
        const options = { ...(Object.keys(env).length > 0 ? { env } : {}) };
        if (request.kind === 'exec') u.exec(request.command, { ...options, ...(pty ? { pty } : {}) }, opened);
        else if (request.kind === 'shell') u.shell(pty ?? false, options, opened);
        else u.subsys('sftp', opened);
      };
      void start().catch((err: unknown) => refuse(`the gateway failed: ${describeError(err)}`));
    };
    s.on('shell', (accept) => run({ kind: 'shell' }, accept()));
    s.on('exec', (accept, _reject, { command }) => run({ kind: 'exec', command }, accept()));
    s.on('subsystem', (accept, reject, { name }) => {
      if (name === 'sftp') return run({ kind: 'sftp' }, accept());
      rec?.event({ t: 'ssh-refused', at: Date.now(), ch: n, what: `subsystem ${name}` });
      reject?.();
    });
  }

  /** Holds a command for review: true once approved, else what to tell the client. */
  async #review(session: TunnelSession<SshConnection>, request: SshRequest, verdict: SshVerdict, down: ServerChannel): Promise<true | string> {
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
  #bridge(session: TunnelSession<SshConnection>, n: number, kind: 'shell' | 'exec' | 'sftp', up: ClientChannel, down: ServerChannel, fail: (err: unknown) => void): void {
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
}
