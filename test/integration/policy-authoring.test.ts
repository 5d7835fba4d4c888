/**
 * Writing a policy as its author does, against a real gateway following a real config repo:
 * `hoop policy test` reads the working tree (saying so) and validates it exactly as the gateway
 * validates a commit, before and after it is committed; `hoop policy status` shows the commit in
 * force, what the gateway cannot open and what it refused; a connection whose secret the gateway
 * lacks is unavailable, not a reason to refuse the policy; test cases check masked columns (on a
 * fixture, through the gateway's engine), SSH decisions and alerts; `show` prints every field that
 * changes what someone may do; `schema` is a JSON Schema of the files.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectionYaml } from '../harness/postgres.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { startStack, type HoopStack } from '../harness/stack.js';

let stack: HoopStack;
let repo: PolicyGitRepo;
let token: string;
let bundle: string;

const TESTS = `version: 1
tests:
  - name: analysts read customers
    as: { subject: bob, groups: [analysts] }
    connection: app
    sql: select id from customers
    expect: allow
  - name: analysts see emails and cards masked, names as stored
    as: { subject: bob, groups: [analysts] }
    connection: app
    sql: select id, name, email, card from customers order by id
    fixture: policy/fixtures/customers.sql
    masked: { email: redact, card: last4 }
  - name: an email in a note is masked where it stands
    as: { subject: bob, groups: [analysts] }
    connection: app
    sql: select note from customers order by id
    fixture: policy/fixtures/customers.sql
    masked: [note]
  - name: on the connection itself, as the signed-in identity, under the policy in force
    as: { subject: alice }
    connection: app
    sql: select id, email, card from customers order by id
    masked: { email: redact, card: last4 }
  - name: ops may list files but not remove them
    as: { subject: bob, groups: [analysts] }
    connection: box
    ssh: ["ls -l /srv", { shell: true }]
    expect: allow
  - name: nobody removes files
    as: { subject: bob, groups: [analysts] }
    connection: box
    ssh: rm -rf /srv
    expect: deny
    rule: no-rm
  - name: no tunnel to the metadata service
    as: { subject: bob, groups: [analysts] }
    connection: box
    ssh: { forward: 169.254.169.254:80 }
    expect: deny
`;

const FIXTURE = `create table customers (id int primary key, name text, email text, card text, note text);
insert into customers values
  (1, 'Ada', 'ada@example.com', '4111 1111 1111 1111', 'call ada@example.com'),
  (2, 'Grace', 'grace@example.com', '5500 0000 0000 0004', 'no note');
`;

/** The bundle, with `box`'s key and `app`'s password as given. */
function policyYaml(pg: HoopStack['pg'], appPassword: string): string {
  return `version: 1
connections:
${connectionYaml(pg, { name: 'app', password: appPassword })}  - name: box
    type: ssh
    host: 127.0.0.1
    port: 22
    user: ops
    privateKey: \${env:APP_BOX_KEY}
    hostKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAc5PHqqpC/Izm7sHJYHDlu/xwPRkqS2kJ+lzAT6viBQ"]
access:
  - { name: analysts, groups: [analysts], connections: [app, box], mode: read-write, maxAffectedRows: 10 }
  - { name: alice, subjects: [alice], connections: [app], mode: read-write }
  - { name: auditors, groups: [security], connections: [app], mode: read-only }
  - { name: oncall, subjects: [carol], connections: [app], mode: read-write, requestable: true, maxGrant: 2h }
masking:
  columns:
    - { table: public.customers, column: email, strategy: redact }
    - { table: public.customers, column: card, strategy: last4 }
  detectors:
    - { detector: email, strategy: redact }
ssh:
  rules:
    - { name: no-rm, match: { commands: ["rm *"] }, action: deny }
recording:
  auditors: [security]
`;
}

