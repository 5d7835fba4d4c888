/**
 * The CLI's own end of an SSH session, for a port whose command keeps its own records: the local
 * client's SSH connection ends here (the port's host key, pinned in the known_hosts the port
 * writes; the client proves the port's per-run key), and a second SSH connection, signed in with
 * that same key, goes through the session's tunnel to the gateway, whose host key the CLI checks.
 * The gateway still decides everything; this end relays what the client asks for and writes the
 * CLI's record of the session: each command, shell and sftp session as the client asked for it,
 * each sftp operation, what the gateway said it decided (its `ssh-decision` control messages),
 * the output and exit status the client received. `hoop sessions verify` checks that record
 * against the gateway's (src/recording/cross-check.ts).
 *
 * Channels relayed: session channels (pty-req, env, window-change, signal, shell, exec, subsystem;
 * then exit-status / exit-signal, EOF, close), direct-tcpip (`ssh -L`), and `ssh -R` requests,
 * which the gateway answers. Agent and X11 forwarding and subsystems other than sftp are refused
 * here, as the gateway refuses them. The record opens only once the local client has signed in
 * (proved the key, not only offered it), and so does the SSH connection to the gateway.
 *
 * @see https://www.rfc-editor.org/rfc/rfc4254 (connection protocol)
 */
import { realClock } from '../../clock.js';
import type { Socket } from 'node:net';
import ssh2 from '../common/ssh2-vendor.js';
import type { AuthContext, ClientChannel, Client as SshClient, Connection, PseudoTtyInfo, ServerChannel, Session } from 'ssh2';
import { describeError, hoopSays } from '../../errors.js';
import type { RecordingStream } from '../../recording/thread.js';
import type { TunnelStream } from '../../tunnel/stream.js';
import { VERSION } from '../../version.js';
import { fileTransferOf } from '../../policy/ssh.js';
import { bridgeChannel, bridgeForward, decisionCommand, endChannel, guarded, safely, SSH_DECISION } from '../common/channels.js';
import { parsedKey, provesKey } from '../common/keys.js';
import { disconnectHeard, disconnectSaying, openFailureOf, rejectSaying, subsystemRefusal } from '../common/reasons.js';
import { SshDataRecorder, SshStream } from '../common/recorder.js';
import { SftpStage } from '../common/sftp-stage.js';

/** The CLI's record of one session, as the terminator writes it. */
export interface SshClientRecord {
  stream: RecordingStream;
  /** Writes the end event (`reason`, bytes) and closes, signs and uploads the record. */
  close(end: { reason: string } & Record<string, unknown>): void;
}

/** Exit status the local client gets when the gateway could not start what it asked for (ssh's own status for a failed connection). */
const START_FAILED = 255;
/** Exit status of what hoop refuses, as the gateway's (shells' "cannot execute"). */
const REFUSED = 126;
/** Keepalives to the gateway: a dead gateway or tunnel ends the session, as OpenSSH's ServerAlive* would through the gateway. */
const KEEPALIVE_MS = 15_000;
const KEEPALIVE_MISSES = 3;

/** Options of {@link terminateSsh}. */
export interface TerminateOptions {
  /** The local client's connection. */
  socket: Socket;
  /** The session's tunnel to the gateway. */
  tunnel: TunnelStream;
  /** This end's host key (OpenSSH private key text). */
  hostKey: string;
  /** The port's per-run key (OpenSSH private key text): the local client must prove it; this end signs in to the gateway with it. */
  clientKey: string;
  /** The gateway's host keys for the connection (`type base64`). */
  gatewayHostKeys: readonly string[];
  /** Opens the CLI's record of the session once the local client has signed in (undefined: none is kept); closed when the session ends. */
  openRecord?: () => Promise<SshClientRecord | undefined>;
  /** Deadline for each sign-in (default 30 s). */
  timeoutMs?: number;
  /** Told what went wrong, once, when the session could not go on. */
  say: (line: string) => void;
}

/** Why the session ended, and the bytes the local client sent and received. */
export interface TerminatedSession {
  reason: string;
  bytesFromClient: number;
  bytesToClient: number;
}

/** The gateway's side once both ends signed in: its connection, the record, and the statements awaiting the gateway's decision. */
interface Upstream {
  gateway: SshClient;
  rec: RecordingStream | undefined;
  decisions: Decisions;
}

/**
 * Binds each decision the gateway tells (`ssh-decision`) to the statement it is for: the oldest of
 * this session's statements of that kind and command still without one. One that fits none is
 * recorded as `unmatched`, which the cross-check reports.
 */
