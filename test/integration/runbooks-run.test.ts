/**
 * Runbook runs through a real gateway and PostgreSQL (src/gateway/api/runbook-run.ts, `hoop runbook
 * run`): the values bound, never spliced (hostile ones change nothing but the value), every step in
 * one transaction whose failure keeps nothing and is named, the policy's statement rules still
 * judging the steps (unless the runbook names a rule it bypasses), a runbook's row limit, masking
 * of what it returns, runs that need no access rule, and a reviewed run that runs only as approved.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as https from 'node:https';
import { ExitCode } from '../../src/errors.js';
import { callApi } from '../harness/api.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml } from '../harness/postgres.js';
import { startStack, type HoopStack } from '../harness/stack.js';
import { poll } from '../harness/wait.js';

const HOOP = resolve(import.meta.dirname, '../../bin/hoop.js');

let stack: HoopStack;
let repo: PolicyGitRepo;

/** A delete the policy's no-deletes rule refuses (its twin names the rule in bypass). */
/** Flags an order: a statement rule holds its second step for a reviewer. */
const FLAG = `version: 1
description: Flag an order (a statement rule holds writes to rb_flags for a reviewer)
connection: app
parameters:
  order_id: { type: integer, min: 1 }
steps:
  - sql: update rb_orders set status = 'flagging' where id = $1
    params: [order_id]
  - sql: insert into rb_flags values ($1)
    params: [order_id]
run:
  - { groups: [support] }
`;

const PURGE = `version: 1
description: Delete an order
connection: app
parameters:
  order_id: { type: integer }
steps:
  - sql: delete from rb_orders where id = $1
    params: [order_id]
run:
  - { groups: [support] }
`;

const RUNBOOKS: Record<string, string> = {
  'refund-order': `version: 1
description: Refund a paid order, up to 100 €
connection: app
parameters:
  order_id: { type: integer, min: 1 }
  cents: { type: integer, min: 1, max: 10000 }
  reason: { type: string, maxLength: 200, default: customer request }
steps:
  - sql: update rb_orders set status = 'refunded' where id = $1 and status = 'paid' returning id, status
    params: [order_id]
  - sql: insert into rb_refunds (order_id, cents, reason) values ($1, $2, $3)
    params: [order_id, cents, reason]
run:
  - { groups: [support] }
  - { agents: ["claude*"], via: [run, mcp] }
maxAffectedRows: 1
`,
  'refund-all': `version: 1
description: Refund every order of a status (too wide for its row limit)
connection: app
parameters:
  status: { type: enum, values: [paid, open] }
steps:
  - sql: update rb_orders set status = 'refunded' where status = $1
    params: [status]
run:
  - { groups: [support] }
maxAffectedRows: 1
`,
  'lookup-customer': `version: 1
description: Look up a customer
connection: app
parameters:
  name: { type: string }
steps:
  - sql: select id, name, email, note from rb_customers where name = $1
    params: [name]
run:
  - { groups: [support] }
returns: [id, name, email]
`,
  'purge-order': PURGE,
  'purge-order-exempt': `${PURGE}bypass: [no-deletes]\n`,
  'flag-order': FLAG,
  'flag-reviewed': `${FLAG}review: { groups: [payments] }\n`,
  'flag-reviewed-exempt': `${FLAG}review: { groups: [payments] }\nbypass: [flags-reviewed]\n`,
  'slow-refund': `version: 1
description: Refund an order, then wait (a step that outlasts its caller or its deadline)
connection: app
parameters:
  order_id: { type: integer, min: 1 }
  seconds: { type: integer, min: 0, max: 60 }
steps:
  - sql: update rb_orders set status = 'refunded' where id = $1
    params: [order_id]
  - sql: select pg_sleep($1)
    params: [seconds]
run:
  - { groups: [support] }
deadline: 3s
`,
  'echo-text': `version: 1
description: Say a long text back, and many wide rows
connection: app
parameters:
  text: { type: string, maxLength: 65536 }
  rows: { type: integer, min: 0, max: 1000 }
steps:
  - sql: select length($1::text) as n, $1::text as t
    params: [text]
  - sql: select repeat('x', 100000) as wide from generate_series(1, $1)
    params: [rows]
run:
  - { groups: [support] }
`,
  'refund-reviewed': `version: 1
description: Refund any order, with a reviewer
connection: app
parameters:
  order_id: { type: integer, min: 1 }
steps:
  - sql: update rb_orders set status = 'refunded' where id = $1
    params: [order_id]
run:
  - { groups: [support] }
review: { groups: [payments] }
`,
};