const hoop = async (argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> =>
  stack.run([...argv], { HOOP_GATEWAY: stack.gateway.url, HOOP_CA_FILE: stack.pki.caFile, HOOP_TOKEN: token, HOOP_POLICY_REPO: repo.dir, ...env });

beforeAll(async () => {
  repo = new PolicyGitRepo('hoop-authoring-');
  stack = await startStack({
    policy: async ({ pg }) => {
      await pg.psql(FIXTURE, { user: pg.users.scram });
      bundle = policyYaml(pg, '${env:APP_PASSWORD}');
      mkdirSync(join(repo.dir, 'policy', 'fixtures'), { recursive: true });
      writeFileSync(join(repo.dir, 'policy', 'fixtures', 'customers.sql'), FIXTURE);
      mkdirSync(join(repo.dir, 'policy', 'tests'), { recursive: true });
      writeFileSync(join(repo.dir, 'policy', 'tests', 'cases.yaml'), TESTS);
      repo.commit(bundle);
      return repo.gatewayBlock(['${env:APP_*}']);
    },
  });
  token = await stack.token('alice', ['security']); // an auditor: she sees what connections lack
});
afterAll(async () => {
  await stack?.close();
  repo?.remove();
});

describe('hoop policy test', () => {
  it('reads the working tree, says so, validates it as the gateway does, and runs decisions, masking on a fixture and on the connection, and SSH requests', async () => {
    const r = await hoop(['policy', 'test', '--on-connections']);
    expect(r.stderr).toContain(`hoop: testing the working tree of ${repo.dir} (on ${repo.git('rev-parse', 'HEAD').slice(0, 12)}, unchanged)`);
    expect(r.stderr).toContain(`validated as ${new URL(stack.gateway.url).origin} validates a commit (policy.allowedSecrets: \${env:APP_*})`);
    // The SSH connection's key is not set on the gateway: unavailable there, said, not a refusal.
    expect(r.stderr).toContain('the gateway cannot open "box"');
    expect(r.stdout).toContain('✓ analysts see emails and cards masked, names as stored: masked email (redact), card (last4)');
    expect(r.stdout).toContain('✓ an email in a note is masked where it stands: masked note (detector)');
    expect(r.stdout).toContain('✓ nobody removes files: deny by rule "no-rm"');
    expect(r.stdout).toContain('✓ no tunnel to the metadata service: deny by rule "hoop:ssh-forwarding"');
    expect(r.stdout).toMatch(/✓ on the connection itself, as the signed-in identity, under the policy in force: masked email \(redact\), card \(last4\)/);
    expect(r.stdout).toContain('7 passed, 0 failed');
    expect(r.code).toBe(0);
    // Without --on-connections, a case's SQL never runs on a real connection.
    const untrusted = await hoop(['policy', 'test']);
    expect(untrusted.code).toBe(1);
    expect(untrusted.stdout).toContain('without a fixture, the statements would run on app itself: pass --on-connections to let them');
  });

  it('fails a masking case whose columns are not as expected, saying which and how they came back', async () => {
    const file = join(repo.dir, 'policy', 'tests', 'cases.yaml');
    writeFileSync(file, TESTS.replace('masked: { email: redact, card: last4 }', 'masked: { email: redact, name: redact }'));
    try {
      const r = await hoop(['policy', 'test']);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('1 file changed'); // the edit, said
      expect(r.stdout).toMatch(
        /✗ analysts see emails and cards masked, names as stored \(policy\/tests\/cases\.yaml:\d+:\d+\): expected masked email \(redact\), name \(redact\), got masked email \(redact\), card \(last4\)/,
      );
      expect(r.stdout).toContain('name came back as stored; card came back masked (last4)');
      // A config repo is not trusted code: its fixture runs as a role that cannot reach the host.
      const planted = join(repo.base, 'planted-by-a-fixture');
      writeFileSync(join(repo.dir, 'policy', 'fixtures', 'hostile.sql'), `copy (select 1) to program 'touch ${planted}';\n${FIXTURE}`);
      writeFileSync(file, TESTS.replace('fixture: policy/fixtures/customers.sql\n    masked: [note]', 'fixture: policy/fixtures/hostile.sql\n    masked: [note]'));
      const hostile = await hoop(['policy', 'test']);
      expect(hostile.stdout).toMatch(/✗ an email in a note is masked where it stands .*\n.*policy\/fixtures\/hostile\.sql: .*permission denied to COPY to or from an external program/);
      expect(existsSync(planted)).toBe(false);
      rmSync(join(repo.dir, 'policy', 'fixtures', 'hostile.sql'));
      writeFileSync(file, TESTS);
      // On the connection, the statements run as whoever is signed in: a case as someone else says so.
      const bob = await hoop(['policy', 'test', '--on-connections'], { HOOP_TOKEN: await stack.token('bob', ['analysts']) });
      expect(bob.stdout).toContain('without a fixture, the statements run on app as you (bob), not as the case');
      // And there only reads run, in a read-only transaction: a case that writes is not run on the connection.
      writeFileSync(
        file,
        TESTS.replace(
          'sql: select id, email, card from customers order by id\n    masked:',
          'sql: ["delete from customers where id = 2", "select id, email, card from customers order by id"]\n    masked:',
        ),
      );
      const writer = await hoop(['policy', 'test', '--on-connections']);
      expect(writer.stdout).toContain('where a test only reads: it is not only SELECT (delete)');
      expect((await stack.pg.psql('select count(*) from customers', { database: 'app' })).trim()).toBe('2');
    } finally {
      writeFileSync(file, TESTS);
    }
  });

  it('compares what the client got with what the same execution read (a fixture that answers differently on its second read passes nothing), and holds a fixture to its budget of disk and time', async () => {
    const file = join(repo.dir, 'policy', 'tests', 'cases.yaml');
    const fixtures = join(repo.dir, 'policy', 'fixtures');
    writeFileSync(
      join(fixtures, 'flip.sql'),
      "create sequence s;\ncreate table people (id int, name text);\ninsert into people values (1, 'Ada');\ncreate view flip as select id, case when nextval('s') % 2 = 1 then name else 'someone else' end as name from people;\n",
    );
    writeFileSync(join(fixtures, 'big.sql'), "create table big as select repeat('x', 1000) as t from generate_series(1, 40000);\n");
    writeFileSync(join(fixtures, 'slow.sql'), 'select pg_sleep(30);\n');
    const cases = (fixture: string, name: string): string =>
      `version: 1\ntests:\n  - name: ${name}\n    as: { subject: bob, groups: [analysts] }\n    connection: app\n    sql: select name from flip\n    fixture: policy/fixtures/${fixture}\n    masked: [name]\n`;
    try {
      writeFileSync(file, cases('flip.sql', 'a name that flips is masked'));
      const flip = await hoop(['policy', 'test']);
      expect(flip.code).toBe(1);
      expect(flip.stdout).toMatch(/✗ a name that flips is masked .*expected masked name, got masked nothing/);
      writeFileSync(file, cases('big.sql', 'a big fixture'));
      const big = await hoop(['policy', 'test', '--fixture-mib', '24']);
      expect(big.code).toBe(1);
      expect(big.stdout).toContain('policy/fixtures/big.sql grew its database past 24 MiB, the disk a fixture may use (--fixture-mib)');
      writeFileSync(file, cases('slow.sql', 'a slow fixture'));
      const started = Date.now();
      const slow = await hoop(['policy', 'test', '--fixture-seconds', '1']);
      expect(slow.stdout).toContain('policy/fixtures/slow.sql ran past 1 s, the time a fixture may take to load (--fixture-seconds)');
      expect(Date.now() - started).toBeLessThan(25_000);
      expect((await hoop(['policy', 'test', '--fixture-seconds', '0'])).code).toBe(64);
    } finally {
      writeFileSync(file, TESTS);
      for (const f of ['flip.sql', 'big.sql', 'slow.sql']) rmSync(join(fixtures, f), { force: true });
    }
  });

  it('fails, with file:line, an edit the gateway would refuse, before and after it is committed; status shows the refused commit', async () => {
    const edited = bundle.replace('${env:APP_PASSWORD}', '${env:OTHER_PASSWORD}');
    writeFileSync(join(repo.dir, 'hoop.yaml'), edited);
    const before = await hoop(['policy', 'test']);
    expect(before.code).toBe(78);
    expect(before.stdout).toMatch(
      /✗ the gateway would refuse this policy \(1 problem\):\n {4}hoop\.yaml:\d+:\d+: connections\.0\.password: \$\{env:OTHER_PASSWORD\} is not allowed by the gateway's policy\.allowedSecrets/,
    );
    const refused = repo.commit(edited);
    const inForce = (await stack.gateway.policy!.refresh()).commit!;
    expect(inForce).not.toBe(refused);
    const after = await hoop(['policy', 'test']);
    expect(after.code).toBe(78);
    expect(after.stdout).toContain('is not allowed by the gateway');
    const status = await hoop(['policy', 'status']);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`in force     ${inForce}`);
    expect(status.stdout).toMatch(new RegExp(`refused      ${refused} at \\S+:\\n +hoop\\.yaml:\\d+:\\d+: connections\\.0\\.password: \\$\\{env:OTHER_PASSWORD\\} is not allowed`));
    expect(status.stdout).toMatch(/unavailable {2}box: hoop\.yaml:\d+:\d+: connections\.1\.privateKey: secret reference does not resolve/);
    // What a connection lacks is an auditor's to see: bob, who may use box, is told it is unavailable; carol, who may not, nothing of it.
    const bobs = await hoop(['policy', 'status'], { HOOP_TOKEN: await stack.token('bob', ['analysts']) });
    expect(bobs.stdout).toContain('unavailable  box: the gateway lacks a secret or file this connection needs');
    expect(bobs.stdout).not.toContain('privateKey');
    const carols = await hoop(['policy', 'status'], { HOOP_TOKEN: await stack.token('carol') });
    expect(carols.stdout).toContain('unavailable  none');
    const json = JSON.parse((await hoop(['policy', 'status', '--json'])).stdout) as { refused: { commit: string }; allowedSecrets: string[] };
    expect(json).toMatchObject({ refused: { commit: refused }, allowedSecrets: ['${env:APP_*}'] });
    // Offline, the CLI alone cannot know the gateway's list: it says so, and checks the rest.
    const offline = await hoop(['policy', 'test', '--offline']);
    expect(offline.stderr).toContain('not checked against a gateway (--offline): secret references were checked for form only');
    repo.commit(bundle);
    expect((await stack.gateway.policy!.refresh()).changed).toBe(true);
    expect((await hoop(['policy', 'test', '--on-connections'])).code).toBe(0);
  });
});

