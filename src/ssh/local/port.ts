/**
 * One SSH connection of the gateway served on a local port for as long as a command runs
 * (`hoop connect bastion`, `hoop run --connect bastion`). Each TCP client of the port gets its own
 * authenticated session, a stream of the port's one hoop-mux/1 connection to the gateway. The
 * gateway's SSH engine ends the SSH connection it receives, decides, records and relays
 * (src/ssh/gateway/engine.ts). When the command keeps its own records, the client's SSH ends at
 * the port, which keeps the CLI's record and relays over SSH of its own (./terminator.ts);
 * otherwise the client's SSH bytes go through unchanged.
 *
 * The port writes, in a 0700 directory of the user, an `ssh_config` with a `Host <name>` entry,
 * a `known_hosts` pinning the host key the client meets (the gateway's, or the port's own when it
 * ends SSH) under that name (`HostKeyAlias`), and a key made
 * for this run (0600), which the gateway requires of the client: another local user or process
 * that reaches the port cannot sign in. `ssh -F <ssh_config> <name>`, scp, sftp, `rsync -e` and
 * git use them unchanged. In the runtime directory it also keeps one file per user that stays put,
 * `<runtime>/ssh_config` ({@link includeAllPorts}), which includes the `ssh_config` of every port
 * running there: one `Include` line for it in ~/.ssh/config makes `ssh <name>` work for every
 * connection, run after run.
 *
 * @see https://man.openbsd.org/ssh_config.5
 * @see https://man.openbsd.org/sshd.8#SSH_KNOWN_HOSTS_FILE_FORMAT
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { ResolvedTokenProvider } from '../../auth/token-provider.js';
import { describeError, ErrorCode, HoopError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { processExists } from '../../pid.js';
import { readOptionalFile, writePrivateFile } from '../../private-file.js';
import { runtimeDir } from '../../runtime-files.js';
import { TunnelTokenRenewal } from '../../auth/token-renewal.js';
import { newSessionId, TunnelMux } from '../../tunnel/transport.js';
import { VERSION } from '../../version.js';
import { newEd25519Key } from '../common/keys.js';
import { type SshClientRecord, terminateSsh } from './terminator.js';

/** Options of {@link openSshPort}. */
export interface SshPortOptions {
  env: NodeJS.ProcessEnv;
  provider: ResolvedTokenProvider;
  /** The connection, as `hoop connections` lists it. */
  name: string;
  /** The gateway's host keys for it (`type base64`), from `GET /v1/connections/{name}`. */
  hostKeys: readonly string[];
  /** The user name the generated config gives (the gateway signs in as the connection's own user). */
  user?: string;
  /** A TCP port on 127.0.0.1 (default: any free one). */
  port?: number;
  /** Where the port's directory (key, known hosts, ssh_config) goes (default: the runtime directory). */
  filesDir?: string;
  /** Said at the start of every session (a `context` control message). */
  context?: Record<string, string>;
  log: Logger;
  say: (line: string) => void;
  /** Told each session the port opens (the gateway's session id). */
  onSession?: (id: string) => void;
  /**
   * The command keeps its own records: each client's SSH connection then ends at the port
   * (./terminator.ts), which opens the CLI's record of each session the gateway records with this.
   */
  record?: (sessionId: string) => Promise<SshClientRecord | undefined>;
}

/** A local SSH port serving one connection. */
export interface SshPort {
  connection: string;
  host: string;
  port: number;
  /** The generated ssh_config: `ssh -F <configFile> <connection>`. */
  configFile: string;
  /** The user's one ssh_config that includes every running port's (a path that stays put), when the port's files are in the runtime directory. */
  includeFile?: string;
  knownHostsFile: string;
  /** The per-run private key the local client signs in with. */
  keyFile: string;
  /** Serves a client that reached the port another way than its listener (a contained run's bridge). */
  accept(socket: Socket): void;
  /** Stops listening, ends the tunnels, removes the files it wrote. */
  close(): Promise<void>;
}

/** A `Host` pattern ssh_config accepts for a connection name (letters, digits, `-_.`). */
function hostAlias(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, '-');
}

