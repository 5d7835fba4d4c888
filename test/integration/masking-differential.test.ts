/**
 * A generated differential test of masking (issue 54): random SELECTs over tables and views some of
 * whose columns are masked (by origin and by name), through joins, subqueries, CTEs, set
 * operations, expressions, aggregates and scalar subqueries, run straight to PostgreSQL and through
 * hoop. The generator knows what each output column is computed from: one computed from no masked
 * column must come back exactly as PostgreSQL sent it, one computed from a masked column masked.
 * The seed is fixed (HOOP_MASKING_SEED overrides it); a failure prints the case to reproduce it.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MaskingPolicy } from '../../src/policy/schema.js';
import { REDACTED } from '../../src/policy/masking/strategies.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import { pgClient } from '../harness/clients.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';

const SEED = Number(process.env.HOOP_MASKING_SEED ?? 54);
const CASES = 2000;

const policy: MaskingPolicy = {
  columns: [{ table: 'public.acct', column: 'secret', strategy: 'redact' }],
  names: [{ pattern: '^pii_', regex: /^pii_/i, strategy: 'redact' }],
  detectors: [],
  derived: 'mask',
};

const SETUP = `
create table acct (id int primary key, name text, secret text, n int, born date);
create table pay (id int primary key, acct_id int, pii_email text, amount numeric(10,2), tag text);
create table note (id int primary key, body text, code text, flag boolean);
insert into acct select i, 'name' || i, 'SECRET-' || i, i % 7, date '2000-01-01' + i from generate_series(1, 12) i;
insert into acct values (13, null, null, null, null);
insert into pay select i, 1 + i % 13, 'PII-' || i || '@mail', i * 1.25, case when i % 3 = 0 then null else 'tag' || (i % 4) end from generate_series(1, 20) i;
insert into note select i, 'body ' || i, 'c' || (i % 5), i % 2 = 0 from generate_series(1, 9) i;
create view acct_view as select id, upper(name) as uname, secret, n * 2 as n2, born from acct;
create view pay_view as select p.id, p.amount, a.secret || p.tag as combo, p.tag, a.name from pay p join acct a on a.id = p.acct_id;
grant select on acct, pay, note, acct_view, pay_view to public;
`;

/** A column a query can read: its SQL, its type, and whether its values are (or are computed from) masked ones. */
interface Col {
  sql: string;
  type: 'int' | 'text' | 'num' | 'date' | 'bool';
  masked: boolean;
}

/** The relations and their columns, as the generator sees them. */
const RELATIONS: Record<string, Array<Omit<Col, 'sql'> & { name: string }>> = {
  acct: [
    { name: 'id', type: 'int', masked: false },
    { name: 'name', type: 'text', masked: false },
    { name: 'secret', type: 'text', masked: true },
    { name: 'n', type: 'int', masked: false },
    { name: 'born', type: 'date', masked: false },
  ],
  pay: [
    { name: 'id', type: 'int', masked: false },
    { name: 'acct_id', type: 'int', masked: false },
    { name: 'pii_email', type: 'text', masked: true },
    { name: 'amount', type: 'num', masked: false },
    { name: 'tag', type: 'text', masked: false },
  ],
  note: [
    { name: 'id', type: 'int', masked: false },
    { name: 'body', type: 'text', masked: false },
    { name: 'code', type: 'text', masked: false },
    { name: 'flag', type: 'bool', masked: false },
  ],
  acct_view: [
    { name: 'id', type: 'int', masked: false },
    { name: 'uname', type: 'text', masked: false },
    { name: 'secret', type: 'text', masked: true },
    { name: 'n2', type: 'int', masked: false },
    { name: 'born', type: 'date', masked: false },
  ],
  pay_view: [
    { name: 'id', type: 'int', masked: false },
    { name: 'amount', type: 'num', masked: false },
    { name: 'combo', type: 'text', masked: true },
    { name: 'tag', type: 'text', masked: false },
    { name: 'name', type: 'text', masked: false },
  ],
};

/** mulberry32: a small PRNG with a fixed sequence per seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A generated query, and for each output column whether it must come back masked. */
interface Case {
  sql: string;
  masked: boolean[];
}

class Generator {
  readonly #r: () => number;
  #alias = 0;

  constructor(seed: number) {
    this.#r = prng(seed);
  }

  #int(n: number): number {
    return Math.floor(this.#r() * n);
  }

  #pick<T>(items: readonly T[]): T {
    return items[this.#int(items.length)]!;
  }

