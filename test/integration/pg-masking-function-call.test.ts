/**
 * What masking does on the paths a client need not describe (issue 72, the thirteenth attack): the
 * protocol's FunctionCall ('F', the fast path libpq's large objects use), whose result from a
 * function the database's users wrote is masked whole as SQL's call of it is (the system's answer as
 * they are); and an Execute the client did not describe, whose masked columns the sessions index lists.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseDataRow } from '../../src/postgres/wire/rows.js';
import { execute, frontendMessage, int32, parse, sync } from '../harness/pg-frontend.js';
import { eventually } from '../harness/wait.js';
import { connectionYaml } from '../harness/postgres.js';
import { startRepoStack, type HoopStack } from '../harness/stack.js';

let stack: HoopStack;

beforeAll(async () => {
  stack = await startRepoStack(
    'hoop-pg-fastpath-',
    (pg) => `version: 1
connections:
${connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' })}access:
  - { name: people, subjects: [alice], connections: [app], mode: read-write }
masking:
  columns:
    - { table: public.customers, column: email, strategy: redact }
`,
  );
  await stack.pg.psql(
    `create table customers (id int primary key, email text); insert into customers values (1, 'alice@example.com');
     create function get_email(i int) returns text language sql stable as $$ select email from customers where id = i $$;
     create function tag() returns int language plpgsql as $$ begin perform set_config('application_name', (select email from customers limit 1), false); return 1; end $$;
     grant all on customers to public; grant execute on function get_email(int) to public`,
    { database: 'app' },
  );
}, 240_000);

afterAll(async () => {
  await stack?.close();
});

/** The value a FunctionCall of `fn` (by its OID) with text argument `arg` returns, as the client got it. */
async function fastPath(fn: string, arg: string): Promise<string | null> {
  const f = await stack.tunnel('app', await stack.token('alice'));
  try {
    const oid = Number(parseDataRow((await f.simple(`select '${fn}'::regprocedure::oid`)).find((m) => m.type === 0x44)!.body)[0]!.toString());
    const from = f.raw.length;
    f.write(frontendMessage('F', int32(oid), 1, 0, 1, int32(Buffer.byteLength(arg)), Buffer.from(arg), 0));
    const got = await f.messagesSince(from, 1);
    const v = got.find((m) => m.type === 0x56);
    expect(v, JSON.stringify(got.map((m) => `${String.fromCharCode(m.type)} ${m.body.toString('latin1')}`))).toBeDefined();
    const len = v!.body.readInt32BE(0);
    return len < 0 ? null : v!.body.subarray(4, 4 + len).toString();
  } finally {
    f.destroy();
  }
}

it("masks whole what a function of the database's users returns, as SQL's call of it", async () => {
  expect(await fastPath('get_email(int)', '1')).toBeNull();
  const f = await stack.tunnel('app', await stack.token('alice'));
  const rows = (await f.simple('select get_email(1)')).filter((m) => m.type === 0x44).map((m) => parseDataRow(m.body)[0]?.toString() ?? null);
  expect(rows).not.toContain('alice@example.com');
  f.destroy();
}, 120_000);

it("answers the system's functions as they are", async () => {
  expect(await fastPath('length(text)', 'hoop')).toBe('4');
}, 120_000);

it('lists in the sessions index the masked column of a result the client never described (Parse, Bind, Execute, Sync; a statement described, then executed)', async () => {
  const ids: string[] = [];
  for (const describeStatement of [false, true]) {
    const sessionId = `raw-undescribed-${describeStatement ? 's' : 'none'}-${Date.now()}`;
    ids.push(sessionId);
    const f = await stack.tunnel('app', await stack.token('alice'), { sessionId });
    let from = f.raw.length;
    if (describeStatement) {
      f.write(Buffer.concat([parse('s1', 'select email from customers'), frontendMessage('D', 'S', 's1'), sync()]));
      await f.messagesSince(from, 1);
      from = f.raw.length;
    }
    f.write(Buffer.concat([...(describeStatement ? [] : [parse('s1', 'select email from customers')]), frontendMessage('B', '', 's1', 0, 0, 0), execute(''), sync()]));
    const rows = (await f.messagesSince(from, 1)).filter((m) => m.type === 0x44).map((m) => parseDataRow(m.body)[0]?.toString() ?? null);
    expect(rows).toEqual(['[redacted]']);
    f.destroy();
  }
  await eventually(
    async () => {
      const r = await stack.run(['sessions', 'ls', '--json', '--column', 'customers.email', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token('alice') });
      const listed = (JSON.parse(r.stdout) as { sessions: Array<{ id: string }> }).sessions.map((s) => s.id);
      for (const id of ids) expect(listed).toContain(id);
    },
    { timeout: 60_000, interval: 200 },
  );
}, 120_000);

it('withholds an application_name that code hoop cannot read set from a masked column; one the client wrote is reported', async () => {
  const f = await stack.tunnel('app', await stack.token('alice'));
  const reported = async (sql: string): Promise<string[]> => (await f.simple(sql)).filter((m) => m.type === 0x53).map((m) => m.body.toString('utf8').split('\0').slice(0, 2).join('='));
  expect(await reported('select tag()')).toEqual(['application_name=hoop: withheld']);
  expect(await reported("set application_name = 'my-app'")).toEqual(['application_name=my-app']);
  f.destroy();
}, 120_000);