/** Quotes a path for ssh_config (double quotes; paths with `"` are refused). */
function configPath(path: string): string {
  if (path.includes('"')) throw new HoopError(ErrorCode.USAGE, `hoop cannot write an ssh_config naming ${path} (it contains a double quote); set XDG_RUNTIME_DIR to another directory`);
  return `"${path}"`;
}

/**
 * Writes `<runtime>/ssh_config`, the same text every time (rewritten only when it differs): an
 * `Include` of the `ssh_config` of every port whose files are in the runtime directory (a glob,
 * which OpenSSH expands each time it reads the file; none matching is no error). Returns its path.
 * @see https://man.openbsd.org/ssh_config.5#Include
 */
async function includeAllPorts(runtime: string): Promise<string> {
  await removeDeadPorts(runtime);
  const file = join(runtime, 'ssh_config');
  const text = [
    '# Written by hoop: the ssh_config of every `hoop connect` running for this user.',
    `# One line at the top of ~/.ssh/config keeps working run after run: Include ${configPath(file)}`,
    `Include ${configPath(join(runtime, 'ssh-*', 'ssh_config'))}`,
    '',
  ].join('\n');
  if ((await readOptionalFile(file)) !== text) await writePrivateFile(file, text);
  return file;
}

/**
 * Removes the files of ports whose process is gone (killed before it could remove them): the
 * include would otherwise still list their `Host` entries, and OpenSSH takes the first it reads.
 */
async function removeDeadPorts(runtime: string): Promise<void> {
  for (const entry of await readdir(runtime).catch(() => [] as string[])) {
    if (!entry.startsWith('ssh-')) continue;
    const text = await readOptionalFile(join(runtime, entry, 'ssh_config')).catch(() => undefined);
    const pid = Number(text && WRITER.exec(text)?.[1]);
    if (pid > 0 && !processExists(pid)) await rm(join(runtime, entry), { recursive: true, force: true });
  }
}

/** The first line of a port's ssh_config: which process wrote it. */
const WRITER = /^# Written by hoop connect .* \(pid (\d+)\); removed when it stops\./;

