/**
 * The demo's (and docs/ssh.md's) deny pattern for recursive deletes, tested against its reference,
 * GNU rm itself (#72): generated lines put options before, between and after operands, in
 * clusters, as long options and their prefixes, around `--`; each runs in a scratch directory, and
 * every line that removed a directory with its contents must be refused by the judge.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { NO_RECURSIVE_RM } from '../../src/demo/sample.js';
import { loadPolicyDir } from '../../src/policy/load.js';
import { sshJudgeFor } from '../../src/policy/ssh.js';

const base = mkdtempSync(join(tmpdir(), 'hoop-rm-reference-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

const OPTIONS = ['-r', '-R', '-f', '-v', '-rf', '-fr', '-Rf', '-vr', '-d', '--recursive', '--rec', '--r', '--recu', '--force', '--verbose', '--dir', '--one-file-system', '--preserve-root', '--'];

/** A line of `rm` with 1 to 3 of OPTIONS and operands `f` and `T`, in an order drawn from `random`. */
function line(random: () => number): string[] {
  const words = [...Array.from({ length: 1 + Math.floor(random() * 3) }, () => OPTIONS[Math.floor(random() * OPTIONS.length)] as string), ...(random() < 0.5 ? ['T'] : ['f', 'T'])];
  for (let i = words.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [words[i], words[j]] = [words[j] as string, words[i] as string];
  }
  return ['rm', ...words];
}

/** Whether GNU rm, run with `words`, removed directory T and its contents. */
function removesTree(words: string[], n: number): boolean {
  const dir = join(base, `run${n}`);
  mkdirSync(join(dir, 'T', 'child'), { recursive: true });
  writeFileSync(join(dir, 'f'), 'x');
  try {
    execFileSync(words[0] as string, words.slice(1), { cwd: dir, stdio: 'ignore' });
  } catch {
    // rm says why it kept a directory (exit 1): what it removed is what counts.
  }
  return !existsSync(join(dir, 'T'));
}

it('refuses every line GNU rm runs as a recursive delete, options before or after its operands, long options by any prefix', async () => {
  expect(readFileSync('docs/ssh.md', 'utf8')).toContain(`patterns: ['${NO_RECURSIVE_RM}']`);
  writeFileSync(
    join(base, 'hoop.yaml'),
    `version: 1
connections:
  - { name: bastion, type: ssh, host: bastion.internal, user: deploy, password: "\${env:P}", hostKeys: ["SHA256:${'A'.repeat(43)}"] }
ssh:
  default: allow
  rules:
    - { name: no-recursive-rm, match: { patterns: ['${NO_RECURSIVE_RM}'] }, action: deny }
`,
  );
  const judge = sshJudgeFor(await loadPolicyDir(base), { subject: 'alice', groups: [] }, 'bastion', 'read-write');
  let seed = 72;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const missed: string[] = [];
  let recursive = 0;
  let allowed = 0;
  for (let n = 0; n < 160; n++) {
    const words = line(random);
    const text = words.join(' ');
    const action = judge.decide({ kind: 'exec', command: text }, 'bash').action;
    if (removesTree(words, n)) {
      recursive++;
      if (action !== 'deny') missed.push(text);
    } else if (action === 'allow') allowed++;
  }
  expect(missed).toEqual([]);
  // The lines draw both kinds: the pattern is no refusal of every rm.
  expect(recursive).toBeGreaterThan(40);
  expect(allowed).toBeGreaterThan(20);
  expect(judge.decide({ kind: 'exec', command: 'rm -f f T' }, 'bash').action).toBe('allow');
  expect(judge.decide({ kind: 'exec', command: 'rm T -rf' }, 'bash').action).toBe('deny');
  expect(judge.decide({ kind: 'exec', command: 'rm $X -r' }, 'bash').action).toBe('deny');
});
