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
 * Each session is an {@link SshSessionRelay} (./session-relay.ts), its session channels
 * ./session-channel.ts.
 *
 * @see https://www.rfc-editor.org/rfc/rfc4254 (connection protocol)
 * @see https://github.com/gravitational/teleport/tree/master/lib/srv/forward (a recording SSH proxy)
 */
import type { SshConnection } from '../../config/connection.js';
import type { Engine, SessionOutcome, TunnelSession } from '../../session/engine.js';
import { type SshEngineOptions, SshSessionRelay } from './session-relay.js';

export type { SshEngineOptions } from './session-relay.js';

/** The gateway side of SSH sessions; see the module documentation. */
export class SshEngine implements Engine<SshConnection> {
  readonly recordProtocol = 'ssh';
  readonly #o: SshEngineOptions;

  constructor(o: SshEngineOptions) {
    this.#o = o;
  }

  serve(session: TunnelSession<SshConnection>): Promise<SessionOutcome> {
    return new SshSessionRelay(session, this.#o).start();
  }
}
