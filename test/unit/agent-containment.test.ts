/**
 * What `hoop run` keeps from its command, decided before anything runs: the variables it withholds
 * (hoop's own, a CI platform's token request, the keychain's bus, what points clients around the
 * gateway) and the paths it hides (hoop's directories, the credential files named by the person's
 * environment, the keychain's sockets), as bubblewrap arguments; and the seccomp program's shape.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { agentEnvironment, bwrapArguments, hiddenPaths, withheldVariable } from '../../src/agent/containment.js';
import { agentSeccompFilter } from '../../src/agent/seccomp.js';

const base = mkdtempSync(join(tmpdir(), 'hoop-containment-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

describe("the agent's environment", () => {
  it("holds none of hoop's variables but the harmless ones, no token request, no bus, no client variable; the run's own are set after", () => {
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
      DBUS_SESSION_BUS_ADDRESS: 'unix:path=/run/user/1000/bus',
      PGPASSWORD: 'x',
      PGHOST: 'db.internal',
      DATABASE_URL: 'postgres://u:p@db/x',
      EDITOR: 'vi',
    };
    const env = agentEnvironment(inherited, { HOOP_RUN_TOKEN: 'hooprun_x', PGHOST: '127.0.0.1' });
    expect(env).toEqual({ PATH: '/usr/bin', HOME: '/home/ada', HOOP_LOG_LEVEL: 'debug', HOOP_CLIENT_RECORD: 'off', EDITOR: 'vi', HOOP_RUN_TOKEN: 'hooprun_x', PGHOST: '127.0.0.1' });
    expect(withheldVariable('HOOP_ANYTHING_NEW')).toBe(true); // hoop's own, unless named harmless
  });
});

describe('what the sandbox hides', () => {
  it("hoop's directories, the credential files the person's environment names, the keychain's sockets; what does not exist is left alone", () => {
    const home = join(base, 'home');
    const runtime = join(base, 'run', 'hoop');
    for (const d of ['.config/hoop', '.local/state/hoop', 'custom-cli', 'reviewer', 'xdg/keyring']) mkdirSync(join(home, d), { recursive: true });
    mkdirSync(runtime, { recursive: true });
    for (const f of ['id-token', 'pgpass', 'xdg/bus', 'token-file']) writeFileSync(join(home, f), 'secret');
    const env = {
      HOME: home,
      HOOP_CONFIG_DIR: join(home, 'custom-cli'),
      HOOP_DEMO_REVIEWER: join(home, 'reviewer'),
      HOOP_ID_TOKEN_FILE: join(home, 'id-token'),
      HOOP_CA_FILE: join(home, 'ca.pem'), // a public certificate: not hidden
      PGPASSFILE: join(home, 'pgpass'),
      XDG_RUNTIME_DIR: join(home, 'xdg'),
      HOOP_K8S_TOKEN_FILE: join(home, 'nope'), // does not exist
    };
    const hide = hiddenPaths(env, home, runtime, [join(home, 'token-file')]);
    expect(hide.dirs.sort()).toEqual([join(home, '.config/hoop'), join(home, '.local/state/hoop'), join(home, 'custom-cli'), join(home, 'reviewer'), join(home, 'xdg/keyring'), runtime].sort());
    expect(hide.files.sort()).toEqual([join(home, 'id-token'), join(home, 'pgpass'), join(home, 'token-file'), join(home, 'xdg/bus')].sort());
    const args = bwrapArguments({ hide, empty: join(runtime, 'run-1/.hidden'), keep: [join(runtime, 'run-1')], cwd: home, seccompFd: 3 });
    // Outer directories are emptied before the run's own directory is bound back inside one of them.
    expect(args.indexOf(runtime) - 1).toBeLessThan(args.lastIndexOf(join(runtime, 'run-1')));
    expect(args.slice(0, 10)).toEqual(['--bind', '/', '/', '--dev-bind', '/dev', '/dev', '--proc', '/proc', '--unshare-pid', '--die-with-parent']);
    expect(args.slice(-4)).toEqual(['--seccomp', '3', '--chdir', home]);
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
