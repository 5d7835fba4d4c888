/**
 * What `hoop policy check` and `hoop policy test` compute: the access an identity has to a
 * connection ({@link accessFor}) together with the statement decision ({@link StatementJudge}),
 * exactly as the gateway combines them; and the run of a bundle's own test cases.
 *
 * @see docs/internals.md (§2, §4)
 */
import { accessFor, type AccessGrant } from './access.js';
import { alertSubjectKey, alertWeightFor } from './alert-match.js';
import { judgeOptionsOf, StatementJudge, type Decision } from './decide.js';
import { loadSqlParser } from './sql/analyze.js';
import { analyzeMysql, loadMysqlParser } from './mysql/analyze.js';
import { mcpJudgeFor } from './mcp.js';
import { sshJudgeFor } from './ssh.js';
import type { Action, Policy, PolicyTest, Who } from './schema.js';

/** The outcome of {@link evaluateStatement}. */
export interface Evaluation {
  /** The access that applied; undefined when access was not checked or denied. */
  access?: AccessGrant;
  /** False when an identity was given and no access rule admits it (the decision is then deny). */
  admitted: boolean;
  decision: Decision;
}

/**
 * Judges `sql` for `who` on `connection`. Without `who`, access is not checked and the statement
 * rules are applied as for read-write access (rules naming subjects or groups then never match).
 * Awaits the SQL parser once.
 */
export async function evaluateStatement(policy: Policy, who: Who | undefined, connection: string, sql: string): Promise<Evaluation> {
  await loadSqlParser();
  if (!policy.connections.some((c) => c.name === connection)) {
    return { admitted: false, decision: { action: 'deny', reason: `the policy defines no connection "${connection}"` } };
  }
  let access: AccessGrant | undefined;
  if (who) {
    access = accessFor(policy, who, connection);
    if (!access) {
      return {
        admitted: false,
        decision: { action: 'deny', reason: `no access rule admits ${who.subject}${who.groups.length > 0 ? ` (groups ${who.groups.join(', ')})` : ''} to connection "${connection}"` },
      };
    }
  }
  const judge = new StatementJudge(policy, who ?? { subject: '', groups: [] }, connection, access?.mode ?? 'read-write', access ? judgeOptionsOf(access) : {});
  // A MySQL connection's statement is read as the gateway reads it there: by MariaDB's grammar (under its default sql_mode).
  const mysql = policy.connections.find((c) => c.name === connection)?.type === 'mysql';
  if (mysql) await loadMysqlParser();
  return { ...(access ? { access } : {}), admitted: true, decision: judge.judge(sql, mysql ? analyzeMysql(sql) : undefined) };
}

/** How one result column came back in a masking case: masked or not, and by which strategy when one whole-value strategy tells. */
export interface ColumnMask {
  column: string;
  masked: boolean;
  /** `redact`, `last4`, `hash`, `null`, or `detector` (parts of the value masked). */
  strategy?: string;
}

/** What running a masking case's statements found (the result columns of the last that returned rows), or why they could not run. */
export type MaskOutcome = { columns: ColumnMask[]; where: string } | { error: string };

/** Options of {@link runPolicyTests}. */
export interface PolicyTestOptions {
  /** Runs a case with `masked:` (it needs a database: the command's to give); without it such a case fails, saying so. */
  masks?: (test: PolicyTest) => Promise<MaskOutcome>;
}

/** The result of one test case. */
export interface PolicyTestResult {
  test: PolicyTest;
  passed: boolean;
  /** The decision made: of the first statement that did not get `expect`, else of the last. */
  action: Action;
  rule?: string;
  reason: string;
  /** With `alerts`: the alerts the statements raised together. */
  raised?: string[];
  /** With `masked`: how each result column came back. */
  masks?: ColumnMask[];
}

/** The decision on each thing an SSH case asks, as the gateway's SSH engine judges it. */
function sshDecisions(policy: Policy, test: PolicyTest): Decision[] {
  const access = accessFor(policy, test.as, test.connection);
  if (!access) return test.ssh!.map(() => ({ action: 'deny' as const, reason: `no access rule admits ${test.as.subject} to connection "${test.connection}"` }));
  const judge = sshJudgeFor(policy, test.as, test.connection, access.mode);
  // The login shell the connection names, else bash (the gateway learns the real one at sign-in).
  const connection = policy.connections.find((c) => c.name === test.connection);
  const shell = (connection?.type === 'ssh' ? connection.shell : undefined) ?? 'bash';
  return test.ssh!.map((ask): Decision => {
    if (ask.kind !== 'forward') return judge.decide(ask, shell);
    return judge.forward(ask.host, ask.port)
      ? { action: 'allow', reason: `ssh.forwarding admits ${ask.host}:${ask.port}` }
      : { action: 'deny', rule: 'hoop:ssh-forwarding', reason: `ssh.forwarding does not admit ${ask.host}:${ask.port}` };
  });
}

/** The decision on each thing an MCP case asks, as the gateway's MCP engine judges it. */
function mcpDecisions(policy: Policy, test: PolicyTest): Decision[] {
  const access = accessFor(policy, test.as, test.connection);
  if (!access) return test.mcp!.map(() => ({ action: 'deny' as const, reason: `no access rule admits ${test.as.subject} to connection "${test.connection}"` }));
  const judge = mcpJudgeFor(policy, test.as, test.connection, access.mode);
  return test.mcp!.map((ask) => judge.decide(ask));
}

