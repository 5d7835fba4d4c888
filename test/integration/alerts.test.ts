/**
 * Alerts (src/gateway/alerts/alerts.ts) end to end: refusals counted per identity over a window; at the
 * rule's count an `alert.raised` event with its evidence on the audit stream and to the webhook;
 * a suspending alert ends the identity's open sessions and refuses new ones naming the alert and
 * who can clear it; the one it is about cannot clear it, a run's credential cannot, an auditor can
 * (with a reason, on the record), and then the identity connects again.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import { callApi } from '../harness/api.js';
import { psql } from '../harness/clients.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml } from '../harness/postgres.js';
import { startStack, type HoopStack } from '../harness/stack.js';
import { eventually, pace } from '../harness/wait.js';
import { query } from '../../src/postgres/wire/messages.js';

const hooks: Array<Record<string, unknown>> = [];
const webhook = createServer((req: IncomingMessage, res) => {
  let body = '';
  req.on('data', (b: Buffer) => (body += b.toString()));
  req.on('end', () => {
    hooks.push(JSON.parse(body) as Record<string, unknown>);
    res.writeHead(204).end();
  });
});
let stack: HoopStack;
let repo: PolicyGitRepo;

beforeAll(async () => {
  await new Promise<void>((r) => webhook.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(webhook.address() as AddressInfo).port}/alerts`;
  repo = new PolicyGitRepo('hoop-alerts-policy-');
  stack = await startStack({
    extraConfig: 'audit: { file: audit.jsonl, flushSeconds: 0.2, statements: all }',
    // Bytes sent are told every 200 ms (10 s in production): a long pull is seen while it runs.
    // After a change of the catalog through the gateway, names read anything for 0.5 s (5 s in production).
    gateway: { bytesTickMs: 200, postgres: { catalogSettleMs: 500 } },
    policy: ({ pg }) => {
      repo.commit(`version: 1
connections:
${connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' })}access:
  - { name: people, subjects: [alice, carol, dave, erin, frank, grace, heidi, ivan, judy], connections: [app], mode: read-write }
statements:
  rules:
    - { name: no-drop, match: { kinds: [drop] }, action: deny, message: DROP is not allowed }
recording:
  auditors: [secops]
alerts:
  - name: refusal-burst
    when: { event: refused, count: 3, within: 10min }
    suspend: true
    notify: [{ url: ${JSON.stringify(url)}, format: json }]
  - name: bulk-people
    when: { event: rows-read, table: people, count: 50, within: 1min }
  - name: big-pull
    when: { event: bytes-sent, count: 1000000, within: 1min }
    suspend: true
  - name: agent-refusals
    when: { event: refused, count: 2, within: 10min }
    per: agent
    suspend: true
  - name: agent-new-connection
    when: { event: first-use, count: 1, within: 1h }
    per: agent
`);
      return repo.gatewayBlock(['${env:APP_PASSWORD}']);
    },
  });
});

afterAll(async () => {
  await stack?.close();
  webhook.close();
  if (repo) rmSync(repo.base, { recursive: true, force: true });
});

/** The audit file's complete lines (a batch may be half-written while it is read). */
const audit = (): Array<Record<string, unknown>> => {
  const file = join(stack.dir, 'audit.jsonl');
  if (!existsSync(file)) return []; // nothing flushed yet
  return readFileSync(file, 'utf8')
    .split('\n')
    .slice(0, -1)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
};

