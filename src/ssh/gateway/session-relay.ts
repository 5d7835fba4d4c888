/**
 * One SSH session at the gateway, in named steps: the tunnel's bytes are counted and handed to an
 * ssh2 server ({@link SshSessionRelay.start}); the client signs in with the key the CLI named
 * ({@link #accept}); once it has, the target is opened with the gateway's credential
 * ({@link #openUpstream}) and each channel the client opens is served (./session-channel.ts) or
 * forwarded ({@link #forward}); the session ends once ({@link #end}) and is told how
 * ({@link #finish}).
 */
import { realClock } from '../../clock.js';
import type { AuthContext, Client as SshClient, ClientChannel, Connection, TcpipRequestInfo } from 'ssh2';
import ssh2 from '../common/ssh2-vendor.js';
import type { SshConnection } from '../../config/connection.js';
import type { SecretRef } from '../../config/secrets.js';
import { describeError } from '../../errors.js';
import { sessionEndOf, type CloseReason, type SessionOutcome, type TunnelSession } from '../../session/engine.js';
import { END_GRACE_MS, RelayEnd } from '../../session/relay-end.js';
import { VERSION } from '../../version.js';
import { bridgeForward, guarded, safely } from '../common/channels.js';
import { disconnectSaying, openFailureOf, rejectSaying } from '../common/reasons.js';
import { parsedKey, provesKey } from '../common/keys.js';
import { type OpenChannels, serveSessionChannel } from './session-channel.js';
import { loginShellOf, openUpstreamSsh, UpstreamSshError } from './upstream.js';

/** Options of the SSH engine (./engine.ts). */
export interface SshEngineOptions {
  /** The gateway's SSH host key (OpenSSH private key text). */
  hostKey: string;
  resolveSecret: (ref: SecretRef) => Promise<string>;
  /** Deadline for the client to sign in (default 30 s). */
  handshakeTimeoutMs?: number;
  /** Deadline for connecting and signing in to the target (default 15 s). */
  upstreamTimeoutMs?: number;
}

