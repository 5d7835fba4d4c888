/**
 * `hoop exec`'s runtime: statements through the gateway, under its policy and recording, without a
 * local port: one tunnel, one session, each statement in turn, its results printed as psql prints
 * them (../ui/result-printer.ts). The first statement that fails stops them, with an exit code
 * that says why ({@link ExecExit}); one held for review makes exec wait, saying where its review
 * stands, or with `--no-wait` print the review's id and stop. Its own record of the session goes
 * up as it ends.
 */
import { type CliIo, whenAborted } from '../io.js';

import { CommandExit, hoopSays } from '../errors.js';
import { createLogger, levelFromEnv } from '../log.js';
import type { PgErrorFields } from '../postgres/wire/messages.js';
import { serverMessageLines } from '../ui/psql-format.js';
import { type ResultFormat, ResultPrinter } from '../ui/result-printer.js';
import { reviewStatusLine } from '../ui/review-lines.js';
import { CommandRecords } from './client-records.js';
import { commandTokenProvider, type GatewayFlags } from './client-config.js';
import { openGatewaySql, refusalOf } from './gateway-sql.js';

/** `hoop exec`'s exit codes beyond hoop's own (src/commands/exec.ts says them all). */
export const ExecExit = {
  /** The database reported an error. */
  STATEMENT_FAILED: 1,
  /** The policy refused a statement. */
  REFUSED: 3,
  /** A statement needs a reviewer's approval. */
  REVIEW: 4,
} as const;

/** The exit code for the error that stopped the statements. */
function exitFor(f: PgErrorFields): number {
  const refusal = refusalOf(f);
  return refusal === 'denied' ? ExecExit.REFUSED : refusal === 'review' ? ExecExit.REVIEW : ExecExit.STATEMENT_FAILED;
}

/** `hoop exec <name>`: runs `statements` in one session through the gateway, printing their results in `format` (see the module documentation). */
export async function execStatements(io: CliIo, name: string, statements: string[], format: ResultFormat, opts: GatewayFlags & { wait: boolean }): Promise<void> {
  const provider = await commandTokenProvider(io, opts);
  const log = createLogger({ level: levelFromEnv(io.env, 'warn'), sink: io.stderr, fields: { component: 'exec' } });
  const say = (line: string): void => void io.stderr.write(`${hoopSays(line)}\n`);
  // Its own record of the session, and what an earlier hoop (one killed, say) left in this machine's spool, go up as it ends.
  const records = new CommandRecords(io, provider, log);
  records.resume();
  try {
    // A statement held for review: exec waits, saying where its review stands (or, with --no-wait, leaves it to the reviewers).
    const sql = await openGatewaySql({ provider, name, application: 'hoop exec', log, say, records, onReview: (r) => say(reviewStatusLine(r)), ...(opts.wait ? {} : { detachReviews: true }) });
    try {
      const printer = new ResultPrinter(io.stdout, io.stderr, format);
      for (const statement of statements) {
        // ^C (or SIGTERM) while a statement runs or waits for its review: the session ends, which withdraws the review, and exec with it.
        const failure = await Promise.race([sql.run(statement, printer), whenAborted(io.signal).then(() => 'interrupted' as const)]);
        if (failure === 'interrupted') {
          sql.close().catch(() => undefined); // not waited for: ^C ends exec now
          say('interrupted: the session is closed, and a statement it held for review is withdrawn (it did not run)');
          throw new CommandExit(130);
        }
        if (failure && 'held' in failure) {
          const id = failure.held.id;
          io.stdout.write(`${id}\n`);
          say(`${reviewStatusLine(failure.held)}. It did not run: once it is approved (\`hoop review show ${id} --wait\`), send the same statement again, and the approval lets it run once`);
          throw new CommandExit(ExecExit.REVIEW);
        }
        if (failure) {
          io.stderr.write(`${serverMessageLines(failure).join('\n')}\n`);
          throw new CommandExit(exitFor(failure));
        }
      }
    } finally {
      await sql.close();
    }
  } finally {
    await records.finish(say);
    provider.close();
  }
}
