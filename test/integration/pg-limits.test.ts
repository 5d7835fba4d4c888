/**
 * A session cannot hurt other sessions or the gateway: the access's server timeouts are set at
 * the start of the upstream session and cannot be raised; a client that goes away (or whose
 * tunnel drops) while its query runs gets its query cancelled and its server connection closed.
 * Through `hoop connect` and straight to the tunnel, asserting on what the server did.
 *
 * @see https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-STATEMENT-TIMEOUT
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-CANCELING-REQUESTS
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../harness/wait.js';
import { StatementJudge } from '../../src/policy/decide.js';
import { parseTimeSetting, type SessionLimits } from '../../src/policy/limits.js';
import type { MaskingPolicy, Policy } from '../../src/policy/schema.js';
import { psql } from '../harness/clients.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import { createLogger } from '../../src/log.js';
import { LocalPostgresListener } from '../../src/postgres/local/listener.js';
import type { PgMessage } from '../../src/postgres/wire/reader.js';
import { makeScramSecret } from '../../src/postgres/wire/scram.js';
import { openTunnel } from '../../src/tunnel/transport.js';
import { frontendMessage as msg } from '../harness/pg-frontend.js';
import { errorIn, RawFrontend } from '../harness/raw-pg.js';
import { startStack, WAYS_IN, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { emptyPolicy } from '../harness/policy.js';

const policy: Policy = emptyPolicy();
const limits: SessionLimits = { statement_timeout: 1500, lock_timeout: 1000, idle_in_transaction_session_timeout: 2000 };
const masking: MaskingPolicy = { columns: [{ table: 'public.customers', column: 'email', strategy: 'redact' }], names: [], detectors: [], derived: 'mask' };

let stack: HoopStack;
let connected: RunningConnect;
let token: string;

beforeAll(async () => {
  await loadSqlParser();
  stack = await startStack({
    gateway: {
      sessionPolicy: (identity, connection) => {
        if (identity.groups.includes('free')) return undefined;
        const judge = new StatementJudge(policy, { subject: identity.subject, groups: identity.groups }, connection.name, 'read-write', identity.groups.includes('big') ? {} : { limits });
        if (identity.groups.includes('big')) return { judge, masking: { policy: masking } };
        if (identity.groups.includes('unjudged')) return { masking: { policy: masking } };
        return { judge, limits };
      },
      postgres: { maxStatementBytes: 24 * 1024 * 1024, maxMaskedMessageBytes: 1024 * 1024 },
    },
  });
  await stack.pg.psql(`create table customers (id int, email text); insert into customers values (1, 'alice@example.com'); grant all on customers to public`, { database: 'app' });
  token = await stack.token('alice');
  connected = await stack.connect('app', token);
});

afterAll(async () => {
  await connected?.stop();
  await stack?.close();
});

async function open(via: string, params: Array<[string, string]> = []): Promise<RawFrontend> {
  if (via === 'the tunnel') return stack.tunnel('app', token, { params: [['user', 'hoop'], ['database', 'app'], ...params] });
  if (via === 'direct') return stack.direct('app', token, { params });
  return RawFrontend.signedIn(connected.info, params);
}

/** A frontend of `via` not signed in yet, and its startup with `params`. */
async function starting(via: string, params: Array<[string, string]>): Promise<{ f: RawFrontend; start: Promise<void> }> {
  if (via === 'the tunnel') {
    const f = await stack.tunnel('app', token, { startup: false });
    return { f, start: f.startup('', [['user', 'hoop'], ['database', 'app'], ...params]) };
  }
  if (via === 'direct') {
    const f = await stack.direct('app', token, { startup: false });
    return { f, start: f.startup(f.credential.password, [['user', f.credential.user], ['database', 'app'], ...params]) };
  }
  const f = await RawFrontend.tcp(connected.info.port);
  return { f, start: f.startup(connected.info.password, [['user', 'hoop'], ['database', 'app'], ...params]) };
}

