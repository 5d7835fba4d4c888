/**
 * The policy bundle: a good hoop.yaml loads with defaults; policy/*.yaml files merge; every
 * problem is reported with its file, line, column and field, all at once.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/errors.js';
import { PolicyInvalidError, loadPolicyDir } from '../../src/policy/load.js';
import type { PostgresConnection } from '../../src/config/connection.js';

/** A PostgreSQL connection of a loaded bundle. */
const pg = (c: unknown): PostgresConnection => c as PostgresConnection;

let base: string;
let n = 0;

beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'hoop-policy-load-'));
});
afterAll(() => rmSync(base, { recursive: true, force: true }));

/** Writes `files` (path -> text) into a fresh directory and returns it. */
function tree(files: Record<string, string>): string {
  const dir = join(base, `t${n++}`);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  mkdirSync(dir, { recursive: true });
  return dir;
}

async function problems(dir: string, env?: NodeJS.ProcessEnv): Promise<string[]> {
  try {
    await loadPolicyDir(dir, env);
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyInvalidError);
    expect((err as PolicyInvalidError).code).toBe(ErrorCode.CONFIG_INVALID);
    return (err as PolicyInvalidError).problems;
  }
  throw new Error('expected the policy to be refused');
}

export const GOOD = `version: 1
connections:
  - name: prod-db
    type: postgres
    host: db.internal
    database: app
    user: app_rw
    password: \${env:PROD_DB_PASSWORD}
  - name: replica
    type: postgres
    host: 10.0.0.7
    port: 6432
    database: app
    user: app_ro
    password: \${file:/run/secrets/replica}
    tls: { mode: verify-full, ca: ./ca.pem, serverName: replica.internal }
access:
  - name: dbas
    subjects: [alice]
    groups: [dba]
    connections: [prod-db]
    mode: read-write
    maxSessionSeconds: 28800
  - name: everyone-replica
    subjects: ["*"]
    connections: ["*"]
    statementTimeout: 30s
    lockTimeout: 1.5
    idleInTransactionTimeout: 5 min
statements:
  unparseable: review
  rules:
    - name: drop-needs-review
      match: { kinds: [drop, truncate] }
      action: review
      message: "DROP and TRUNCATE need a reviewer"
    - name: no-unbounded-writes
      match: { kinds: [update, delete], missingWhere: true }
      action: deny
    - name: contractors-no-cards
      match: { tables: ["Public.Cards", "billing.*"], groups: [contractors], connections: [prod-db] }
      action: deny
masking:
  key: \${env:HOOP_MASK_KEY}
  columns:
    - { table: customers, column: Email, strategy: redact }
  names:
    - { pattern: "^(ssn|social_security)", strategy: last4 }
  detectors:
    - { detector: payment-card, strategy: hash }
  derived: deny
recording: { results: none, rowCap: 50, auditors: [security] }
`;

let ca: string;
beforeAll(() => {
  const d = join(base, 'ca');
  mkdirSync(d);
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=db-ca', '-keyout', join(d, 'k.pem'), '-out', join(d, 'ca.pem')],
    { stdio: 'ignore' },
  );
  ca = execFileSync('cat', [join(d, 'ca.pem')], { encoding: 'utf8' });
});

