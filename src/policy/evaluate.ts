/**
 * What `hoop policy check` and `hoop policy test` compute: the access an identity has to a
 * connection ({@link accessFor}) together with the statement decision ({@link StatementJudge}),
 * exactly as the gateway combines them; and the run of a bundle's own test cases.
 *
 * @see docs/architecture.md (§2, §4)
 */
import { accessFor, type AccessGrant } from './access.js';
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
  /** The decision made. */
  action: Action;
  rule?: string;
  reason: string;
}

/**
 * Runs the bundle's test cases (`policy/tests/*.yaml`). A case passes when the decision's action
 * is the expected one and, when the case names a rule, that rule made the decision. A case whose
 * identity has no access to the connection decides `deny` with no rule.
 */
export async function runPolicyTests(policy: Policy): Promise<PolicyTestResult[]> {
  const results: PolicyTestResult[] = [];
  for (const test of policy.tests) {
    const { decision } = await evaluateStatement(policy, test.as, test.connection, test.sql);
    const passed = decision.action === test.expect && (test.rule === undefined || test.rule === decision.rule);
    results.push({ test, passed, action: decision.action, ...(decision.rule !== undefined ? { rule: decision.rule } : {}), reason: decision.reason });
  }
  return results;
}