class Decisions {
  readonly #waiting: Array<{ ch: number; kind: string; command?: string }> = [];
  constructor(private readonly rec: RecordingStream | undefined) {}

  expect(ch: number, kind: 'exec' | 'shell' | 'sftp', command?: string): void {
    if (this.#waiting.length < 10_000) this.#waiting.push({ ch, kind, ...(command !== undefined ? { command: JSON.stringify(decisionCommand(command)) } : {}) });
  }

  told(m: Record<string, unknown>): void {
    const kind = m.kind === 'exec' || m.kind === 'shell' || m.kind === 'sftp' ? m.kind : undefined;
    const decision = m.decision === 'allow' || m.decision === 'deny' || m.decision === 'review' ? m.decision : undefined;
    const named = typeof m.command === 'string' ? { command: m.command } : typeof m.commandSha256 === 'string' ? { commandSha256: m.commandSha256 } : undefined;
    const command = named ? JSON.stringify(named) : undefined;
    const at = this.#waiting.findIndex((w) => w.kind === kind && w.command === command);
    const bound = kind && decision && at >= 0 ? this.#waiting.splice(at, 1)[0] : undefined;
    this.rec?.event({
      t: 'ssh-decision',
      at: realClock.now(),
      ...(bound ? { ch: bound.ch } : { unmatched: true }),
      kind: String(m.kind),
      ...(named ?? {}),
      decision: String(m.decision),
      ...(typeof m.rule === 'string' ? { rule: m.rule } : {}),
    });
  }
}

/** Ends the local client's SSH connection here and relays it to the gateway; see the module documentation. */
export function terminateSsh(o: TerminateOptions): Promise<TerminatedSession> {
  return new Promise<TerminatedSession>((resolve) => {
    const counts = { fromClient: 0, toClient: 0 };
    o.socket.on('data', (b: Buffer) => (counts.fromClient += b.length));
    const write = o.socket.write.bind(o.socket);
    o.socket.write = ((chunk: Buffer, ...rest: never[]) => {
      counts.toClient += chunk.length;
      return write(chunk, ...rest);
    }) as typeof o.socket.write;
    let reason: string | undefined;
    let local: Connection | undefined;
    let gateway: SshClient | undefined;
    let record: Promise<SshClientRecord | undefined> | undefined;
    const end = (why: string, message?: string): void => {
      if (reason === undefined && message) o.say(message);
      // The local client is told why in the disconnect message (ssh prints it), whoever ended the session.
      if (local && reason === undefined) disconnectSaying(local, message ?? 'the gateway closed the connection');
      reason ??= why;
      gateway?.end();
      o.socket.end();
      setTimeout(() => o.socket.destroy(), 1000).unref();
    };
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(signIn);
      o.tunnel.destroy();
      gateway?.end();
      const ended = { reason: reason ?? 'client-disconnected', bytesFromClient: counts.fromClient, bytesToClient: counts.toClient };
      void record?.then((r) => r?.close({ ...ended }));
      resolve(ended);
    };
    const fail = (err: unknown): void => end('protocol-error', `an SSH session ended: ${describeError(err)}`);
    const expected = parsedKey(o.clientKey);
    const server = new ssh2.Server({ hostKeys: [o.hostKey], ident: `hoop_${VERSION}` });
    const signIn = setTimeout(() => end('handshake-timeout', 'the local SSH client did not sign in in time'), o.timeoutMs ?? 30_000);
    signIn.unref();
    let user = '';
    server.on('connection', (c: Connection) => {
      local = guarded(c, fail);
      c.on('error', () => undefined);
      c.on('authentication', (ctx: AuthContext) => {
        if (ctx.method !== 'publickey' || !expected || !provesKey(ctx, expected)) return ctx.reject(['publickey']);
        user = ctx.username;
        ctx.accept();
      });
      c.on('ready', () => {
        clearTimeout(signIn);
        // Signed in (a signature verified, not a key only offered): now this end signs in to the gateway as the same user, and the record opens.
        record = o.openRecord?.().catch(() => undefined) ?? Promise.resolve(undefined);
        const up: Promise<Upstream> = Promise.all([signInToGateway(o, user, fail), record]).then(([{ client: g, heard }, r]) => {
          gateway = guarded(g, fail);
          g.on('close', () => end('gateway-closed', heard()));
          const decisions = new Decisions(r?.stream);
          o.tunnel.on('control', (m: Record<string, unknown>) => {
            if (m.type === SSH_DECISION) decisions.told(m);
          });
          return { gateway: g, rec: r?.stream, decisions };
        });
        up.catch((err: unknown) => end('gateway-refused', describeError(err)));
        /** Runs `fn` once the gateway's side is up; what it throws (ssh2 throws once the tunnel is gone) ends the session. */
        const withUp = (fn: (u: Upstream) => void, failed: (err: unknown) => void): void => {
          up.then(safely(fail, fn), failed);
        };
        let channels = 0;
        c.on('session', (accept) => sessionChannel(guarded(accept(), fail), ++channels, withUp, fail));
        c.on('tcpip', (accept, reject, info) => {
          const n = ++channels;
          const target = `${info.destIP}:${info.destPort}`;
          withUp(
            ({ gateway: g, rec }) =>
              g.forwardOut(
                info.srcIP,
                info.srcPort,
                info.destIP,
                info.destPort,
                safely(fail, (err: Error | undefined, upstream: ClientChannel) => {
                  // As the client saw it: the gateway opened the forwarding, or refused it.
                  rec?.event({ t: 'ssh-forward', at: realClock.now(), ch: n, target, allowed: !err, ...(err ? { message: err.message } : {}) });
                  if (err) return rejectSaying(c, reject, openFailureOf(err));
                  bridgeForward(guarded(upstream, fail), guarded(accept(), fail));
                }),
              ),
            (err: unknown) => rejectSaying(c, reject, describeError(err)),
          );
        });
        // `ssh -R`: the gateway answers; other global requests (OpenSSH's keepalives among them) are answered here.
        c.on('request', (accept, reject, name, info) => {
          if (name !== 'tcpip-forward' || !('bindAddr' in info)) return reject?.();
          withUp(
            ({ gateway: g, rec }) => {
              rec?.event({ t: 'ssh-request', at: realClock.now(), what: name, target: `${info.bindAddr}:${info.bindPort}` });
              g.forwardIn(info.bindAddr, info.bindPort, (err) => (err ? reject?.() : accept?.()));
            },
            () => reject?.(),
          );
        });
      });
      c.on('close', finish);
    });
    o.socket.on('close', () => {
      if (!local) finish();
    });
    server.injectSocket(o.socket as never);
    o.socket.resume();
  });
}