beforeAll(async () => {
  repo = new PolicyGitRepo('hoop-runbooks-run-');
  stack = await startStack({
    policy: ({ pg }) => {
      mkdirSync(join(repo.dir, 'runbooks'));
      for (const [name, text] of Object.entries(RUNBOOKS)) writeFileSync(join(repo.dir, 'runbooks', `${name}.yaml`), text);
      // Nobody has an access rule on app: its runbooks are the only way in.
      repo.commit(`version: 1
connections:
${connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' })}access:
  - { name: readers, subjects: [nobody], connections: [app], mode: read-only }
statements:
  rules:
    - { name: no-deletes, match: { kinds: [delete] }, action: deny, message: deletes are not allowed }
    - { name: flags-reviewed, match: { tables: [public.rb_flags], kinds: [insert] }, action: review, review: { groups: [payments] }, message: a flag needs a reviewer }
masking:
  columns:
    - { table: public.rb_customers, column: email, strategy: redact }
alerts:
  - name: runbook-probing
    when: { event: refused, count: 3, within: 10min }
`);
      return repo.gatewayBlock(['${env:APP_PASSWORD}']);
    },
  });
  await stack.pg.psql(
    `create table rb_orders (id int primary key, status text not null);
     create table rb_refunds (order_id int not null, cents int not null, reason text not null);
     create table rb_customers (id int primary key, name text, email text, note text);
     create table rb_flags (order_id int primary key);
     insert into rb_orders select g, 'paid' from generate_series(1, 40) g;
     insert into rb_customers values (1, 'Ada', 'ada@example.com', 'vip');
     grant all on rb_orders, rb_refunds, rb_customers, rb_flags to public;`,
    { user: stack.pg.users.scram },
  );
});

afterAll(async () => {
  await stack?.close();
  if (repo) rmSync(repo.base, { recursive: true, force: true });
});

/** `hoop <argv>` against the stack's gateway as `subject` of `groups`, or with `token`. */
async function hoop(argv: string[], who: { subject: string; groups?: string[] } | { token: string }) {
  const token = 'token' in who ? who.token : await stack.token(who.subject, who.groups);
  return stack.run([...argv, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: token });
}

const SUPPORT = { subject: 'sam', groups: ['support'] };
const sql = (text: string): Promise<string> => stack.pg.psql(text);

