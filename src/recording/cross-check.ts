/**
 * Two records of one session checked against each other: the gateway's (what it relayed and
 * decided) and the CLI's (what the local client sent and received). Each is signed by a different
 * party, so where they agree neither could have made up its account alone.
 *
 * What must agree, in order:
 * - the statements the client sent: each Query, Parse, Bind and Execute with its SQL and parameters;
 * - their outcomes as the client received them: each command tag, each error's SQLSTATE (a
 *   refusal by the gateway's policy is the error the client got), each ReadyForQuery's status.
 *
 * The two are compared as two sequences, not event by event: each end sees the client's next
 * statement and the server's last answer in its own order. When one record is truncated (a
 * process was killed), only what both hold is compared, and the result says so; so too when the
 * CLI's own early checks refused a statement, which never reached the gateway.
 *
 * @see ./read.ts for the events
 */
import type { RecordingEvent } from './event-line.js';

/** What {@link crossCheck} found. */
export interface CrossCheckResult {
  agree: boolean;
  /** Statements compared (and outcomes). */
  statements: number;
  outcomes: number;
  /** Each difference, in words, the first few. */
  differences: string[];
  /** Set when one record holds less than the other because it was cut short. */
  partial?: string;
  /** Statements of the gateway's record after the part both hold: not compared. */
  uncompared: number;
}

const STATEMENTS = new Set(['query', 'parse', 'bind', 'execute', 'function-call']);
const MAX_DIFFERENCES = 10;

/** A statement as both ends record it. */
function statementKey(e: RecordingEvent): string {
  const sql = typeof e.sql === 'string' ? ` ${e.sql}` : '';
  const params = Array.isArray(e.params) ? ` ${JSON.stringify(e.params)}` : '';
  return `${String(e.t)}${sql}${params}`;
}

/** An outcome as the client received it, or undefined for events that are not one. */
function outcomeKey(e: RecordingEvent): string | undefined {
  if (e.t === 'complete') return `complete ${String(e.tag ?? '')}`;
  if (e.t === 'error') return `error ${String(e.code ?? '')}`;
  if (e.t === 'ready') return `ready ${String(e.status ?? '')}`;
  return undefined;
}

/**
 * The statements and outcomes of one record, in order. In the CLI's record (`local`), a statement
 * its own early checks refused (`decision`) never reached the gateway, nor did what the client
 * pipelined behind it: the record is read up to there, and `stopped` says so.
 */
async function* steps(events: AsyncIterable<RecordingEvent>, which: 'statements' | 'outcomes', stopped?: { at?: number }): AsyncGenerator<string> {
  let statements = 0;
  /** The last statement, held back until the next event shows whether the CLI refused it. */
  let held: string | undefined;
  for await (const e of events) {
    if (e.t === 'decision' && stopped) {
      stopped.at = statements;
      return;
    }
    const statement = STATEMENTS.has(String(e.t));
    if (statement) statements++;
    const key = which === 'statements' ? (statement ? statementKey(e) : undefined) : outcomeKey(e);
    if (key === undefined) continue;
    if (held !== undefined) yield held;
    held = key;
  }
  if (held !== undefined) yield held;
}

/** Compares two sequences in step; says where they part. */
async function compare(what: string, a: AsyncGenerator<string>, b: AsyncGenerator<string>, out: CrossCheckResult, cut: { gateway: boolean; client: boolean }): Promise<number> {
  let n = 0;
  for (;;) {
    const [x, y] = await Promise.all([a.next(), b.next()]);
    if (x.done || y.done) {
      if (x.done && y.done) return n;
      // One side holds more: fine only when the other was cut short.
      const shorter = x.done ? 'gateway' : 'client';
      if (cut[shorter]) {
        if (shorter === 'client' && what === 'statement') for (out.uncompared = 1; !(await a.next()).done; ) out.uncompared++;
        return n;
      }
      if (out.differences.length < MAX_DIFFERENCES)
        out.differences.push(
          `${what} ${n + 1}: the ${shorter === 'gateway' ? "gateway's record ends" : "CLI's record ends"} here, the other goes on with ${JSON.stringify(((x.done ? y.value : x.value) as string).slice(0, 200))}`,
        );
      return n;
    }
    n++;
    if (x.value !== y.value && out.differences.length < MAX_DIFFERENCES) {
      out.differences.push(`${what} ${n}: the gateway recorded ${JSON.stringify(x.value.slice(0, 200))}, the CLI ${JSON.stringify(y.value.slice(0, 200))}`);
    }
  }
}

/**
 * Checks the gateway's record of a session against the CLI's. `read` opens one record's events
 * afresh (each is read twice, a chunk at a time); `truncated` says which was cut short.
 */
export async function crossCheck(read: (side: 'gateway' | 'client') => AsyncIterable<RecordingEvent>, truncated: { gateway: boolean; client: boolean }): Promise<CrossCheckResult> {
  const out: CrossCheckResult = { agree: false, statements: 0, outcomes: 0, differences: [], uncompared: 0 };
  const local: { at?: number } = {};
  // A statement the CLI refused itself ends its comparable part, as a cut would.
  const cut = {
    gateway: truncated.gateway,
    get client(): boolean {
      return truncated.client || local.at !== undefined;
    },
  };
  out.statements = await compare('statement', steps(read('gateway'), 'statements'), steps(read('client'), 'statements', local), out, cut);
  out.outcomes = await compare('outcome', steps(read('gateway'), 'outcomes'), steps(read('client'), 'outcomes', {}), out, cut);
  const partial = [
    ...(truncated.gateway && truncated.client
      ? ['both records were cut short']
      : truncated.gateway
        ? ["the gateway's record was cut short"]
        : truncated.client
          ? ["the CLI's record was cut short"]
          : []),
    ...(local.at !== undefined ? [`the CLI's own early checks refused statement ${local.at} (it never reached the gateway)`] : []),
  ];
  if (partial.length > 0) out.partial = `${partial.join('; ')}: compared up to there`;
  out.agree = out.differences.length === 0;
  return out;
}