/** Signs in to the gateway through the tunnel with the port's key, checking the gateway's host key; `heard` is what its disconnect message says. */
function signInToGateway(o: TerminateOptions, username: string, fail: (err: unknown) => void): Promise<{ client: SshClient; heard: () => string | undefined }> {
  const pinned = o.gatewayHostKeys.map((k) => Buffer.from(k.trim().split(/\s+/)[1] ?? '', 'base64'));
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    let settled = false;
    let heard: () => string | undefined = () => undefined;
    client.on('ready', () => {
      settled = true;
      resolve({ client, heard });
    });
    client.on('error', (err: Error & { level?: string }) => {
      if (settled) return fail(err);
      settled = true;
      reject(
        new Error(
          err.level === 'client-authentication'
            ? "the gateway refused this port's key (the session's tunnel and key no longer match; run hoop connect again)"
            : `could not sign in to the gateway over SSH: ${describeError(err)}`,
        ),
      );
    });
    client.on('close', () => {
      if (!settled) reject(new Error('the gateway closed the session before this port signed in'));
      settled = true;
    });
    client.connect({
      sock: o.tunnel as never,
      username,
      privateKey: o.clientKey,
      readyTimeout: o.timeoutMs ?? 30_000,
      keepaliveInterval: KEEPALIVE_MS,
      keepaliveCountMax: KEEPALIVE_MISSES,
      // Only the gateway's published keys: ssh2 calls this with the raw key blob before signing in (RFC 4253 section 8).
      hostVerifier: (key: Buffer) => pinned.some((p) => p.equals(key)),
    });
    heard = disconnectHeard(client);
  });
}

