/**
 * What the ssh judge decides is what the target's shell runs (issue 38, class A), against OpenSSH's
 * sshd with OpenSSH's ssh: each spelling of `rm -rf V` in the shared table, sent by three people —
 * one held to an allow list (`ls`, `cat`, `echo` under `default: deny`), one to a deny pattern for
 * recursive deletes (everything else allowed), one with read-only access — must leave V on the
 * target, and the client must be told why. The same people's plain commands run.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectSshJson } from '../../src/connect-json.js';
import { startSshd, type Sshd } from '../../src/demo/sshd.js';
import { RM_LOOKALIKES, RM_SPELLINGS, spelled } from '../fixtures/shell-spellings.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { sshConnectionYaml } from '../harness/sshd.js';

let sshd: Sshd;
let policyRepo: PolicyGitRepo;
let stack: HoopStack;
const running: RunningConnect[] = [];
const victims = mkdtempSync(join(tmpdir(), 'hoop-shell-victims-'));
const controls = mkdtempSync(join(tmpdir(), 'hoop-ssh-mux-'));

const bundle = (keyFile: string): string => `version: 1
connections:
${sshConnectionYaml('bastion', sshd, { keyFile })}
${sshConnectionYaml('bastion-ro', sshd, { keyFile })}
access:
  - { name: people, subjects: [alice, bob], connections: [bastion], mode: read-write }
  - { name: readers, subjects: [carol], connections: [bastion-ro], mode: read-only }
ssh:
  default: deny
  rules:
    - { name: reads, match: { subjects: [alice, carol], commands: ["ls **", "cat **", "echo **", "less **"] }, action: allow }
    - { name: bob-may-run-anything, match: { subjects: [bob] }, action: allow }
    - { name: no-recursive-rm, match: { subjects: [bob], patterns: ['\\brm\\s+(-\\S+\\s+)*(-[a-zA-Z]*[rR]|--recursive)'] }, action: deny, message: "recursive deletes are not allowed here" }
`;

interface Person {
  name: string;
  connection: string;
  info: ConnectSshJson;
}
const people: Person[] = [];

/** `ssh -F <config> <connection> <command>` over one multiplexed connection per person; never rejects. */
function ssh(p: Person, command: string, options: string[] = []): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const args = [
    ...options,
    '-F',
    p.info.sshConfig,
    '-o',
    'BatchMode=yes',
    '-o',
    'ControlMaster=auto',
    '-o',
    `ControlPath=${join(controls, p.name)}`,
    '-o',
    'ControlPersist=120',
    p.connection,
    command,
  ];
  return new Promise((resolve) => {
    execFile('ssh', args, { encoding: 'utf8', timeout: 60_000, maxBuffer: 8 * 1024 * 1024 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    ).stdin?.end();
  });
}

/** Runs `jobs` at most `width` at a time, in order of their results. */
async function pool<T>(jobs: Array<() => Promise<T>>, width: number): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < jobs.length) {
        const i = next++;
        out[i] = await (jobs[i] as () => Promise<T>)();
      }
    }),
  );
  return out;
}

beforeAll(async () => {
  sshd = await startSshd();
  policyRepo = new PolicyGitRepo('hoop-ssh-judge-');
  stack = await startStack({
    policy: () => {
      policyRepo.commit(bundle(sshd.clientKeyFile));
      return policyRepo.gatewayBlock(['${file:/tmp/*/client_key}']);
    },
  });
  for (const [name, connection] of [
    ['alice', 'bastion'],
    ['bob', 'bastion'],
    ['carol', 'bastion-ro'],
  ] as const) {
    const c = await stack.connect(connection, await stack.token(name));
    running.push(c);
    people.push({ name, connection, info: c.info as unknown as ConnectSshJson });
  }
});

afterAll(async () => {
  for (const p of people) await new Promise((r) => execFile('ssh', ['-F', p.info.sshConfig, '-o', `ControlPath=${join(controls, p.name)}`, '-O', 'exit', p.connection], () => r(undefined)));
  for (const c of running) await c.stop().catch(() => undefined);
  await stack?.close();
  await sshd?.stop();
  policyRepo?.remove();
  rmSync(victims, { recursive: true, force: true });
  rmSync(controls, { recursive: true, force: true });
});