describe('a runbook run', () => {
  it('runs its steps in one transaction with its values bound, needing no access rule, and says what each returned', async () => {
    const r = await hoop(['runbook', 'run', 'refund-order', '--param', 'order_id=3', '--param', 'cents=500'], SUPPORT);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/id +status\n *3 +refunded\n\(1 row\)\nstep 1: UPDATE 1\nstep 2: INSERT 0 1\n/);
    expect(await sql('select status from rb_orders where id = 3; select order_id, cents, reason from rb_refunds where order_id = 3')).toBe('refunded\n3|500|customer request\n');
    const json = JSON.parse((await hoop(['runbook', 'run', 'refund-order', '-p', 'order_id=4', '-p', 'cents=1', '--json'], SUPPORT)).stdout) as Record<string, unknown>;
    expect(json).toMatchObject({
      runbook: 'refund-order',
      outcome: 'ran',
      commit: repo.git('rev-parse', 'HEAD'),
      steps: [
        { step: 1, tag: 'UPDATE 1', columns: ['id', 'status'], rows: [['4', 'refunded']] },
        { step: 2, tag: 'INSERT 0 1' },
      ],
    });
    // The session is the run's: recorded as any session, the runbook's name and file in it, and found by it.
    const listed = await poll(async () => {
      const ls = JSON.parse((await hoop(['sessions', 'ls', '--runbook', 'refund-order', '--json'], SUPPORT)).stdout) as { sessions: Array<{ id: string; runbook?: { name: string; digest: string } }> };
      return ls.sessions.some((x) => x.id === json.session) ? ls.sessions : undefined;
    });
    expect(listed!.find((x) => x.id === json.session)!.runbook).toEqual({ name: 'refund-order', digest: json.digest });
    expect(JSON.parse((await hoop(['sessions', 'ls', '--runbook', 'lookup-customer', '--json'], SUPPORT)).stdout)).toEqual({ sessions: [] });
    // The index lists a session as it runs and ends; its recording is shown once it has ended (later, on a busy machine).
    const update = "update rb_orders set status = 'refunded' where id = $1 and status = 'paid' returning id, status";
    const shown = await poll(async () => {
      const r = await hoop(['sessions', 'show', String(json.session)], SUPPORT);
      return r.stdout.includes(update) ? r.stdout : undefined;
    });
    expect(shown).toContain(`running runbook refund-order (sha256 ${String(json.digest).slice(0, 12)})`);
  });

  it('binds hostile values as values: SQL, quotes and shell text change nothing but the reason stored', async () => {
    const hostile = ["x'); delete from rb_orders; --", '$1 $2 \\\\ ; drop table rb_orders', '"; rm -rf / #', 'Ω ≠ é'];
    for (const [i, reason] of hostile.entries()) {
      const id = 10 + i;
      const r = await hoop(['runbook', 'run', 'refund-order', '-p', `order_id=${id}`, '-p', 'cents=7', '-p', `reason=${reason}`], SUPPORT);
      expect(r.code).toBe(0);
      expect(await sql(`select reason from rb_refunds where order_id = ${id}`)).toBe(`${reason}\n`);
    }
    expect(await sql('select count(*) from rb_orders')).toBe('40\n');
  });

  it('refuses a value that fails its type before anything runs, naming the parameter', async () => {
    const before = await sql('select count(*) from rb_refunds');
    for (const [param, value] of [
      ['order_id', '3; drop table rb_orders'],
      ['order_id', '0'],
      ['cents', '10001'],
      ['cents', '1e3'],
      ['reason', 'a\u202eb'],
      ['reason', 'x'.repeat(201)],
      ['nope', '1'],
    ] as const) {
      const args = { order_id: '5', cents: '5', [param]: value };
      const r = await hoop(['runbook', 'run', 'refund-order', ...Object.entries(args).flatMap(([k, v]) => ['-p', `${k}=${v}`])], SUPPORT);
      expect(r.code, `${param}=${value} ${r.stderr}`).toBe(ExitCode.DATA);
      expect(r.stderr).toContain(`parameter ${param}:`);
    }
    expect(await sql('select count(*) from rb_refunds')).toBe(before);
    expect(await sql('select status from rb_orders where id = 5')).toBe('paid\n');
  });

  it('keeps nothing when a step fails, and says which', async () => {
    await sql('alter table rb_refunds add constraint small check (cents < 1000)');
    try {
      const failed = await hoop(['runbook', 'run', 'refund-order', '-p', 'order_id=7', '-p', 'cents=5000'], SUPPORT);
      expect(failed.code).toBe(1);
      expect(failed.stderr).toContain('step 2 failed: new row for relation "rb_refunds" violates check constraint "small"');
      expect(failed.stderr).toContain('nothing was kept');
      expect(await sql('select status from rb_orders where id = 7')).toBe('paid\n');
    } finally {
      await sql('alter table rb_refunds drop constraint small');
    }
  });

  it("is judged by the policy's statement rules, unless the runbook names the rule it bypasses; its row limit holds", async () => {
    const denied = await hoop(['runbook', 'run', 'purge-order', '-p', 'order_id=8'], SUPPORT);
    expect(denied.code).toBe(3);
    expect(denied.stderr).toContain('step 1 refused: denied');
    expect(await sql('select count(*) from rb_orders where id = 8')).toBe('1\n');
    const exempt = await hoop(['runbook', 'run', 'purge-order-exempt', '-p', 'order_id=8'], SUPPORT);
    expect(exempt.code).toBe(0);
    expect(await sql('select count(*) from rb_orders where id = 8')).toBe('0\n');
    const wide = await hoop(['runbook', 'run', 'refund-all', '-p', 'status=paid'], SUPPORT);
    expect(wide.code).toBe(3);
    expect(wide.stderr).toMatch(/step 1 refused: the UPDATE changed \d+ rows, over the limit of 1 \(rule "runbook:refund-all"\); it was rolled back; nothing was kept/);
    expect(Number(await sql("select count(*) from rb_orders where status = 'paid'"))).toBeGreaterThan(1);
  });

  it('returns the columns the runbook names, masked as the policy masks them', async () => {
    const r = JSON.parse((await hoop(['runbook', 'run', 'lookup-customer', '-p', 'name=Ada', '--json'], SUPPORT)).stdout) as { steps: Array<{ columns: string[]; rows: string[][] }> };
    expect(r.steps[0]!.columns).toEqual(['id', 'name', 'email']);
    expect(r.steps[0]!.rows[0]![0]).toBe('1');
    expect(r.steps[0]!.rows[0]![2]).not.toContain('ada@example.com');
  });

  it('is answered to whoever may not run it as a runbook that does not exist', async () => {
    const r = await hoop(['runbook', 'run', 'refund-order', '-p', 'order_id=9', '-p', 'cents=5'], { subject: 'mallory' });
    expect(r.code).toBe(ExitCode.DATA);
    expect(r.stderr).toContain('no runbook "refund-order" that you may run');
    const api = await callApi(stack.gateway.url, stack.pki.ca, 'POST', '/v1/runbooks/refund-order/run', await stack.token('mallory'), { params: { order_id: 9, cents: 5 } });
    expect(api.status).toBe(404);
    expect(await sql('select status from rb_orders where id = 9')).toBe('paid\n');
  });

  it("counts its refusals before a session (not admitted, a value refused) in the policy's refused alerts", async () => {
    const as = { subject: 'trudy', groups: ['support'] };
    await hoop(['runbook', 'run', 'refund-order', '-p', 'order_id=x', '-p', 'cents=1'], as);
    // Asked of the API (the CLI looks a runbook up first, and stops at an unknown one).
    await callApi(stack.gateway.url, stack.pki.ca, 'POST', '/v1/runbooks/lookup-customer-x/run', await stack.token(as.subject, as.groups), { params: {} });
    expect((await hoop(['alerts', 'ls', '--json'], as)).stdout).not.toContain('runbook-probing');
    await hoop(['runbook', 'run', 'refund-order', '-p', 'order_id=1', '-p', 'cents=0'], as);
    const raised = await poll(async () => {
      const ls = JSON.parse((await hoop(['alerts', 'ls', '--json'], as)).stdout) as { alerts: Array<{ rule: string; count: number }> };
      return ls.alerts.find((a) => a.rule === 'runbook-probing');
    });
    expect(raised).toMatchObject({ rule: 'runbook-probing', count: 3 });
  });

  it('takes long values, keeps a bounded answer (the rest counted, not kept), and refuses a __proto__ parameter and a parameter named twice', async () => {
    const token = await stack.token('sam', ['support']);
    const text = 'é'.repeat(40_000);
    const r = await callApi(stack.gateway.url, stack.pki.ca, 'POST', '/v1/runbooks/echo-text/run', token, { params: { text, rows: 200 } });
    expect(r.status).toBe(200);
    const steps = (r.body as { steps: Array<{ rows: string[][]; truncated?: true; tag: string }> }).steps;
    expect(steps[0]!.rows[0]).toEqual(['40000', text]);
    expect(steps[1]!.tag).toBe('SELECT 200');
    expect(steps[1]!.truncated).toBe(true);
    expect(steps[1]!.rows.length).toBeLessThan(100);
    // As JSON text: an object literal's __proto__ would set its prototype, not a key; and a key twice, which readers take first or last.
    const posted = (raw: string): Promise<{ status: number; text: string }> =>
      new Promise((resolve, reject) => {
        const req = https.request(new URL('/v1/runbooks/echo-text/run', stack.gateway.url), {
          method: 'POST',
          ca: stack.pki.ca,
          agent: false,
          headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(raw)) },
        });
        req.on('response', (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        });
        req.on('error', reject);
        req.end(raw);
      });
    const twice = await posted('{"params":{"text":"a","rows":1,"r\\u006fws":1000}}');
    expect(twice.status).toBe(400);
    expect(JSON.parse(twice.text)).toMatchObject({ error: { message: 'the request body names "rows" twice in one object', hint: 'send each field once' } });
    const proto = await posted('{"params":{"text":"a","rows":1,"__proto__":{"x":1}}}');
    expect(proto.status).toBe(400);
    expect(proto.text).toContain('parameter __proto__: the runbook has no such parameter');
  });

  it('runs for CI through the API with JSON values, an integer a JSON number', async () => {
    const token = await stack.token('sam', ['support']);
    const wrong = await callApi(stack.gateway.url, stack.pki.ca, 'POST', '/v1/runbooks/refund-order/run', token, { params: { order_id: '9', cents: 5 } });
    expect(wrong.status).toBe(400);
    expect(JSON.stringify(wrong.body)).toContain('parameter order_id');
    const ran = await callApi(stack.gateway.url, stack.pki.ca, 'POST', '/v1/runbooks/refund-order/run', token, { params: { order_id: 9, cents: 5 } });
    expect(ran.status).toBe(200);
    expect(ran.body).toMatchObject({ outcome: 'ran' });
  });

  it('past its deadline: ended, rolled back, and said', async () => {
    const r = await hoop(['runbook', 'run', 'slow-refund', '-p', 'order_id=31', '-p', 'seconds=30'], SUPPORT);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("step 2 failed: the runbook's deadline of 3 s passed; nothing was kept");
    expect(await sql('select status from rb_orders where id = 31')).toBe('paid\n');
    expect(await poll(async () => ((await sql("select count(*) from pg_stat_activity where query like 'select pg_sleep%'")) === '0\n' ? true : undefined))).toBe(true);
  });

  it('ended when its caller hangs up (^C): rolled back, nothing left running', async () => {
    const token = await stack.token('sam', ['support']);
    const body = JSON.stringify({ params: { order_id: 32, seconds: 30 } });
    const req = https.request(new URL('/v1/runbooks/slow-refund/run', stack.gateway.url), {
      method: 'POST',
      ca: stack.pki.ca,
      agent: false,
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) },
    });
    req.on('error', () => undefined);
    req.end(body);
    // Once the run sleeps in step 2 (step 1 done, not committed), the caller goes.
    expect(await poll(async () => ((await sql("select count(*) from pg_stat_activity where query like 'select pg_sleep%'")) === '1\n' ? true : undefined))).toBe(true);
    req.destroy();
    expect(await poll(async () => ((await sql("select count(*) from pg_stat_activity where query like 'select pg_sleep%'")) === '0\n' ? true : undefined), { timeout: 2_500 })).toBe(true);
    expect(await sql('select status from rb_orders where id = 32')).toBe('paid\n');
  });

  it('held by a statement rule at a step: rolled back, then run whole once that review is approved', async () => {
    const held = await hoop(['runbook', 'run', 'flag-order', '-p', 'order_id=14', '--no-wait', '--json'], SUPPORT);
    expect(held.code).toBe(4);
    const answer = JSON.parse(held.stdout) as { outcome: string; held: { review: string; step: number } };
    expect(answer).toMatchObject({ outcome: 'held', held: { step: 2 } });
    expect(await sql('select status from rb_orders where id = 14; select count(*) from rb_flags')).toBe('paid\n0\n');
    expect((await hoop(['review', 'approve', answer.held.review], { subject: 'pat', groups: ['payments'] })).code).toBe(0);
    const ran = await hoop(['runbook', 'run', 'flag-order', '-p', 'order_id=14', '--no-wait'], SUPPORT);
    expect(ran.stderr).toBe('');
    expect(ran.code).toBe(0);
    expect(await sql('select status from rb_orders where id = 14; select order_id from rb_flags')).toBe('flagging\n14\n');
  });

  it('with a reviewer: held, nothing run, until approved for exactly that runbook and those values, then runs once', async () => {
    const held = await hoop(['runbook', 'run', 'refund-reviewed', '-p', 'order_id=15', '--no-wait'], SUPPORT);
    expect(held.code).toBe(4);
    const id = held.stdout.trim();
    expect(id).toMatch(/^rv-[0-9a-f]{16}$/);
    expect(await sql('select status from rb_orders where id = 15')).toBe('paid\n');
    const shown = await hoop(['review', 'show', id], { subject: 'pat', groups: ['payments'] });
    expect(shown.stdout).toContain('runbook refund-reviewed');
    expect(shown.stdout).toContain('order_id = 15');
    expect((await hoop(['review', 'approve', id], { subject: 'pat', groups: ['payments'] })).code).toBe(0);
    // Other values are another review.
    const other = await hoop(['runbook', 'run', 'refund-reviewed', '-p', 'order_id=16', '--no-wait'], SUPPORT);
    expect(other.code).toBe(4);
    expect(other.stdout.trim()).not.toBe(id);
    const ran = await hoop(['runbook', 'run', 'refund-reviewed', '-p', 'order_id=15', '--no-wait'], SUPPORT);
    expect(ran.stderr).toBe('');
    expect(ran.code).toBe(0);
    expect(await sql('select status from rb_orders where id = 15')).toBe('refunded\n');
    // Used once.
    const again = await hoop(['runbook', 'run', 'refund-reviewed', '-p', 'order_id=15', '--no-wait'], SUPPORT);
    expect(again.code).toBe(4);
  });

  it("approved whole by its runbook's reviewer: not held again by a statement rule, but refused saying to bypass it; with the bypass, it runs", async () => {
    const PAT = { subject: 'pat', groups: ['payments'] };
    const approvedRun = async (runbook: string): Promise<{ code: number; stdout: string; stderr: string }> => {
      const held = await hoop(['runbook', 'run', runbook, '-p', 'order_id=21', '--no-wait'], SUPPORT);
      expect(held.code).toBe(4);
      expect((await hoop(['review', 'approve', held.stdout.trim()], PAT)).code).toBe(0);
      return hoop(['runbook', 'run', runbook, '-p', 'order_id=21', '--no-wait', '--json'], SUPPORT);
    };
    const refused = await approvedRun('flag-reviewed');
    expect(refused.code).toBe(3);
    expect(JSON.parse(refused.stdout)).toMatchObject({ outcome: 'failed', failed: { step: 2, undone: true } });
    expect(refused.stdout).toContain("list it in the runbook's bypass");
    expect(await sql('select status from rb_orders where id = 21; select count(*) from rb_flags where order_id = 21')).toBe('paid\n0\n');
    const pending = JSON.parse((await hoop(['review', 'ls', '--json'], PAT)).stdout) as { reviews: Array<{ state: string; rule?: string }> };
    expect(pending.reviews.filter((r) => r.state === 'pending' && r.rule === 'flags-reviewed')).toEqual([]);
    const ran = await approvedRun('flag-reviewed-exempt');
    expect(ran.code).toBe(0);
    expect(await sql('select status from rb_orders where id = 21; select order_id from rb_flags where order_id = 21')).toBe('flagging\n21\n');
  });
});