const errorOf = errorIn;
const value = (ms: PgMessage[]): string | undefined =>
  ms
    .find((m) => m.type === 0x44)
    ?.body.subarray(6)
    .toString();

describe.each(WAYS_IN)('per-access server timeouts, through %s', (via) => {
  it('are in force from the start, and the server applies them', async () => {
    const f = await open(via);
    try {
      expect(value(await f.simple('show statement_timeout'))).toBe('1500ms');
      expect(value(await f.simple('show lock_timeout'))).toBe('1s');
      expect(value(await f.simple('show idle_in_transaction_session_timeout'))).toBe('2s');
      expect(errorOf(await f.simple('select pg_sleep(3)'))?.code).toBe('57014');
    } finally {
      f.destroy();
    }
  });

  it('cannot be raised or turned off, by SET, SET LOCAL or set_config; lowered and reset they can be', async () => {
    const f = await open(via);
    try {
      for (const sql of [
        'set statement_timeout = 0',
        "set statement_timeout = '1h'",
        'set statement_timeout to 1501',
        "begin; set local lock_timeout = '10s'",
        "select set_config('idle_in_transaction_session_timeout', '0', false)",
        "select set_config('statement_timeout', (select '0'), false)",
      ]) {
        const e = errorOf(await f.simple(sql));
        expect(e?.code, sql).toBe('42501');
        expect(e?.message, sql).toMatch(/session-limit.*is limited to/);
        await f.simple('rollback');
      }
      expect(errorOf(await f.simple("set statement_timeout = '500ms'"))).toBeUndefined();
      expect(value(await f.simple('show statement_timeout'))).toBe('500ms');
      expect(errorOf(await f.simple('reset statement_timeout'))).toBeUndefined();
      expect(value(await f.simple('show statement_timeout'))).toBe('1500ms');
    } finally {
      f.destroy();
    }
  });

  it('cannot be turned off by a value the server rounds to 0, nor through pg_settings, a stored body or code the gateway cannot read', async () => {
    const f = await open(via);
    try {
      for (const sql of [
        "set statement_timeout = '0.5'",
        'set statement_timeout = 0.5',
        "set statement_timeout = '500us'",
        "select set_config('statement_timeout', '0.5ms', false)",
        "set lock_timeout = '2.5us'",
        "update pg_settings set setting = '0' where name = 'statement_timeout'",
        "update pg_catalog.pg_settings set setting = '0' where name = 'lock_timeout'",
        'create view hoop_settings as select * from pg_settings',
        "create view hoop_off as select set_config('statement_timeout', '0', false) as x",
        "create function hoop_off() returns text language sql begin atomic select set_config('statement_timeout', '0', false); end",
        "create function hoop_off2() returns text language sql return set_config('lock_timeout', '0', false)",
        "do $$ begin perform set_config('statement_timeout', '0', false); end $$",
        "select query_to_xml('select set_config(''statement_timeout'', ''0'', false)', true, true, '')",
      ]) {
        const e = errorOf(await f.simple(sql));
        expect(e?.code, sql).toBe('42501');
        expect(e?.message, sql).toMatch(/session-limit|parser-consistency/);
      }
      // Nothing was stored to run later, and the server still holds the limits.
      expect((await stack.pg.psql("select count(*) from pg_views where viewname like 'hoop_%'", { database: 'app' })).trim()).toBe('0');
      expect((await stack.pg.psql("select count(*) from pg_proc where proname like 'hoop_off%'", { database: 'app' })).trim()).toBe('0');
      expect(value(await f.simple('show statement_timeout'))).toBe('1500ms');
      expect(value(await f.simple('show lock_timeout'))).toBe('1s');
      expect(errorOf(await f.simple('select pg_sleep(3)'))?.code).toBe('57014');
      // A value the server rounds up to a time within the limit is fine.
      expect(errorOf(await f.simple("set statement_timeout = '1.5'"))).toBeUndefined();
      expect(value(await f.simple('show statement_timeout'))).toBe('2ms');
    } finally {
      f.destroy();
    }
  });

  it('refuse a startup value the server rounds to 0', async () => {
    for (const params of [[['lock_timeout', '0.5']], [['options', '-c statement_timeout=500us']]] as Array<Array<[string, string]>>) {
      const { f, start } = await starting(via, params);
      await start.catch(() => undefined);
      const e = await f.error();
      expect(e?.code).toBe('0A000');
      expect(e?.message).toMatch(/(statement_timeout|lock_timeout) is limited to .* 0 would turn the limit off/);
    }
  });

  it('refuse a higher value given at startup, naming the parameter and why', async () => {
    for (const params of [[['statement_timeout', '0']], [['options', '-c lock_timeout=1h']]] as Array<Array<[string, string]>>) {
      const { f, start } = await starting(via, params);
      await start.catch(() => undefined);
      const e = await f.error();
      expect(e?.code).toBe('0A000');
      expect(e?.message).toMatch(/(statement_timeout|lock_timeout).*is limited to/);
    }
  });

  it('end a transaction left idle longer than allowed', async () => {
    const f = await open(via);
    try {
      await f.simple('begin');
      const e = await f.error(30_000);
      expect(e?.code).toBe('25P03');
      expect(await f.closed()).toBe(true);
    } finally {
      f.destroy();
    }
  });
});

