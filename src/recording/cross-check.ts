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
  /** Statements compared (and outcomes, and sftp operations). */
  statements: number;
  outcomes: number;
  sftp?: number;
  /** Each difference, in words, the first few. */
  differences: string[];
  /** Set when one record holds less than the other because it was cut short. */
  partial?: string;
  /** Statements of the gateway's record after the part both hold: not compared. */
  uncompared: number;
}

/** Statements: PostgreSQL's messages that run SQL; SSH's commands, shells and sftp sessions. */
const STATEMENTS = new Set(['query', 'parse', 'bind', 'execute', 'function-call', 'ssh-exec', 'ssh-shell', 'ssh-sftp-start']);
const MAX_DIFFERENCES = 10;
/** sftp operations compared per record; past this the rest are not (the result says so). */
const MAX_SFTP_OPERATIONS = 100_000;

/** A statement as both ends record it. */
function statementKey(e: RecordingEvent): string {
  const sql = typeof e.sql === 'string' ? ` ${e.sql}` : '';
  const params = Array.isArray(e.params) ? ` ${JSON.stringify(e.params)}` : '';
  const command = typeof e.command === 'string' ? ` ${e.command}` : '';
  return `${String(e.t)}${sql}${params}${command}`;
}

/**
 * An outcome as the client received it, or undefined for events that are not one. For SSH: the
 * gateway's decision on each command, shell or sftp session (in the CLI's record, as the gateway
 * told it), and how each ended (exit status or signal).
 */
function outcomeKey(e: RecordingEvent): string | undefined {
  if (e.t === 'complete') return `complete ${String(e.tag ?? '')}`;
  if (e.t === 'error') return `error ${String(e.code ?? '')}`;
  if (e.t === 'ready') return `ready ${String(e.status ?? '')}`;
  if ((e.t === 'ssh-exec' || e.t === 'ssh-shell' || e.t === 'ssh-sftp-start' || e.t === 'ssh-decision') && typeof e.decision === 'string') return `decision ${e.decision}`;
  if (e.t === 'ssh-exit') return `exit ${String(e.status ?? e.signal ?? '')}`;
  return undefined;
}

/**
 * An sftp operation as both ends record it, or undefined. A file's open is one whether it
 * succeeded, was refused by the gateway (read-only) or failed at the server; a change is taken
 * as sent, not its failure (the gateway records a refusal in place of the request).
 */
function sftpKey(e: RecordingEvent): string | undefined {
  if (e.t !== 'ssh-sftp') return undefined;
  if (e.op !== 'open' && e.failed !== undefined) return undefined;
  if (e.op === 'write') return undefined; // counted on close where writes are allowed, refused one by one where not
  return [e.ch, e.op, e.mode, e.name, e.path, e.to].filter((v) => v !== undefined).join(' ');
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
  if (!cut.gateway && !cut.client) await compareSftp(read, out);
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

/**
 * The sftp operations of both records, compared as sets per channel: each end sees requests and
 * answers interleave in its own order (a client pipelines), so only what was done is compared.
 * Records cut short are not compared here.
 */
async function compareSftp(read: (side: 'gateway' | 'client') => AsyncIterable<RecordingEvent>, out: CrossCheckResult): Promise<void> {
  const collect = async (side: 'gateway' | 'client'): Promise<string[] | undefined> => {
    const keys: string[] = [];
    for await (const e of read(side)) {
      const key = sftpKey(e);
      if (key === undefined) continue;
      if (keys.length >= MAX_SFTP_OPERATIONS) return undefined;
      keys.push(key);
    }
    return keys.sort();
  };
  const [gateway, client] = await Promise.all([collect('gateway'), collect('client')]);
  if (!gateway || !client) {
    out.partial = `${out.partial ? `${out.partial}; ` : ''}more than ${MAX_SFTP_OPERATIONS} sftp operations: they were not compared`;
    return;
  }
  if (gateway.length === 0 && client.length === 0) return;
  out.sftp = gateway.length;
  const missing = (a: string[], b: string[]): string[] => {
    const left = new Map<string, number>();
    for (const k of b) left.set(k, (left.get(k) ?? 0) + 1);
    return a.filter((k) => {
      const n = left.get(k) ?? 0;
      if (n === 0) return true;
      left.set(k, n - 1);
      return false;
    });
  };
  for (const k of missing(gateway, client).slice(0, MAX_DIFFERENCES)) out.differences.push(`sftp operation ${JSON.stringify(k)} (channel, operation, path) is in the gateway's record only`);
  for (const k of missing(client, gateway).slice(0, MAX_DIFFERENCES)) out.differences.push(`sftp operation ${JSON.stringify(k)} (channel, operation, path) is in the CLI's record only`);
}
