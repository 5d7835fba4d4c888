/**
 * The protocol's integer fields at their limits, direct and through hoop, with the same result:
 * every case sends the same frontend messages to the real server directly, through `hoop connect`
 * and straight on a tunnel to the gateway (policy, masking and recording on), and compares every
 * backend message that comes back. Counts at 0, 32,767, 32,768 and 65,535 (PostgreSQL reads Int16
 * counts unsigned), value lengths (NULL, empty, a parameter that makes the Bind stream), Execute's
 * row limits, the widest results and COPYs PostgreSQL allows; then the drivers' bulk inserts of
 * 50,000 and 65,534 parameters, checked in the database.
 *
 * Differences hoop documents are named where they are asserted: a malformed message closes that
 * connection (08P01), and FunctionCall is answered as PostgreSQL answers it, under a policy too.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MessageReader, parseErrorFields, type PgMessage } from '../../src/postgres/wire/reader.js';
import { parseDataRow } from '../../src/postgres/wire/rows.js';
import { pgClient } from '../harness/clients.js';
import { execute, frontendMessage, int32, sync } from '../harness/pg-frontend.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { connectionYaml } from '../harness/postgres.js';
import { RawFrontend } from '../harness/raw-pg.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';

let stack: HoopStack;
let repo: PolicyGitRepo;
let connect: RunningConnect;
let token: string;

const INT4 = 23;
/** The Int16 counts the protocol has to carry: 0, the largest signed value, the smallest that is negative when read signed, the largest. */
const COUNTS = [0, 32_767, 32_768, 65_535];
/** The widest table PostgreSQL allows (MaxHeapAttributeNumber), and the longest target list (MaxTupleAttributeNumber). */
const TABLE_COLUMNS = 1600;
const RESULT_COLUMNS = 1664;

beforeAll(async () => {
  repo = new PolicyGitRepo('hoop-fidelity-');
  stack = await startStack({
    policy: async ({ pg }) => {
      const columns = Array.from({ length: TABLE_COLUMNS }, (_, i) => `c${i + 1} int`).join(', ');
      await pg.psql(
        `create table wide (${columns}); insert into wide (c1, c1600) values (1, 1600), (2, 3200);
         create table customers (id int, email text); insert into customers values (1, 'ada@example.com');
         create table bulk (a int, b text); create table bulk_pgjs (x int);
         grant all on wide, customers, bulk, bulk_pgjs to public`,
        { user: pg.users.scram },
      );
      repo.commit(`version: 1
connections:
${connectionYaml(pg, { name: 'app', password: '${env:APP_PASSWORD}' })}access:
  - { name: people, subjects: [alice], connections: [app], mode: read-write }
statements:
  rules:
    - { name: no-drop, match: { kinds: [drop] }, action: deny, message: DROP is not allowed }
masking:
  columns:
    - { table: public.customers, column: email, strategy: redact }
`);
      return `${repo.gatewayBlock(['${env:APP_*}'])}recording: { checkpointSeconds: 1 }\n`;
    },
  });
  token = await stack.token('alice');
  connect = await stack.connect('app', token);
});

afterAll(async () => {
  await connect?.stop();
  await stack?.close();
  if (repo) rmSync(repo.base, { recursive: true, force: true });
});

/** The three ways to the same server. */
const paths = {
  direct: async (): Promise<RawFrontend> => {
    const f = await RawFrontend.tcp(stack.pg.port);
    await f.startup(stack.pg.users.scram.password, [
      ['user', stack.pg.users.scram.user],
      ['database', 'app'],
    ]);
    return f;
  },
  'hoop connect': (): Promise<RawFrontend> => RawFrontend.signedIn(connect.info),
  'tunnel to the gateway': (): Promise<RawFrontend> => stack.tunnel('app', token),
} as const;
type PathName = keyof typeof paths;
const PATHS = Object.keys(paths) as PathName[];

/** A backend message as compared: its type and its body, or a digest of a long body; an error by SQLSTATE and message. */
function shown(m: PgMessage): string {
  const type = String.fromCharCode(m.type);
  if (type === 'E' || type === 'N') {
    const e = parseErrorFields(m.body);
    return `${type} ${e.severity} ${e.code} ${e.message}`;
  }
  const body = m.body.length > 96 ? `${m.body.length} bytes sha256:${createHash('sha256').update(m.body).digest('hex').slice(0, 16)}` : m.body.toString('hex');
  return `${type} ${body}`;
}