describe('time values', () => {
  it('are read by hoop exactly as the server reads them (rint: halves to even; next smaller unit first)', async () => {
    const values = [
      '0.5',
      '1.5',
      '2.5',
      '3.5',
      '0.4',
      '0.6',
      '500us',
      '1500us',
      '2500us',
      '2.5us',
      '0.5ms',
      '1.5ms',
      '0.5004ms',
      '0.5006ms',
      '1.4996ms',
      '1e-3s',
      '5e-4s',
      '1.5e-3s',
      '0.0005s',
      '0.5 s',
      '1.0000005s',
      '0.00001min',
      '1.0000083min',
      '0.5min',
      '1.5 h',
      '1d',
      '1500.5',
      '1501.5',
      '1e3',
      '.5',
      '5.',
      '+3',
      ' 7 ms ',
      '010',
      '010.5',
      '0x10',
      '0x10.8',
      '0x1.8p1',
      '-0.4',
      '-0.5',
      '-0.6',
      '-1',
      '2147483647',
      '7MS',
      '5 mins',
      '0x',
      '08',
      '1e',
      '-.5',
      ' .5',
      'inf',
      '1e-310',
      '25d',
      '2147483648',
      '',
    ];
    const sql = values.map((v) => `select pg_temp.try_time('${v}');`).join('\n');
    const server = await stack.pg.psql(
      `create function pg_temp.try_time(v text) returns text language plpgsql as $$
       begin perform set_config('lock_timeout', v, true); return current_setting('lock_timeout') || '|' || (select setting from pg_settings where name = 'lock_timeout');
       exception when others then return 'refused'; end $$;
       begin;\n${sql}\nrollback;`,
      { database: 'app' },
    );
    const got = server.split('\n').filter((l) => l !== '' && !/^(BEGIN|ROLLBACK|CREATE FUNCTION)$/.test(l));
    expect(got).toHaveLength(values.length);
    values.forEach((v, i) => {
      const ms = parseTimeSetting(v);
      // The server refuses a value below the setting's minimum (0) too.
      expect(got[i]!.split('|')[1] ?? 'refused', JSON.stringify(v)).toBe(ms === undefined || ms < 0 ? 'refused' : String(ms));
    });
  });
});