/** See the module documentation. */
export class SshSessionRelay {
  readonly #session: TunnelSession<SshConnection>;
  readonly #o: SshEngineOptions;
  readonly #who: { session: string; connection: string };
  /** How the session ends (src/session/relay-end.ts); its `ending`: the gateway is ending the session, or the client has gone (the target's close is no news to tell). */
  readonly #relayEnd: RelayEnd;
  /** The client's running channels: told on their stderr why the gateway ends the session. */
  readonly #open: OpenChannels = new Set();
  #client: Connection | undefined;
  #upstream: Promise<SshClient> | undefined;
  #upstreamClient: SshClient | undefined;
  /** The target user's login shell, asked or being asked; a failed ask is forgotten, so one slow or refused answer does not make the session's every line uncertain. */
  #shell: Promise<string | undefined> | undefined;
  #channels = 0;
  #signIn: NodeJS.Timeout | undefined;
  /** Whatever a client sends that trips the engine (or ssh2) ends that one session, never the gateway. */
  readonly #fail = (err: unknown): void => {
    this.#session.log.warn('ssh.session-failed', { ...this.#who, error: describeError(err) });
    this.#end('protocol-violation', `the gateway ended this SSH session: ${describeError(err)}`);
  };

  constructor(session: TunnelSession<SshConnection>, o: SshEngineOptions) {
    this.#session = session;
    this.#o = o;
    this.#who = { session: session.id, connection: session.connection.name };
    this.#relayEnd = new RelayEnd(session, () => this.#aborted());
  }

  /** Serves the session until it ends; never rejects. */
  start(): Promise<SessionOutcome> {
    const { channel } = this.#session;
    this.#countBytes();
    const server = new ssh2.Server({ hostKeys: [this.#o.hostKey], ident: `hoop_${VERSION}` });
    this.#signIn = setTimeout(() => this.#end('handshake-timeout', 'the client did not sign in in time'), this.#o.handshakeTimeoutMs ?? 30_000);
    this.#signIn.unref();
    server.on('connection', (c: Connection) => this.#accept(c));
    // SSH has no half-closed connections: the client's end is the session's (ssh2 waits for the socket to close).
    channel.on('end', () => channel.end());
    channel.on('error', (err: Error) => this.#relayEnd.note('client-disconnected', describeError(err)));
    channel.on('close', () => {
      if (!this.#client) this.#finish();
    });
    server.injectSocket(channel as never);
    return this.#relayEnd.outcome;
  }

  /** Counts the tunnel's bytes each way, for the session's outcome. */
  #countBytes(): void {
    const { channel } = this.#session;
    const { bytes } = this.#relayEnd;
    channel.on('data', (b: Buffer) => (bytes.fromClient += b.length));
    const write = channel.write.bind(channel);
    channel.write = ((chunk: Buffer, ...rest: never[]) => {
      bytes.toClient += chunk.length;
      return write(chunk, ...rest);
    }) as typeof channel.write;
  }

  /** The client's SSH connection: it signs in with the per-session key the CLI named, or not at all. */
  #accept(c: Connection): void {
    const { log } = this.#session;
    const clientKey = this.#session.lane?.clientKey;
    const expected = clientKey ? parsedKey(clientKey) : undefined;
    this.#client = guarded(c, this.#fail);
    c.on('error', (err: Error) => log.debug('ssh.client-error', { ...this.#who, error: describeError(err) }));
    c.on('authentication', (ctx: AuthContext) => {
      if (ctx.method !== 'publickey' || !expected || !provesKey(ctx, expected)) return ctx.reject(['publickey']);
      ctx.accept();
    });
    c.on('ready', () => this.#signedIn(c));
    c.on('close', () => {
      this.#relayEnd.begin('client-disconnected');
      clearTimeout(this.#signIn);
      this.#upstream?.then(
        (u) => u.end(),
        () => undefined,
      );
      this.#finish();
    });
  }

  /** Signed in: the target is opened, and each channel the client opens is served, forwarded or refused. */
  #signedIn(c: Connection): void {
    const { connection } = this.#session;
    clearTimeout(this.#signIn);
    this.#session.recording?.stream.event({ t: 'ssh-signed-in', at: realClock.now(), user: connection.user, target: `${connection.host}:${connection.port}` });
    this.#upstream = this.#openUpstream();
    const context = { session: this.#session, upstream: () => this.#upstream!, loginShell: () => this.#knownShell(), fail: this.#fail, open: this.#open };
    void this.#knownShell();
    c.on('session', (accept) => serveSessionChannel(context, guarded(accept(), this.#fail), ++this.#channels));
    c.on('tcpip', (accept, reject, info) => this.#forward(accept, reject, info));
    // Remote forwarding (`ssh -R`) and streamlocal forwarding: refused.
    c.on('request', (_accept, reject, name) => {
      this.#session.recording?.stream.event({ t: 'ssh-refused', at: realClock.now(), what: name });
      reject?.();
    });
  }

  /** The target, signed in with the credential only the gateway holds; its failure is told on the client's channels, then ends the session. */
  #openUpstream(): Promise<SshClient> {
    const { log } = this.#session;
    const upstream = openUpstreamSsh(this.#session.connection, this.#o.resolveSecret, this.#o.upstreamTimeoutMs ?? 15_000).then((u) => {
      this.#upstreamClient = guarded(u, this.#fail);
      u.on('error', (err: Error) => log.debug('ssh.upstream-error', { ...this.#who, error: describeError(err) }));
      // ssh2 fails what waits on the target before it emits these: each waiting channel defers its failure a moment to hear why.
      u.on('end', () => this.#upstreamClosed());
      u.on('close', () => this.#upstreamClosed());
      return u;
    });
    upstream.catch((err: unknown) => this.#upstreamFailed(err));
    return upstream;
  }

  /** The login shell as last asked; asked again when the last ask found none. */
  #knownShell(): Promise<string | undefined> {
    if (this.#shell) return this.#shell;
    const asking = this.#loginShell(this.#upstream!);
    this.#shell = asking;
    void asking.then((shell) => {
      if (shell === undefined && this.#shell === asking) this.#shell = undefined;
    });
    return asking;
  }

  /** The target user's login shell: the connection's `shell:`, else asked of the target (recorded either way). */
  async #loginShell(upstream: Promise<SshClient>): Promise<string | undefined> {
    const { connection } = this.#session;
    const shell = connection.shell ?? (await upstream.then((u) => loginShellOf(u, this.#o.upstreamTimeoutMs ?? 15_000)).catch(() => undefined));
    this.#session.recording?.stream.event({ t: 'ssh-login-shell', at: realClock.now(), shell: shell ?? null, from: connection.shell !== undefined ? 'connection' : 'target' });
    return shell;
  }

  #upstreamFailed(err: unknown): void {
    const e = err instanceof UpstreamSshError ? err : new UpstreamSshError('upstream-unavailable', describeError(err));
    this.#session.log.warn('ssh.upstream-failed', { ...this.#who, reason: e.reason, message: e.message });
    this.#session.recording?.stream.event({ t: 'ssh-upstream-failed', at: realClock.now(), reason: e.reason, message: e.message });
    this.#relayEnd.note(e.reason === 'host-key-mismatch' ? 'upstream-unavailable' : e.reason, e.message);
    // The client's channels say why (those open, or the next it opens: a client that ends SSH
    // locally asks for its command a moment after signing in); then the connection ends.
    const said = (): void => void setTimeout(() => this.#end(this.#relayEnd.reason!, e.message), 100).unref();
    if (this.#open.size > 0) setTimeout(said, 100).unref();
    else {
      this.#open.emptied = said;
      setTimeout(said, END_GRACE_MS).unref();
    }
  }

  /** The target closed the gateway's connection: the client's channels are told, then the session ends saying so. */
  #upstreamClosed(): void {
    if (this.#relayEnd.ending) return;
    const { connection } = this.#session;
    const message = `the SSH server of "${connection.name}" (${connection.host}:${connection.port}) closed the connection (its log says why)`;
    this.#session.log.info('ssh.upstream-closed', this.#who);
    this.#tellAndEnd('upstream-closed', message);
  }

  /** Tells each open channel `message`, records it, then, a moment later for those lines to leave, ends the session saying it. */
  #tellAndEnd(why: CloseReason, message: string): void {
    this.#relayEnd.begin(why, message);
    for (const ch of this.#open) ch.tell(message);
    this.#session.recording?.stream.event({ t: 'ssh-end', at: realClock.now(), reason: why, message });
    setTimeout(() => this.#end(why, message), this.#open.size > 0 ? 100 : 0).unref();
  }

  /** A direct-tcpip channel (`ssh -L`): to a target the policy lists, else refused. */
  #forward(accept: () => ssh2.ServerChannel, reject: () => void, info: TcpipRequestInfo): void {
    const session = this.#session;
    const n = ++this.#channels;
    const target = `${info.destIP}:${info.destPort}`;
    const ssh = session.lane?.ssh;
    const allowed = ssh ? ssh.forward(info.destIP, info.destPort) : false;
    session.recording?.stream.event({ t: 'ssh-forward', at: realClock.now(), ch: n, target, allowed });
    if (!allowed) {
      session.log.info('ssh.refused', { ...this.#who, what: 'forward', target });
      session.report?.refused({ action: 'deny', rule: 'hoop:ssh-forwarding', reason: `${target} is not in the policy's ssh.forwarding`, message: '' });
      return rejectSaying(this.#client, reject, `forwarding to ${target} is not allowed: it is not in the policy's ssh.forwarding`);
    }
    this.#upstream!.then(
      (u) =>
        u.forwardOut(
          info.srcIP,
          info.srcPort,
          info.destIP,
          info.destPort,
          safely(this.#fail, (err: Error | undefined, up: ClientChannel) => {
            if (err) {
              session.recording?.stream.event({ t: 'ssh-forward-failed', at: realClock.now(), ch: n, message: err.message });
              return rejectSaying(this.#client, reject, `the SSH server of "${session.connection.name}" did not open ${target}: ${openFailureOf(err)}`);
            }
            bridgeForward(guarded(up, this.#fail), guarded(accept(), this.#fail));
          }),
        ),
      (err: unknown) => rejectSaying(this.#client, reject, describeError(err)),
    );
  }

  /** The gateway ends the session (its token, its run, a shutdown): the client's channels are told why, then it ends. */
  #aborted(): void {
    const e = sessionEndOf(this.#session.signal);
    this.#tellAndEnd(e.reason, `${e.message}${e.hint ? ` (${e.hint})` : ''}`);
  }

  /** Ends both SSH connections (the client's with a disconnect message saying why) and the tunnel, keeping the first reason given. */
  #end(why: CloseReason, what: string): void {
    this.#relayEnd.begin(why, what);
    if (this.#client) disconnectSaying(this.#client, this.#relayEnd.detail ?? what);
    this.#upstreamClient?.end();
    this.#relayEnd.linger(this.#session.channel);
  }

  /** Tells the engine how the session ended (once). */
  #finish(): void {
    this.#relayEnd.finish();
  }
}