/** Sends `messages` (ending with a Sync) on a fresh session of `path` and returns what came back up to its `readies`th ReadyForQuery, or up to the close. */
async function exchange(path: PathName, messages: Buffer[], readies = 1): Promise<Exchanged> {
  const f = await paths[path]();
  try {
    const from = f.raw.length;
    f.write(Buffer.concat(messages));
    const got = await f.messagesSince(from, readies, 30_000).catch(async () => {
      await f.closed(30_000);
      return [] as PgMessage[];
    });
    const all = got.length > 0 ? got : await collectUntilClosed(f, from);
    const kept = all.filter((m) => m.type !== 0x53); // ParameterStatus
    return { messages: kept, shown: kept.map(shown), closed: f.ended };
  } finally {
    f.destroy();
  }
}

/** Every message received since byte `from`, once the peer has closed. */
async function collectUntilClosed(f: RawFrontend, from: number): Promise<PgMessage[]> {
  await f.closed(30_000);
  const reader = new MessageReader({ side: 'backend' });
  reader.push(f.raw.subarray(from));
  const out: PgMessage[] = [];
  try {
    for (let m = reader.next(); m; m = reader.next()) out.push(m);
  } catch {
    // a cut message at the end
  }
  return out;
}

/** What one path answered. */
interface Exchanged {
  messages: PgMessage[];
  shown: string[];
  closed: boolean;
}

/** Runs `messages` on every path and expects the same backend messages from each; returns the direct path's. */
async function same(messages: Buffer[]): Promise<Exchanged> {
  const results = await Promise.all(PATHS.map(async (p) => [p, await exchange(p, messages)] as const));
  const [, direct] = results[0]!;
  for (const [path, got] of results.slice(1)) expect({ path, shown: got.shown, closed: got.closed }).toEqual({ path, shown: direct.shown, closed: direct.closed });
  return direct;
}

/** The DataRows among `messages`, each value as text (null for NULL). */
function rows(got: Exchanged): Array<Array<string | null>> {
  return got.messages.filter((m) => m.type === 0x44).map((m) => parseDataRow(m.body).map((v) => (v === null ? null : v.toString('utf8'))));
}

/** The first ErrorResponse among `messages` as `severity code message`. */
function error(got: Exchanged): string | undefined {
  return got.shown.find((m) => m.startsWith('E '))?.slice(2);
}

/** Parse of the unnamed statement with `types` parameter types. */
function parseWith(sql: string, types: number[]): Buffer {
  return frontendMessage('P', '', sql, types.length, ...types.map(int32));
}

/** A parameter value: NULL, or its bytes. */
type Value = Buffer | null;

/** Bind of the unnamed portal to the unnamed statement with `values` in text, `formats` parameter format codes and `results` result format codes. */
function bindWith(values: Value[], formats: number[] = [], results: number[] = []): Buffer {
  const parts: Buffer[] = [];
  for (const v of values) parts.push(int32(v === null ? -1 : v.length), ...(v ? [v] : []));
  return frontendMessage('B', '', '', formats.length, ...formats, values.length, Buffer.concat(parts), results.length, ...results);
}

const describeStatement = (): Buffer => frontendMessage('D', Buffer.from('S'), '');
const text = (s: string): Buffer => Buffer.from(s);

