/**
 * Runs a hoop command in-process through the CLI's own `main()` and collects what it printed.
 */
import { PassThrough } from 'node:stream';
import { main } from '../../src/cli.js';

/** What a finished command returned and printed. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** What it wrote to stdout, as bytes (an archive, say). */
  stdoutBytes: Buffer;
}

/** Runs `hoop <argv>` with exactly `env` (nothing from this process) in `cwd`. */
export async function runCli(argv: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<CliResult> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  let err = '';
  stdout.on('data', (d: Buffer) => out.push(d));
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await main(argv, { stdout, stderr, env, cwd, signal: new AbortController().signal });
  const bytes = Buffer.concat(out);
  return { code, stdout: bytes.toString(), stderr: err, stdoutBytes: bytes };
}
