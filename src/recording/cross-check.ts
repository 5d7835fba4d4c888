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
 * statement and the server's last answer in its own order. Statements the CLI's own early checks
 * refused never reached the gateway, and are left out of the CLI's side with their errors. When one
 * record is truncated (a process was killed), only what both hold is compared, and the result says so.
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
 * The statements and outcomes of one record, in order. `local`: the record is the CLI's, whose
 * own early checks may have refused statements (a `decision` it recorded) that never left the machine.
 */
async function* steps(events: AsyncIterable<RecordingEvent>, which: 'statements' | 'outcomes', local: boolean): AsyncGenerator<string> {
  let held: string | undefined;
  /** Errors of statements refused here: the client got them, the gateway never saw them. */
  let skipErrors = 0;
  for await (const e of events) {
    if (e.t === 'decision' && local) {
      // Refused by this CLI's own checks: neither it nor its error went to the gateway.
      held = undefined;
      skipErrors++;
      continue;
    }
    if (which === 'statements') {
      if (!STATEMENTS.has(String(e.t))) continue;
      if (held !== undefined) yield held;
      held = statementKey(e);
    } else {
      const key = outcomeKey(e);
      if (key === undefined) continue;
      if (local && skipErrors > 0 && e.t === 'error') {
        skipErrors--;
        continue;
      }
      yield key;
    }
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
      if (cut[shorter]) return n;
      if (out.differences.length < MAX_DIFFERENCES) out.differences.push(`${what} ${n + 1}: the ${shorter === 'gateway' ? "gateway's record ends" : "CLI's record ends"} here, the other goes on with ${JSON.stringify(((x.done ? y.value : x.value) as string).slice(0, 200))}`);
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
  const out: CrossCheckResult = { agree: false, statements: 0, outcomes: 0, differences: [] };
  out.statements = await compare('statement', steps(read('gateway'), 'statements', false), steps(read('client'), 'statements', true), out, truncated);
  out.outcomes = await compare('outcome', steps(read('gateway'), 'outcomes', false), steps(read('client'), 'outcomes', true), out, truncated);
  const cut = truncated.gateway && truncated.client ? 'both records were' : truncated.gateway ? "the gateway's record was" : truncated.client ? "the CLI's record was" : undefined;
  if (cut) out.partial = `${cut} cut short: compared up to the end of the shorter`;
  out.agree = out.differences.length === 0;
  return out;
}
