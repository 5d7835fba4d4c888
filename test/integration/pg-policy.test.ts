/**
 * Statement enforcement end to end: real PostgreSQL, the gateway with a statement judge built
 * from a policy, `hoop connect`, and real clients (psql, the pg driver, pgbench, and a raw
 * frontend for pipelines and FunctionCall). Refused statements get 42501 inside the protocol,
 * in order after the responses to what was forwarded before them, the session stays usable, and
 * the server's transaction state is what a real error leaves.
 */
import { writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionJudge, StatementVerdict } from '../../src/session/engine.js';
import { StatementJudge } from '../../src/policy/decide.js';
import type { Policy, StatementRule } from '../../src/policy/schema.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import { query } from '../../src/postgres/wire/messages.js';
import { parseErrorFields, parseReadyForQuery, type PgMessage } from '../../src/postgres/wire/reader.js';
import { pgbench, pgClient, psql } from '../harness/clients.js';
import { RawFrontend } from '../harness/raw-pg.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { bind, execute, frontendMessage as msg, parse, sync } from '../harness/pg-frontend.js';
import { emptyPolicy } from '../harness/policy.js';

const baseRules: StatementRule[] = [
  { name: 'no-drop', match: { kinds: ['drop'] }, action: 'deny', message: 'DROP is not allowed here' },
  { name: 'truncate-review', match: { kinds: ['truncate'] }, action: 'review', message: 'TRUNCATE needs a reviewer' },
  { name: 'no-unbounded-writes', match: { kinds: ['update', 'delete'], missingWhere: true }, action: 'deny', message: 'UPDATE/DELETE without WHERE' },
  { name: 'no-secrets', match: { tables: ['public.secrets'] }, action: 'deny', message: 'the secrets table is off limits' },
];

function policyWith(rules: StatementRule[]): Policy {
  return emptyPolicy({ statements: { unparseable: 'deny', rules } });
}

/** A judge whose policy the test can swap mid-session, as a policy pull would. */
class SwappableJudge implements SessionJudge {
  inner: StatementJudge;
  constructor(inner: StatementJudge) {
    this.inner = inner;
  }
  judge(sql: string): StatementVerdict {
    return this.inner.judge(sql);
  }
}

let stack: HoopStack;
/** alice: read-write with the judge; bob: no judge (the plain relay); reader: read-only with the judge; raw-ro: read-only, no judge. */
const conns: Record<'alice' | 'bob' | 'reader' | 'rawro', RunningConnect | undefined> = { alice: undefined, bob: undefined, reader: undefined, rawro: undefined };
const judges = new Map<string, SwappableJudge>();
const judgeFor = (subject: string): SwappableJudge => judges.get(subject)!;

beforeAll(async () => {
  await loadSqlParser();
  stack = await startStack({
    gateway: {
      sessionPolicy: (identity, connection) => {
        const who = { subject: identity.subject, groups: identity.groups };
        const readOnly = identity.groups.includes('readonly');
        if (identity.groups.includes('nojudge')) return readOnly ? { readOnly } : undefined;
        const judge = new SwappableJudge(new StatementJudge(policyWith(baseRules), who, connection.name, readOnly ? 'read-only' : 'read-write'));
        judges.set(identity.subject, judge);
        return { judge, readOnly };
      },
    },
  });
  await stack.pg.psql(
    `create table notes(id serial primary key, body text);
     create table secrets(id int, value text);
     insert into secrets values (1, 'hunter2');
     create function add_note(b text) returns int language sql volatile as $$ insert into notes(body) values (b) returning id $$;
     grant all on notes, notes_id_seq, secrets to public`,
    { database: 'app' },
  );
  conns.alice = await stack.connect('app', await stack.token('alice'));
  conns.bob = await stack.connect('app', await stack.token('bob', ['nojudge']));
  conns.reader = await stack.connect('app', await stack.token('alice', ['dba', 'readonly']));
  conns.rawro = await stack.connect('app', await stack.token('bob', ['nojudge', 'readonly']));
});

afterAll(async () => {
  for (const c of Object.values(conns)) await c?.stop();
  await stack?.close();
});

const info = (who: keyof typeof conns) => conns[who]!.info;
const count = async (): Promise<number> => Number(await stack.pg.psql('select count(*) from notes', { database: 'app' }));

/** A raw frontend signed in through `hoop connect`. */
async function raw(who: keyof typeof conns): Promise<RawFrontend> {
  const i = info(who);
  const f = await RawFrontend.tcp(i.port);
  await f.startup(i.password, [
    ['user', i.user],
    ['database', i.database],
  ]);
  return f;
}