describe('Int16 counts are read as PostgreSQL reads them (unsigned)', () => {
  it.each(COUNTS)('a statement with %i parameters: Parse, Describe, Bind and Execute', async (n) => {
    const sql = n === 0 ? 'select 0 as v' : `select $${n}::int4 + 1 as v`;
    const values = Array.from({ length: n }, (_, i) => text(String(i % 1000)));
    const formats = n === 0 ? [] : n % 2 === 0 ? [0] : Array.from({ length: n }, () => 0); // one code for all, or one per parameter
    const got = await same([
      parseWith(
        sql,
        Array.from({ length: n }, () => INT4),
      ),
      describeStatement(),
      bindWith(values, formats),
      execute(''),
      sync(),
    ]);
    expect(got.shown[0]).toBe('1 '); // ParseComplete
    const parameters = got.messages.find((m) => m.type === 0x74)!; // ParameterDescription
    expect(parameters.body.readUInt16BE(0)).toBe(n);
    expect(rows(got)).toEqual([[String(n === 0 ? 0 : ((n - 1) % 1000) + 1)]]);
    expect(got.shown.at(-1)).toBe('Z 49');
  });

  it('a Bind over 1 MiB (decoded as it streams) with 65,535 parameters', async () => {
    const n = 65_535;
    const values = Array.from({ length: n }, (_, i) => text(String(i).padStart(16, '0')));
    const bind = bindWith(values, [0]);
    expect(bind.length).toBeGreaterThan(1024 * 1024);
    const got = await same([
      parseWith(
        `select $1::text || $${n}::text as v`,
        Array.from({ length: n }, () => 25),
      ),
      bind,
      execute(''),
      sync(),
    ]);
    expect(rows(got)).toEqual([[`${'0'.repeat(16)}${String(n - 1).padStart(16, '0')}`]]);
  });

  it.each(COUNTS)('a Bind with %i result format codes for a one-column result', async (n) => {
    const got = await same([
      parseWith('select 7 as v', []),
      bindWith(
        [],
        [],
        Array.from({ length: n }, () => 0),
      ),
      execute(''),
      sync(),
    ]);
    if (n === 0) expect(rows(got)).toEqual([['7']]);
    else expect(error(got)).toBe(`ERROR 08P01 bind message has ${n} result formats but query has 1 columns`);
  });

  it.each(COUNTS.filter((n) => n > 0))('a Bind that supplies %i parameters to a statement that takes none', async (n) => {
    const got = await same([parseWith('select 1', []), bindWith(Array.from({ length: n }, () => null)), execute(''), sync()]);
    expect(error(got)).toBe(`ERROR 08P01 bind message supplies ${n} parameters, but prepared statement "" requires 0`);
  });

  it.each(COUNTS.filter((n) => n > 0))('a Bind with %i parameter format codes for one parameter', async (n) => {
    const got = await same([
      parseWith('select $1::int4', [INT4]),
      bindWith(
        [text('1')],
        Array.from({ length: n }, () => 0),
      ),
      execute(''),
      sync(),
    ]);
    expect(error(got)).toBe(`ERROR 08P01 bind message has ${n} parameter formats but 1 parameters`);
  });
});

describe('value lengths and row limits', () => {
  it('NULL, empty and binary parameters', async () => {
    const got = await same([parseWith('select $1::text is null, length($2::text), $3::int4', [25, 25, INT4]), bindWith([null, text(''), Buffer.from([0, 0, 1, 0])], [0, 0, 1]), execute(''), sync()]);
    expect(rows(got)).toEqual([['t', '0', '256']]);
  });

  it.each([0, 1, -1, 2_147_483_647])('Execute with a row limit of %i', async (maxRows) => {
    const got = await same([parseWith('select generate_series(1, 3) as n', []), bindWith([]), execute('', maxRows), sync()]);
    expect(rows(got)).toEqual(maxRows === 1 ? [['1']] : [['1'], ['2'], ['3']]);
    expect(got.shown.some((m) => m.startsWith('s '))).toBe(maxRows === 1); // PortalSuspended only when limited
  });

  it('a value length below -1 is a malformed Bind: PostgreSQL refuses it, hoop closes that connection (documented)', async () => {
    const messages = [parseWith('select $1::text', [25]), frontendMessage('B', '', '', 0, 1, int32(-2), 0), execute(''), sync()];
    expect(error(await exchange('direct', messages))).toMatch(/^ERROR 08P01 /);
    for (const path of PATHS.slice(1)) {
      const hoop = await exchange(path, messages);
      expect(error(hoop)).toMatch(/^FATAL 08P01 hoop: Bind message has a value of length -2/);
      expect(hoop.closed).toBe(true);
    }
  });
});