describe('loadPolicyDir', () => {
  it('loads hoop.yaml with defaults, normalised names and secret references kept as references', async () => {
    const dir = tree({ 'hoop.yaml': GOOD, 'ca.pem': ca });
    const p = await loadPolicyDir(dir);
    expect(p.connections.map((c) => c.name)).toEqual(['prod-db', 'replica']);
    expect(p.connections[0]).toMatchObject({ port: 5432, password: { kind: 'env', name: 'PROD_DB_PASSWORD' }, tls: { mode: 'prefer' }, allow: { subjects: [], emails: [], groups: [] } });
    expect((p.connections[1] as { password?: unknown }).password).toEqual({ kind: 'file', path: '/run/secrets/replica' });
    expect(pg(p.connections[1]).tls.ca?.toString()).toContain('BEGIN CERTIFICATE');
    expect(p.access[0]).toEqual({ name: 'dbas', subjects: ['alice'], emails: [], groups: ['dba'], connections: ['prod-db'], mode: 'read-write', maxSessionSeconds: 28800, limits: {} });
    expect(p.access[1]!.mode).toBe('read-only');
    expect(p.access[1]!.limits).toEqual({ statement_timeout: 30_000, lock_timeout: 1500, idle_in_transaction_session_timeout: 300_000 });
    expect(p.statements.unparseable).toBe('review');
    expect(p.statements.rules[1]).toEqual({ name: 'no-unbounded-writes', match: { kinds: ['update', 'delete'], missingWhere: true }, action: 'deny' });
    expect(p.statements.rules[2]!.match.tables).toEqual(['public.cards', 'billing.*']);
    expect(p.masking.key).toEqual({ kind: 'env', name: 'HOOP_MASK_KEY' });
    expect(p.masking.columns).toEqual([{ table: 'public.customers', column: 'email', strategy: 'redact' }]);
    expect(p.masking.names[0]!.regex.test('SSN_last')).toBe(true);
    expect(p.masking.derived).toBe('deny');
    expect(p.recording).toEqual({ results: 'none', rowCap: 50, onFailure: 'close', auditors: ['security'] });
    expect(p.tests).toEqual([]);
    expect(p.commit).toBeUndefined();
  });

  it('fills defaults for a minimal bundle', async () => {
    const p = await loadPolicyDir(tree({ 'hoop.yaml': 'version: 1\n' }));
    expect(p).toMatchObject({
      connections: [],
      access: [],
      statements: { unparseable: 'deny', rules: [] },
      masking: { columns: [], names: [], detectors: [], derived: 'mask' },
      recording: { results: 'masked', rowCap: 1000, onFailure: 'close', auditors: [] },
    });
  });

  it('reads alert rules, and refuses a broken one at its line', async () => {
    const p = await loadPolicyDir(
      tree({
        'hoop.yaml': `${GOOD}
alerts:
  - name: refusals
    when: { event: refused, count: 5, within: 10min }
  - name: agent-denials
    when: { event: review-denied, count: 2, within: 1h }
    per: agent
    connections: [prod-db]
    suspend: true
    clearedBy: [dba]
    notify: [{ url: https://hooks.example.com/x, format: slack }]
`,
        'ca.pem': ca,
      }),
    );
    expect(p.alerts).toEqual([
      { name: 'refusals', event: 'refused', count: 5, withinMs: 600_000, per: 'identity', suspend: false, clearedBy: [], notify: [] },
      {
        name: 'agent-denials',
        event: 'review-denied',
        count: 2,
        withinMs: 3_600_000,
        per: 'agent',
        connections: ['prod-db'],
        suspend: true,
        clearedBy: ['dba'],
        notify: [{ url: 'https://hooks.example.com/x', format: 'slack' }],
      },
    ]);
    const broken = await problems(
      tree({
        'hoop.yaml': `${GOOD}alerts:
  - { name: a, when: { event: rows-scanned, count: 5, within: 10min } }
  - { name: b, when: { event: refused, count: 0, within: 1ms } }
  - { name: c, when: { event: refused, count: 1, within: 1min }, connections: [nope], suspend: true }
  - { name: c, when: { event: refused, count: 1, within: 1min } }
  - { name: d, when: { event: refused, count: 1, within: 1min, table: customers } }
  - { name: e, when: { event: off-hours, count: 1, within: 1h } }
  - { name: f, when: { event: off-hours, count: 1, within: 1h, hours: 8-19, timezone: Mars/Olympus } }
  - { name: g, when: { event: refused, count: 1, within: 1h, days: [mon] } }
`,
        'ca.pem': ca,
      }),
    );
    const at = (name: string): number => GOOD.split('\n').length + ['a', 'b', 'c'].indexOf(name) + 1;
    expect(broken).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          new RegExp(`^hoop\\.yaml:${at('a')}:\\d+: alerts\\.0\\.when\\.event: must be one of refused, review-denied, rows-read, bytes-sent, off-hours, first-use, egress-refused$`),
        ),
        expect.stringMatching(/alerts\.4\.when\.table: table: is for event: rows-read/),
        expect.stringMatching(/alerts\.5\.when\.hours: is missing \(event: off-hours needs hours: \(the usual hours, such as 08:00-19:00\)/),
        expect.stringMatching(/alerts\.6\.when\.hours: must be the usual hours, such as 08:00-19:00 \(24-hour clock\)/),
        expect.stringMatching(/alerts\.6\.when\.timezone: must be a time zone such as Europe\/Paris or UTC/),
        expect.stringMatching(/alerts\.7\.when\.days: days: and timezone: are for event: off-hours/),
        expect.stringMatching(new RegExp(`^hoop\\.yaml:${at('b')}:\\d+: alerts\\.1\\.when\\.count: must be at least 1$`)),
        expect.stringMatching(new RegExp(`^hoop\\.yaml:${at('b')}:\\d+: alerts\\.1\\.when\\.within: must be a time from 1s`)),
      ]),
    );
    const references = await problems(
      tree({
        'hoop.yaml': `${GOOD}alerts:
  - { name: c, when: { event: refused, count: 1, within: 1min }, connections: [nope], suspend: true }
  - { name: c, when: { event: refused, count: 1, within: 1min } }
`,
        'ca.pem': ca,
      }),
    );
    expect(references).toEqual([
      expect.stringMatching(/^hoop\.yaml:\d+:\d+: alerts\.0\.connections\.0: unknown connection "nope" \(known: prod-db, replica\)$/),
      expect.stringMatching(/^hoop\.yaml:\d+:\d+: alerts\.1\.name: duplicate alert name "c"/),
    ]);
    // Without auditors, an alert that suspends must say who clears it.
    expect(await problems(tree({ 'hoop.yaml': 'version: 1\nalerts:\n  - { name: s, when: { event: refused, count: 1, within: 1min }, suspend: true }\n' }))).toEqual([
      'hoop.yaml:3:66: alerts.0.suspend: suspends, and nobody could clear it: list clearedBy groups, or the auditors (recording.auditors)',
    ]);
  });

  it('merges policy/*.yaml and reads policy/tests/*.yaml', async () => {
    const dir = tree({
      'policy/connections.yaml': 'version: 1\nconnections:\n  - { name: db, type: postgres, host: h, database: d, user: u, password: "${env:P}" }\n',
      'policy/access.yaml': 'version: 1\naccess:\n  - { name: a, groups: [dev], connections: [db] }\nstatements:\n  rules:\n    - { name: r1, action: deny, match: { kinds: [ddl] } }\n',
      'policy/more.yml': 'version: 1\nstatements:\n  unparseable: allow\n  rules:\n    - { name: r2, action: allow }\n',
      'policy/tests/basic.yaml':
        'tests:\n  - name: dev selects\n    as: { subject: bob, groups: [dev], email: Bob@X.org }\n    connection: db\n    sql: select 1\n    expect: allow\n  - { name: ddl, as: { subject: bob }, connection: db, sql: "drop table t", expect: deny, rule: r1 }\n',
    });
    const p = await loadPolicyDir(dir);
    expect(p.connections.map((c) => c.name)).toEqual(['db']);
    expect(p.statements.rules.map((r) => r.name)).toEqual(['r1', 'r2']);
    expect(p.statements.unparseable).toBe('allow');
    expect(p.tests).toEqual([
      { name: 'dev selects', as: { subject: 'bob', groups: ['dev'], email: 'bob@x.org' }, connection: 'db', sql: ['select 1'], expect: 'allow', source: 'policy/tests/basic.yaml:2:5' },
      { name: 'ddl', as: { subject: 'bob', groups: [] }, connection: 'db', sql: ['drop table t'], expect: 'deny', rule: 'r1', source: 'policy/tests/basic.yaml:7:5' },
    ]);
  });

  it('reports every problem with file, line, column and field', async () => {
    const dir = tree({
      'hoop.yaml': `version: 1
connections:
  - name: db
    type: postgres
    host: h
    database: d
    user: u
    password: hunter2
    allow: { groups: [x] }
access:
  - name: a
    connections: [db, nope]
    mode: read-wrte
statements:
  rules:
    - name: r
      match: { kinds: [selekt], tabels: [x] }
      action: block
masking:
  detectors:
    - { detector: payment-card, strategy: hash }
recordin: {}
`,
    });
    const list = await problems(dir);
    expect(list).toEqual([
      expect.stringMatching(/^hoop\.yaml:8:15: connections\.0\.password: must be a secret reference .*not a literal password$/),
      'hoop.yaml:9:5: connections.0.allow: unknown key',
      'hoop.yaml:13:11: access.0.mode: must be read-only or read-write',
      expect.stringMatching(/^hoop\.yaml:17:24: statements\.rules\.0\.match\.kinds\.0: must be one of select, /),
      'hoop.yaml:17:33: statements.rules.0.match.tabels: unknown key (did you mean "tables"?)',
      'hoop.yaml:18:15: statements.rules.0.action: must be allow, deny or review',
      'hoop.yaml:22:1: recordin: unknown key (did you mean "recording"?)',
    ]);
    expect(list.join('\n')).not.toContain('hunter2');
  });

  it('suggests only keys valid where the key was written, and says what a field of the wrong type expects', async () => {
    const dir = tree({
      'hoop.yaml': `version: 1
connections:
  - { name: db, type: postgres, host: h, database: d, user: u, password: "\${env:P}", port: "5432" }
access:
  - { name: a, groups: dba, connections: [db] }
statements:
  rules:
    - { name: r, action: deny, match: { name: x } }
masking:
  groups: [x]
  column: []
rules: []
`,
      'policy/tests/t.yaml': `tests:
  - name: as a string
    as: alice
    connection: db
    sql: select 1
    expect: allow
  - { name: no identity, connection: db, sql: select 1, expect: allow }
`,
    });
    expect(await problems(dir)).toEqual([
      'hoop.yaml:3:92: connections.0.port: must be a port number (write 5432 without quotes)',
      'hoop.yaml:5:24: access.0.groups: expected a list like [dba]',
      'hoop.yaml:8:41: statements.rules.0.match.name: unknown key',
      'hoop.yaml:10:3: masking.groups: unknown key',
      'hoop.yaml:11:3: masking.column: unknown key (did you mean "columns"?)',
      'hoop.yaml:12:1: rules: unknown key',
      'policy/tests/t.yaml:3:9: tests.0.as: expected an object like { subject: alice, groups: [...] }',
      'policy/tests/t.yaml:7:5: tests.1.as: is missing (expected an object like { subject: ..., groups: [...] })',
    ]);
  });

  it('cross-checks names, references and secrets after the files parse', async () => {
    const dir = tree({
      'policy/a.yaml': `version: 1
connections:
  - { name: db, type: postgres, host: h, database: d, user: u, password: "\${file:relative/pass}" }
access:
  - { name: nobody, connections: [db] }
  - { name: x, subjects: [a], connections: [ghost] }
masking:
  detectors:
    - { detector: email, strategy: hash }
`,
      'policy/b.yaml': `version: 1
connections:
  - { name: db, type: postgres, host: h2, database: d, user: u, password: "\${env:MISSING_VAR}", tls: { mode: disable, ca: ./x.pem } }
access:
  - { name: x, subjects: [b], connections: ["*"] }
statements:
  rules:
    - { name: r, action: deny, match: { connections: [ghost] } }
`,
      'policy/tests/t.yaml':
        'tests:\n  - { name: t, as: { subject: a }, connection: ghost, sql: select 1, expect: allow }\n  - { name: t, as: { subject: a }, connection: db, sql: select 1, expect: allow }\n',
    });
    const list = await problems(dir, {});
    expect(list).toEqual([
      'policy/a.yaml:3:74: connections.0.password: a ${file:...} reference must be an absolute path on the gateway host (secrets never live in the config repo)',
      'policy/a.yaml:5:5: access.0: admits nobody: list subjects (or "*"), emails or groups',
      'policy/a.yaml:6:45: access.1.connections.0: unknown connection "ghost" (known: db)',
      'policy/a.yaml:9:36: masking.detectors.0.strategy: hash needs masking.key (a secret reference such as ${env:HOOP_MASK_KEY})',
      'policy/b.yaml:3:13: connections.0.name: duplicate connection name "db" (also defined at policy/a.yaml:3:13)',
      'policy/b.yaml:3:119: connections.0.tls.ca: has no effect with mode: disable; remove it or choose another mode',
      'policy/b.yaml:5:13: access.0.name: duplicate access rule name "x" (also defined at policy/a.yaml:6:13)',
      'policy/b.yaml:8:55: statements.rules.0.match.connections.0: unknown connection "ghost" (known: db)',
      'policy/tests/t.yaml:2:48: tests.0.connection: unknown connection "ghost" (known: db)',
      'policy/tests/t.yaml:3:13: tests.1.name: duplicate test name "t" (also defined at policy/tests/t.yaml:2:13)',
    ]);
  });

  it('says the first cause of a typo, not what follows from it in files that are fine (a test of the connection the typo broke)', async () => {
    const dir = tree({
      'policy/connections.yaml': 'version: 1\nconnections:\n  - { name: app, type: postgress, host: h, database: d, user: u, password: "${env:P}" }\n',
      'policy/access.yaml': 'version: 1\naccess:\n  - { name: people, groups: [dev], connections: [app] }\n',
      'policy/tests/t.yaml': 'version: 1\ntests:\n  - { name: reads, as: { subject: a, groups: [dev] }, connection: app, sql: "select 1", expect: allow }\n',
    });
    expect(await problems(dir, {})).toEqual([expect.stringMatching(/^policy\/connections\.yaml:3:\d+: connections\.0\.type: /)]);
    // With every file read, a name not defined is the mistake itself, and is said.
    const fine = tree({
      'policy/connections.yaml': 'version: 1\nconnections:\n  - { name: app, type: postgres, host: h, database: d, user: u, password: "${env:P}" }\n',
      'policy/access.yaml': 'version: 1\naccess:\n  - { name: people, groups: [dev], connections: [apq] }\n',
    });
    expect(await problems(fine, { P: 'x' })).toEqual([expect.stringContaining('unknown connection "apq" (known: app)')]);
  });

  it('refuses a scalar set in two files, naming both places', async () => {
    const dir = tree({
      'policy/a.yaml': 'version: 1\nstatements: { unparseable: allow }\n',
      'policy/b.yaml': 'version: 1\nstatements:\n  unparseable: deny\n',
    });
    expect(await problems(dir)).toEqual(['policy/b.yaml:3:3: statements.unparseable: is set again (already set at policy/a.yaml:2:28); set it in one file']);
  });

  it('reports YAML syntax errors, missing version, both layouts, no policy, symlinks and CA files outside the repo', async () => {
    expect(await problems(tree({ 'hoop.yaml': 'version: 1\naccess: [\n' }))).toEqual([expect.stringMatching(/^hoop\.yaml:\d+:\d+: /)]);
    expect(await problems(tree({ 'hoop.yaml': 'access: []\n' }))).toEqual([expect.stringMatching(/^hoop\.yaml:1:1: version: is missing/)]);
    expect(await problems(tree({ 'hoop.yaml': 'version: 2\n' }))).toEqual(['hoop.yaml:1:10: version: must be 1 (the only bundle version)']);
    expect(await problems(tree({ 'hoop.yaml': 'version: 1\n', 'policy/x.yaml': 'version: 1\n' }))).toEqual([
      '.:1:1: (top level): both hoop.yaml and policy/*.yaml exist; keep the policy in one of them',
    ]);
    expect((await problems(tree({ 'README.md': 'hi' })))[0]).toMatch(/no hoop\.yaml and no policy\/\*\.yaml$/);
    const linked = tree({ 'real.yaml': 'version: 1\n' });
    symlinkSync(join(linked, 'real.yaml'), join(linked, 'hoop.yaml'));
    expect(await problems(linked)).toEqual(['hoop.yaml:1:1: (top level): is a symbolic link (policy files must be regular files in the repo)']);
    // A policy directory that links out of the repo: its files are not the repo's.
    const elsewhere = tree({ 'x.yaml': 'version: 1\n' });
    const linkedDir = tree({ 'README.md': 'hi' });
    symlinkSync(elsewhere, join(linkedDir, 'policy'));
    expect(await problems(linkedDir)).toEqual([expect.stringMatching(/^policy\/x\.yaml:1:1: \(top level\): lies outside the repository/)]);
    const outside = tree({
      'hoop.yaml': 'version: 1\nconnections:\n  - { name: db, type: postgres, host: h, database: d, user: u, password: "${env:P}", tls: { mode: require, ca: ../ca/ca.pem } }\n',
    });
    expect(await problems(outside)).toEqual(['hoop.yaml:3:112: connections.0.tls.ca: ../ca/ca.pem is not a file inside the config repo']);
  });

  it('checks secrets and host files only when given an environment (the gateway): what a connection lacks makes it unavailable, the masking key must resolve', async () => {
    const dir = tree({ 'hoop.yaml': GOOD.replace('./ca.pem', join(base, 'ca', 'ca.pem')) });
    const cli = await loadPolicyDir(dir);
    expect(pg(cli.connections[1]).tls).toEqual({ mode: 'verify-full', caFile: join(base, 'ca', 'ca.pem'), serverName: 'replica.internal' });
    expect(cli.connections.map((c) => c.unavailable)).toEqual([undefined, undefined]);
    const list = await problems(dir, { PROD_DB_PASSWORD: 'x' });
    expect(list).toEqual([expect.stringMatching(/^hoop\.yaml:44:8: masking\.key: masking key does not resolve: environment variable HOOP_MASK_KEY is not set$/)]);
    const keyed = await loadPolicyDir(dir, { PROD_DB_PASSWORD: 'x', HOOP_MASK_KEY: 'k' });
    expect(keyed.connections[0]!.unavailable).toBeUndefined();
    expect(keyed.connections[1]!.unavailable).toEqual([
      expect.stringMatching(/^hoop\.yaml:15:15: connections\.1\.password: secret reference does not resolve: cannot read secret file \/run\/secrets\/replica/),
    ]);
    const noCa = await loadPolicyDir(tree({ 'hoop.yaml': GOOD.replace('./ca.pem', join(base, 'ca', 'missing.pem')) }), { PROD_DB_PASSWORD: 'x', HOOP_MASK_KEY: 'k' });
    expect(noCa.connections[1]!.unavailable).toContainEqual(expect.stringMatching(/^hoop\.yaml:\d+:\d+: connections\.1\.tls\.ca: /));
    writeFileSync(join(base, 'replica.pass'), 'pw\n');
    const ok = await loadPolicyDir(tree({ 'hoop.yaml': GOOD.replace('./ca.pem', join(base, 'ca', 'ca.pem')).replace('/run/secrets/replica', join(base, 'replica.pass')) }), {
      PROD_DB_PASSWORD: 'x',
      HOOP_MASK_KEY: 'k',
    });
    expect(pg(ok.connections[1]).tls.ca?.toString()).toContain('BEGIN CERTIFICATE');
  });

  it("trusts a connection's CA file outside the repo only as it trusts its own files: one others may write (or, as root, another user's) makes the connection unavailable (the seventeenth attack: the gateway sent the password to the other user's server)", async () => {
    const theirs = join(base, 'ca', 'theirs.pem');
    writeFileSync(theirs, ca, { mode: 0o644 });
    chmodSync(theirs, 0o666);
    const env = { PROD_DB_PASSWORD: 'x', HOOP_MASK_KEY: 'k' };
    const writable = await loadPolicyDir(tree({ 'hoop.yaml': GOOD.replace('./ca.pem', theirs) }), env);
    expect(writable.connections[1]!.unavailable).toContainEqual(expect.stringMatching(/connections\.1\.tls\.ca: .*theirs\.pem.*other users may write to it/));
    if (process.getuid?.() !== 0) return;
    chmodSync(theirs, 0o644);
    chownSync(theirs, 1001, 1001);
    const owned = await loadPolicyDir(tree({ 'hoop.yaml': GOOD.replace('./ca.pem', theirs) }), env);
    expect(owned.connections[1]!.unavailable).toContainEqual(expect.stringMatching(/connections\.1\.tls\.ca: .*theirs\.pem.*belongs to another user \(uid 1001\)/));
  });
});

