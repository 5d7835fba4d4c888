/**
 * The session index and the audit stream read through partitions and inheritance children
 * (src/postgres/gateway/relation-reads.ts): reading a parent reads its descendants' rows, so
 * `hoop sessions ls --column payments_2024.card` finds `select card from payments` (two levels of
 * partitions, an inheritance child, through a view over the parent), the audit stream and a
 * rows-read alert on a partition count the read, and COPY both ways is in the index.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { psql } from '../harness/clients.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml } from '../harness/postgres.js';
import { startStack, type HoopStack } from '../harness/stack.js';
import { eventually } from '../harness/wait.js';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

let stack: HoopStack;
let repo: PolicyGitRepo;

const PEOPLE = ['carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy'];

beforeAll(async () => {
  repo = new PolicyGitRepo('hoop-index-descendants-');
  stack = await startStack({
    extraConfig: 'audit: { file: audit.jsonl, flushSeconds: 0.2, statements: all }',
    policy: ({ pg }) => {
      repo.commit(`version: 1
connections:
${connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' })}access:
  - { name: people, subjects: [${PEOPLE.join(', ')}], connections: [app], mode: read-write }
recording:
  auditors: [secops]
alerts:
  - { name: bulk-q1, when: { event: rows-read, table: pay_2024_q1, count: 100, within: 10min } }
`);
      return repo.gatewayBlock(['${env:APP_PASSWORD}']);
    },
  });
  await stack.pg.psql(
    // Two levels of partitions under pay, an inheritance child of acct, a view over pay.
    'create table pay (id int, card text, amount int) partition by range (id); ' +
      'create table pay_2024 partition of pay for values from (0) to (1000) partition by range (id); ' +
      'create table pay_2024_q1 partition of pay_2024 for values from (0) to (250); ' +
      'create table pay_2024_rest partition of pay_2024 for values from (250) to (1000); ' +
      "insert into pay select g, 'card' || g, g from generate_series(1, 500) g; " +
      'create table acct (id int, secret text); create table acct_kid (extra int) inherits (acct); ' +
      "insert into acct values (1, 'a'); insert into acct_kid values (2, 'b', 3); " +
      'create view pay_v as select id, card from pay; ' +
      'grant select, insert on pay, pay_2024, pay_2024_q1, pay_2024_rest, acct, acct_kid, pay_v to public',
    { database: 'app' },
  );
});

afterAll(async () => {
  await stack?.close();
  if (repo) rmSync(repo.base, { recursive: true, force: true });
});

/** The audit file's complete lines. */
const audit = (): Array<Record<string, unknown>> => {
  const file = join(stack.dir, 'audit.jsonl');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .slice(0, -1)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
};

/** The ended sessions of `subject` the index finds with `filter`, as the auditor asks. */
async function ls(subject: string, ...filter: string[]): Promise<Array<{ id: string; tables: string[]; written: string[]; columns: string[] }>> {
  const r = await stack.run(['sessions', 'ls', '--user', subject, '--json', ...filter, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], {
    HOOP_TOKEN: await stack.token('bob', ['secops']),
  });
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { sessions: Array<{ id: string; endedAt?: string; tables: string[]; written: string[]; columns: string[] }> }).sessions.filter((x) => x.endedAt !== undefined);
}

/** Runs `sql` in a session of its own for `subject` (a raw tunnel), and waits for it in the index. */
async function session(subject: string, sql: string): Promise<string> {
  const raw = await stack.tunnel('app', await stack.token(subject));
  expect((await raw.simple(sql)).some((m) => m.type === 0x45)).toBe(false); // no ErrorResponse
  raw.write(Buffer.from([0x58, 0, 0, 0, 4])); // Terminate
  expect(await raw.closed()).toBe(true);
  return eventually(async () => {
    const found = await ls(subject);
    expect(found).toHaveLength(1);
    return found[0]!.id;
  });
}

const ids = async (subject: string, ...filter: string[]): Promise<string[]> => (await ls(subject, ...filter)).map((s) => s.id);