/** Why a masking case's columns are not as expected, or undefined when they are. */
function maskProblem(test: PolicyTest, got: ColumnMask[]): string | undefined {
  const names = new Set(got.map((c) => c.column));
  const missing = test.masked!.filter((m) => !names.has(m.column)).map((m) => m.column);
  if (missing.length > 0) return `the result has no column ${missing.join(', ')} (it has ${[...names].join(', ') || 'none'})`;
  const expected = new Map(test.masked!.map((m) => [m.column, m.strategy]));
  const wrong = got.filter((c) => c.masked !== expected.has(c.column) || (c.masked && expected.get(c.column) !== undefined && expected.get(c.column) !== c.strategy));
  if (wrong.length === 0) return undefined;
  return wrong
    .map((c) =>
      !expected.has(c.column)
        ? `${c.column} came back masked (${c.strategy ?? 'changed'})`
        : !c.masked
          ? `${c.column} came back as stored`
          : `${c.column} came back ${c.strategy ?? 'changed'}, not ${expected.get(c.column)}`,
    )
    .join('; ');
}

/**
 * Runs the bundle's test cases (`policy/tests/*.yaml`). A case passes when every statement's (or
 * SSH request's) decision is the expected one (and, when the case names a rule, that rule made
 * it); when the case lists `alerts`, when its statements together raise exactly those, as the
 * gateway's alert monitor would count them within one window ({@link alertsRaised}); and when it
 * lists `masked`, when exactly those result columns come back masked (with the strategies it
 * names), as `options.masks` runs them. A case whose identity has no access to the connection
 * decides `deny` with no rule.
 */
export async function runPolicyTests(policy: Policy, options: PolicyTestOptions = {}): Promise<PolicyTestResult[]> {
  const results: PolicyTestResult[] = [];
  for (const test of policy.tests) {
    const decisions: Decision[] = [];
    if (test.ssh) decisions.push(...sshDecisions(policy, test));
    else if (test.mcp) decisions.push(...mcpDecisions(policy, test));
    else for (const sql of test.sql!) decisions.push((await evaluateStatement(policy, test.as, test.connection, sql)).decision);
    const expect = test.expect ?? (test.masked ? 'allow' : undefined);
    const wrong = decisions.find((d) => expect !== undefined && (d.action !== expect || (test.rule !== undefined && test.rule !== d.rule)));
    const shown = wrong ?? decisions[decisions.length - 1]!;
    const raised = test.alerts ? alertsRaised(policy, test, decisions) : undefined;
    const alertsMatch = !raised || [...raised].sort().join('\n') === [...test.alerts!].sort().join('\n');
    let reason = wrong === undefined && !alertsMatch ? `the statements raise ${raised!.length > 0 ? raised!.join(', ') : 'no alert'} (${describeCounts(policy, test, decisions)})` : shown.reason;
    let masks: ColumnMask[] | undefined;
    let masksMatch = true;
    if (test.masked && wrong === undefined && alertsMatch) {
      const ran = options.masks ? await options.masks(test) : { error: 'masked: cases need a database, which this run does not give' };
      if ('error' in ran) {
        masksMatch = false;
        reason = ran.error;
      } else {
        masks = ran.columns;
        const problem = maskProblem(test, ran.columns);
        masksMatch = problem === undefined;
        reason = problem ? `${problem} (${ran.where})` : `${shown.reason}; masked as expected (${ran.where})`;
      }
    }
    results.push({
      test,
      passed: wrong === undefined && alertsMatch && masksMatch,
      action: shown.action,
      ...(shown.rule !== undefined ? { rule: shown.rule } : {}),
      reason,
      ...(raised ? { raised } : {}),
      ...(masks ? { masks } : {}),
    });
  }
  return results;
}

/** What the statements of a test case count toward each alert: `refusal-burst 1 of 3`. */
function describeCounts(policy: Policy, test: PolicyTest, decisions: readonly Decision[]): string {
  const refused = decisions.filter((d) => d.action === 'deny').length;
  const rows = decisions.filter((d) => d.action === 'allow').length * (test.rows ?? 0);
  return `${refused} refused, ${rows} rows read; the policy's alerts need ${(policy.alerts ?? []).map((a) => `${a.name}: ${a.count}`).join(', ') || 'nothing: it has none'}`;
}

/**
 * The alerts a test case's statements raise together, counted as the gateway counts them
 * (./alert-match.ts) within one window: a refused statement is a `statement.refused` (a review
 * is not: no reviewer decides in a test), an allowed one that reads `rows` a `statement.completed`.
 */
export function alertsRaised(policy: Policy, test: PolicyTest, decisions: readonly Decision[]): string[] {
  const principal = test.as.principal;
  const who = {
    subject: test.as.subject,
    issuer: 'policy-test',
    connection: test.connection,
    ...(principal?.via === 'run' || principal?.via === 'mcp' ? { run: 'policy-test-run' } : {}),
    ...(principal?.agent !== undefined ? { agent: principal.agent } : {}),
  };
  const events = decisions.flatMap((d): Array<[string, Record<string, unknown>]> => {
    if (d.action === 'deny') return [['statement.refused', { ...who, rule: d.rule }]];
    if (d.action === 'allow') return [['statement.completed', { ...who, rows: test.rows ?? 0, tables: d.touched?.tables ?? [] }]];
    return [];
  });
  const raised: string[] = [];
  for (const rule of policy.alerts ?? []) {
    if (alertSubjectKey(rule.per, who) === undefined) continue;
    let total = 0;
    for (const [event, f] of events) total += alertWeightFor(rule, event, f, test.at);
    if (total >= rule.count) raised.push(rule.name);
  }
  return raised;
}
