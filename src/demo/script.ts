/**
 * `hoop demo --script`: an "agent" session played through `hoop connect`'s local port, as any
 * PostgreSQL client would, with what the demo's policy must make of each statement checked on
 * the bytes that came back: it reads customers (emails, card numbers and SSNs masked), is
 * denied a DROP, meets the review rule with a DELETE of every row (held at the gateway: the
 * demo's reviewer denies it with the CLI), sends it again inside a transaction it rolls back (the
 * reviewer approves: it runs as sent), runs a DELETE of one row, and finds every order still
 * there; then, once it disconnects, the
 * gateway's recording of the session must verify, and agree with hoop connect's own record of it.
 */
import type { RoundTrip } from '../postgres/wire/client.js';
import type { SqlSession } from './session.js';

/** One step: a statement and what must have come back. */
interface Step {
  sql: string;
  /** Undefined when the outcome is as expected, else what went wrong. */
  check(answer: RoundTrip): string | undefined;
  /** What the step shows, said when it went as expected. */
  shows: string;
  /** The statement is held for review: the reviewer decides it with `hoop review` while it waits. */
  review?: { decision: 'approve' | 'deny'; reason?: string };
}

const REFUSED = '42501';

function refusedBy(rule: string, words: string): (a: RoundTrip) => string | undefined {
  return (a) => {
    if (!a.error) return `it ran (${a.commands.join(', ') || 'no result'}); it should have been refused`;
    if (a.error.code !== REFUSED || !a.error.message.includes(`"${rule}"`) || !a.error.message.includes(words)) return `the error was ${a.error.code} ${a.error.message}`;
    return undefined;
  };
}

const STEPS: Step[] = [
  {
    sql: 'select name, email, card_number, ssn from customers order by id limit 3',
    check: (a) => {
      if (a.error) return `${a.error.code} ${a.error.message}`;
      if (a.rows.length !== 3) return `${a.rows.length} rows came back, not 3`;
      // Masked as the policy says, whatever the strategy: no address, no more than four digits of a number.
      for (const [name, email, card, ssn] of a.rows) {
        if (email?.includes('@')) return `the email of ${name} came back as ${email}`;
        if (card !== null && /[0-9](?:[ -]?[0-9]){4}/.test(card)) return `the card number of ${name} came back as ${card}`;
        if (ssn !== null && /[0-9](?:[ -]?[0-9]){4}/.test(ssn)) return `the SSN of ${name} came back as ${ssn}`;
      }
      return undefined;
    },
    shows: 'emails, card numbers and SSNs came back masked: the gateway rewrote them before they left',
  },
  {
    sql: 'drop table orders',
    check: refusedBy('no-drop-or-truncate', 'denied'),
    shows: 'the gateway refused the DROP; it never reached the database, and the session goes on',
  },
  {
    sql: 'delete from orders',
    review: { decision: 'deny', reason: 'not during the demo' },
    check: (a) =>
      a.error?.code === REFUSED && a.error.message.includes('denied by reviewer') && a.error.message.includes('not during the demo')
        ? undefined
        : a.error
          ? `the error was ${a.error.code} ${a.error.message}`
          : 'it ran; the reviewer had denied it',
    shows: 'a DELETE that would touch every row was held at the gateway for a reviewer; the reviewer denied it with `hoop review deny`, and the agent got the reason',
  },
  {
    sql: 'begin; delete from orders; rollback',
    review: { decision: 'approve' },
    check: (a) => (a.error ? `${a.error.code} ${a.error.message}` : a.commands.includes('DELETE 60') && a.commands.includes('ROLLBACK') ? undefined : `it said ${a.commands.join(', ')}`),
    shows: 'held again; the reviewer approved it with `hoop review approve`, and exactly the held statement ran (DELETE 60, rolled back here)',
  },
  {
    sql: 'begin; delete from orders where id = 7; rollback',
    check: (a) => (a.error ? `${a.error.code} ${a.error.message}` : a.commands.includes('DELETE 1') ? undefined : `it said ${a.commands.join(', ')}`),
    shows: 'a DELETE of one row is an ordinary statement: it runs (and is rolled back here)',
  },
  {
    sql: 'select count(*) from orders',
    check: (a) => (a.error ? `${a.error.code} ${a.error.message}` : a.rows[0]?.[0] === '60' ? undefined : `${a.rows[0]?.[0]} orders are left, not 60`),
    shows: 'all 60 orders are still there',
  },
];

/** Shows a result the way psql's unaligned output would, a few rows at most. */
function shown(a: RoundTrip): string[] {
  if (a.error) return [`ERROR ${a.error.code}: ${a.error.message}`];
  if (a.rows.length > 0) return a.rows.slice(0, 5).map((r) => r.map((v) => v ?? 'NULL').join(' | '));
  return [a.commands.join(', ')];
}