  /** A row source: a relation, a join of two, a subquery or a CTE's reference; its columns, and the WITH it needs. */
  #source(depth: number): { from: string; cols: Col[]; with?: string } {
    const kind = depth > 1 ? 0 : this.#int(5);
    if (kind <= 1) {
      const rel = this.#pick(Object.keys(RELATIONS));
      const a = `r${this.#alias++}`;
      return { from: `${rel} ${a}`, cols: RELATIONS[rel]!.map((c) => ({ sql: `${a}.${c.name}`, type: c.type, masked: c.masked })) };
    }
    if (kind === 2) {
      const left = this.#source(depth + 1);
      const right = this.#source(depth + 1);
      const li = left.cols.find((c) => c.type === 'int');
      const ri = right.cols.find((c) => c.type === 'int');
      const join = this.#pick(['join', 'left join']);
      const withs = [left.with, right.with].filter(Boolean).join(', ');
      return { from: `${left.from} ${join} ${right.from} on ${li && ri ? `${ri.sql} = ${li.sql}` : 'true'}`, cols: [...left.cols, ...right.cols], ...(withs ? { with: withs } : {}) };
    }
    // A subquery or a CTE: its columns are named, and carry what they are computed from.
    const inner = this.#select(depth + 1, 1 + this.#int(3));
    const a = `q${this.#alias++}`;
    const cols = inner.cols.map((c, i) => ({ sql: `${a}.c${i}`, type: c.type, masked: c.masked }));
    if (kind === 3) return { from: `(${inner.sql}) ${a}`, cols };
    return { from: a, cols, with: `${a} as (${inner.sql})` };
  }

  /** An expression over `cols` (aggregates when `agg`), with its type and whether it is computed from a masked value. */
  #expr(cols: Col[], agg: boolean, depth = 0): Col {
    const of = (type: Col['type']): Col | undefined => {
      const fit = cols.filter((c) => c.type === type);
      return fit.length > 0 ? this.#pick(fit) : undefined;
    };
    const text = of('text');
    const int = of('int');
    const choice = this.#int(agg ? 6 : 12);
    if (agg) {
      const c = this.#pick(cols);
      switch (choice) {
        case 0:
          return { sql: 'count(*)', type: 'int', masked: false };
        case 1:
          return { sql: `count(${c.sql})`, type: 'int', masked: c.masked };
        case 2:
          return { sql: c.type === 'bool' ? `bool_or(${c.sql})` : `max(${c.sql})`, type: c.type, masked: c.masked };
        case 3:
          return int ? { sql: `sum(${int.sql})`, type: 'int', masked: int.masked } : { sql: 'count(*)', type: 'int', masked: false };
        case 4:
          return text ? { sql: `string_agg(${text.sql}, ',' order by ${text.sql})`, type: 'text', masked: text.masked } : { sql: 'count(1)', type: 'int', masked: false };
        default:
          return { sql: c.type === 'bool' ? `bool_and(${c.sql})` : `min(${c.sql})`, type: c.type, masked: c.masked };
      }
    }
    switch (choice) {
      case 0:
      case 1:
      case 2: {
        const c = this.#pick(cols);
        return c;
      }
      case 3:
        return text ? { sql: `upper(${text.sql})`, type: 'text', masked: text.masked } : { sql: `'k'`, type: 'text', masked: false };
      case 4:
        return text ? { sql: `length(${text.sql})`, type: 'int', masked: text.masked } : { sql: '7', type: 'int', masked: false };
      case 5:
        return int ? { sql: `(${int.sql} * 3 + 1)`, type: 'int', masked: int.masked } : { sql: '3', type: 'int', masked: false };
      case 6: {
        const a = text ?? { sql: `'a'`, type: 'text' as const, masked: false };
        const b = of('text') ?? a;
        return { sql: `coalesce(${a.sql}, ${b.sql}, 'none')`, type: 'text', masked: a.masked || b.masked };
      }
      case 7: {
        const cond = this.#pick(cols);
        const a = this.#pick(cols);
        return { sql: `case when ${cond.sql} is null then ${a.sql}::text else 'x' end`, type: 'text', masked: cond.masked || a.masked };
      }
      case 8:
        return this.#pick<Col>([
          { sql: `'const'`, type: 'text', masked: false },
          { sql: '42', type: 'int', masked: false },
          { sql: 'true', type: 'bool', masked: false },
          { sql: 'null::text', type: 'text', masked: false },
        ]);
      case 9: {
        if (depth > 0) return this.#pick(cols);
        // A scalar subquery reads everything it references.
        const rel = this.#pick(Object.keys(RELATIONS));
        const inner = RELATIONS[rel]!;
        const target = this.#pick(inner.filter((c) => c.type !== 'bool'));
        const corr = this.#pick(inner.filter((c) => c.type === 'int'));
        const outer = int ?? { sql: '1', type: 'int' as const, masked: false };
        const a = `s${this.#alias++}`;
        return { sql: `(select max(${a}.${target.name}) from ${rel} ${a} where ${a}.${corr.name} = ${outer.sql})`, type: target.type, masked: target.masked || outer.masked };
      }
      case 10: {
        if (depth > 0) return this.#pick(cols);
        const rel = this.#pick(Object.keys(RELATIONS));
        const c = this.#pick(RELATIONS[rel]!);
        const a = `e${this.#alias++}`;
        return { sql: `exists (select 1 from ${rel} ${a} where ${a}.${c.name} is not null)`, type: 'bool', masked: c.masked };
      }
      default: {
        const a = this.#pick(cols);
        const b = this.#pick(cols);
        return { sql: `(${a.sql}::text || '|' || ${b.sql}::text)`, type: 'text', masked: a.masked || b.masked };
      }
    }
  }

  /** A SELECT with `width` columns `c0`, `c1`, ... and its WITH clause folded in. */
  #select(depth: number, width: number): { sql: string; cols: Col[] } {
    const src = this.#source(depth);
    const agg = this.#int(4) === 0;
    const cols = Array.from({ length: width }, () => this.#expr(src.cols, agg));
    const where = this.#int(3) === 0 ? ` where ${this.#pick(src.cols).sql} is not null` : '';
    const list = cols.map((c, i) => `${c.sql} as c${i}`).join(', ');
    const sql = `${src.with ? `with ${src.with} ` : ''}select ${list} from ${src.from}${where}`;
    return { sql, cols };
  }

  /** One case: a SELECT, sometimes a UNION ALL of two, ordered by every column. */
  next(): Case {
    this.#alias = 0;
    const width = 1 + this.#int(4);
    const first = this.#select(0, width);
    if (this.#int(6) === 0) {
      const second = this.#select(0, width);
      // A set operation's columns take the first branch's types: text throughout keeps them compatible.
      const cast = (s: { sql: string; cols: Col[] }): string => `select ${s.cols.map((_, i) => `c${i}::text`).join(', ')} from (${s.sql}) u${this.#alias++}`;
      return { sql: `${cast(first)} union all ${cast(second)} order by ${first.cols.map((_, i) => i + 1).join(', ')}`, masked: first.cols.map((c, i) => c.masked || second.cols[i]!.masked) };
    }
    return { sql: `${first.sql} order by ${first.cols.map((_, i) => i + 1).join(', ')}`, masked: first.cols.map((c) => c.masked) };
  }
}

