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

/** PostgreSQL's statements: the messages that run SQL (SSH's are compared apart, see {@link compareSsh}). */
const STATEMENTS = new Set(['query', 'parse', 'bind', 'execute', 'function-call']);
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

/** An outcome as the client received it (PostgreSQL's), or undefined for events that are not one. */
function outcomeKey(e: RecordingEvent): string | undefined {
  if (e.t === 'complete') return `complete ${String(e.tag ?? '')}`;
  if (e.t === 'error') return `error ${String(e.code ?? '')}`;
  if (e.t === 'ready') return `ready ${String(e.status ?? '')}`;
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
  return [e.op, e.mode, e.name, e.path, e.to].filter((v) => v !== undefined).join(' ');
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

/** A secret the gateway wrote down redacted (src/policy/sql/redact.ts): the CLI's record holds what was typed there. */
const REDACTION = /\[redacted(?::[0-9a-f]{8})?\]/;

/** Whether the gateway's step `g` and the CLI's `c` are the same: equal, or equal but for what the gateway redacted, each marker standing for any text. */
export function sameStep(g: string, c: string): boolean {
  if (g === c) return true;
  const pieces = g.split(REDACTION);
  if (pieces.length === 1) return false;
  const first = pieces[0]!;
  const last = pieces.at(-1)!;
  if (!c.startsWith(first) || !c.endsWith(last) || c.length < first.length + last.length) return false;
  // Each piece between markers, leftmost first: the earliest place is never worse for those after it.
  let at = first.length;
  for (const piece of pieces.slice(1, -1)) {
    const i = c.indexOf(piece, at);
    if (i < 0) return false;
    at = i + piece.length;
  }
  return at <= c.length - last.length;
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
    if (!sameStep(x.value, y.value) && out.differences.length < MAX_DIFFERENCES) {
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
  await compareSsh(read, out, truncated);
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

/** What an SSH record says happened, compared as multisets: each end numbers its channels and sees them interleave in its own order. */
interface SshAccount {
  /** `<statement> | decision <d> | exit <e>` for each command, shell and sftp session; a decision bound to none on its own. */
  statements: string[];
  /** The commands, shells and sftp sessions alone. */
  keys: string[];
  /** Outcomes (decisions and exits) among them. */
  outcomes: number;
  /** Each sftp operation (operation, mode, path). */
  sftp: string[];
}

/** Reads one record's SSH account; undefined when it holds more than {@link MAX_SFTP_OPERATIONS} statements or operations. */
async function sshAccount(events: AsyncIterable<RecordingEvent>): Promise<SshAccount | undefined> {
  const byChannel = new Map<unknown, { key: string; decision?: string; exit?: string }>();
  const loose: string[] = [];
  const sftp: string[] = [];
  for await (const e of events) {
    if (byChannel.size + sftp.length > MAX_SFTP_OPERATIONS) return undefined;
    if (e.t === 'ssh-exec' || e.t === 'ssh-shell' || e.t === 'ssh-sftp-start') {
      byChannel.set(e.ch, { key: statementKey(e), ...(typeof e.decision === 'string' ? { decision: e.decision } : {}) });
    } else if (e.t === 'ssh-decision') {
      const s = e.ch !== undefined ? byChannel.get(e.ch) : undefined;
      if (s) s.decision = String(e.decision);
      else loose.push(`(no statement) ${String(e.kind)} ${String(e.command ?? '')} | decision ${String(e.decision)}`);
    } else if (e.t === 'ssh-exit') {
      const s = byChannel.get(e.ch);
      if (s) s.exit = String(e.status ?? e.signal ?? '');
    } else {
      const key = sftpKey(e);
      if (key !== undefined) sftp.push(key);
    }
  }
  const statements = [...byChannel.values()].map((s) => `${s.key} | decision ${s.decision ?? '-'} | exit ${s.exit ?? '-'}`);
  const outcomes = [...byChannel.values()].reduce((n, s) => n + (s.decision !== undefined ? 1 : 0) + (s.exit !== undefined ? 1 : 0), 0);
  return { statements: [...statements, ...loose].sort(), keys: [...byChannel.values()].map((s) => s.key).sort(), outcomes, sftp: sftp.sort() };
}

/** What `a` holds that `b` does not, counting repeats. */
function missing(a: string[], b: string[]): string[] {
  const left = new Map<string, number>();
  for (const k of b) left.set(k, (left.get(k) ?? 0) + 1);
  return a.filter((k) => {
    const n = left.get(k) ?? 0;
    if (n === 0) return true;
    left.set(k, n - 1);
    return false;
  });
}

/**
 * SSH's statements in both records: each command, shell and sftp session with the gateway's
 * decision on it and how it ended, and each sftp operation, compared as multisets (a client
 * multiplexing channels, as OpenSSH's ControlMaster does, interleaves them differently at each
 * end). When one record was cut short, its commands must be among the other's; nothing more is
 * compared.
 */
async function compareSsh(read: (side: 'gateway' | 'client') => AsyncIterable<RecordingEvent>, out: CrossCheckResult, cut: { gateway: boolean; client: boolean }): Promise<void> {
  const [gateway, client] = await Promise.all([sshAccount(read('gateway')), sshAccount(read('client'))]);
  if (!gateway || !client) {
    out.partial = `${out.partial ? `${out.partial}; ` : ''}more than ${MAX_SFTP_OPERATIONS} SSH statements and sftp operations: they were not compared`;
    return;
  }
  const say = (what: string, only: string[], side: string): void => {
    for (const k of only.slice(0, Math.max(0, MAX_DIFFERENCES - out.differences.length))) out.differences.push(`${what} ${JSON.stringify(k.slice(0, 200))} is in the ${side} record only`);
  };
  if (cut.gateway || cut.client) {
    if (cut.gateway && cut.client) return;
    const [shorter, longer] = cut.gateway ? [gateway, client] : [client, gateway];
    out.statements += shorter.keys.length;
    say('SSH statement', missing(shorter.keys, longer.keys), cut.gateway ? "gateway's" : "CLI's");
    return;
  }
  out.statements += gateway.keys.length;
  out.outcomes += gateway.outcomes;
  if (gateway.sftp.length > 0 || client.sftp.length > 0) out.sftp = gateway.sftp.length;
  say('SSH statement and outcome', missing(gateway.statements, client.statements), "gateway's");
  say('SSH statement and outcome', missing(client.statements, gateway.statements), "CLI's");
  say('sftp operation', missing(gateway.sftp, client.sftp), "gateway's");
  say('sftp operation', missing(client.sftp, gateway.sftp), "CLI's");
}