/** One session channel: its requests, relayed to the gateway, and its record. */
function sessionChannel(s: Session, n: number, withUp: (fn: (u: Upstream) => void, failed: (err: unknown) => void) => void, fail: (err: unknown) => void): void {
  let pty: PseudoTtyInfo | undefined;
  const env: Record<string, string> = {};
  let running: ClientChannel | undefined;
  s.on('pty', (accept, _reject, info) => {
    pty = info;
    accept?.();
  });
  s.on('window-change', (accept, _reject, info) => {
    if (pty) pty = { ...pty, cols: info.cols, rows: info.rows, width: info.width, height: info.height };
    running?.setWindow(info.rows, info.cols, info.height, info.width);
    accept?.();
  });
  // The gateway decides which variables pass; the client does not wait for the answer (OpenSSH sends them without want-reply).
  s.on('env', (accept, _reject, { key, val }) => {
    env[key] = val;
    accept?.();
  });
  // A signal for a command not started yet has nothing to go to.
  s.on('signal', (accept, reject, { name }) => {
    if (!running) return reject?.();
    try {
      running.signal(name);
    } catch {
      return reject?.();
    }
    accept?.();
  });
  for (const what of ['auth-agent', 'x11'] as const) {
    s.on(what, (_accept: unknown, reject?: () => void) => reject?.());
  }
  type Start = { kind: 'exec'; command: string } | { kind: 'shell' } | { kind: 'sftp' };
  // Accepted at once, as the gateway does: OpenSSH may send EOF right after its request, and a channel not accepted by then cannot be.
  const start = (request: Start, accepted: ServerChannel | undefined): void => {
    if (!accepted) return;
    const down = guarded(accepted, fail);
    let downClosed = false;
    down.once('close', () => (downClosed = true));
    withUp(
      ({ gateway: g, rec, decisions }) => {
        const command = request.kind === 'exec' ? request.command : undefined;
        rec?.event({
          t: request.kind === 'exec' ? 'ssh-exec' : request.kind === 'shell' ? 'ssh-shell' : 'ssh-sftp-start',
          at: realClock.now(),
          ch: n,
          ...(command !== undefined ? { command } : {}),
          ...(pty ? { pty: true } : {}),
        });
        decisions.expect(n, request.kind, command);
        // An sftp server started as a command is read as sftp, as the gateway reads it.
        const stage = request.kind === 'sftp' || (command !== undefined && fileTransferOf(command) === 'sftp') ? 'sftp' : request.kind;
        const opened = safely(fail, (err: Error | undefined, channel: ClientChannel): void => {
          if (err) return startFailed(down, n, rec, `the gateway did not start the ${request.kind === 'exec' ? 'command' : request.kind}: ${err.message}`, fail);
          // The client left before the gateway answered: the command must not run on without it.
          if (downClosed) return channel.close();
          running = guarded(channel, fail);
          bridge(running, down, n, stage, rec, fail);
        });
        const options = Object.keys(env).length > 0 ? { env } : {};
        if (request.kind === 'exec') g.exec(request.command, { ...options, ...(pty ? { pty } : {}) }, opened);
        else if (request.kind === 'shell') g.shell(pty ?? false, options, opened);
        else g.subsys('sftp', opened);
      },
      (err) => startFailed(down, n, undefined, describeError(err), fail),
    );
  };
  s.on('shell', (accept) => start({ kind: 'shell' }, accept()));
  s.on('exec', (accept, _reject, { command }) => start({ kind: 'exec', command }, accept()));
  // Only sftp, as the gateway allows; another is refused here, said as the gateway says it.
  s.on('subsystem', (accept, _reject, { name }) => {
    if (name === 'sftp') return start({ kind: 'sftp' }, accept());
    const down = accept();
    if (down) endChannel(guarded(down, fail), REFUSED, `${hoopSays(subsystemRefusal(name))}\r\n`, fail);
  });
}

/** Tells the client, as ssh would, that what it asked for could not start. */
function startFailed(down: ServerChannel, n: number, rec: RecordingStream | undefined, message: string, fail: (err: unknown) => void): void {
  rec?.event({ t: 'ssh-exit', at: realClock.now(), ch: n, status: START_FAILED, message });
  endChannel(down, START_FAILED, `${hoopSays(message)}\r\n`, fail);
}

/** Relays a running channel and records it as the gateway does: output, a command's input, sftp operations, the exit. */
function bridge(up: ClientChannel, down: ServerChannel, n: number, kind: 'exec' | 'shell' | 'sftp', rec: RecordingStream | undefined, fail: (err: unknown) => void): void {
  const data = rec ? new SshDataRecorder(rec) : undefined;
  const kept = { out: { bytes: 0 }, err: { bytes: 0 }, in: { bytes: 0 } };
  const sftp = kind === 'sftp' ? new SftpStage(false, (e) => rec?.event({ at: realClock.now(), ch: n, ...e, t: 'ssh-sftp' })) : undefined;
  bridgeChannel(
    up,
    down,
    {
      ...(sftp ? { sftp } : {}),
      observe: (stream, chunk) => {
        // A shell's input is what the user typed (passwords too): kept only for commands, as the gateway keeps it by default.
        if (data && (stream !== 'in' || kind === 'exec')) data.data(n, SshStream[stream], kept[stream], chunk);
        return rec?.behind;
      },
      exited: (exit, bytes) => rec?.event({ t: 'ssh-exit', at: realClock.now(), ch: n, ...(exit ?? {}), bytes, ...(sftp ? { sftp: sftp.summary() } : {}) }),
    },
    fail,
  );
}