/** What checking the session's recording found: whether it verifies, and what the check said. */
export interface RecordingCheckResult {
  ok: boolean;
  detail: string;
}

/**
 * Plays the agent on `session`, then ends the session and, with `recording`, checks that the
 * gateway recorded it and that the recording verifies. Resolves the transcript and whether every
 * outcome was as expected.
 */
/** The wrapped agent's step: its prompt, its statement, and what the run must show. */
const AGENT_PROMPT = 'How many orders are there?';
const AGENT_SQL = 'select count(*) from orders';

/** What the scripted session needs of the demo besides its SQL session. */
export interface DemoScriptChecks {
  /** `hoop sessions verify last`, once the session ended. */
  recording?: () => Promise<RecordingCheckResult>;
  /** An agent wrapped by `hoop run`. */
  runAgent?: (prompt: string, sql: string) => Promise<{ code: number; stdout: string; replay: string }>;
  /** The reviewer's `hoop review approve|deny` of the statement the session waits on (or of review `id`). */
  review?: (decision: 'approve' | 'deny', reason?: string, id?: string) => Promise<{ code: number; line: string }>;
  /** An agent under `hoop run --agent demo-agent` sends a write with `hoop exec --no-wait`: its exit code, output (the review id) and the review as the reviewer sees it. */
  agentWrite?: (sql: string) => Promise<{ code: number; stdout: string; review?: Record<string, unknown> }>;
  /** The same person runs `sql` in a session of their own (hoop connect's port). */
  personRun?: (sql: string) => Promise<RoundTrip>;
  /** `hoop alerts ls --json` as the demo's user: the alerts about them. */
  alerts?: () => Promise<{ code: number; alerts: Array<{ id: string; rule: string; count: number; state: string }> }>;
  /** With an SSH target: `hoop run --connect demo-ssh -- sh -c <script>` and the replay of its last session. */
  runSsh?: (script: string) => Promise<{ code: number; stdout: string; stderr: string; replay: string }>;
}

/** What the agent runs on the SSH target: a command, then one the demo policy refuses. */
const SSH_SCRIPT = 'ssh -F "$HOOP_SSH_CONFIG" demo-ssh \'uname -s | sed "s/^/hello from /"\'; ssh -F "$HOOP_SSH_CONFIG" demo-ssh \'rm -rf /tmp/hoop-demo-nothing\'; echo "refused: exit $?"';

/** What the agent writes, held for a reviewer, while its person's own write of it runs. */
const AGENT_WRITE = "update orders set status = 'shipped' where id = 7";

/** The agent keeps trying what the policy refuses: with the DROP before, five refusals in ten minutes, which the demo's alert counts. */
const BURST = ['truncate orders', 'truncate customers', 'drop table customers', 'truncate orders'];