describe('runbooks as MCP tools', () => {
  it("are an agent's tools through hoop mcp, their parameters its input schema; a value outside them is refused and nothing runs", async () => {
    // Sam's agent has no access rule on app: its runbooks are all it may do there.
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [HOOP, 'mcp', '--agent', 'claude-code', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile],
      env: { PATH: process.env.PATH ?? '', HOOP_TOKEN: await stack.token('sam', ['support']), HOOP_CONFIG_DIR: join(stack.dir, 'cli-sam'), XDG_RUNTIME_DIR: stack.runtime },
      stderr: 'pipe',
    });
    let err = '';
    transport.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const client = new Client({ name: 'claude-code', version: '1' });
    await client.connect(transport);
    try {
      const tools = await poll(async () => {
        const listed = (await client.listTools()).tools;
        return listed.some((t) => t.name.startsWith('runbook_')) ? listed : undefined;
      });
      // Only what the agent's own entry admits: refund-order names claude* via mcp; the others are its person's group's alone.
      const refund = tools!.filter((t) => t.name.startsWith('runbook_'));
      expect(refund.map((t) => t.name)).toEqual(['runbook_refund-order']);
      expect(refund[0]!.inputSchema).toMatchObject({
        type: 'object',
        properties: { order_id: { type: 'integer', minimum: 1 }, cents: { type: 'integer', minimum: 1, maximum: 10000 }, reason: { type: 'string', maxLength: 200 } },
        required: ['order_id', 'cents'],
      });
      const ran = await client.callTool({ name: 'runbook_refund-order', arguments: { order_id: 17, cents: 250, reason: "'; drop table rb_orders; --" } });
      expect(ran.isError ?? false).toBe(false);
      expect(JSON.stringify(ran.content)).toContain('UPDATE 1');
      expect(await sql('select status from rb_orders where id = 17; select reason from rb_refunds where order_id = 17')).toBe("refunded\n'; drop table rb_orders; --\n");
      const over = await client.callTool({ name: 'runbook_refund-order', arguments: { order_id: 18, cents: 20000 } });
      expect(over.isError).toBe(true);
      expect(await sql('select status from rb_orders where id = 18')).toBe('paid\n');
      // The run is the agent's: its session says so.
      const sessions = JSON.parse((await hoop(['sessions', 'ls', '--agent', 'claude-code', '--json'], SUPPORT)).stdout) as { sessions: Array<{ connection: string; via?: string }> };
      expect(sessions.sessions.some((x) => x.connection === 'app' && x.via === 'mcp')).toBe(true);
    } finally {
      await client.close();
    }
    expect(err).not.toMatch(/could not be listed/);
  });
});