describe('the index reads through partitions and inheritance', () => {
  it('finds a read of a partitioned parent by a column of its partitions, at any depth, and the audit stream names them', async () => {
    const id = await session('carol', 'select card from pay where amount > 400');
    expect(await ids('carol', '--column', 'pay_2024_q1.card')).toEqual([id]);
    expect(await ids('carol', '--column', 'public.pay_2024.card')).toEqual([id]);
    expect(await ids('carol', '--column', 'pay_2024_rest.card')).toEqual([id]);
    expect(await ids('carol', '--column', 'pay.card')).toEqual([id]);
    expect(await ids('carol', '--table', 'pay_2024_q1')).toEqual([id]);
    // Columns it never named: not found.
    expect(await ids('carol', '--column', 'pay_2024_q1.id')).toEqual([]);
    const statement = await eventually(() => {
      const found = audit().find((e) => e.event === 'statement.completed' && e.subject === 'carol');
      expect(found).toBeDefined();
      return found!;
    });
    expect(statement.tables).toEqual(expect.arrayContaining(['pay', 'public.pay_2024', 'public.pay_2024_q1', 'public.pay_2024_rest']));
    // A rows-read alert on a partition counts the rows read through its parent (all of them: which partition a row came from is not told).
    await eventually(() => expect(audit().find((e) => e.event === 'alert.raised' && e.rule === 'bulk-q1' && e.subject === 'carol')).toMatchObject({ counted: 'rows-read', count: 100 }));
  });

  it('says a write through a partitioned parent wrote its partitions', async () => {
    const id = await session('judy', "insert into pay values (7, 'card-new', 7)");
    const [wrote] = await ls('judy', '--table', 'pay_2024_q1');
    expect(wrote?.id).toBe(id);
    expect(wrote?.written).toEqual(expect.arrayContaining(['pay', 'public.pay_2024', 'public.pay_2024_q1']));
  });

  it('finds a read of an inheritance parent by the same column of its child, not by a column only the child has', async () => {
    const id = await session('dave', 'select secret from acct');
    expect(await ids('dave', '--column', 'acct_kid.secret')).toEqual([id]);
    expect(await ids('dave', '--table', 'acct_kid')).toEqual([id]);
    expect(await ids('dave', '--column', 'acct_kid.extra')).toEqual([]);
  });

  it('counts ONLY parent as reading its descendants too (the parse does not tell ONLY: over-reporting, never under)', async () => {
    const id = await session('erin', 'select secret from only acct');
    expect(await ids('erin', '--column', 'acct.secret')).toEqual([id]);
    expect(await ids('erin', '--column', 'acct_kid.secret')).toEqual([id]);
  });

  it('finds a read through a view over a partitioned parent by a column of its partitions', async () => {
    const id = await session('frank', 'select card from pay_v');
    expect(await ids('frank', '--column', 'pay_2024_q1.card')).toEqual([id]);
    expect(await ids('frank', '--column', 'pay.card')).toEqual([id]);
    expect(await ids('frank', '--table', 'pay_2024_rest')).toEqual([id]);
    // The view reads no amount.
    expect(await ids('frank', '--column', 'pay_2024_q1.amount')).toEqual([]);
  });
});

describe('COPY in the index, through psql', () => {
  const copy = async (subject: string, args: string[], input?: string): Promise<string> => {
    const c = await stack.connect('app', await stack.token(subject));
    try {
      const r = await psql(c.info, args, input === undefined ? {} : { input });
      expect(r.code, r.stderr).toBe(0);
    } finally {
      await c.stop();
    }
    return eventually(async () => {
      const found = await ls(subject);
      expect(found).toHaveLength(1);
      return found[0]!.id;
    });
  };

  it('COPY table TO STDOUT, COPY (select …) TO STDOUT over a partitioned parent, and COPY table FROM STDIN (a write)', async () => {
    const out = await copy('grace', ['-c', 'copy acct (secret) to stdout']);
    expect(await ids('grace', '--column', 'acct.secret')).toEqual([out]);
    expect(await ids('grace', '--column', 'acct.id')).toEqual([]);

    const query = await copy('heidi', ['-c', 'copy (select card from pay) to stdout']);
    expect(await ids('heidi', '--column', 'pay_2024_rest.card')).toEqual([query]);
    expect(await ids('heidi', '--column', 'pay.amount')).toEqual([]);

    const into = await copy('ivan', ['-c', '\\copy acct_kid (id, extra) from stdin'], '7\t8\n\\.\n');
    const [wrote] = await ls('ivan', '--column', 'acct_kid.extra');
    expect(wrote?.id).toBe(into);
    expect(wrote?.written).toContain('acct_kid');
    expect(await ids('ivan', '--column', 'acct_kid.secret')).toEqual([]);
  });
});