describe.each(WAYS_IN)('a client that goes away, through %s', (via) => {
  /** Backends of the app database running `text`, as the server sees them. */
  const running = async (text: string): Promise<number> =>
    Number(await stack.pg.psql(`select count(*) from pg_stat_activity where datname = 'app' and query like '%${text}%' and pid <> pg_backend_pid()`, { database: 'app' }));

  async function openFree(): Promise<RawFrontend> {
    const free = await stack.token('bob', ['free']);
    if (via === 'the tunnel') return stack.tunnel('app', free);
    if (via === 'direct') return stack.direct('app', free);
    const c = await stack.connect('app', free);
    const f = await RawFrontend.tcp(c.info.port);
    await f.startup(c.info.password, [
      ['user', c.info.user],
      ['database', c.info.database],
    ]);
    f.stream.once('close', () => void c.stop());
    return f;
  }

  it('gets its running query cancelled and its server connection closed', async () => {
    const f = await openFree();
    f.write(msg('Q', 'select pg_sleep(600) /* gone-sleeping */'));
    await expect.poll(() => running('gone-sleeping'), { timeout: 60_000 }).toBe(1);
    f.destroy();
    // Left alone, the query would run for 10 minutes: its end within the wait is the gateway's cancel.
    await expect.poll(() => running('gone-sleeping'), { timeout: 60_000, interval: 100 }).toBe(0);
  });

  it('gets a large result it stopped reading abandoned', async () => {
    const f = await openFree();
    f.write(msg('Q', "select repeat('x', 100000) from generate_series(1, 100000) /* gone-reading */"));
    await f.waitFor('D');
    f.stream.pause();
    await expect.poll(() => running('gone-reading'), { timeout: 60_000 }).toBe(1);
    f.destroy();
    // Left alone, the server would wait on the unread result for good: its end within the wait is the gateway's doing.
    await expect.poll(() => running('gone-reading'), { timeout: 60_000, interval: 100 }).toBe(0);
  });
});

describe.each(WAYS_IN)('the cancel key, through %s', (via) => {
  it("carries the server's real process id: pg_backend_pid() and notifications agree with it", async () => {
    const f = await open(via);
    try {
      const key = f.raw.subarray(f.raw.indexOf(Buffer.from([0x4b, 0, 0, 0, 12])) + 5);
      const pid = key.readUInt32BE(0);
      expect(Number(value(await f.simple('select pg_backend_pid()')))).toBe(pid);
      const from = f.raw.length;
      f.write(msg('Q', "listen hoop_pid; notify hoop_pid, 'x'"));
      const note = (await f.messagesSince(from, 1)).find((m) => m.type === 0x41)!;
      expect(note.body.readUInt32BE(0)).toBe(pid);
    } finally {
      f.destroy();
    }
  });
});