async function hoop(argv: string[], subject: string, groups: string[] = []) {
  return stack.run([...argv, '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: await stack.token(subject, groups) });
}

describe('alerts', () => {
  it('raise at the count, with their evidence, suspend until an auditor clears them, and the one suspended connects again', async () => {
    const alice = await stack.token('alice');
    const first = await stack.tunnel('app', alice);
    for (let i = 0; i < 2; i++) expect((await first.simple('drop table items')).some((m) => m.type === 0x45)).toBe(true);
    // Another person's refusal counts for them, not for alice.
    const carol = await stack.tunnel('app', await stack.token('carol'));
    expect((await carol.simple('drop table items')).some((m) => m.type === 0x45)).toBe(true);
    const idle = await stack.tunnel('app', alice);
    expect((await idle.simple('select 1')).some((m) => m.type === 0x44)).toBe(true);
    expect(audit().some((e) => e.event === 'alert.raised')).toBe(false);

    // The third of alice's refusals within ten minutes raises the alert, and her sessions end (this one right after its refusal).
    await first.simple('drop table items').catch((err: Error) => expect(err.message).toMatch(/only E/));
    await eventually(() => expect(audit().map((e) => e.event)).toContain('alert.raised'), { timeout: 60_000, interval: 100 });
    const raised = audit().find((e) => e.event === 'alert.raised')!;
    expect(raised).toMatchObject({ rule: 'refusal-burst', subject: 'alice', per: 'identity', count: 3, suspend: true, sessions: [expect.any(String)] });
    expect((raised.evidence as unknown[]).length).toBe(3);
    expect(raised.evidence).toContainEqual(expect.objectContaining({ rule: 'no-drop', connection: 'app', reason: expect.any(String) }));
    expect(await idle.closed()).toBe(true);
    expect(await first.closed()).toBe(true);
    expect(carol.ended).toBe(false);
    const id = String(raised.alert);
    await eventually(() => expect(hooks).toContainEqual(expect.objectContaining({ event: 'alert.raised', alert: expect.objectContaining({ id, subject: 'alice' }) })), {
      timeout: 30_000,
      interval: 100,
    });

    // A new session of alice's is refused, saying which alert and how it is cleared.
    const local = await stack.connect('app', alice);
    const refused = await psql(local.info, ['-c', 'select 1']);
    await local.stop();
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(new RegExp(`alice is suspended by alert ${id} \\(refusal-burst: 3 refused events\\)`));
    expect(refused.stderr).toContain(`hoop alerts clear ${id}`);

    // alice sees it, and may not clear it; carol may not either; an auditor sees and clears it.
    const mine = await hoop(['alerts', 'ls', '--json'], 'alice');
    expect((JSON.parse(mine.stdout) as { alerts: Array<{ id: string }> }).alerts.map((a) => a.id)).toEqual([id]);
    const own = await hoop(['alerts', 'clear', id, '--reason', 'it was me'], 'alice');
    expect(own.code).toBe(ExitCode.NOPERM);
    // Suspended, she may clear no alert at all (one about her least of all).
    expect(own.stderr).toContain(`alice may not clear an alert: alice is suspended by alert ${id}`);
    expect((await hoop(['alerts', 'ls', '--json'], 'carol')).stdout).toBe('{"alerts":[]}\n');
    expect((await hoop(['alerts', 'clear', id, '--reason', 'x'], 'carol')).code).toBe(ExitCode.NOPERM);
    const listed = await hoop(['alerts', 'ls'], 'bob', ['secops']);
    expect(listed.stdout).toMatch(new RegExp(`^${id}\\s+\\S+ \\S+\\s+refusal-burst\\s+alice\\s+3 refused events in 10 minutes\\s+open, suspends$`, 'm'));
    const shown = await hoop(['alerts', 'show', id], 'bob', ['secops']);
    expect(shown.stdout).toContain('about       alice');
    expect(shown.stdout.match(/: no-drop \(/g)).toHaveLength(3);
    const noReason = await callApi(stack.gateway.url, stack.pki.ca, 'POST', `/v1/alerts/${id}/clear`, await stack.token('bob', ['secops']), {});
    expect(noReason.status).toBe(400);
    const cleared = await hoop(['alerts', 'clear', id, '--reason', 'alice was testing the rule'], 'bob', ['secops']);
    expect(cleared.code, cleared.stderr).toBe(0);
    expect(cleared.stdout).toBe(`alert ${id}: cleared; alice may connect again\n`);
    await eventually(() => expect(audit().find((e) => e.event === 'alert.cleared')).toMatchObject({ alert: id, reason: 'alice was testing the rule', clearer: { subject: 'bob' } }), {
      timeout: 30_000,
      interval: 100,
    });
    const again = await stack.tunnel('app', alice);
    expect((await again.simple('select 1')).some((m) => m.type === 0x44)).toBe(true);
    expect((await hoop(['alerts', 'ls', '--state', 'cleared', '--json'], 'bob', ['secops'])).stdout).toContain('"clearReason":"alice was testing the rule"');
    // Its window starts afresh: one more refusal raises nothing.
    expect((await again.simple('drop table items')).some((m) => m.type === 0x45)).toBe(true);
    expect(audit().filter((e) => e.event === 'alert.raised')).toHaveLength(1);
  });
});

describe('suspension', () => {
  it('stops every act that needs a decision or a credential, not only sessions: a suspended clearer clears nothing, decides nothing, is given nothing', async () => {
    /** Three refusals of `subject`'s: the alert that suspends them. */
    const suspend = async (subject: string, groups: string[] = []): Promise<string> => {
      const t = await stack.tunnel('app', await stack.token(subject, groups));
      for (let i = 0; i < 3; i++) await t.simple('drop table items').catch(() => undefined);
      let id = '';
      await eventually(() => {
        const raised = audit().find((e) => e.event === 'alert.raised' && e.subject === subject);
        expect(raised).toBeDefined();
        id = String(raised!.alert);
      });
      return id;
    };
    const heidi = await suspend('heidi');
    const ivan = await suspend('ivan', ['secops']);
    const ivanToken = await stack.token('ivan', ['secops']);
    const act = (method: string, path: string, body?: unknown) => callApi(stack.gateway.url, stack.pki.ca, method, path, ivanToken, body);
    // Whatever she asks, and whether or not it exists, she is told she is suspended: nothing is looked at first.
    const tries = [
      await act('POST', `/v1/alerts/${heidi}/clear`, { reason: 'heidi is fine' }),
      await act('POST', '/v1/reviews/rv-0000000000000000/approve', {}),
      await act('POST', '/v1/requests', { connection: 'app', mode: 'read-only', seconds: 600, reason: 'look' }),
      await act('POST', '/v1/runs', { connections: ['app'], agent: 'claude', isolation: 'none' }),
      await act('POST', '/v1/connections/app/direct', {}),
      await act('POST', '/v1/devices', { publicKey: 'ssh-ed25519 AAAA' }),
    ];
    for (const t of tries) {
      expect(t.status).toBe(403);
      expect(JSON.stringify(t.body)).toMatch(new RegExp(`ivan may not [a-z ]+: ivan is suspended by alert ${ivan}`));
    }
    expect(JSON.stringify(tries[0]!.body)).toContain('ivan may not clear an alert');
    expect((await hoop(['alerts', 'ls', '--state', 'open', '--json'], 'bob', ['secops'])).stdout).toContain(heidi);
    // She may still look: her alerts, her sessions.
    expect((await act('GET', '/v1/alerts')).status).toBe(200);
    // Cleared by another, she may act again.
    expect((await hoop(['alerts', 'clear', ivan, '--reason', 'tested'], 'bob', ['secops'])).code).toBe(0);
    await eventually(async () => expect((await act('POST', `/v1/alerts/${heidi}/clear`, { reason: 'heidi is fine' })).status).toBe(200));
  });
});

describe('what sessions read', () => {
  it('counts rows per statement into the audit stream, the index and a rows-read alert, and finds who read a column', async () => {
    await stack.pg.psql(
      "create table people (id int primary key, name text, email text); insert into people select g, 'p' || g, 'p' || g || '@example.com' from generate_series(1, 40) g; grant select on people to public",
      { database: 'app' },
    );
    const carol = await stack.token('carol');
    const all = await stack.tunnel('app', carol);
    expect((await all.simple('select * from people')).filter((m) => m.type === 0x44)).toHaveLength(40);
    all.write(Buffer.from([0x58, 0, 0, 0, 4])); // Terminate
    expect(await all.closed()).toBe(true);
    await eventually(() =>
      expect(audit().filter((e) => e.event === 'statement.completed' && e.subject === 'carol')).toContainEqual(expect.objectContaining({ verb: 'SELECT', rows: 40, changed: 0, tables: ['people'] })),
    );
    expect(audit().some((e) => e.event === 'alert.raised' && e.rule === 'bulk-people')).toBe(false);

    // 20 more rows of people within the minute: 60 in all, over the rule's 50.
    const names = await stack.tunnel('app', carol);
    expect((await names.simple('select name from people where id <= 20')).filter((m) => m.type === 0x44)).toHaveLength(20);
    await eventually(() => expect(audit().find((e) => e.event === 'alert.raised' && e.rule === 'bulk-people')).toMatchObject({ counted: 'rows-read', count: 60, subject: 'carol' }));
    const raised = audit().find((e) => e.event === 'alert.raised' && e.rule === 'bulk-people')!;
    expect((raised.evidence as Array<{ rows: number }>).map((e) => e.rows)).toEqual([40, 20]);
    names.write(Buffer.from([0x58, 0, 0, 0, 4]));
    expect(await names.closed()).toBe(true);

    // The index: rows per session, and the columns each read (a * reads every column of its table).
    const ls = async (...filter: string[]): Promise<Array<{ id: string; rowsRead: number; columns: string[] }>> => {
      const r = await hoop(['sessions', 'ls', '--user', 'carol', '--json', ...filter], 'carol');
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as { sessions: Array<{ id: string; rowsRead: number; columns: string[]; endedAt?: string }> }).sessions.filter((x) => x.endedAt !== undefined);
    };
    await eventually(async () => expect((await ls('--table', 'people')).map((x) => x.rowsRead)).toEqual([20, 40]));
    const [second, first] = await ls('--table', 'people');
    expect(second!.columns).toEqual(['people.id', 'people.name']);
    expect(first!.columns).toEqual(['people.*']);
    expect((await ls('--min-rows', '30')).map((x) => x.id)).toEqual([first!.id]);
    expect((await ls('--column', 'people.name')).map((x) => x.id)).toEqual([second!.id, first!.id]);
    expect((await ls('--column', 'public.people.email')).map((x) => x.id)).toEqual([first!.id]);
    const table = await hoop(['sessions', 'ls', '--user', 'carol', '--min-rows', '30'], 'carol');
    expect(table.stdout).toMatch(new RegExp(`^${first!.id}\\s.*\\s40\\s+client-terminated`, 'm'));
    const bad = await hoop(['sessions', 'ls', '--min-rows', 'lots'], 'carol');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('min-rows must be a whole number of rows');
  });
});

describe('what a view or a partition reads', () => {
  it('counts rows read through a view against its tables, and the index finds who read a column through a view or a table through its partition', async () => {
    await stack.pg.psql(
      'create view people_v as select id, email from people; create table ledger (id int, amount int) partition by range (id); ' +
        'create table ledger_low partition of ledger for values from (0) to (1000); insert into ledger select g, g from generate_series(1, 10) g; ' +
        'grant select on people_v, ledger, ledger_low to public',
      { database: 'app' },
    );
    const raw = await stack.tunnel('app', await stack.token('erin'));
    const rows = async (sql: string): Promise<number> => (await raw.simple(sql)).filter((m) => m.type === 0x44).length;
    expect(await rows('select * from people_v')).toBe(40);
    expect(await rows('select email from people_v where id <= 20')).toBe(20);
    // 60 rows of people, read through a view the parse alone does not see through: the rule on people counts them.
    await eventually(() => expect(audit().find((e) => e.event === 'alert.raised' && e.rule === 'bulk-people' && e.subject === 'erin')).toMatchObject({ counted: 'rows-read', count: 60 }));
    expect(audit().find((e) => e.event === 'statement.completed' && e.subject === 'erin')).toMatchObject({ rows: 40, tables: ['people_v', 'public.people'] });
    expect(await rows('select * from ledger_low')).toBe(10);
    raw.write(Buffer.from([0x58, 0, 0, 0, 4])); // Terminate
    expect(await raw.closed()).toBe(true);

    const ls = async (...filter: string[]): Promise<string[]> => {
      const r = await hoop(['sessions', 'ls', '--user', 'erin', '--json', ...filter], 'erin');
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as { sessions: Array<{ id: string; endedAt?: string }> }).sessions.filter((x) => x.endedAt !== undefined).map((x) => x.id);
    };
    await eventually(async () => expect(await ls()).toHaveLength(1));
    const [id] = await ls();
    // Who read people.email: this session, through people_v; people.name it never read (the view has no such column).
    expect(await ls('--column', 'people.email')).toEqual([id]);
    expect(await ls('--column', 'public.people.id')).toEqual([id]);
    expect(await ls('--column', 'people.name')).toEqual([]);
    // Who read the ledger: this session, through its partition.
    expect(await ls('--table', 'ledger')).toEqual([id]);
  });

  it("counts a statement that calls one of the database's own functions as reading anything (what it reads is not in the catalog), and PostgreSQL's own as nothing more", async () => {
    await stack.pg.psql('create function people_emails() returns setof text language sql as $$ select email from people $$; grant execute on function people_emails() to public', {
      database: 'app',
    });
    const raw = await stack.tunnel('app', await stack.token('frank'));
    expect((await raw.simple("select lower('X'), count(*) from people")).filter((m) => m.type === 0x44)).toHaveLength(1);
    expect((await raw.simple('select * from people_emails()')).filter((m) => m.type === 0x44)).toHaveLength(40);
    await eventually(() => expect(audit().filter((e) => e.event === 'statement.completed' && e.subject === 'frank')).toHaveLength(2));
    const [builtin, own] = audit().filter((e) => e.event === 'statement.completed' && e.subject === 'frank');
    expect(builtin).toMatchObject({ rows: 1, tables: ['people'] });
    expect(own).toMatchObject({ rows: 40, tables: ['*'] });
    raw.write(Buffer.from([0x58, 0, 0, 0, 4])); // Terminate
    expect(await raw.closed()).toBe(true);
  });

  // Last here: it changes the catalog through the gateway, after which names read anything for a while (catalogSettleMs).
  it('a client that reads through a view and then redefines it is counted by what the view read, or as reading anything', async () => {
    const raw = await stack.tunnel('app', await stack.token('grace'));
    const selects = async (): Promise<Array<Record<string, unknown>>> => audit().filter((e) => e.event === 'statement.completed' && e.subject === 'grace' && e.verb === 'SELECT');
    // Straight to the gateway: a view that reads nothing, read (and what it reads known to the gateway) ...
    expect((await raw.simple("create view swap_v as select 'x'::text as email")).some((m) => m.type === 0x45)).toBe(false);
    await pace(1_000); // past the settling after a change of the catalog (catalogSettleMs: 0.5 s here)
    expect((await raw.simple('select * from swap_v')).filter((m) => m.type === 0x44)).toHaveLength(1);
    await eventually(async () => expect(await selects()).toEqual([expect.objectContaining({ tables: ['swap_v'] })]));
    // ... then over people, read at once: not counted by what the gateway knew before.
    expect((await raw.simple('create or replace view swap_v as select email from people')).some((m) => m.type === 0x45)).toBe(false);
    expect((await raw.simple('select * from swap_v')).filter((m) => m.type === 0x44)).toHaveLength(40);
    // ... and read, then made to read nothing again, in one message: counted by what the read read, or as anything.
    expect((await raw.simple("select * from swap_v; create or replace view swap_v as select 'y'::text as email")).filter((m) => m.type === 0x44)).toHaveLength(40);
    await eventually(async () => expect(await selects()).toHaveLength(3));
    for (const read of (await selects()).slice(1)) expect(read.tables as string[]).toEqual(expect.arrayContaining([expect.stringMatching(/^(public\.people|\*)$/)]));
    raw.write(Buffer.from([0x58, 0, 0, 0, 4])); // Terminate
    expect(await raw.closed()).toBe(true);
  });
});

describe('a read cut short', () => {
  it('counts the rows a statement sent before its session ended in the middle of it', async () => {
    const raw = await stack.tunnel('app', await stack.token('carol'));
    // 100 rows of 1,000 bytes, then a wait: the rows reach the client, the statement never ends.
    raw.write(query("select repeat('x', 1000) from generate_series(1, 100) union all select pg_sleep(60)::text"));
    await eventually(() => expect(raw.raw.length).toBeGreaterThan(90_000));
    raw.destroy();
    // What the client got (over 90 rows' bytes) is counted, though the statement never ended.
    const cut = await eventually(() => {
      const found = audit().find((e) => e.event === 'statement.completed' && e.subject === 'carol' && e.partial === true && e.failed === true);
      expect(found).toBeDefined();
      return found!;
    });
    expect(cut.rows).toBeGreaterThanOrEqual(90);
    expect(cut.rows).toBeLessThanOrEqual(100);
  });
});

describe('a long pull', () => {
  it('raises bytes-sent while the session runs (session.bytes), and the suspension ends that session', async () => {
    const raw = await stack.tunnel('app', await stack.token('dave'));
    // 2 MB of rows reach the client, then a statement that would hold the session for a minute.
    raw.write(query("select repeat('x', 10000) from generate_series(1, 200) union all select pg_sleep(60)::text"));
    const raised = await eventually(() => {
      const found = audit().find((e) => e.event === 'alert.raised' && e.rule === 'big-pull');
      expect(found).toBeDefined();
      return found!;
    });
    expect(raised).toMatchObject({ counted: 'bytes-sent', subject: 'dave' });
    expect(raised.count as number).toBeGreaterThanOrEqual(1_000_000);
    // The client received what it was told about, and the gateway ended the session long before the minute.
    await eventually(() => expect(raw.raw.length).toBeGreaterThanOrEqual(1_000_000));
    expect(await raw.closed()).toBe(true);
    const end = await eventually(() => {
      const found = audit().find((e) => e.event === 'session.end' && e.subject === 'dave');
      expect(found).toMatchObject({ reason: 'alert-suspended' });
      return found!;
    });
    // Told as it went, the rest before its end (which says so, and is not counted again).
    const told = audit().filter((e) => e.event === 'session.bytes' && e.subject === 'dave');
    expect(told.length).toBeGreaterThanOrEqual(1);
    const sum = told.reduce((n, e) => n + (e.bytesToClient as number), 0);
    expect(sum).toBe(told.at(-1)!.total);
    expect(end.bytesTold).toBe(sum);
  });
});

describe('an agent on a connection it never used', () => {
  it("raises first-use on its person's agent's first session there, and not on the next", async () => {
    const run = async (): Promise<string> => {
      const begun = await callApi(stack.gateway.url, stack.pki.ca, 'POST', '/v1/runs', await stack.token('carol'), { connections: ['app'], agent: 'devin', isolation: 'bwrap' });
      expect(begun.status).toBe(201);
      const { token } = begun.body as { token: string };
      const raw = await stack.tunnel('app', token);
      expect((await raw.simple('select 1')).some((m) => m.type === 0x44)).toBe(true);
      raw.write(Buffer.from([0x58, 0, 0, 0, 4]));
      expect(await raw.closed()).toBe(true);
      return token;
    };
    await run();
    await eventually(() => expect(audit().filter((e) => e.event === 'agent.first-use')).toEqual([expect.objectContaining({ subject: 'carol', agent: 'devin', connection: 'app', via: 'run' })]));
    await eventually(() =>
      expect(audit().find((e) => e.event === 'alert.raised' && e.rule === 'agent-new-connection')).toMatchObject({ counted: 'first-use', agent: 'devin', subject: 'carol', count: 1 }),
    );
    // Its session is in the index now: the next run of the same agent on the same connection is no first use.
    await eventually(async () => {
      const ls = await hoop(['sessions', 'ls', '--json', '--agent', 'devin'], 'carol');
      expect((JSON.parse(ls.stdout) as { sessions: Array<{ endedAt?: string }> }).sessions.filter((x) => x.endedAt)).toHaveLength(1);
    });
    await run();
    await eventually(async () => {
      const ls = await hoop(['sessions', 'ls', '--json', '--agent', 'devin'], 'carol');
      expect((JSON.parse(ls.stdout) as { sessions: Array<{ endedAt?: string }> }).sessions.filter((x) => x.endedAt)).toHaveLength(2);
    });
    expect(audit().filter((e) => e.event === 'agent.first-use')).toHaveLength(1);
  });
});

describe('an agent suspended by its name', () => {
  it('gets no new run under that name; its person may run another agent', async () => {
    const judy = await stack.token('judy');
    const begin = (agent: string) => callApi(stack.gateway.url, stack.pki.ca, 'POST', '/v1/runs', judy, { connections: ['app'], agent, isolation: 'bwrap' });
    const run = (await begin('mallory')).body as { id: string; token: string; controlToken: string };
    const t = await stack.tunnel('app', run.token);
    for (let i = 0; i < 2; i++) await t.simple('drop table items').catch(() => undefined);
    await eventually(() => expect(audit().find((e) => e.event === 'alert.raised' && e.rule === 'agent-refusals' && e.subject === 'judy')).toBeDefined());
    const again = await begin('mallory');
    expect(again.status).toBe(403);
    expect(JSON.stringify(again.body)).toContain('judy may not begin a run of the agent mallory');
    const other = await begin('helper');
    expect(other.status).toBe(201);
    for (const r of [run, other.body as { id: string; controlToken: string }]) await callApi(stack.gateway.url, stack.pki.ca, 'POST', `/v1/runs/${r.id}/end`, r.controlToken);
  });
});
