/**
 * A contained run's network, tried as root and as a user who is not (test/harness/people.ts), with
 * the built CLI, bubblewrap and curl:
 * - `hoop run` contains its command for every user: its own network namespace, its connections
 *   and the gateway on its loopback, nothing else (a non-root run failed with exit 126);
 * - the command reaches, through the run's egress proxy, only the `host:port`s the policy's
 *   `runs.egress` allows it (by name, per agent): test hosts in a network namespace of the test's
 *   own, named in a hosts file of its own (a mount namespace around hoop); a name that resolves to
 *   this machine is refused though allowed; a program that ignores the proxy reaches nothing;
 * - each refused connection is said on stderr, is an event of the run's record (`sessions replay`
 *   of the run shows it), reaches the audit stream as `run.egress-refused`, and raises an alert
 *   rule counting `egress-refused`.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnHoop, type HoopProcessResult } from '../harness/hoop-process.js';
import { givePerson, personDir, testPeople, type TestPerson } from '../harness/people.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml } from '../harness/postgres.js';
import { startStack, type HoopStack } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';

const PEOPLE = testPeople();
const root = process.getuid?.() === 0;
/** The test hosts' network: a namespace of the test's own, joined to this one by a veth pair. */
const NET = `hoop-egress-${process.pid}`;
const SUBNET = `10.213.${process.pid % 250}`;
const HOST_A = `${SUBNET}.2`;
const HOST_B = `${SUBNET}.3`;
let stack: HoopStack;
let repo: PolicyGitRepo;
let hosts: string;
let servers: ChildProcess | undefined;
/** What the test hosts were asked, in order: `<address> <method> <path>`. */
const asked: string[] = [];

const ip = (...args: string[]): void => {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
};

beforeAll(async () => {
  if (!root) throw new Error('the test hosts live in a network namespace the test makes: run this file as root (CI does)');
  repo = new PolicyGitRepo('hoop-agent-network-');
  stack = await startStack({
    extraConfig: 'audit: { file: audit.jsonl, flushSeconds: 0.2 }',
    policy: ({ pg }) => {
      repo.commit(`version: 1
connections:
${connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' })}access:
  - { name: people, subjects: [alice], connections: [app], mode: read-write }
runs:
  egress:
    - allowed.test:80
    - rebind.test:80
    - { to: ["claude-only.test:80"], agents: ["claude*"] }
alerts:
  - { name: leaky-agent, when: { event: egress-refused, count: 2, within: 1h }, per: run }
`);
      return repo.gatewayBlock(['${env:APP_PASSWORD}']);
    },
  });
  // Two test hosts answering HTTP on port 80, in their own network namespace.
  ip('netns', 'add', NET);
  const [outer, inner] = [`hoe${process.pid % 100_000}o`, `hoe${process.pid % 100_000}i`];
  ip('link', 'add', outer, 'type', 'veth', 'peer', 'name', inner, 'netns', NET);
  ip('addr', 'add', `${SUBNET}.1/24`, 'dev', outer);
  ip('link', 'set', outer, 'up');
  for (const a of [HOST_A, HOST_B]) ip('-n', NET, 'addr', 'add', `${a}/24`, 'dev', inner);
  ip('-n', NET, 'link', 'set', inner, 'up');
  ip('-n', NET, 'link', 'set', 'lo', 'up');
  const server = join(stack.dir, 'hosts-server.mjs');
  writeFileSync(
    server,
    `import { createServer } from 'node:http';
for (const a of process.argv.slice(2)) createServer((req, res) => { console.log(a, req.method, req.url); res.end('host ' + a + '\\n'); }).listen(80, a, () => console.log('listening', a));`,
  );
  servers = spawn('ip', ['netns', 'exec', NET, process.execPath, server, HOST_A, HOST_B], { stdio: ['ignore', 'pipe', 'inherit'] });
  servers.stdout!.on('data', (d: Buffer) => asked.push(...d.toString().split('\n').filter(Boolean)));
  await eventually(() => expect(asked.filter((l) => l.startsWith('listening'))).toHaveLength(2));
  // The names, in a hosts file of the test's own: rebind.test is allowed by name, and resolves to this machine.
  // (Where every person may read it: the stack's directory is root's alone.)
  hosts = join(mkdtempSync('/tmp/hoop-hosts-'), 'hosts');
  chmodSync(dirname(hosts), 0o755);
  writeFileSync(hosts, `127.0.0.1 localhost\n${HOST_A} allowed.test\n${HOST_B} other.test claude-only.test\n127.0.0.1 rebind.test\n`, { mode: 0o644 });
});