/** Opens a local SSH port for connection `o.name`; see the module documentation. */
export async function openSshPort(o: SshPortOptions): Promise<SshPort> {
  const { provider, name, log, say } = o;
  const runtime = o.filesDir === undefined ? await runtimeDir(o.env) : undefined;
  const dir = await mkdtemp(join(o.filesDir ?? runtime!, `ssh-${hostAlias(name)}-`));
  const keys: PortKeys = {
    client: newEd25519Key(`hoop connect ${name}`),
    // Ending SSH here, the port shows the local client a host key of its own.
    ...(o.record ? { host: newEd25519Key(`hoop connect ${name} (this machine)`) } : {}),
  };
  const renewal = new TunnelTokenRenewal(provider, log, say);
  // The port's sessions share one connection to the gateway (each still authenticated on its own).
  const tunnels = new TunnelMux({ gateway: provider.gateway, clientVersion: VERSION, ...(provider.ca ? { ca: provider.ca } : {}) });
  const sockets = new Set<Socket>();
  const serve = (socket: Socket): void => {
    socket.pause();
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    void serveClient(socket, o, keys, tunnels, renewal);
  };
  // No Nagle: the window adjustments and acknowledgements SSH sends back are small writes, and held
  // for an ACK they stalled uploads (scp up 40 MB/s instead of 140 in `npm run bench`).
  const server: Server = createServer({ pauseOnConnect: true, noDelay: true }, serve);
  const close = async (): Promise<void> => {
    renewal.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    tunnels.close();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const files = await writeKeyFiles(dir, name, keys, o.hostKeys);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: o.port ?? 0 }, () => resolve());
    });
    const port = (server.address() as { port: number }).port;
    await writeFile(files.configFile, sshConfig(name, port, files, o.user), { mode: 0o600, flag: 'wx' });
    const includeFile = runtime !== undefined ? await includeAllPorts(runtime) : undefined;
    return { connection: name, host: '127.0.0.1', port, ...files, ...(includeFile ? { includeFile } : {}), accept: serve, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** The port's keys: the one the local client signs in with, and (when SSH ends at the port) the host key it shows. */
interface PortKeys {
  client: ReturnType<typeof newEd25519Key>;
  host?: ReturnType<typeof newEd25519Key>;
}

/** The port's files in `dir`. */
interface PortFiles {
  configFile: string;
  knownHostsFile: string;
  keyFile: string;
}

/** Writes the client's key pair and the known hosts it checks (the port's own host key, or the gateway's); the files, and where its config goes. */
async function writeKeyFiles(dir: string, name: string, keys: PortKeys, gatewayHostKeys: readonly string[]): Promise<PortFiles> {
  const files = { keyFile: join(dir, 'id_ed25519'), knownHostsFile: join(dir, 'known_hosts'), configFile: join(dir, 'ssh_config') };
  await writeFile(files.keyFile, keys.client.private, { mode: 0o600, flag: 'wx' });
  await writeFile(`${files.keyFile}.pub`, `${keys.client.public.trim()}\n`, { mode: 0o600, flag: 'wx' });
  const pinned = keys.host ? [typeAndKey(keys.host.public)] : gatewayHostKeys;
  await writeFile(files.knownHostsFile, pinned.map((k) => `hoop-${hostAlias(name)} ${k}\n`).join(''), { mode: 0o600, flag: 'wx' });
  return files;
}

/** The ssh_config that reaches connection `name` on `port`, with the port's key and known hosts only. */
function sshConfig(name: string, port: number, files: PortFiles, user: string | undefined): string {
  const alias = hostAlias(name);
  return [
    `# Written by hoop connect ${name} (pid ${process.pid}); removed when it stops.`,
    `Host ${alias}`,
    '  HostName 127.0.0.1',
    `  Port ${port}`,
    ...(user ? [`  User ${user}`] : []),
    `  HostKeyAlias hoop-${alias}`,
    `  UserKnownHostsFile ${configPath(files.knownHostsFile)}`,
    '  StrictHostKeyChecking yes',
    '  CheckHostIP no',
    `  IdentityFile ${configPath(files.keyFile)}`,
    '  IdentitiesOnly yes',
    '  IdentityAgent none',
    '  PreferredAuthentications publickey',
    '  PasswordAuthentication no',
    '  KbdInteractiveAuthentication no',
    '  ForwardAgent no',
    '  ForwardX11 no',
    '',
  ].join('\n');
}

/** A public key line's type and key, without its comment. */
function typeAndKey(publicKey: string): string {
  return publicKey.trim().split(/\s+/).slice(0, 2).join(' ');
}

/** One local client: its own session on the port's connection to the gateway, relayed as bytes or (keeping records) with SSH ended at the port. */
async function serveClient(socket: Socket, o: SshPortOptions, keys: PortKeys, tunnels: TunnelMux, renewal: TunnelTokenRenewal): Promise<void> {
  const { say } = o;
  try {
    const { token } = await o.provider.current();
    const opened = await tunnels.open({ connection: o.name, token, sessionId: newSessionId(), sshKey: typeAndKey(keys.client.public), via: 'connect' });
    const channel = opened.channel;
    renewal.track(channel, token);
    if (o.context) channel.sendControl({ type: 'context', fields: o.context });
    o.onSession?.(opened.sessionId);
    channel.on('control', (m: { type: string; message?: unknown }) => {
      if (m.type === 'close' && typeof m.message === 'string') say(`session ${opened.sessionId} closed: ${m.message}`);
    });
    channel.on('error', (err: Error) => {
      say(`session ${opened.sessionId}: ${describeError(err)}`);
      socket.destroy();
    });
    socket.on('close', () => channel.destroy());
    if (keys.host) {
      const record = opened.clientRecord ? o.record : undefined;
      await terminateSsh({
        socket,
        tunnel: channel,
        hostKey: keys.host.private,
        clientKey: keys.client.private,
        gatewayHostKeys: o.hostKeys,
        ...(record ? { openRecord: () => record(opened.sessionId) } : {}),
        say: (line) => say(`session ${opened.sessionId}: ${line}`),
      });
      return;
    }
    socket.pipe(channel);
    channel.pipe(socket);
    socket.resume();
  } catch (err) {
    const e = err instanceof HoopError ? err : new HoopError(ErrorCode.GATEWAY_UNREACHABLE, describeError(err));
    say(`${e.message}${e.hint ? ` (${e.hint})` : ''}`);
    socket.destroy();
  }
}