describe('huge statements and rows (a judged, masked session through hoop connect)', () => {
  let big: RunningConnect;
  beforeAll(async () => {
    big = await stack.connect('app', await stack.token('alice', ['big']));
  });
  afterAll(async () => {
    await big?.stop();
  });

  async function bigSession(): Promise<RawFrontend> {
    const f = await RawFrontend.tcp(big.info.port);
    await f.startup(big.info.password, [
      ['user', big.info.user],
      ['database', big.info.database],
    ]);
    return f;
  }

  it('judges a 20 MB statement off the event loop: another session keeps answering meanwhile', async () => {
    const f = await bigSession();
    const other = await bigSession();
    try {
      const n = 20 * 1024 * 1024;
      const from = f.raw.length;
      f.write(msg('Q', `select length('${'x'.repeat(n)}') as n`));
      let answers = 0;
      let done = false;
      void f.messagesSince(from, 1, 120_000).then(() => (done = true));
      while (!done) {
        expect(errorOf(await other.simple('select 1'))).toBeUndefined();
        answers++;
      }
      const got = await f.messagesSince(from, 1);
      expect(value(got)).toBe(String(n));
      // Without the worker, the parse alone held every session until it ended: the other session answered once or twice at most.
      // (How promptly it answers: test/perf/judge-off-loop.test.ts.)
      expect(answers).toBeGreaterThan(3);
    } finally {
      f.destroy();
      other.destroy();
    }
  }, 360_000);

  it('refuses a statement over postgres.maxStatementBytes unread with 54000, naming the limit and the setting; the session goes on', async () => {
    const f = await bigSession();
    try {
      const got = await f.simple(`select length('${'y'.repeat(25 * 1024 * 1024)}')`);
      const e = errorOf(got);
      expect(e?.code).toBe('54000');
      expect(e?.message).toMatch(/^hoop: the statement is 25 MiB long; the gateway reads statements of at most 24 MiB \(postgres\.maxStatementBytes/);
      expect(e?.hint).toContain('raise postgres.maxStatementBytes');
      expect(value(await f.simple('select 42'))).toBe('42');
    } finally {
      f.destroy();
    }
  });

  it('without a judge to answer in its place, a statement over the limit ends the session with 54000 once sent, and psql prints why', async () => {
    const unjudged = await stack.connect('app', await stack.token('alice', ['unjudged']));
    try {
      const script = join(stack.dir, 'too-long.sql');
      writeFileSync(script, `select length('${'y'.repeat(25 * 1024 * 1024)}');\n`);
      const r = await psql(unjudged.info, ['-At', '-f', script]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('FATAL:  hoop: the statement is 25 MiB long; the gateway reads statements of at most 24 MiB (postgres.maxStatementBytes');
      expect(r.stderr).toContain('HINT:  raise postgres.maxStatementBytes');
      // The gateway's log names the session it ended, and why.
      await eventually(() =>
        expect(stack.logs().some((l) => l.event === 'tunnel.close' && l.reason === 'protocol-violation' && String(l.detail ?? '').includes('25 MiB') && typeof l.session === 'string')).toBe(true),
      );
      // Still serving.
      expect((await psql(unjudged.info, ['-At', '-c', 'select 7'])).stdout.trim()).toBe('7');
    } finally {
      await unjudged.stop();
    }
  });

  it('streams a 40 MB row nothing masks (forty times what masking may hold); a row masking must hold over postgres.maxMaskedMessageBytes ends the session saying so', async () => {
    const ok = await psql(big.info, ['-At', '-o', '/dev/null', '-c', "select repeat('z', 40 * 1024 * 1024) as big"]);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    const over = await psql(big.info, ['-At', '-o', '/dev/null', '-c', "select email || repeat('z', 2 * 1024 * 1024) from customers"]);
    expect(over.code).not.toBe(0);
    expect(over.stderr).toContain('masking would have to hold');
    expect(over.stderr).toContain('postgres.maxMaskedMessageBytes');
    expect(over.stderr).not.toContain('alice@example.com');
  });
});

describe("hoop connect's read deadline", () => {
  it('closes a local client that stops in the middle of a message, as the gateway would', async () => {
    const password = 'local-secret';
    const listener = new LocalPostgresListener({
      secret: makeScramSecret(password),
      log: createLogger({ level: 'error', sink: { write: () => undefined } }),
      messageTimeoutMs: 1500,
      openTunnel: (sessionId) => openTunnel({ gateway: stack.gateway.url, connection: 'app', token, sessionId, clientVersion: 'test', ca: stack.pki.ca }),
    });
    const { port } = await listener.listen();
    try {
      const f = await RawFrontend.tcp(port);
      await f.startup(password);
      const started = Date.now();
      f.write(Buffer.concat([Buffer.from('Q'), Buffer.from([0, 0, 3, 232]), Buffer.from('select')]));
      const e = await f.error(30_000);
      expect(e?.code).toBe('08P01');
      expect(e?.message).toContain('middle of a message');
      // At the deadline (messageTimeoutMs), not before.
      expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
      expect(await f.closed()).toBe(true);
    } finally {
      await listener.close();
    }
  });
});
