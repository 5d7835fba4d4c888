/**
 * A session cannot hurt other sessions or the gateway: the access's server timeouts are set at
 * the start of the upstream session and cannot be raised; a client that goes away (or whose
 * tunnel drops) while its query runs gets its query cancelled and its server connection closed.
 * Through `hoop connect` and straight to the tunnel, asserting on what the server did.
 *
 * @see https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-STATEMENT-TIMEOUT
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-CANCELING-REQUESTS
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatementJudge } from '../../src/policy/decide.js';
import type { SessionLimits } from '../../src/policy/limits.js';
import type { Policy } from '../../src/policy/schema.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import { parseErrorFields, type PgMessage } from '../../src/tunnel/postgres/reader.js';
import { frontendMessage as msg } from '../harness/pg-frontend.js';
import { RawFrontend } from '../harness/raw-pg.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';

const policy: Policy = {
  connections: [],
  access: [],
  statements: { unparseable: 'deny', rules: [] },
  masking: { columns: [], names: [], detectors: [], derived: 'mask' },
  recording: { results: 'masked', rowCap: 1000, onFailure: 'close' },
  tests: [],
};
const limits: SessionLimits = { statement_timeout: 1500, lock_timeout: 1000, idle_in_transaction_session_timeout: 2000 };

let stack: HoopStack;
let connected: RunningConnect;
let token: string;

beforeAll(async () => {
  await loadSqlParser();
  stack = await startStack({
    gateway: {
      sessionPolicy: (identity, connection) =>
        identity.groups.includes('free') ? undefined : { judge: new StatementJudge(policy, { subject: identity.subject, groups: identity.groups }, connection.name, 'read-write', { limits }), limits },
    },
  });
  token = await stack.token('alice');
  connected = await stack.connect('app', token);
}, 120_000);

afterAll(async () => {
  await connected?.stop();
  await stack?.close();
});

async function open(via: string, params: Array<[string, string]> = []): Promise<RawFrontend> {
  if (via === 'the tunnel') return stack.tunnel('app', token, { params: [['user', 'x'], ['database', 'app'], ...params] });
  const f = await RawFrontend.tcp(connected.info.port);
  await f.startup(connected.info.password, [['user', connected.info.user], ['database', connected.info.database], ...params]);
  return f;
}

async function simple(f: RawFrontend, sql: string): Promise<PgMessage[]> {
  const from = f.raw.length;
  f.write(msg('Q', sql));
  return f.messagesSince(from, 1, 15_000);
}

const errorOf = (ms: PgMessage[]): ReturnType<typeof parseErrorFields> | undefined => {
  const e = ms.find((m) => m.type === 0x45);
  return e ? parseErrorFields(e.body) : undefined;
};
const value = (ms: PgMessage[]): string | undefined => ms.find((m) => m.type === 0x44)?.body.subarray(6).toString();

describe.each(['hoop connect', 'the tunnel'])('per-access server timeouts, through %s', (via) => {
  it('are in force from the start, and the server applies them', async () => {
    const f = await open(via);
    try {
      expect(value(await simple(f, 'show statement_timeout'))).toBe('1500ms');
      expect(value(await simple(f, 'show lock_timeout'))).toBe('1s');
      expect(value(await simple(f, 'show idle_in_transaction_session_timeout'))).toBe('2s');
      expect(errorOf(await simple(f, 'select pg_sleep(3)'))?.code).toBe('57014');
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
        const e = errorOf(await simple(f, sql));
        expect(e?.code, sql).toBe('42501');
        expect(e?.message, sql).toMatch(/session-limit.*is limited to/);
        await simple(f, 'rollback');
      }
      expect(errorOf(await simple(f, "set statement_timeout = '500ms'"))).toBeUndefined();
      expect(value(await simple(f, 'show statement_timeout'))).toBe('500ms');
      expect(errorOf(await simple(f, 'reset statement_timeout'))).toBeUndefined();
      expect(value(await simple(f, 'show statement_timeout'))).toBe('1500ms');
    } finally {
      f.destroy();
    }
  });

  it('refuse a higher value given at startup, naming the parameter and why', async () => {
    for (const params of [[['statement_timeout', '0']], [['options', '-c lock_timeout=1h']]] as Array<Array<[string, string]>>) {
      const f = via === 'the tunnel' ? await stack.tunnel('app', token, { startup: false }) : await RawFrontend.tcp(connected.info.port);
      const start = via === 'the tunnel' ? f.startup('', [['user', 'x'], ['database', 'app'], ...params]) : f.startup(connected.info.password, [['user', 'u'], ['database', 'app'], ...params]);
      await start.catch(() => undefined);
      const e = await f.error();
      expect(e?.code).toBe('0A000');
      expect(e?.message).toMatch(/(statement_timeout|lock_timeout).*is limited to/);
    }
  });

  it('end a transaction left idle longer than allowed', async () => {
    const f = await open(via);
    try {
      await simple(f, 'begin');
      const e = await f.error(10_000);
      expect(e?.code).toBe('25P03');
      expect(await f.closed()).toBe(true);
    } finally {
      f.destroy();
    }
  });
});

describe.each(['hoop connect', 'the tunnel'])('a client that goes away, through %s', (via) => {
  /** Backends of the app database running `text`, as the server sees them. */
  const running = async (text: string): Promise<number> =>
    Number(await stack.pg.psql(`select count(*) from pg_stat_activity where datname = 'app' and query like '%${text}%' and pid <> pg_backend_pid()`, { database: 'app' }));

  async function openFree(): Promise<RawFrontend> {
    const free = await stack.token('bob', ['free']);
    if (via === 'the tunnel') return stack.tunnel('app', free);
    const c = await stack.connect('app', free);
    const f = await RawFrontend.tcp(c.info.port);
    await f.startup(c.info.password, [['user', c.info.user], ['database', c.info.database]]);
    f.stream.once('close', () => void c.stop());
    return f;
  }

  it('gets its running query cancelled and its server connection closed within 2 s', async () => {
    const f = await openFree();
    f.write(msg('Q', 'select pg_sleep(600) /* gone-sleeping */'));
    await expect.poll(() => running('gone-sleeping'), { timeout: 5000 }).toBe(1);
    const left = Date.now();
    f.destroy();
    await expect.poll(() => running('gone-sleeping'), { timeout: 5000, interval: 100 }).toBe(0);
    expect(Date.now() - left).toBeLessThan(2000);
  });

  it('gets a large result it stopped reading abandoned within 2 s', async () => {
    const f = await openFree();
    f.write(msg('Q', "select repeat('x', 100000) from generate_series(1, 100000) /* gone-reading */"));
    await f.waitFor('D');
    f.stream.pause();
    await expect.poll(() => running('gone-reading'), { timeout: 5000 }).toBe(1);
    const left = Date.now();
    f.destroy();
    await expect.poll(() => running('gone-reading'), { timeout: 5000, interval: 100 }).toBe(0);
    expect(Date.now() - left).toBeLessThan(2000);
  });
});

describe.each(['hoop connect', 'the tunnel'])('the cancel key, through %s', (via) => {
  it("carries the server's real process id: pg_backend_pid() and notifications agree with it", async () => {
    const f = await open(via);
    try {
      const key = f.raw.subarray(f.raw.indexOf(Buffer.from([0x4b, 0, 0, 0, 12])) + 5);
      const pid = key.readUInt32BE(0);
      expect(Number(value(await simple(f, 'select pg_backend_pid()')))).toBe(pid);
      const from = f.raw.length;
      f.write(msg('Q', "listen hoop_pid; notify hoop_pid, 'x'"));
      const note = (await f.messagesSince(from, 1)).find((m) => m.type === 0x41)!;
      expect(note.body.readUInt32BE(0)).toBe(pid);
    } finally {
      f.destroy();
    }
  });
});
