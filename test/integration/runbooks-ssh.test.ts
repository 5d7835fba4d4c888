/**
 * Runbook runs on SSH (src/gateway/api/runbook-ssh.ts) against a real OpenSSH server: each
 * parameter reaches the program as one argument, itself, whatever shell metacharacters it holds;
 * the steps run in turn through the lane's own judge (a rule's refusal stops the run and is named,
 * what ran before it stays); a value that would read as an option is refused before anything runs.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import { startSshd, type Sshd } from '../../src/demo/sshd.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { sshConnectionYaml } from '../harness/sshd.js';
import { startStack, type HoopStack } from '../harness/stack.js';

let sshd: Sshd;
let repo: PolicyGitRepo;
let stack: HoopStack;
let out: string;

const NOTE = (dir: string) => `version: 1
description: Write a note, then list the directory
connection: box
parameters:
  name: { type: string, pattern: "[a-z0-9-]{1,40}" }
  text: { type: string, maxLength: 500, pattern: ".{0,500}" }
steps:
  - ssh: [sh, -c, 'printf "%s" "$1" > "${dir}/$0"', "{name}", "{text}"]
  - ssh: [ls, "${dir}"]
run:
  - { groups: [ops] }
deadline: 5s
`;

const CLEAN = (dir: string) => `version: 1
description: Write a marker, then remove a directory (the policy refuses recursive deletes)
connection: box
parameters:
  sub: { type: enum, values: ["${dir}/a", "${dir}/b"] }
steps:
  - ssh: [touch, "${dir}/marker"]
  - ssh: [rm, -rf, "{sub}"]
run:
  - { groups: [ops] }
`;

const SLEEPY = `version: 1
description: Sleep past the deadline
connection: box
parameters:
  seconds: { type: integer, min: 1, max: 600 }
steps:
  - ssh: [sleep, "{seconds}"]
run:
  - { groups: [ops] }
deadline: 2s
`;

beforeAll(async () => {
  sshd = await startSshd();
  out = join(tmpdir(), `hoop-runbook-ssh-${process.pid}`);
  mkdirSync(out, { recursive: true, mode: 0o777 });
  repo = new PolicyGitRepo('hoop-runbooks-ssh-');
  stack = await startStack({
    policy: () => {
      mkdirSync(join(repo.dir, 'runbooks'));
      writeFileSync(join(repo.dir, 'runbooks', 'note.yaml'), NOTE(out));
      writeFileSync(join(repo.dir, 'runbooks', 'clean.yaml'), CLEAN(out));
      writeFileSync(join(repo.dir, 'runbooks', 'sleepy.yaml'), SLEEPY);
      repo.commit(`version: 1
connections:
${sshConnectionYaml('box', sshd)}
ssh:
  rules:
    - { name: no-recursive-rm, match: { patterns: ['^(\\S*/)?rm\\s+(-\\S+\\s+)*(-[a-zA-Z]*[rR]|--r)'] }, action: deny, message: recursive deletes are not allowed }
`);
      return repo.gatewayBlock(['${file:/tmp/*/client_key}']);
    },
  });
});

afterAll(async () => {
  await stack?.close();
  await sshd?.stop();
  repo?.remove();
  if (out) rmSync(out, { recursive: true, force: true });
});

async function hoop(argv: string[]) {
  return stack.run([...argv, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('olga', ['ops']) });
}

describe('a runbook run on SSH', () => {
  it("hands each value to the program as one argument, itself, whatever the target's shell would make of it", async () => {
    const texts = ['$(id) `id` ${HOME} $HOME', 'it\'s "quoted" \\ back', '; rm -rf / #', '*  ?  [a] {a,b} ~ !! =ls %self', 'é ≠ 😀'];
    for (const [i, text] of texts.entries()) {
      const r = await hoop(['runbook', 'run', 'note', '-p', `name=note-${i}`, '-p', `text=${text}`, '--json']);
      expect(r.stderr).toBe('');
      const run = JSON.parse(r.stdout) as { outcome: string; steps: Array<{ tag: string; stdout?: string }> };
      expect(run.outcome).toBe('ran');
      expect(run.steps[0]!.tag).toBe('exit 0');
      expect(run.steps[1]!.stdout).toContain(`note-${i}`);
      expect(readFileSync(join(out, `note-${i}`), 'utf8')).toBe(text);
    }
  });

  it('past its deadline: the command is signalled (TERM, then KILL), and the run says truly whether it ended', async () => {
    const r = await hoop(['runbook', 'run', 'sleepy', '-p', 'seconds=377']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("step 1 failed: the runbook's deadline of 2 s passed; step 1's command ");
    // OpenSSH delivers a signal request only where it can (its privilege separation, its version): what the run says must match the target.
    const running = spawnSync('pgrep', ['-f', '^sleep 377$']).status === 0;
    try {
      expect(r.stderr).toContain(running ? "step 1's command may still be running on the target" : "step 1's command was stopped (TERM, then KILL)");
    } finally {
      spawnSync('pkill', ['-f', '^sleep 377$']);
    }
  });

  it('refuses a value a program would read as an option before anything runs, naming the parameter', async () => {
    const r = await hoop(['runbook', 'run', 'note', '-p', 'name=ok', '-p', 'text=--help']);
    expect(r.code).toBe(ExitCode.DATA);
    expect(r.stderr).toContain('parameter text: begins with -');
    expect(existsSync(join(out, 'ok'))).toBe(false);
  });

  it("is judged by the policy's SSH rules: a refused step stops the run, named, and what ran before it stays", async () => {
    mkdirSync(join(out, 'a'), { recursive: true });
    const r = await hoop(['runbook', 'run', 'clean', '-p', `sub=${out}/a`]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('step 2 refused');
    expect(r.stderr).toContain('recursive deletes are not allowed');
    expect(r.stderr).toContain('steps 1 to 1 ran, and what they did stays');
    expect(readFileSync(join(out, 'marker'), 'utf8')).toBe('');
    expect(existsSync(join(out, 'a'))).toBe(true);
  });
});
