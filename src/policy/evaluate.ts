/**
 * What `hoop policy check` and `hoop policy test` compute: the access an identity has to a
 * connection ({@link accessFor}) together with the statement decision ({@link StatementJudge}),
 * exactly as the gateway combines them; and the run of a bundle's own test cases.
 *
 * @see docs/architecture.md (§2, §4)
 */
import { accessFor, type AccessGrant } from './access.js';
import { alertSubjectKey, alertWeightFor } from './alert-match.js';
import { StatementJudge, type Decision } from './decide.js';
import { loadSqlParser } from './sql/analyze.js';
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
  const judge = new StatementJudge(
    policy,
    who ?? { subject: '', groups: [] },
    connection,
    access?.mode ?? 'read-write',
    access ? { limits: access.limits, ...(access.rowLimit ? { rowLimit: access.rowLimit } : {}) } : {},
  );
  return { ...(access ? { access } : {}), admitted: true, decision: judge.judge(sql) };
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
}

/**
 * Runs the bundle's test cases (`policy/tests/*.yaml`). A case passes when every statement's
 * decision is the expected one (and, when the case names a rule, that rule made it), and when the
 * case lists `alerts`, when its statements together raise exactly those, as the gateway's alert
 * monitor would count them within one window ({@link alertsRaised}). A case whose identity has no
 * access to the connection decides `deny` with no rule.
 */
export async function runPolicyTests(policy: Policy): Promise<PolicyTestResult[]> {
  const results: PolicyTestResult[] = [];
  for (const test of policy.tests) {
    const decisions: Decision[] = [];
    for (const sql of test.sql) decisions.push((await evaluateStatement(policy, test.as, test.connection, sql)).decision);
    const wrong = decisions.find((d) => test.expect !== undefined && (d.action !== test.expect || (test.rule !== undefined && test.rule !== d.rule)));
    const shown = wrong ?? decisions[decisions.length - 1]!;
    const raised = test.alerts ? alertsRaised(policy, test, decisions) : undefined;
    const alertsMatch = !raised || [...raised].sort().join('\n') === [...test.alerts!].sort().join('\n');
    results.push({
      test,
      passed: wrong === undefined && alertsMatch,
      action: shown.action,
      ...(shown.rule !== undefined ? { rule: shown.rule } : {}),
      reason: wrong === undefined && !alertsMatch ? `the statements raise ${raised!.length > 0 ? raised!.join(', ') : 'no alert'} (${describeCounts(policy, test, decisions)})` : shown.reason,
      ...(raised ? { raised } : {}),
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