describe('an agent under hoop run', () => {
  it("runs a runbook its agent may run, as the run, with no connection served (--runbooks-only); its person's group alone admits it to no other", async () => {
    const hoopCli = [process.execPath, HOOP];
    const r = await stack.run(
      [
        'run',
        '--runbooks-only',
        '--agent',
        'claude-code',
        '--gateway',
        stack.gateway.url,
        '--ca-file',
        stack.pki.caFile,
        '--',
        ...hoopCli,
        'runbook',
        'run',
        'refund-order',
        '-p',
        'order_id=19',
        '-p',
        'cents=42',
        '--json',
      ],
      { HOOP_TOKEN: await stack.token('sam', ['support']) },
    );
    expect(r.code, r.stderr).toBe(0);
    const run = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { outcome: string; session: string };
    expect(run.outcome).toBe('ran');
    expect(await sql('select status from rb_orders where id = 19; select cents from rb_refunds where order_id = 19')).toBe('refunded\n42\n');
    // The session is the run's agent's.
    const runId = /hoop: run (run-[\w-]+):/.exec(r.stderr)?.[1];
    expect(runId, r.stderr).toBeDefined();
    const listed = await poll(async () => {
      const ls = JSON.parse((await hoop(['sessions', 'ls', '--run', runId!, '--json'], SUPPORT)).stdout) as {
        sessions: Array<{ id: string; via?: string; agent?: string; runbook?: { name: string } }>;
      };
      return ls.sessions.length > 0 ? ls.sessions : undefined;
    });
    expect(listed![0]).toMatchObject({ id: run.session, via: 'run', agent: 'claude-code', runbook: { name: 'refund-order' } });
    // lookup-customer admits the support group, not its agents.
    const other = await stack.run(
      ['run', '--runbooks-only', '--agent', 'claude-code', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile, '--', ...hoopCli, 'runbook', 'run', 'lookup-customer', '-p', 'name=Ada'],
      { HOOP_TOKEN: await stack.token('sam', ['support']) },
    );
    expect(other.code).toBe(ExitCode.DATA);
    expect(other.stderr).toContain('no runbook "lookup-customer" that you may run');
  });
});