describe('an ssh command line as the target runs it', () => {
  it(`refuses ${RM_SPELLINGS.length} spellings of a recursive delete to an allow list, a deny pattern and read-only access, and the victim stays`, async () => {
    const lines = [...RM_SPELLINGS, ...RM_LOOKALIKES];
    const cases = people.flatMap((p) =>
      lines.map((line, i) => {
        const victim = join(victims, `${p.name}-${i}`);
        mkdirSync(victim);
        writeFileSync(join(victim, 'keep'), 'still here\n');
        return { p, line, victim, refused: i < RM_SPELLINGS.length };
      }),
    );
    const results = await pool(
      cases.map((c) => () => ssh(c.p, spelled(c.line, c.victim))),
      8,
    );
    const gone = cases.filter((c) => !existsSync(join(c.victim, 'keep'))).map((c) => `${c.p.name}: ${JSON.stringify(c.line.slice(0, 60))}`);
    expect(gone).toEqual([]);
    // Each refusal reaches the client: hoop's reason on stderr, the exit status of a command that cannot run.
    const unsaid = cases.flatMap((c, i) =>
      c.refused && !(results[i]?.stderr.includes('hoop:') && results[i]?.code === 126)
        ? [`${c.p.name}: ${JSON.stringify(c.line.slice(0, 60))} → ${results[i]?.code} ${results[i]?.stderr.slice(0, 200)}`]
        : [],
    );
    // What hoop connect said, to tell why when a refusal did not reach the client.
    expect(unsaid, running.map((c) => c.stderr()).join('\n')).toEqual([]);
  }, 480_000);

  it('runs the plain commands each may run, quoted as they like', async () => {
    const dir = join(victims, 'plain dir');
    mkdirSync(dir);
    writeFileSync(join(dir, 'a;b'), 'semi colon\n');
    const [alice, bob, carol] = people as [Person, Person, Person];
    const listed = await ssh(alice, `ls '${dir}' | cat -n && echo "done;"`);
    expect(listed, listed.stderr).toMatchObject({ code: 0, stdout: '     1\ta;b\ndone;\n' });
    expect(await ssh(carol, `cat "${dir}/a;b"`)).toMatchObject({ code: 0, stdout: 'semi colon\n' });
    const refused = await ssh(alice, `ls '${dir}' > '${dir}/out'`);
    expect(refused.code).toBe(126);
    expect(refused.stderr).toContain('no ssh rule matches');
    expect(existsSync(join(dir, 'out'))).toBe(false);
    // The deny pattern refuses recursive deletes only: bob's plain delete runs.
    expect(await ssh(bob, `rm "${dir}/a;b" && echo removed`)).toMatchObject({ code: 0, stdout: 'removed\n' });
    expect(existsSync(join(dir, 'a;b'))).toBe(false);
    const why = await ssh(bob, 'x=-rf; rm $x /nonexistent');
    expect(why.stderr).toContain('may match `rm $x /nonexistent`: `$x` is built when it runs');
    expect(readFileSync(join(victims, 'bob-0', 'keep'), 'utf8')).toBe('still here\n');
    // Past what the gateway's SSH server reads in one packet (35,000 bytes), the connection ends and nothing runs.
    const huge = await ssh({ ...bob, name: 'bob-unshared' }, `ls ${'x'.repeat(40_000)}; touch '${dir}/huge'`);
    expect(huge.code).toBe(255);
    expect(existsSync(join(dir, 'huge'))).toBe(false);
    expect(await ssh(bob, 'echo still serving')).toMatchObject({ code: 0, stdout: 'still serving\n' });
  });

  it("judges a pager on a terminal as a shell: alice's `less **` pages a file through a pipe, not on a terminal (its `!cmd` would run)", async () => {
    const alice = people[0] as Person;
    writeFileSync(join(victims, 'paged'), 'one page\n');
    const piped = await ssh(alice, `less ${join(victims, 'paged')}`);
    expect(piped, piped.stderr).toMatchObject({ code: 0, stdout: 'one page\n' });
    const terminal = await ssh(alice, `less ${join(victims, 'paged')}`, ['-tt']);
    expect(terminal.code).toBe(126);
    expect(terminal.stderr).toContain('is judged as a shell: with a terminal, `less` takes commands from it');
  });
});