afterAll(async () => {
  servers?.kill();
  if (root) spawnSync('ip', ['netns', 'del', NET]);
  await stack?.close();
  repo?.remove();
  if (hosts) rmSync(dirname(hosts), { recursive: true, force: true });
});

describe.each(PEOPLE)('a contained run, as $label', (person: TestPerson) => {
  let base: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    // The person's own places: their hoop config, their runtime directory (0700), their project, and the gateway's CA.
    base = personDir(person, '.hoop-network-');
    for (const d of ['config', 'work']) spawnSync('mkdir', ['-p', join(base, d)]);
    spawnSync('mkdir', ['-m', '0700', join(base, 'xdg')]);
    writeFileSync(join(base, 'ca.pem'), readFileSync(stack.pki.caFile));
    givePerson(person, base);
    env = { HOOP_TOKEN: await stack.token('alice'), HOOP_CONFIG_DIR: join(base, 'config'), XDG_RUNTIME_DIR: join(base, 'xdg') };
  });

  afterAll(() => rmSync(base, { recursive: true, force: true }));

  /** `hoop run` as the person, in a mount namespace whose /etc/hosts names the test hosts. */
  function hoopRun(args: string[]): Promise<HoopProcessResult> {
    return spawnHoop(['run', '--quiet', '--gateway', stack.gateway.url, '--ca-file', join(base, 'ca.pem'), '--isolation', 'bwrap', ...args], {
      env,
      cwd: join(base, 'work'),
      as: person,
      wrap: ['bwrap', '--dev-bind', '/', '/', '--bind', hosts, '/etc/hosts', '--'],
    });
  }

  it('is contained (its own user, network and process namespaces), reaches its connection, and is who it was', async () => {
    const r = await hoopRun(['--connect', 'app', '--', 'sh', '-c', 'id -u; psql -X -At -c "select 40 + 2"; ls /proc | grep -c "^[0-9]"; cat /proc/net/dev | grep -c ":"']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const [uid, answer, pids, interfaces] = r.stdout.trim().split('\n');
    expect({ uid: Number(uid), answer }).toEqual({ uid: person.uid, answer: '42' });
    expect(Number(pids)).toBeLessThan(10);
    expect(Number(interfaces)).toBe(1); // its own loopback only
  });

  it('reaches through its egress proxy only what runs.egress allows it, by name and per agent; the rest is refused and told', async () => {
    /** curl with `args`, its output (errors included) after a line `== <label>`. */
    const curl = (label: string, args: string): string => `echo "== ${label}"; curl -sS --max-time 5 ${args} 2>&1; echo`;
    const script = [
      curl('a', 'http://allowed.test/a'), // HTTP_PROXY: a request in absolute form
      curl('b', '-p http://allowed.test/b'), // CONNECT
      curl('c', '-x "$ALL_PROXY" http://allowed.test/c'), // SOCKS5, the name resolved by the proxy
      curl('d', 'http://claude-only.test/d'), // allowed for this agent only
      curl('e', 'http://other.test/e'), // not allowed
      curl('f', 'http://rebind.test/f'), // allowed, but it resolves to this machine
      curl('g', `--noproxy "*" http://${HOST_A}/g`), // around the proxy: no route out
      curl('h', '--noproxy "*" http://allowed.test/h'), // around the proxy: nothing either
    ].join('; ');
    const r = await hoopRun(['--agent', 'claude', '--connect', 'app', '--', 'sh', '-c', `${script}; psql -X -At -c "select 1" >/dev/null; echo "run=$HOOP_RUN_ID"`]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const said = Object.fromEntries(
      r.stdout
        .split('== ')
        .slice(1)
        .map((part) => [part.split('\n')[0]!, part.split('\n').slice(1).join('\n').trim()]),
    );
    expect(said).toMatchObject({
      a: `host ${HOST_A}`,
      b: `host ${HOST_A}`,
      c: `host ${HOST_A}`,
      d: `host ${HOST_B}`,
      e: 'hoop: other.test:80 is not among the destinations the policy allows this run (runs.egress)',
      f: expect.stringMatching(/^hoop: rebind\.test resolves to this machine or a link-local address \(127\.0\.0\.1\)/),
      g: expect.stringMatching(/^curl: \(7\) .*(Network is unreachable|Couldn't connect)/),
      h: expect.stringMatching(/^curl: \((6|7)\) /),
    });
    // The test hosts were asked what the proxy let through, and nothing else.
    await eventually(() => expect(asked.filter((l) => !l.startsWith('listening')).slice(-4)).toEqual([`${HOST_A} GET /a`, `${HOST_A} GET /b`, `${HOST_A} GET /c`, `${HOST_B} GET /d`]));
    expect(asked.some((l) => / \/(e|f|g|h)$/.test(l))).toBe(false);
    // Said once per destination on stderr, for the person.
    expect(r.stderr).toContain("hoop: refused the command's connection to other.test:80: other.test:80 is not among the destinations");
    expect(r.stderr).toContain("hoop: refused the command's connection to rebind.test:80: rebind.test resolves to this machine");
    // Another agent of the same person is refused what only claude* may reach.
    const codex = await hoopRun(['--agent', 'codex', '--connect', 'app', '--', 'sh', '-c', curl('i', 'http://claude-only.test/i')]);
    expect(codex.stdout).toContain('hoop: claude-only.test:80 is not among the destinations the policy allows this run');
    // The gateway heard each refusal: on the audit stream, and counted by the alert rule.
    const runId = /^run=(run-[A-Za-z0-9_-]+)$/m.exec(r.stdout)![1]!;
    const audit = (): Array<Record<string, unknown>> =>
      existsSync(join(stack.dir, 'audit.jsonl'))
        ? readFileSync(join(stack.dir, 'audit.jsonl'), 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as Record<string, unknown>)
        : [];
    await eventually(() =>
      expect(audit().filter((e) => e.event === 'run.egress-refused' && e.run === runId)).toEqual([
        expect.objectContaining({ subject: 'alice', agent: 'claude', host: 'other.test', port: 80 }),
        expect.objectContaining({ host: 'rebind.test', port: 80 }),
      ]),
    );
    const alerts = JSON.parse(
      (await spawnHoop(['alerts', 'ls', '--json', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { env: { HOOP_TOKEN: await stack.token('alice') } })).stdout,
    ) as {
      alerts: Array<Record<string, unknown>>;
    };
    expect(alerts.alerts.find((a) => a.rule === 'leaky-agent' && a.run === runId)).toMatchObject({
      event: 'egress-refused',
      count: 2,
      evidence: [{ destination: 'other.test:80' }, { destination: 'rebind.test:80' }],
    });
    // The run's record (signed by its CLI) holds them: the replay of the run says what was refused and what went out.
    const replay = await spawnHoop(['sessions', 'replay', runId, '--run', '--no-tty', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], {
      env: { HOOP_TOKEN: await stack.token('alice') },
    });
    expect(replay.code, replay.stderr).toBe(0);
    expect(replay.stdout).toContain("-- the run's command was refused connections to other.test:80 (1), rebind.test:80 (1)");
    expect(replay.stdout).toContain("-- the run's command connected through its egress proxy to allowed.test:80 (3), claude-only.test:80 (1)");
    // So does `sessions show` of the run, with its sessions.
    const shown = await spawnHoop(['sessions', 'show', runId, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { env: { HOOP_TOKEN: await stack.token('alice') } });
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(new RegExp(`^-- run ${runId} by alice on `));
    expect(shown.stdout).toMatch(/^SESSION +STARTED +CONNECTION +STATEMENTS +REFUSED +ENDED$/m);
    expect(shown.stdout).toContain("-- the run's command was refused connections to other.test:80 (1), rebind.test:80 (1)");
  });
});