describe('the widest results and COPYs', () => {
  const list = (n: number): string => Array.from({ length: n }, (_, i) => `${i} as c${i}`).join(', ');

  it(`a result of ${RESULT_COLUMNS} columns, in text and in binary`, async () => {
    const sql = `select ${list(RESULT_COLUMNS)}`;
    for (const results of [[], [1]]) {
      const got = await same([parseWith(sql, []), bindWith([], [], results), frontendMessage('D', Buffer.from('P'), ''), execute(''), sync()]);
      expect(got.messages.find((m) => m.type === 0x54)!.body.readUInt16BE(0)).toBe(RESULT_COLUMNS); // RowDescription
      expect(got.messages.find((m) => m.type === 0x44)!.body.readUInt16BE(0)).toBe(RESULT_COLUMNS); // DataRow
    }
    const tooWide = await same([frontendMessage('Q', `select ${list(RESULT_COLUMNS + 1)}`)]);
    expect(error(tooWide)).toBe(`ERROR 54011 target lists can have at most ${RESULT_COLUMNS} entries`);
  });

  it(`COPY out and in of a table of ${TABLE_COLUMNS} columns`, async () => {
    const out = await same([frontendMessage('Q', 'copy wide to stdout')]);
    const response = out.messages[0]!; // CopyOutResponse: one format code per column
    expect([String.fromCharCode(response.type), response.body.readUInt16BE(1)]).toEqual(['H', TABLE_COLUMNS]);
    expect(out.shown.filter((m) => m.startsWith('d '))).toHaveLength(2);
    const row = `${Array.from({ length: TABLE_COLUMNS }, (_, i) => (i === 0 ? '9' : '\\N')).join('\t')}\n`;
    const copyData = frontendMessage('d', Buffer.from(row));
    const inn = await same([frontendMessage('Q', 'copy wide from stdin'), copyData, frontendMessage('c')]);
    expect(String.fromCharCode(inn.messages[0]!.type)).toBe('G'); // CopyInResponse
    expect(inn.shown).toContain(`C ${Buffer.from('COPY 1\0').toString('hex')}`);
    expect(await stack.pg.psql('select count(*) from wide where c1 = 9', { user: stack.pg.users.scram })).toBe(`${PATHS.length}\n`);
  });

  it('FunctionCall: answered as PostgreSQL answers it, under a policy too (judged as the SQL call it stands for)', async () => {
    // int4abs(int4) has OID 1251: one text-format argument, a text-format result.
    const call = frontendMessage('F', int32(1251), 0, 1, int32(2), Buffer.from('-5'), 0);
    // A FunctionCall is answered with its own ReadyForQuery, and the Sync with another.
    const direct = await exchange('direct', [call, sync()], 2);
    expect(direct.shown).toContain(`V ${Buffer.concat([int32(1), Buffer.from('5')]).toString('hex')}`); // FunctionCallResponse
    for (const path of PATHS.slice(1)) {
      const hoop = await exchange(path, [call, sync(), frontendMessage('Q', 'select 1')], 3);
      expect(hoop.shown.slice(0, direct.shown.length)).toEqual(direct.shown);
      expect(hoop.closed).toBe(false);
    }
  });
});

describe("drivers' bulk inserts", () => {
  /** Inserts `rows` rows of two parameters each with node-postgres, tagged `tag`; resolves the row count. */
  async function insertPairs(client: pg.Client, rows: number, tag: string): Promise<number | null> {
    const values: string[] = [];
    const params: unknown[] = [];
    for (let i = 0; i < rows; i++) {
      values.push(`($${2 * i + 1}::int, $${2 * i + 2})`);
      params.push(i, tag);
    }
    return (await client.query(`insert into bulk values ${values.join(', ')}`, params)).rowCount;
  }

  it('node-postgres: 50,000 and 65,534 parameters in one statement, direct and through hoop, hold the same rows', async () => {
    const direct = new pg.Client({ host: '127.0.0.1', port: stack.pg.port, user: stack.pg.users.scram.user, password: stack.pg.users.scram.password, database: 'app' });
    await direct.connect();
    const viaHoop = await pgClient(connect.info);
    try {
      for (const [client, tag] of [
        [direct, 'direct'],
        [viaHoop, 'hoop'],
      ] as const) {
        expect(await insertPairs(client, 25_000, tag)).toBe(25_000);
        expect(await insertPairs(client, 32_767, tag)).toBe(32_767);
      }
      // The session through hoop goes on.
      expect((await viaHoop.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await direct.end();
      await viaHoop.end();
    }
    const held = await stack.pg.psql('select b, count(*), sum(a) from bulk group by b order by b', { user: stack.pg.users.scram });
    expect(held).toBe(`direct|57767|849309261\nhoop|57767|849309261\n`);
  });

  it("postgres.js: its 'big query body' test (50,000 rows in one insert) through hoop", async () => {
    const sql = postgres({
      host: '127.0.0.1',
      port: connect.info.port,
      user: connect.info.user,
      database: connect.info.database,
      password: connect.info.password,
      ssl: false,
      max: 1,
      onnotice: () => undefined,
    });
    try {
      const result = await sql`insert into bulk_pgjs ${sql([...Array(50_000).keys()].map((x) => ({ x })))}`;
      expect(result.count).toBe(50_000);
    } finally {
      await sql.end();
    }
    expect(await stack.pg.psql('select count(*), sum(x) from bulk_pgjs', { user: stack.pg.users.scram })).toBe('50000|1249975000\n');
  });
});
