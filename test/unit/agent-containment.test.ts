/**
 * What `hoop run` keeps from its command, decided before anything runs: the variables it withholds
 * (hoop's own, the CI platforms' token requests, the keychain's bus, what points clients around the
 * gateway and, contained, the session services' addresses), the sandbox's mounts by class
 * (private meeting places, hidden credentials, read-only code that runs later, shared paths) as
 * bubblewrap arguments, when containment cannot be claimed, and the seccomp program's shape.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { agentEnvironment, detectContainment, withheldVariable } from '../../src/agent/containment.js';
import { bwrapArguments, installRoot, type Mount, sandboxMounts, within } from '../../src/agent/sandbox.js';
import { scanTree } from '../../src/agent/tree-controls.js';
import { agentSeccompFilter } from '../../src/agent/seccomp.js';
import { swapper } from '../harness/racer.js';
import { thrown } from '../harness/thrown.js';

const base = mkdtempSync(join(tmpdir(), 'hoop-containment-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

describe("the agent's environment", () => {
  const inherited = {
    PATH: '/usr/bin',
    HOME: '/home/ada',
    HOOP_TOKEN: 'eyJ.person.token',
    HOOP_ID_TOKEN: 'eyJ.workload',
    HOOP_ID_TOKEN_FILE: '/run/ci/id-token',
    HOOP_CONFIG_DIR: '/home/ada/.config/hoop',
    HOOP_TOKEN_STORE: 'file',
    HOOP_DEMO_REVIEWER: '/home/ada/.local/state/hoop/demo/reviewer',
    HOOP_LOG_LEVEL: 'debug',
    HOOP_CLIENT_RECORD: 'off',
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'gh-secret',
    ACTIONS_ID_TOKEN_REQUEST_URL: 'https://example.invalid',
    ACTIONS_RUNTIME_TOKEN: 'gh-runtime',
    CIRCLE_OIDC_TOKEN_V2: 'eyJ.circle',
    DBUS_SESSION_BUS_ADDRESS: 'unix:path=/run/user/1000/bus',
    PGPASSWORD: 'x',
    PGHOST: 'db.internal',
    DATABASE_URL: 'postgres://u:p@db/x',
    EDITOR: 'vi',
    DISPLAY: ':0',
    TMUX: '/tmp/tmux-1000/default,1,0',
    SSH_AUTH_SOCK: '/tmp/ssh-x/agent.1',
    VSCODE_IPC_HOOK_CLI: '/run/user/1000/vscode.sock',
  };
  const session = { DISPLAY: ':0', TMUX: '/tmp/tmux-1000/default,1,0', SSH_AUTH_SOCK: '/tmp/ssh-x/agent.1', VSCODE_IPC_HOOK_CLI: '/run/user/1000/vscode.sock' };
  const kept = { PATH: '/usr/bin', HOME: '/home/ada', HOOP_LOG_LEVEL: 'debug', HOOP_CLIENT_RECORD: 'off', EDITOR: 'vi' };

  it("holds none of hoop's variables but the harmless ones, no token request, no bus, no client variable; the run's own are set after", () => {
    const env = agentEnvironment(inherited, { HOOP_RUN_TOKEN: 'hooprun_x', PGHOST: '127.0.0.1' });
    expect(env).toEqual({ ...kept, ...session, HOOP_RUN_TOKEN: 'hooprun_x', PGHOST: '127.0.0.1' });
    expect(withheldVariable('HOOP_ANYTHING_NEW')).toBe(true); // hoop's own, unless named harmless
  });

  it('contained, holds no address of a session service whose socket it cannot reach; the SSH agent only when shared', () => {
    expect(agentEnvironment(inherited, {}, { contained: true })).toEqual(kept);
    expect(agentEnvironment(inherited, {}, { contained: true, sshAgent: true })).toEqual({ ...kept, SSH_AUTH_SOCK: '/tmp/ssh-x/agent.1' });
  });
});

describe("the sandbox's mounts", () => {
  const home = join(base, 'home');
  const work = join(base, 'work');
  const bin = join(base, 'bin');
  const runtime = join(base, 'xdg');
  const runDir = join(runtime, 'hoop', 'run-1');
  for (const d of ['custom-cli', 'reviewer', '.mozilla/firefox', '.ssh', '.cache', '.local/share/keyrings']) mkdirSync(join(home, d), { recursive: true });
  for (const d of [join(work, '.git/hooks'), bin, runDir]) mkdirSync(d, { recursive: true });
  for (const f of ['id-token', 'pgpass', '.pgpass', '.bashrc', '.Xauthority', 'k8s-token']) writeFileSync(join(home, f), 'secret');
  writeFileSync(join(work, '.git/config'), '[core]\n');
  writeFileSync(join(work, '.hoop.yaml'), 'connections: [app]\n');
  writeFileSync(join(runtime, 'bus'), '');
  // The home as the environment names it goes through a symbolic link: every mount is at the real path.
  symlinkSync(home, join(base, 'home-link'));
  const env = {
    HOME: join(base, 'home-link'),
    PATH: [bin, join(work, 'node_modules/.bin')].join(':'),
    HOOP_CONFIG_DIR: join(home, 'custom-cli'),
    HOOP_DEMO_REVIEWER: join(home, 'reviewer'),
    HOOP_ID_TOKEN_FILE: join(home, 'id-token'),
    HOOP_CA_FILE: join(home, 'ca.pem'), // a public certificate: not hidden
    PGPASSFILE: join(home, 'pgpass'),
    XDG_RUNTIME_DIR: runtime,
    DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(runtime, 'bus')}`,
    HOOP_K8S_TOKEN_FILE: join(home, 'nope'), // does not exist
  };
  // A workload login in the default config directory names its token file.
  mkdirSync(join(home, '.config/hoop'), { recursive: true });
  writeFileSync(join(home, '.config/hoop/profiles.json'), JSON.stringify({ profiles: { x: { workload: { kind: 'kubernetes', path: join(home, 'k8s-token') } } } }));
  const mounts = sandboxMounts({ env, cwd: work, runDir, credentialFiles: [], hide: ['secret-dir-nope'], readOnly: [], share: [], controls: scanTree([work], env) });
  const of = (kind: string): string[] => mounts.filter((m) => m.kind === kind).map((m) => m.path);

  it("makes private the places where the person's processes meet, and the home's caches", () => {
    expect(of('private')).toEqual(expect.arrayContaining(['/tmp', runtime, join(home, '.cache')]));
  });

  it("hides hoop's directories wherever they may be (made when missing), the token and password files, keyrings, browsers, X11 cookies", () => {
    expect(of('hidden')).toEqual(
      expect.arrayContaining([
        join(home, 'custom-cli'),
        join(home, 'reviewer'),
        join(home, '.config/hoop'),
        join(home, '.local/state/hoop'),
        join(home, 'id-token'),
        join(home, 'pgpass'),
        join(home, '.pgpass'),
        join(home, 'k8s-token'),
        join(home, '.local/share/keyrings'),
        join(home, '.mozilla'),
        join(home, '.Xauthority'),
        join(runtime, 'bus'),
      ]),
    );
    expect(statSync(join(home, '.local/state/hoop')).mode & 0o777).toBe(0o700);
    expect(of('hidden')).not.toContain(join(home, 'ca.pem'));
    // Nothing is mounted at a path that goes through the link.
    expect(mounts.filter((m) => m.path.includes('home-link'))).toEqual([]);
  });

  it("lets the command write its working directory and its run's, but not what its work would run unseen: the repository's config and hooks, .hoop.yaml", () => {
    // The repository's directory is a mount point of its own: it cannot be renamed away and made anew.
    expect(of('writable')).toEqual([work, join(work, '.git'), runDir].sort());
    expect(of('read-only')).toEqual(expect.arrayContaining([join(work, '.git/config'), join(work, '.git/hooks'), join(work, '.hoop.yaml')]));
  });

  it('mounts over a read-only root, outer first, in namespaces of its own', () => {
    const fds = new Map(mounts.map((m, i) => [m, 100 + i]));
    const args = bwrapArguments(mounts, { cwd: work, uid: 1000, gid: 1000, fd: (m) => fds.get(m)!, seccomp: 3 });
    // A /dev of its own (no other terminal of the person's), a user namespace and no capability, root's included; the command as the person.
    expect(args.slice(0, 22)).toEqual([
      '--ro-bind',
      '/',
      '/',
      '--dev',
      '/dev',
      '--proc',
      '/proc',
      '--unshare-user',
      '--cap-drop',
      'ALL',
      '--cap-add',
      'CAP_SETPCAP',
      '--unshare-pid',
      '--as-pid-1',
      '--unshare-ipc',
      '--unshare-net',
      '--die-with-parent',
      '--uid',
      '1000',
      '--gid',
      '1000',
      '--tmpfs',
    ]);
    expect(args.slice(-4)).toEqual(['--seccomp', '3', '--chdir', work]);
    // The runtime directory is emptied before the run's own directory is bound back into it.
    expect(args.indexOf(runtime)).toBeLessThan(args.indexOf(runDir));
    // Hidden files get the empty file (by a descriptor of their own); what is bound is bound by descriptor.
    const pgpass = mounts.find((m) => m.path === join(home, '.pgpass'))!;
    expect(args.slice(args.indexOf(join(home, '.pgpass')) - 2, args.indexOf(join(home, '.pgpass')) + 1)).toEqual(['--ro-bind-fd', String(fds.get(pgpass)), join(home, '.pgpass')]);
    expect(args.filter((a) => a === '--bind' || a === '--ro-bind')).toEqual(['--ro-bind']); // the root alone, by path
  });

  it('judges and binds the same object: a share swapped for a link to the home while the layout is worked out (RENAME_EXCHANGE in a loop) never yields a writable home', async () => {
    const race = join(base, 'race');
    mkdirSync(join(race, 'shared'), { recursive: true });
    symlinkSync(home, join(race, 'homelink'));
    const shared = statSync(join(race, 'shared'));
    const racer = swapper(join(race, 'shared'), join(race, 'homelink'));
    const outcomes = new Set<string>();
    try {
      for (let i = 0; i < 100; i++) {
        for (const layered of [false, true]) {
          let mounts: Mount[];
          try {
            mounts = sandboxMounts({ env, cwd: work, runDir, share: [join(race, 'shared')], layered });
          } catch (err) {
            outcomes.add(/holds your home directory|changed while the run began|does not exist/.test(String(err)) ? 'refused' : String(err));
            continue;
          }
          // Whatever name it had, what the command may write there is the shared directory itself.
          for (const m of mounts.filter((m) => m.kind === 'writable' || m.kind === 'layer')) expect(within(home, m.path)).toBe(false);
          const place = mounts.find((m) => (m.kind === 'writable' || m.kind === 'layer') && m.path.startsWith(race))!;
          expect(place.id).toEqual({ dev: shared.dev, ino: shared.ino });
          outcomes.add('laid out');
        }
      }
    } finally {
      racer.kill();
    }
    expect([...outcomes].sort()).toEqual(['laid out', 'refused']);
  });

  it('refuses to let the command write the home directory or above it, a private area itself, or a hidden path', () => {
    const refused = (cwd: string, share: string[] = []): string => String((thrown(() => sandboxMounts({ env, cwd, runDir, share })) as Error | undefined)?.message);
    expect(refused(home)).toMatch(/cannot let the command write .*: it holds your home directory/);
    expect(refused(work, ['/'])).toMatch(/it holds your home directory/);
    expect(refused(work, [runtime])).toMatch(/where your other processes meet/);
    expect(refused(join(home, '.config/hoop'))).toMatch(/it is inside .*\.config\/hoop, which holds credentials/);
    expect(refused(work, [join(base, 'home-link', 'custom-cli')])).toMatch(/which holds credentials/);
    // A program directory on PATH, or a place inside one, runs as the person later.
    expect(refused(bin)).toMatch(/it is .*\/bin, which runs as you later/);
  });

  it("keeps read-only what runs as the person later wherever it really is (a dotfiles repository), hides SSH private keys and the home's sockets", async () => {
    const dotfiles = join(base, 'dotfiles');
    mkdirSync(dotfiles, { recursive: true });
    writeFileSync(join(dotfiles, 'profile'), 'export A=1\n');
    symlinkSync(join(dotfiles, 'profile'), join(home, '.profile'));
    writeFileSync(join(home, '.ssh/id_ed25519'), '-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n');
    writeFileSync(join(home, '.ssh/id_ed25519.pub'), 'ssh-ed25519 AAAA x\n');
    writeFileSync(join(home, '.ssh/known_hosts'), 'h ssh-ed25519 AAAA\n');
    mkdirSync(join(home, '.ssh/sockets'), { recursive: true });
    const control = createServer();
    await new Promise<void>((r) => control.listen(join(home, '.ssh/sockets/master'), r));
    try {
      const m = sandboxMounts({ env, cwd: dotfiles, runDir });
      const kinds = new Map(m.map((x) => [x.path, x.kind]));
      expect(kinds.get(dotfiles)).toBe('writable');
      expect(kinds.get(join(dotfiles, 'profile'))).toBe('read-only');
      expect(kinds.get(join(home, '.ssh/id_ed25519'))).toBe('hidden');
      expect(kinds.get(join(home, '.ssh/sockets/master'))).toBe('hidden');
      expect(kinds.get(join(home, '.ssh/id_ed25519.pub'))).toBeUndefined();
      expect(kinds.get(join(home, '.ssh/known_hosts'))).toBeUndefined();
    } finally {
      control.close();
    }
  });

  it('keeps what it runs visible where a private area would hide it: a program on PATH or the command under /tmp, hoop itself', () => {
    const tools = mkdtempSync('/tmp/hoop-containment-tools-');
    const tool = join(tools, 'agent.sh');
    writeFileSync(tool, '#!/bin/sh\n');
    const m = sandboxMounts({ env, cwd: work, runDir, programs: [tool] });
    const kinds = new Map(m.map((x) => [x.path, x.kind]));
    expect(kinds.get(tool)).toBe('read-only');
    expect(kinds.get(bin)).toBe(within(bin, '/tmp') ? 'read-only' : undefined);
    // A project under /tmp that holds what the command runs (hoop's own checkout, run with npx) stays the command's place, layered.
    const project = mkdtempSync('/tmp/hoop-containment-project-');
    mkdirSync(join(project, 'bin'));
    writeFileSync(join(project, 'bin', 'tool'), '#!/bin/sh\n');
    for (const layered of [true, false]) {
      const own = new Map(sandboxMounts({ env, cwd: project, runDir, programs: [project, join(project, 'bin', 'tool')], layered }).map((x) => [x.path, x.kind]));
      expect([own.get(project), own.get(join(project, 'bin', 'tool'))]).toEqual([layered ? 'layer' : 'writable', undefined]);
    }
    rmSync(project, { recursive: true, force: true });
    rmSync(tools, { recursive: true, force: true });
    // hoop's installation: bound back only where it lies in a private area.
    expect(kinds.get(installRoot())).toBe(within(installRoot(), '/tmp') ? 'read-only' : undefined);
  });

  it('makes /run its own, keeping the links at its top', () => {
    expect(of('private')).toContain('/run');
    const links = readdirSync('/run', { withFileTypes: true })
      .filter((e) => e.isSymbolicLink())
      .map((e) => join('/run', e.name));
    expect(of('link').sort()).toEqual(links.sort());
  });
});

describe('the seccomp program', () => {
  it('is a whole number of sock_filter entries for the hosts hoop knows, and none for others', () => {
    for (const arch of ['x64', 'arm64']) {
      const filter = agentSeccompFilter(arch)!;
      expect(filter.length % 8).toBe(0);
      // First: load the architecture; last: refuse with EPERM.
      expect([filter.readUInt16LE(0), filter.readUInt32LE(4)]).toEqual([0x20, 4]);
      expect([filter.readUInt16LE(filter.length - 8), filter.readUInt32LE(filter.length - 4)]).toEqual([0x06, 0x00050001]);
    }
    expect(agentSeccompFilter('riscv64')).toBeUndefined();
  });
});

describe('containment detection', () => {
  it('on macOS (or any system but Linux) says in one line that it cannot contain, and --isolation bwrap refuses to run', () => {
    const real = Object.getOwnPropertyDescriptor(process, 'platform')!;
    Object.defineProperty(process, 'platform', { value: 'darwin' });
    try {
      const c = detectContainment('auto', { PATH: process.env.PATH });
      expect(c).toEqual({ kind: 'none', why: 'this is macOS, where hoop run cannot contain a command yet (docs/macos-containment.md says how it will)' });
      expect(() => detectContainment('bwrap', { PATH: process.env.PATH })).toThrow(/^hoop run cannot contain the command: this is macOS, where hoop run cannot contain a command yet/);
    } finally {
      Object.defineProperty(process, 'platform', real);
    }
  });

  it.runIf(process.platform === 'linux' && existsSync('/usr/bin/bwrap'))('does not depend on what PATH holds: a run from a PATH with only node in it is contained as any other', () => {
    // The process's own PATH too: bubblewrap, its child, inherits it (hoop demo runs its commands in-process).
    const saved = process.env.PATH;
    process.env.PATH = '/nonexistent-node-only';
    try {
      const c = detectContainment('auto', { PATH: '/nonexistent-node-only' });
      expect(c.kind === 'none' ? c.why : c.kind).toBe('bwrap');
    } finally {
      process.env.PATH = saved;
    }
  });
});
