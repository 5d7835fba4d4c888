/**
 * A runbook's SSH steps (./runbook-run.ts runs the run): the gateway signs in to the session's SSH
 * engine over the in-memory channel with the run's own key, and runs each step as an exec request
 * whose words are quoted for the target's login shell (../../ssh/common/shell-words.ts), so each
 * parameter reaches the program as one argument, itself. The steps run in turn; the first that
 * fails (a non-zero exit, or a refusal by the policy) stops the rest, and what ran before it stays.
 * A run stopped (its deadline, its caller gone) signals the command it runs, and waits for it.
 */
import type { Duplex } from 'node:stream';
import type { Client as SshClient } from 'ssh2';
import type { RunbookStepResult, StepOutcome } from '../../api/answers.js';
import type { Runbook } from '../../policy/schema.js';
import { realClock } from '../../clock.js';
import ssh2 from '../../ssh/common/ssh2-vendor.js';
import { commandLine } from '../../ssh/common/shell-words.js';

/** What a step keeps of each output stream: its last bytes. */
const OUTPUT_KEPT = 64 * 1024;

/** The words of step `words`, each parameter `{name}` its value. */
export function stepWords(words: Runbook['steps'][number] & { kind: 'ssh' }, value: (name: string) => string | undefined): string[] {
  return words.words.map((w) => (typeof w === 'string' ? w : (value(w.param) ?? '')));
}

/** Signs in on `client` with `privateKey` (the run's key, which the session expects). */
export function sshSignIn(client: Duplex, privateKey: string): Promise<SshClient> {
  return new Promise((resolve, reject) => {
    const c = new ssh2.Client();
    c.once('ready', () => resolve(c));
    c.once('error', reject);
    c.once('close', () => reject(new Error('the session closed before the run signed in')));
    // The engine at the other end is this gateway's own, in memory: its host key needs no check.
    c.connect({ sock: client as never, username: 'hoop', privateKey, hostVerifier: () => true, readyTimeout: 30_000 });
  });
}

/** How long a stopped command has after TERM before KILL. */
export const KILL_AFTER_MS = 2_000;

/**
 * Runs step `step` (1-based), its words `words`, on `c`. When `halt` aborts (the run's deadline,
 * its caller gone) the command is sent TERM, then KILL: an exec without a terminal outlives its
 * channel on OpenSSH, so closing the session alone would leave it running.
 */
export function runSshStep(c: SshClient, step: number, words: readonly string[], halt: AbortSignal): Promise<StepOutcome> {
  const line = commandLine(words);
  return new Promise((resolve, reject) => {
    c.exec(line, (err, channel) => {
      if (err) return reject(err);
      let stopKill: (() => void) | undefined;
      const stopping = (): void => {
        channel.signal('TERM');
        stopKill = realClock.timer(KILL_AFTER_MS, () => channel.signal('KILL'));
      };
      if (halt.aborted) stopping();
      else halt.addEventListener('abort', stopping, { once: true });
      const out = { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) };
      const keep = (which: 'stdout' | 'stderr') => (b: Buffer) => {
        const all = Buffer.concat([out[which], b]);
        out[which] = all.length > OUTPUT_KEPT ? all.subarray(all.length - OUTPUT_KEPT) : all;
      };
      channel.on('data', keep('stdout'));
      channel.stderr.on('data', keep('stderr'));
      let code: number | null = null;
      channel.on('exit', (c: number | null) => (code = c));
      channel.on('close', () => {
        halt.removeEventListener('abort', stopping);
        stopKill?.();
        const stdout = out.stdout.toString('utf8');
        const stderr = out.stderr.toString('utf8');
        const result: RunbookStepResult = { step, tag: `exit ${code ?? 'none'}`, ...(stdout ? { stdout } : {}), ...(stderr ? { stderr } : {}) };
        if (code === 0) return resolve({ result });
        // What the policy refuses, the gateway says on the channel's error output, as hoop.
        const said = stderr.split(/\r?\n/).find((l) => l.startsWith('hoop: '));
        resolve({ result, failed: said ? { message: said, refused: true } : { message: `${words[0]} exited with ${code ?? 'no status'}${stderr ? `: ${stderr.trim().split('\n').at(-1)}` : ''}` } });
      });
    });
  });
}
