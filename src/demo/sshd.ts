/**
 * An OpenSSH sshd of its own, on a free port of 127.0.0.1, for the demo and the tests: a fresh
 * host key, one client key authorised for the current OS user (root may sign in by key only),
 * sftp (`internal-sftp`), local forwarding, ptys (where it can give them, {@link sshdGivesTerminals});
 * nothing of the machine's own sshd configuration, nor the user's `~/.bashrc` for a command.
 *
 * @see https://man.openbsd.org/sshd_config
 */
import { realClock } from '../clock.js';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

/** A running sshd. */
export interface Sshd {
  host: '127.0.0.1';
  port: number;
  /** The OS user it lets in. */
  user: string;
  /** Its host key's public line (`ssh-ed25519 AAAA…`), to pin. */
  hostKey: string;
  /** The listening sshd's process id (each connection is served by a child of it). */
  pid: number;
  /** The authorised client key: its file, and its OpenSSH private key text. */
  clientKeyFile: string;
  clientKey: string;
  dir: string;
  stop(): Promise<void>;
}

/**
 * Where sshd, ssh-keygen and the ssh client are (by their usual paths, whatever PATH says), or
 * undefined when OpenSSH is not installed.
 */
export function findSshd(): { sshd: string; keygen: string; ssh: string } | undefined {
  const find = (paths: string[]): string | undefined => paths.find((p) => existsSync(p));
  const sshd = find(['/usr/sbin/sshd', '/usr/local/sbin/sshd', '/usr/bin/sshd']);
  const keygen = find(['/usr/bin/ssh-keygen', '/usr/local/bin/ssh-keygen']);
  const ssh = find(['/usr/bin/ssh', '/usr/local/bin/ssh']);
  return sshd && keygen && ssh ? { sshd, keygen, ssh } : undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, stderr: () => string, timeoutMs: number): Promise<void> {
  const deadline = realClock.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`sshd exited (${child.exitCode}): ${stderr().trim().split('\n').slice(-3).join(' ')}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (up) return;
    if (realClock.now() > deadline) throw new Error(`sshd did not listen on port ${port} within ${timeoutMs} ms: ${stderr().trim()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Whether an sshd this process starts can give a session a terminal: as root it can; as another
 * user on Linux only where a new pty is already in the `tty` group (devpts mounted with `gid=`
 * that group), since sshd gives the pty to that group and, when it may not, ends the connection.
 *
 * @see https://github.com/openssh/openssh-portable/blob/master/sshpty.c (pty_setowner)
 */
export function sshdGivesTerminals(): boolean {
  if (process.getuid?.() === 0) return true;
  const tty = /^tty:[^:]*:(\d+):/m.exec(readText('/etc/group'))?.[1];
  if (tty === undefined) return true; // no tty group: sshd leaves the pty in the user's own group
  const devpts = readText('/proc/self/mountinfo')
    .split('\n')
    .find((l) => l.split(' ')[4] === '/dev/pts' && / - devpts /.test(l));
  if (!devpts) return true; // not Linux's devpts: its ptys are the system's to give
  const gid = /[ ,]gid=(\d+)/.exec(devpts.slice(devpts.indexOf(' - ')))?.[1];
  return Number(gid ?? process.getegid?.()) === Number(tty);
}

/** A file's text, or '' when it cannot be read. */
function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/**
 * Starts an sshd; see the module documentation. `config` lines are added to its sshd_config. In
 * `dir` (made if missing) its keys are kept across starts; without, a temporary directory is
 * removed when it stops. `port`: the one to listen on (default: a free one).
 */
export async function startSshd(options: { config?: string[]; dir?: string; port?: number } = {}): Promise<Sshd> {
  const found = findSshd();
  if (!found) throw new Error('OpenSSH server is not installed (Debian: apt-get install openssh-server)');
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'hoop-sshd-'));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keygen = (file: string, comment: string): void => {
    if (!existsSync(join(dir, file))) execFileSync(found.keygen, ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', join(dir, file)]);
  };
  keygen('host_key', 'hoop-sshd-host');
  keygen('client_key', 'hoop-sshd-client');
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_key.pub')), { mode: 0o600 });
  // sshd's privilege separation directory, absent on machines where the packaged sshd never ran.
  if (process.getuid?.() === 0 && !existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755, recursive: true });
  const port = options.port ?? (await freePort());
  writeFileSync(
    join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host_key')}`,
      'PidFile none',
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'StrictModes no',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'UsePAM no',
      'AllowTcpForwarding local',
      'X11Forwarding no',
      // Else sshd drops the connection where it cannot give a pty (`PermitTTY no` refuses the pty instead, and hoop runs without one).
      `PermitTTY ${sshdGivesTerminals() ? 'yes' : 'no'}`,
      'PrintMotd no',
      'PrintLastLog no',
      'AcceptEnv LANG LC_* HOOP_*',
      // bash reads ~/.bashrc for a command from sshd only as a top-level shell (SHLVL < 2): what a command prints is the command's alone.
      'SetEnv SHLVL=1',
      'Subsystem sftp internal-sftp',
      'LogLevel ERROR',
      ...(options.config ?? []),
      '',
    ].join('\n'),
  );
  let err = '';
  const child = spawn(found.sshd, ['-D', '-e', '-f', join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-4000)));
  try {
    await waitForPort(port, child, () => err, 10_000);
  } catch (e) {
    child.kill('SIGKILL');
    if (!options.dir) rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const hostKey = readFileSync(join(dir, 'host_key.pub'), 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
  return {
    host: '127.0.0.1',
    port,
    user: userInfo().username,
    hostKey,
    pid: child.pid!,
    clientKeyFile: join(dir, 'client_key'),
    clientKey: readFileSync(join(dir, 'client_key'), 'utf8'),
    dir,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      if (!options.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