describe('a connection the gateway lacks a secret for', () => {
  it('is unavailable with a clear error when used; the rest of the policy is in force', async () => {
    const bob = { HOOP_TOKEN: await stack.token('bob', ['analysts']) };
    const conns = (JSON.parse((await hoop(['connections', '--json'], bob)).stdout) as { connections: Array<{ name: string; unavailable?: string }> }).connections;
    expect(conns.find((c) => c.name === 'box')?.unavailable).toBe("the gateway lacks a secret or file this connection needs (an auditor sees which in hoop policy status; the gateway's log names it)");
    const used = await hoop(['connect', 'box'], bob);
    expect(used.code).not.toBe(0);
    expect(used.stderr).toContain('the connection "box" is unavailable on this gateway: the gateway lacks a secret or file it needs');
    expect(used.stderr).not.toContain('privateKey');
    // Someone with no access learns nothing of it: access is decided first.
    const carol = await hoop(['connect', 'box'], { HOOP_TOKEN: await stack.token('carol') });
    expect(carol.stderr).toContain('may not use the connection "box"');
    expect(stack.logs().some((l) => l.event === 'policy.connection_unavailable' && l.connection === 'box')).toBe(true);
  });
});

describe('hoop policy show and schema', () => {
  it('show prints what changes what someone may do: requestable grants, row limits, ssh rules, unavailable connections', async () => {
    const r = await hoop(['policy', 'show']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/oncall +read-write +on app +subjects carol +REQUESTABLE: admits nobody until a request is approved, for at most 2h/);
    expect(r.stdout).toMatch(/analysts +read-write .*writes over 10 rows refused \(rolled back\)/);
    expect(r.stdout).toMatch(/no-rm +deny +commands rm \*/);
  });

  it('schema is a JSON Schema of the policy file and of a test file', async () => {
    const policy = JSON.parse((await hoop(['policy', 'schema'])).stdout) as { $schema: string; type: string; properties: Record<string, unknown>; additionalProperties: boolean };
    expect(policy.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(Object.keys(policy.properties)).toEqual(expect.arrayContaining(['connections', 'access', 'statements', 'masking', 'ssh', 'alerts']));
    expect(policy.additionalProperties).toBe(false);
    const tests = JSON.parse((await hoop(['policy', 'schema', '--tests'])).stdout) as { properties: { tests: { items: { properties: Record<string, unknown> } } } };
    expect(Object.keys(tests.properties.tests.items.properties)).toEqual(expect.arrayContaining(['sql', 'ssh', 'masked', 'fixture', 'expect', 'alerts']));
    expect(readFileSync(join(repo.dir, 'hoop.yaml'), 'utf8')).toContain('version: 1');
  });
});
