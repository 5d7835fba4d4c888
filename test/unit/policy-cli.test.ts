/**
 * `hoop policy show | test | check` in-process on a bundle directory: the summary never shows a
 * secret value; test cases print ✓/✗ with the deciding rule and fail with exit 1; check prints
 * the decision, rule and reason with exit 0 (allow), 1 (deny) or 2 (review). Without --dir or
 * --repo, every subcommand pulls $HOOP_POLICY_REPO (at $HOOP_POLICY_REF) when it is set.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { runCli } from '../harness/run-cli.js';

let base: string;
let n = 0;

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'hoop-policy-cli-'));
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

function tree(files: Record<string, string>): string {
  const dir = join(base, `t${n++}`);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

async function run(args: string[], cwd = base, env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  const r = await runCli(args, { HOOP_CONFIG_DIR: join(base, 'config'), ...env }, cwd);
  return { code: r.code, out: r.stdout, err: r.stderr };
}

const POLICY = `version: 1
connections:
  - { name: prod, type: postgres, host: db.internal, database: app, user: app_rw, password: "\${env:PROD_PASSWORD}" }
  - { name: staging, type: postgres, host: staging.internal, database: app, user: app, password: "\${file:/run/secrets/staging}", tls: { mode: require } }
access:
  - { name: dbas, groups: [dba], connections: ["*"], mode: read-write, maxSessionSeconds: 28800 }
  - { name: analysts, groups: [analysts], connections: [prod] }
statements:
  rules:
    - name: drop-needs-review
      match: { kinds: [drop, truncate] }
      action: review
      message: DROP and TRUNCATE need a reviewer
    - name: no-unbounded-writes
      match: { kinds: [update, delete], missingWhere: true }
      action: deny
      message: UPDATE/DELETE without WHERE
masking:
  key: \${env:HOOP_MASK_KEY}
  columns: [{ table: public.customers, column: email, strategy: hash }]
  detectors: [{ detector: payment-card, strategy: last4 }]
`;

const TESTS = `tests:
  - { name: dba drops, as: { subject: alice, groups: [dba] }, connection: prod, sql: "DROP TABLE t", expect: review, rule: drop-needs-review }
  - { name: analyst reads, as: { subject: bob, groups: [analysts] }, connection: prod, sql: "select * from customers", expect: allow }
  - { name: analyst cannot write, as: { subject: bob, groups: [analysts] }, connection: prod, sql: "update t set a = 1 where id = 2", expect: deny }
  - { name: stranger, as: { subject: eve }, connection: prod, sql: "select 1", expect: deny }
  - { name: unbounded delete, as: { subject: alice, groups: [dba] }, connection: staging, sql: "delete from t", expect: deny, rule: no-unbounded-writes }
`;

describe('hoop policy', () => {
  it('show summarises the bundle without secret values', async () => {
    const dir = tree({ 'hoop.yaml': POLICY });
    const { code, out } = await run(['policy', 'show', '--dir', dir], base, { PROD_PASSWORD: 'very-secret-value' });
    expect(code).toBe(0);
    expect(out).toContain(`policy  working tree (${dir})`);
    expect(out).toMatch(/prod\s+postgres app_rw@db\.internal:5432\/app\s+password \$\{env:PROD_PASSWORD\}\s+tls prefer/);
    expect(out).toMatch(/dbas\s+read-write\s+on \*\s+groups dba\s+standing; sessions up to 8h/);
    expect(out).toMatch(/drop-needs-review\s+review\s+kinds drop,truncate\s+"DROP and TRUNCATE need a reviewer"/);
    expect(out).toMatch(/column\s+public\.customers\.email\s+hash/);
    expect(out).toContain('recording  results masked, row cap 1000, on failure close');
    expect(out).not.toContain('very-secret-value');
    const json = await run(['policy', 'show', '--json'], dir);
    expect(JSON.parse(json.out)).toMatchObject({ connections: [{ name: 'prod', password: { kind: 'env', name: 'PROD_PASSWORD' } }, { name: 'staging' }] });
  });

  it('show reports an invalid bundle with file:line:col and exit 78', async () => {
    const dir = tree({ 'hoop.yaml': 'version: 1\naccess:\n  - { name: a, groups: [x], connections: [nope] }\n' });
    const { code, err } = await run(['policy', 'show', '--dir', dir]);
    expect(code).toBe(78);
    expect(err).toContain('hoop.yaml:3:43: access.0.connections.0: unknown connection "nope" (known: none defined)');
  });

  it('test runs the cases, prints ✓ with the deciding rule, and exits 0', async () => {
    const dir = tree({ 'hoop.yaml': POLICY, 'policy/tests/cases.yaml': TESTS });
    const { code, out } = await run(['policy', 'test'], dir);
    expect(out).toContain('✓ dba drops: review by rule "drop-needs-review"');
    expect(out).toContain('✓ analyst reads: allow');
    expect(out).toContain('✓ stranger: deny');
    expect(out).toContain('✓ unbounded delete: deny by rule "no-unbounded-writes"');
    expect(out).toContain('5 passed, 0 failed');
    expect(code).toBe(0);
  });

  it('test prints ✗ with where the case is and exits 1 on a failure', async () => {
    const failing = `${TESTS}  - { name: wrong, as: { subject: alice, groups: [dba] }, connection: prod, sql: "select 1", expect: deny }\n  - { name: wrong rule, as: { subject: alice, groups: [dba] }, connection: prod, sql: "truncate t", expect: review, rule: other }\n`;
    const dir = tree({ 'hoop.yaml': POLICY, 'policy/tests/cases.yaml': failing });
    const { code, out, err } = await run(['policy', 'test', '--dir', dir]);
    expect(out).toContain('✗ wrong (policy/tests/cases.yaml:7:5): expected deny, got allow');
    expect(out).toContain('✗ wrong rule (policy/tests/cases.yaml:8:5): expected review by rule "other", got review by rule "drop-needs-review"');
    expect(out).toContain('5 passed, 2 failed');
    expect(err).toContain('2 of 7 policy tests failed');
    expect(code).toBe(1);
  });

  it('test asserts the alerts a sequence of statements raises, counted as the gateway counts them', async () => {
    const alerts = `alerts:
  - { name: refusal-burst, when: { event: refused, count: 3, within: 10min } }
  - { name: bulk-customers, when: { event: rows-read, table: customers, count: 1000, within: 1min } }
  - { name: agent-burst, when: { event: refused, count: 1, within: 1h }, per: agent }
  - { name: night-work, when: { event: off-hours, hours: "08:00-19:00", timezone: Europe/Paris, count: 2, within: 1h } }
`;
    const cases = `tests:
  - { name: three refusals, as: { subject: bob, groups: [analysts] }, connection: prod, sql: ["update t set a = 1 where id = 1", "update t set a = 2 where id = 2", "delete from t where id = 3"], expect: deny, alerts: [refusal-burst] }
  - { name: two are not enough, as: { subject: bob, groups: [analysts] }, connection: prod, sql: ["update t set a = 1 where id = 1", "select 1", "delete from t where id = 3"], alerts: [] }
  - { name: bulk read, as: { subject: bob, groups: [analysts] }, connection: prod, sql: "select * from public.customers", rows: 1200, expect: allow, alerts: [bulk-customers] }
  - { name: another table, as: { subject: bob, groups: [analysts] }, connection: prod, sql: "select * from orders", rows: 5000, alerts: [] }
  - { name: wrong, as: { subject: bob, groups: [analysts] }, connection: prod, sql: ["update t set a = 1 where id = 1"], alerts: [refusal-burst] }
  - { name: at night, as: { subject: bob, groups: [analysts] }, connection: prod, sql: ["select 1", "select 2"], at: "2026-11-25T23:30:00+01:00", alerts: [night-work] }
  - { name: by day, as: { subject: bob, groups: [analysts] }, connection: prod, sql: ["select 1", "select 2"], at: "2026-11-25T10:30:00+01:00", alerts: [] }
`;
    const dir = tree({ 'hoop.yaml': `${POLICY}${alerts}`, 'policy/tests/alerts.yaml': cases });
    const { code, out } = await run(['policy', 'test', '--dir', dir]);
    expect(out).toContain('✓ three refusals: deny by rule "read-only-access", alerts refusal-burst');
    expect(out).toContain('✓ two are not enough: alerts none');
    expect(out).toContain('✓ bulk read: allow, alerts bulk-customers');
    expect(out).toContain('✓ another table: alerts none');
    expect(out).toContain(
      "✗ wrong (policy/tests/alerts.yaml:6:5): expected alerts refusal-burst, got alerts none\n    the statements raise no alert (1 refused, 0 rows read; the policy's alerts need refusal-burst: 3, bulk-customers: 1000, agent-burst: 1, night-work: 2)",
    );
    expect(out).toContain('✓ at night: alerts night-work');
    expect(out).toContain('✓ by day: alerts none');
    expect(out).toContain('6 passed, 1 failed');
    expect(code).toBe(1);
    const unknown = tree({ 'hoop.yaml': `${POLICY}${alerts}`, 'policy/tests/alerts.yaml': `tests:\n  - { name: x, as: { subject: bob }, connection: prod, sql: "select 1", alerts: [nope] }\n` });
    const broken = await run(['policy', 'test', '--dir', unknown]);
    expect(broken.code).toBe(78);
    expect(broken.out).toContain('policy/tests/alerts.yaml:2:82: tests.0.alerts.0: unknown alert "nope" (known: refusal-burst, bulk-customers, agent-burst, night-work)');
    const neither = tree({ 'hoop.yaml': POLICY, 'policy/tests/x.yaml': `tests:\n  - { name: x, as: { subject: bob }, connection: prod, sql: "select 1" }\n` });
    expect((await run(['policy', 'test', '--dir', neither])).out).toContain(
      'needs expect: (allow, deny or review), alerts: (the alerts it raises), masked: (the columns that come back masked), or several',
    );
  });

  it('check prints decision, rule and reason; exit 0 allow, 1 deny, 2 review', async () => {
    const dir = tree({ 'hoop.yaml': POLICY });
    const allow = await run(['policy', 'check', '--dir', dir, '--as', 'bob', '--group', 'analysts', '--connection', 'prod', 'SELECT * FROM customers']);
    expect(allow.code).toBe(0);
    expect(allow.out).toMatch(/^decision {2}allow$/m);
    expect(allow.out).toMatch(/^access {4}read-only by rule "analysts"$/m);

    const review = await run(['policy', 'check', '--dir', dir, '--as', 'alice', '--group', 'dba', '--connection', 'prod', '/* x */ drop TABLE t']);
    expect(review.code).toBe(2);
    expect(review.out).toMatch(/^decision {2}review$/m);
    expect(review.out).toMatch(/^rule {6}drop-needs-review$/m);
    expect(review.out).toMatch(/^message {3}DROP and TRUNCATE need a reviewer$/m);
    expect(review.out).toMatch(/^reason {4}\S/m);

    const readOnly = await run(['policy', 'check', '--dir', dir, '--as', 'bob', '--group', 'analysts', '--connection', 'prod', 'insert into t values (1)']);
    expect(readOnly.code).toBe(1);
    expect(readOnly.out).toMatch(/^decision {2}deny$/m);

    const stranger = await run(['policy', 'check', '--dir', dir, '--as', 'eve', '--connection', 'prod', 'select 1']);
    expect(stranger.code).toBe(1);
    expect(stranger.out).toContain('no access rule admits eve to connection "prod"');
    expect(stranger.out).toMatch(/^access {4}none$/m);

    const noIdentity = await run(['policy', 'check', '--dir', dir, '--connection', 'staging', 'delete from t']);
    expect(noIdentity.code).toBe(1);
    expect(noIdentity.out).toMatch(/^rule {6}no-unbounded-writes$/m);
    expect(noIdentity.out).toContain('not checked (no --as)');
  });

  it("check reads a MySQL connection's statement by MariaDB's grammar, as the gateway does (the fifteenth attack: a backquoted name was unparseable)", async () => {
    const dir = tree({ 'hoop.yaml': POLICY.replace('access:', '  - { name: shop, type: mysql, host: db.internal, database: shop, user: app, password: "${env:SHOP_PASSWORD}" }\naccess:') });
    const quoted = await run(['policy', 'check', '--dir', dir, '--connection', 'shop', 'select `a` from t']);
    expect(quoted.out).toMatch(/^decision {2}allow$/m);
    const replace = await run(['policy', 'check', '--dir', dir, '--connection', 'shop', 'REPLACE INTO t SELECT id, 0 FROM t']);
    expect(replace.out).toMatch(/^rule {6}no-unbounded-writes$/m);
  });

  it("check and test apply the access's server timeouts as the gateway does (session-limit)", async () => {
    const dir = tree({
      'hoop.yaml': POLICY.replace('  - { name: analysts, groups: [analysts], connections: [prod] }', '  - { name: analysts, groups: [analysts], connections: [prod], statementTimeout: 30s }'),
      'policy/tests/limits.yaml':
        'tests:\n  - { name: no unlimited queries, as: { subject: bob, groups: [analysts] }, connection: prod, sql: "set statement_timeout = 0", expect: deny, rule: session-limit }\n',
    });
    const off = await run(['policy', 'check', '--dir', dir, '--as', 'bob', '--group', 'analysts', '--connection', 'prod', 'set statement_timeout = 0']);
    expect(off.code).toBe(1);
    expect(off.out).toMatch(/^rule {6}session-limit$/m);
    const lower = await run(['policy', 'check', '--dir', dir, '--as', 'bob', '--group', 'analysts', '--connection', 'prod', "set statement_timeout = '5s'"]);
    expect(lower.code).toBe(0);
    const tests = await run(['policy', 'test', '--dir', dir]);
    expect(tests.out).toContain('✓ no unlimited queries: deny by rule "session-limit"');
  });

  it('check says who must approve and how soon; a rule can give agents a shorter wait; the only SQL connection is the default beside an SSH one', async () => {
    const dir = tree({
      'hoop.yaml': `version: 1
connections:
  - { name: prod, type: postgres, host: db.internal, database: app, user: app_rw, password: "\${env:PROD_PASSWORD}" }
  - { name: bastion, type: ssh, host: bastion.internal, user: deploy, privateKey: "\${env:KEY}", hostKeys: ["SHA256:2jmj7l5rSw0yVb/vlWAYkK/YBwk3Iq9Dkm6hWmjvHbU"] }
access:
  - { name: engineers, groups: [engineers], connections: ["*"], mode: read-write }
statements:
  reviewers:
    - { groups: [dba], timeout: 10min }
  rules:
    - { name: people-write-with-review, match: { via: [connect, exec], kinds: [delete] }, action: review }
    - { name: agents-write-with-review, match: { via: [run, mcp], kinds: [delete] }, action: review, review: { timeout: 2min } }
`,
    });
    const person = await run(['policy', 'check', '--dir', dir, '--as', 'ada', '--group', 'engineers', 'delete from t where id = 1']);
    expect(person.code).toBe(2);
    expect(person.out).toMatch(/^review {4}one approval from the group "dba" \(not yours\) within 10 min$/m);
    const agent = await run(['policy', 'check', '--dir', dir, '--as', 'ada', '--group', 'engineers', '--via', 'run', '--agent', 'claude', 'delete from t where id = 1']);
    expect(agent.code).toBe(2);
    expect(agent.out).toMatch(/^rule {6}agents-write-with-review$/m);
    expect(agent.out).toMatch(/^review {4}one approval from the group "dba" \(not yours\) within 2 min$/m);
  });

  it('check asks for a connection when there are several, and for --as with --group', async () => {
    const dir = tree({ 'hoop.yaml': POLICY });
    const which = await run(['policy', 'check', '--dir', dir, 'select 1']);
    expect(which.code).toBe(64);
    expect(which.err).toContain('pass --connection (one of: prod, staging)');
    const group = await run(['policy', 'check', '--dir', dir, '--connection', 'prod', '--group', 'dba', 'select 1']);
    expect(group.code).toBe(64);
    // A connection the policy does not define is a mistake of the caller's, with the nearest name.
    const typo = await run(['policy', 'check', '--dir', dir, '--connection', 'prdo', 'select 1']);
    expect(typo.code).toBe(64);
    expect(typo.err).toContain('the policy defines no connection "prdo": did you mean "prod"?');
    expect(typo.err).toContain('one of: prod, staging');
  });
});