export async function runDemoScript(session: SqlSession, checks: DemoScriptChecks = {}): Promise<{ transcript: string[]; ok: boolean }> {
  const { recording, runAgent, review, runSsh, agentWrite, personRun, alerts } = checks;
  const transcript: string[] = [];
  let passed = 0;
  for (const step of STEPS) {
    const running = session.run(step.sql);
    const decided = step.review && review ? await review(step.review.decision, step.review.reason) : undefined;
    const answer = await running;
    transcript.push(`agent> ${step.sql}`);
    if (decided) transcript.push(`        (reviewer) ${decided.line}`);
    for (const line of shown(answer)) transcript.push(`        ${line}`);
    const problem = decided && decided.code !== 0 ? `the reviewer's command failed: ${decided.line}` : step.check(answer);
    if (problem === undefined) passed++;
    transcript.push(problem === undefined ? `   ok   ${step.shows}` : `   FAIL ${problem}`, '');
  }
  let total = STEPS.length;
  if (alerts) {
    total++;
    const refused: string[] = [];
    for (const sql of BURST) {
      const a = await session.run(sql);
      if (a.error?.code === REFUSED) refused.push(sql);
    }
    transcript.push(`agent> ${BURST.join('; ')} (one at a time)`, `        ${refused.length} of ${BURST.length} refused`);
    const r = await alerts();
    const raised = r.alerts.find((a) => a.rule === 'refusal-burst' && a.state === 'open');
    transcript.push('you>   hoop alerts ls', ...(raised ? [`        ${raised.id}  refusal-burst  ${raised.count} refused events  open`] : [`        (exit ${r.code}) no open refusal-burst alert`]));
    const problem = refused.length !== BURST.length ? `only ${refused.length} of the ${BURST.length} statements were refused` : !raised ? 'no refusal-burst alert was raised' : undefined;
    if (problem === undefined) passed++;
    transcript.push(
      problem === undefined
        ? "   ok   five refusals within ten minutes raised the policy's refusal-burst alert: on the audit stream with its evidence, and in hoop alerts ls (an alert may also suspend, until a person clears it)"
        : `   FAIL ${problem}`,
      '',
    );
  }
  session.close();
  if (recording) {
    total++;
    const r = await recording();
    transcript.push('agent> (disconnects; hoop sessions verify last)', ...r.detail.split('\n').map((l) => `        ${l}`));
    if (r.ok) passed++;
    transcript.push(
      r.ok
        ? "   ok   the gateway recorded the session, with the rows as the agent saw them, and signed it; hoop connect's own record, signed with this machine's key, tells the same story"
        : `   FAIL ${r.detail.split('\n').at(-1) ?? ''}`,
      '',
    );
  }
  if (runAgent) {
    total++;
    const r = await runAgent(AGENT_PROMPT, AGENT_SQL);
    transcript.push(`agent> hoop run --connect demo-db --prompt ${JSON.stringify(AGENT_PROMPT)} -- hoop exec demo-db --csv -c ${JSON.stringify(AGENT_SQL)}`);
    for (const line of [...r.stdout.trim().split('\n'), ...r.replay.split('\n').filter((l) => l.startsWith('-- run ') || l.startsWith("-- the run's"))]) transcript.push(`        ${line}`);
    const problem =
      r.code !== 0
        ? `hoop run exited ${r.code}`
        : r.stdout !== 'count\n60\n'
          ? `the agent printed ${JSON.stringify(r.stdout)}`
          : !r.replay.includes(`-- the run's prompt: ${JSON.stringify(AGENT_PROMPT)}`) || !r.replay.includes("-- the run's command exited with 0")
            ? `the run's own record was not replayed: ${r.replay.split('\n')[0] ?? ''}`
            : undefined;
    if (problem === undefined) passed++;
    transcript.push(
      problem === undefined
        ? "   ok   hoop run wrapped the agent: its session is linked to the run, and the run's own record (its prompt, its exit code) is signed by this machine and uploaded"
        : `   FAIL ${problem}`,
      '',
    );
  }
  if (agentWrite && personRun && review) {
    total++;
    const r = await agentWrite(AGENT_WRITE);
    transcript.push(`agent> hoop run --agent demo-agent --connect demo-db -- hoop exec demo-db --no-wait -c ${JSON.stringify(AGENT_WRITE)}`, `        ${r.stdout.trim() || `(exit ${r.code})`}`);
    const own = await personRun(AGENT_WRITE);
    transcript.push(`you>   ${AGENT_WRITE}`, ...shown(own).map((l) => `        ${l}`));
    const id = r.stdout.trim();
    const denied = await review('deny', 'its person made the change', id);
    transcript.push(`        (reviewer) ${denied.line}`);
    const held = r.review;
    const problem =
      r.code !== 4
        ? `hoop exec exited ${r.code}; a write held for review exits 4`
        : held?.rule !== 'agents-writes-review' || held.via !== 'run' || held.agent !== 'demo-agent'
          ? `the review was not the agent's: ${JSON.stringify(held)}`
          : own.error || !own.commands.includes('UPDATE 1')
            ? `the person's own write did not run: ${shown(own).join(' ')}`
            : denied.code !== 0
              ? `the reviewer's command failed: ${denied.line}`
              : undefined;
    if (problem === undefined) passed++;
    transcript.push(
      problem === undefined
        ? "   ok   the agent is a principal of its own: its write waited for a reviewer (rule agents-writes-review names via: run), while the same person's own write ran"
        : `   FAIL ${problem}`,
      '',
    );
  }
  if (runSsh) {
    total++;
    const r = await runSsh(SSH_SCRIPT);
    transcript.push(`agent> hoop run --connect demo-ssh -- sh -c ${JSON.stringify(SSH_SCRIPT)}`);
    for (const line of [...r.stdout.trim().split('\n'), ...r.stderr.trim().split('\n')].filter(Boolean)) transcript.push(`        ${line}`);
    const problem =
      r.code !== 0
        ? `hoop run exited ${r.code}`
        : !/^hello from \S+$/m.test(r.stdout)
          ? `the command's output was ${JSON.stringify(r.stdout)}`
          : !r.stdout.includes('refused: exit 126') || !r.stderr.includes('hoop: recursive deletes are not allowed through hoop')
            ? `the rm -rf was not refused: ${JSON.stringify(r.stderr)}`
            : !r.replay.includes('$ rm -rf /tmp/hoop-demo-nothing')
              ? `the replay of the SSH session did not show it: ${JSON.stringify(r.replay)}`
              : undefined;
    if (problem === undefined) passed++;
    transcript.push(
      problem === undefined
        ? "   ok   over SSH too: the gateway alone holds the target's key, refused the rm -rf before it reached the server, and recorded the session (hoop sessions replay plays it)"
        : `   FAIL ${problem}`,
      '',
    );
  }
  transcript.push(`${passed} of ${total} expected outcomes happened.`);
  return { transcript, ok: passed === total };
}