const types = (ms: PgMessage[]): string => ms.map((m) => String.fromCharCode(m.type)).join('');

describe('the simple protocol (psql)', () => {
  it('refuses DROP with 42501 naming the rule, and the session goes on', async () => {
    const r = await psql(info('alice'), ['-At', '-v', 'ON_ERROR_STOP=0'], { input: 'drop table notes;\nselect 40 + 2;\n' });
    expect(r.stderr).toContain('ERROR:  hoop: denied by rule "no-drop": DROP is not allowed here');
    expect(r.stderr).toContain('HINT:  the gateway policy refuses this statement');
    expect(r.stdout.trim()).toBe('42');
    expect((await stack.pg.psql("select to_regclass('notes') is not null", { database: 'app' })).trim()).toBe('t');
    const logged = stack.logs().filter((l) => l.event === 'statement.refused');
    expect(logged.at(-1)).toMatchObject({ subject: 'alice', connection: 'app', action: 'deny', rule: 'no-drop', message: 'Q' });
    expect(JSON.stringify(logged)).not.toMatch(/drop table/i);
  });

  it('refuses a multi-statement message as a whole: none of it runs', async () => {
    const before = await count();
    const r = await psql(info('alice'), ['-At', '-v', 'ON_ERROR_STOP=0', '-c', "insert into notes(body) values ('multi'); drop table notes; select 1"]);
    expect(r.stderr).toContain('hoop: denied by rule "no-drop"');
    expect(await count()).toBe(before);
    const sneaky = await psql(info('alice'), ['-At', '-v', 'ON_ERROR_STOP=0', '-c', 'select 1; /* hi */ SeLeCt value\n\tFROM   "public" . secrets']);
    expect(sneaky.stderr).toContain('hoop: denied by rule "no-secrets": the secrets table is off limits');
    expect(sneaky.stdout).not.toContain('hunter2');
  });

  it('says review as approval required', async () => {
    const r = await psql(info('alice'), ['-At', '-v', 'ON_ERROR_STOP=0', '-c', 'truncate notes']);
    expect(r.stderr).toContain('ERROR:  hoop: approval required (rule "truncate-review"): TRUNCATE needs a reviewer');
  });

  it('leaves an explicit transaction failed, as a real error does, and ROLLBACK undoes what came before', async () => {
    const before = await count();
    const r = await psql(info('alice'), ['-At', '-v', 'ON_ERROR_STOP=0'], {
      input: "begin;\ninsert into notes(body) values ('in tx');\ndelete from notes;\nselect 1;\ncommit;\nselect 'after';\n",
    });
    expect(r.stderr).toContain('hoop: denied by rule "no-unbounded-writes"');
    expect(r.stderr).toContain('current transaction is aborted');
    // COMMIT of a failed transaction rolls back.
    expect(r.stdout.split('\n')).toContain('ROLLBACK');
    expect(r.stdout).toContain('after');
    expect(await count()).toBe(before);
  });

  it('follows SQL PREPARE and EXECUTE, also when the policy changes in between', async () => {
    const client = await pgClient(info('alice'));
    try {
      await expect(client.query('prepare d as drop table notes')).rejects.toMatchObject({ code: '42501' });
      await expect(client.query('execute d')).rejects.toMatchObject({ code: '26000' });
      await client.query('prepare c as select count(*)::int as n from notes');
      expect((await client.query('execute c')).rows[0].n).toBe(await count());
      const judge = judgeFor('alice');
      const old = judge.inner;
      judge.inner = new StatementJudge(
        policyWith([...baseRules, { name: 'no-notes', match: { tables: ['public.notes'] }, action: 'deny', message: 'notes are closed' }]),
        { subject: 'alice', groups: [] },
        'app',
        'read-write',
      );
      try {
        await expect(client.query('execute c')).rejects.toMatchObject({ code: '42501', message: 'hoop: denied by rule "no-notes": notes are closed' });
        await expect(client.query('explain analyze execute c')).rejects.toMatchObject({ code: '42501' });
      } finally {
        judge.inner = old;
      }
      await client.query('deallocate c');
      await expect(client.query('execute c')).rejects.toMatchObject({ code: '26000' });
      expect((await client.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await client.end();
    }
  });
});

describe('the extended protocol', () => {
  it('refuses a Parse among queued queries of the pg driver; the others run and the connection stays', async () => {
    const client = await pgClient(info('alice'));
    try {
      const results = await Promise.allSettled([
        client.query('select $1::int as n', [1]),
        client.query('drop table notes', []),
        client.query('select $1::text as t', ['after']),
        client.query({ text: 'delete from notes', values: [] }),
        client.query('select 3 as n'),
      ]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled']);
      expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: '42501', message: 'hoop: denied by rule "no-drop": DROP is not allowed here' });
      expect((results[2] as PromiseFulfilledResult<{ rows: unknown[] }>).value.rows).toEqual([{ t: 'after' }]);
    } finally {
      await client.end();
    }
  });

  it('orders the refusal after the answers to a pipeline prefix, rolls back the implicit transaction, and drops the rest up to Sync', async () => {
    const f = await raw('alice');
    try {
      const before = await count();
      const start = f.raw.length;
      f.write(
        Buffer.concat([
          parse('', "insert into notes(body) values ('pipelined') returning id"),
          bind('', ''),
          execute(''),
          parse('s_ok', 'select 1'),
          parse('s_drop', 'drop table notes'),
          bind('', 's_drop'),
          execute(''),
          parse('', 'select 2'),
          bind('', ''),
          execute(''),
          sync(),
          parse('', 'select 3'),
          bind('', ''),
          execute(''),
          sync(),
        ]),
      );
      const ms = await f.messagesSince(start, 2);
      expect(types(ms)).toBe('12DC1EZ12DCZ');
      const err = parseErrorFields(ms[5]!.body);
      expect(err.code).toBe('42501');
      expect(err.message).toBe('hoop: denied by rule "no-drop": DROP is not allowed here');
      expect(parseReadyForQuery(ms[6]!.body)).toBe('I');
      // PostgreSQL rolls back the implicit transaction of a failed batch: so does the refusal.
      expect(await count()).toBe(before);
      // The refused statement does not exist; the one parsed before it does (statements are not transactional).
      const next = f.raw.length;
      f.write(Buffer.concat([bind('', 's_drop'), execute(''), sync(), bind('', 's_ok'), execute(''), sync()]));
      const after = await f.messagesSince(next, 2);
      expect(types(after)).toBe('EZ2DCZ');
      expect(parseErrorFields(after[0]!.body).code).toBe('26000');
    } finally {
      f.destroy();
    }
  });

  it('keeps the server error when an earlier message of the batch failed first, as PostgreSQL would', async () => {
    const f = await raw('alice');
    try {
      const start = f.raw.length;
      f.write(Buffer.concat([parse('', 'select 1/0'), bind('', ''), execute(''), parse('', 'drop table notes'), sync(), query('select 1')]));
      const ms = await f.messagesSince(start, 2);
      // 1/0 is folded when the statement is planned, at Bind.
      expect(types(ms)).toBe('1EZTDCZ');
      expect(parseErrorFields(ms[1]!.body).code).toBe('22012');
    } finally {
      f.destroy();
    }
  });

  it('refuses a named prepared statement at Execute when the policy changed after its Parse', async () => {
    const client = await pgClient(info('alice'));
    const judge = judgeFor('alice');
    const old = judge.inner;
    try {
      const upd = { name: 'upd', text: 'update notes set body = body where id = $1', values: [1] };
      await client.query(upd);
      judge.inner = new StatementJudge(
        policyWith([...baseRules, { name: 'no-updates', match: { kinds: ['update'] }, action: 'deny', message: 'no updates today' }]),
        { subject: 'alice', groups: [] },
        'app',
        'read-write',
      );
      await expect(client.query(upd)).rejects.toMatchObject({ code: '42501', message: 'hoop: denied by rule "no-updates": no updates today' });
      judge.inner = old;
      await client.query(upd);
      expect((await client.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    } finally {
      judge.inner = old;
      await client.end();
    }
  });

  it('puts an explicit transaction in the failed state on a refused Parse', async () => {
    const client = await pgClient(info('alice'));
    try {
      const before = await count();
      await client.query('begin');
      await client.query('insert into notes(body) values ($1)', ['in tx']);
      await expect(client.query('drop table notes', [])).rejects.toMatchObject({ code: '42501' });
      await expect(client.query('select $1::int', [1])).rejects.toMatchObject({ code: '25P02' });
      await client.query('rollback');
      expect(await count()).toBe(before);
    } finally {
      await client.end();
    }
  });

  it('judges a FunctionCall as the SQL call it stands for: one the rules allow runs, one they deny is refused (42501), an unknown function 42883; the session goes on', async () => {
    const f = await raw('alice');
    const call = (oid: number, ...args: string[]): Buffer => {
      const o = Buffer.alloc(4);
      o.writeInt32BE(oid);
      const parts = args.flatMap((a) => {
        const len = Buffer.alloc(4);
        len.writeInt32BE(Buffer.byteLength(a));
        return [len, Buffer.from(a)];
      });
      return msg('F', o, 0, args.length, ...parts, 0);
    };
    try {
      const cancel = Number((await stack.pg.psql("select 'pg_cancel_backend(int4)'::regprocedure::oid")).trim());
      const start = f.raw.length;
      // int4abs (OID 1251): allowed; pg_cancel_backend of another backend: the built-in rule denies it; OID 1: no function.
      f.write(Buffer.concat([call(1251, '-5'), call(cancel, '1'), call(1), query('select 7')]));
      const ms = await f.messagesSince(start, 4);
      expect(types(ms)).toBe('VZEZEZTDCZ');
      expect(ms[0]!.body.subarray(4).toString()).toBe('5');
      const denied = parseErrorFields(ms[2]!.body);
      expect(denied.code).toBe('42501');
      expect(denied.message).toContain('pg_cancel_backend() is refused');
      expect(parseErrorFields(ms[4]!.body).code).toBe('42883');
    } finally {
      f.destroy();
    }
  });

  it('pgbench -M extended: a refused statement in a pipeline aborts that client with the policy error', async () => {
    const script = `${stack.dir}/denied.sql`;
    await writeFile(script, '\\startpipeline\nselect 1;\ndrop table notes;\nselect 2;\n\\endpipeline\n');
    const run = await pgbench(info('alice'), ['-n', '-M', 'extended', '-f', script, '-c', '2', '-t', '5']);
    expect(run.stderr).toContain('hoop: denied by rule "no-drop"');
    expect(run.stdout + run.stderr).toMatch(/aborted/);
    expect((await stack.pg.psql("select to_regclass('notes') is not null", { database: 'app' })).trim()).toBe('t');
    const ok = `${stack.dir}/ok.sql`;
    await writeFile(ok, '\\startpipeline\nselect 1;\nselect count(*) from notes where id > 0;\n\\endpipeline\n');
    const fine = await pgbench(info('alice'), ['-n', '-M', 'prepared', '-f', ok, '-c', '2', '-t', '100']);
    expect(fine.code, fine.stderr).toBe(0);
    expect(fine.stdout).toMatch(/number of transactions actually processed: 200\/200/);
  });
});

describe('read-only access', () => {
  it('is refused by the rules and, for what slips past them, by PostgreSQL itself (25006)', async () => {
    const before = await count();
    const byRule = await psql(info('reader'), ['-At', '-v', 'ON_ERROR_STOP=0', '-c', "insert into notes(body) values ('ro')"]);
    expect(byRule.stderr).toContain('hoop: denied by rule "read-only-access"');
    // A volatile function that writes looks like a SELECT to the rules; the server refuses it.
    const slipped = await psql(info('reader'), ['-At', '-v', 'ON_ERROR_STOP=0', '-c', "select add_note('slipped')"]);
    expect(slipped.stderr).toContain('cannot execute INSERT in a read-only transaction');
    const client = await pgClient(info('rawro'));
    try {
      await expect(client.query("insert into notes(body) values ('no judge')")).rejects.toMatchObject({ code: '25006' });
      expect((await client.query('show default_transaction_read_only')).rows).toEqual([{ default_transaction_read_only: 'on' }]);
    } finally {
      await client.end();
    }
    expect(await count()).toBe(before);
    const reads = await psql(info('reader'), ['-At', '-c', 'select count(*) >= 0 from notes']);
    expect(reads.stdout.trim()).toBe('t');
  });
});

describe('the allow path under load', () => {
  // How many transactions a second: test/perf/pg-judge-throughput.test.ts. Here, a number of transactions, not a time.
  it('keeps pgbench -S working with the judge on, next to the plain relay', async () => {
    const init = await pgbench(info('bob'), ['-i', '-s', '1', '-q']);
    expect(init.code, init.stderr).toBe(0);
    for (const who of ['bob', 'alice'] as const) {
      const run = await pgbench(info(who), ['-S', '-n', '-c', '4', '-j', '2', '-t', '250']);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toMatch(/number of transactions actually processed: 1000\/1000/);
      expect(run.stdout).toMatch(/number of failed transactions: 0/);
    }
  }, 360_000);
});