describe("an access rule's database roles and databases", () => {
  it('must be ones the connections it names hold (their own, or their roles and databases); role passwords are secret references', async () => {
    const dir = tree({
      'hoop.yaml': `version: 1
connections:
  - { name: db, type: postgres, host: h, database: app, user: app_rw, password: "\${env:PW}", roles: [{ user: app_ro, password: "\${env:RO_PW}" }], databases: [reports] }
access:
  - { name: ok, subjects: [a], connections: [db], roles: [app_ro, app_rw], databases: [app, reports] }
  - { name: bad, subjects: [b], connections: [db], roles: [postgres], databases: [other] }
  - { name: wide, subjects: [c], connections: ["*"], roles: [anyone] }
`,
    });
    expect(await problems(dir, { PW: 'x', RO_PW: 'y' })).toEqual([
      'hoop.yaml:6:60: access.1.roles.0: role "postgres" is not one connection "db" has (it has "app_rw", "app_ro"; add it to the connection\'s roles, with its password)',
      'hoop.yaml:6:83: access.1.databases.0: database "other" is not one connection "db" has (it has "app", "reports"; add it to the connection\'s databases)',
    ]);
    const plain = tree({
      'hoop.yaml': `version: 1\nconnections:\n  - { name: db, type: postgres, host: h, database: app, user: app_rw, password: "\${env:PW}", roles: [{ user: app_ro, password: "plain-text" }] }\n`,
    });
    expect((await problems(plain, { PW: 'x' })).join('\n')).toContain('connections.0.roles.0.password');
  });
});