let stack: HoopStack;
let masked: RunningConnect;

beforeAll(async () => {
  await loadSqlParser();
  stack = await startStack({ gateway: { sessionPolicy: () => ({ masking: { policy } }) } });
  await stack.pg.psql(SETUP, { database: 'app' });
  masked = await stack.connect('app', await stack.token('alice'));
}, 120_000);

afterAll(async () => {
  await masked?.stop();
  await stack?.close();
});

describe(`generated SELECTs, direct and through hoop (seed ${SEED}, ${CASES} cases)`, () => {
  it('a column computed from no masked column is exact; one computed from a masked column is masked', async () => {
    const direct = new pg.Client({ host: '127.0.0.1', port: stack.pg.port, user: stack.pg.users.scram.user, password: stack.pg.users.scram.password, database: 'app' });
    await direct.connect();
    const hoop = await pgClient(masked.info);
    const asText = { getTypeParser: () => (v: string) => v } as unknown as pg.QueryConfig['types'];
    const gen = new Generator(SEED);
    let exact = 0;
    let hidden = 0;
    try {
      for (let i = 0; i < CASES; i++) {
        const c = gen.next();
        const q: pg.QueryArrayConfig = { text: c.sql, rowMode: 'array', types: asText };
        const [d, h] = await Promise.all([direct.query(q), hoop.query(q).catch((e: Error) => e)]);
        const where = `case ${i} of seed ${SEED} (HOOP_MASKING_SEED=${SEED}):\n  ${c.sql}\n  masked columns: ${JSON.stringify(c.masked)}`;
        if (h instanceof Error) throw new Error(`${where}\n  through hoop: ${h.message}`);
        expect(h.rows.length, where).toBe(d.rows.length);
        d.rows.forEach((row: unknown[], r: number) => {
          row.forEach((value, col) => {
            const got = (h.rows[r] as unknown[])[col];
            if (!c.masked[col]) {
              expect(got, `${where}\n  row ${r} column ${col + 1}: exact`).toBe(value);
              exact++;
            } else if (value !== null) {
              expect([REDACTED, null], `${where}\n  row ${r} column ${col + 1}: masked, was ${String(value)}`).toContain(got);
              hidden++;
            }
          });
        });
      }
    } finally {
      await direct.end();
      await hoop.end();
    }
    // Both kinds were met often.
    expect(exact).toBeGreaterThan(1000);
    expect(hidden).toBeGreaterThan(1000);
  }, 300_000);
});