describe('hoop policy show | test | check with $HOOP_POLICY_REPO', () => {
  let repo: PolicyGitRepo;
  let main: string;
  let strict: string;
  /** A directory with no bundle: reading the current directory there fails. */
  let empty: string;

  beforeAll(() => {
    repo = new PolicyGitRepo('hoop-policy-cli-repo-');
    mkdirSync(join(repo.dir, 'policy', 'tests'), { recursive: true });
    writeFileSync(join(repo.dir, 'policy', 'tests', 'cases.yaml'), TESTS);
    main = repo.commit(POLICY);
    repo.git('checkout', '-q', '-b', 'strict');
    strict = repo.commit(POLICY.replace('  - { name: analysts, groups: [analysts], connections: [prod] }\n', ''));
    repo.git('checkout', '-q', 'main');
    empty = tree({ 'README.md': 'no policy here\n' });
  });
  afterAll(() => repo.remove());

  const withRepo = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({ ...repo.env, HOOP_POLICY_REPO: repo.dir, ...extra });

  it('show, test and check read the working tree of $HOOP_POLICY_REPO (a checkout) when neither --dir nor --repo is given, saying so; pull pulls it', async () => {
    const show = await run(['policy', 'show'], empty, withRepo());
    expect(show.err).toBe(`hoop: reading the working tree of ${repo.dir} (on ${main.slice(0, 12)}, unchanged)\n`);
    expect(show.code).toBe(0);
    expect(show.out).toContain(`policy  working tree (${repo.dir})`);

    const test = await run(['policy', 'test', '--offline'], empty, withRepo());
    expect(test.err).toContain(`hoop: testing the working tree of ${repo.dir} (on ${main.slice(0, 12)}, unchanged)`);
    expect(test.out).toContain('5 passed, 0 failed');
    expect(test.code).toBe(0);

    const check = await run(['policy', 'check', '--as', 'bob', '--group', 'analysts', '--connection', 'prod', 'select 1'], empty, withRepo());
    expect(check.out).toMatch(/^access {4}read-only by rule "analysts"$/m);
    expect(check.out).toContain(`policy    the working tree of ${repo.dir} (on ${main.slice(0, 12)}, unchanged)`);
    expect(check.code).toBe(0);

    // An edit not yet committed is what they read.
    writeFileSync(join(repo.dir, 'hoop.yaml'), POLICY.replace('  - { name: analysts, groups: [analysts], connections: [prod] }\n', ''));
    try {
      const edited = await run(['policy', 'check', '--as', 'bob', '--group', 'analysts', '--connection', 'prod', 'select 1'], empty, withRepo());
      expect(edited.out).toMatch(/^access {4}none$/m);
      expect(edited.out).toContain('1 file changed');
    } finally {
      repo.git('checkout', '-q', '--', 'hoop.yaml');
    }

    const pulled = await run(['policy', 'pull'], empty, withRepo());
    expect(pulled.out).toBe(`${main}\n`);
  });

  it('$HOOP_POLICY_REF picks the ref, --ref overrides it, and --dir or --repo win over $HOOP_POLICY_REPO', async () => {
    const show = await run(['policy', 'show'], empty, withRepo({ HOOP_POLICY_REF: 'strict' }));
    expect(show.out).toContain(`policy  commit ${strict} (${repo.dir})`);
    const check = await run(['policy', 'check', '--as', 'bob', '--group', 'analysts', '--connection', 'prod', 'select 1'], empty, withRepo({ HOOP_POLICY_REF: 'strict' }));
    expect(check.out).toMatch(/^access {4}none$/m);
    expect(check.code).toBe(1);
    const ref = await run(['policy', 'show', '--ref', 'main'], empty, withRepo({ HOOP_POLICY_REF: 'strict' }));
    expect(ref.out).toContain(`policy  commit ${main} (${repo.dir})`);

    const dir = tree({ 'hoop.yaml': POLICY });
    const local = await run(['policy', 'show', '--dir', dir], empty, withRepo());
    expect(local.out).toContain(`policy  working tree (${dir})`);
    const other = await run(['policy', 'show', '--repo', repo.dir, '--ref', 'strict'], empty, { ...repo.env, HOOP_POLICY_REPO: join(base, 'no-such-repo') });
    expect(other.out).toContain(`policy  commit ${strict} (${repo.dir})`);
  });

  it('without $HOOP_POLICY_REPO reads the current directory, and refuses --ref there', async () => {
    const none = await run(['policy', 'show'], empty, repo.env);
    expect(none.code).toBe(64);
    expect(none.err).toContain('is not a policy repo: it has no hoop.yaml and no policy/ directory');
    expect(none.err).toContain('pass --dir PATH');
    // Not signed in, outside a repo: the same, not "invalid policy".
    const check = await run(['policy', 'check', 'drop table x'], empty, repo.env);
    expect(check.code).toBe(64);
    expect(check.err).toContain('is not a policy repo');
    expect(check.err).not.toContain('invalid policy');
    const ref = await run(['policy', 'test', '--ref', 'strict'], empty, repo.env);
    expect(ref.code).toBe(64);
    expect(ref.err).toContain('--ref applies to a pulled config repo');
  });
});
