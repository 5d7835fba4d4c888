/**
 * A generated differential test of masking (issue 54): a random schema (tables some of whose
 * columns are masked by origin or by name, views over them, rows) and random SELECTs over it
 * (joins, subqueries, CTEs, set operations, expressions, aggregates, scalar subqueries), run
 * straight to PostgreSQL and through hoop. The generator knows what each output column is computed
 * from: one computed from no masked column must come back exactly as PostgreSQL sent it, one
 * computed from a masked column masked. The seed is fixed (HOOP_MASKING_SEED overrides it); a
 * failure prints the case and the schema to reproduce it.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MaskingPolicy } from '../../src/policy/schema.js';
import { REDACTED } from '../../src/policy/masking/strategies.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import { pgClient } from '../harness/clients.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { type GeneratedType, Random, sqlLiteral } from '../harness/random.js';

const SEED = Number(process.env.HOOP_MASKING_SEED ?? 54);
// A deeper run: HOOP_MASKING_CASES=20000 (and another HOOP_MASKING_SEED).
const CASES = Number(process.env.HOOP_MASKING_CASES ?? 800);

/** A column a query can read: its SQL, its type, and whether its values are (or are computed from) masked ones. */
interface Col {
  sql: string;
  type: GeneratedType;
  masked: boolean;
}

/** A relation's column, as the generator sees it. */
type RelationColumn = Omit<Col, 'sql'> & { name: string };

/** The relations a schema holds, by name. */
type Relations = Record<string, RelationColumn[]>;

const SQL_TYPES: Record<Col['type'], string> = { int: 'int', text: 'text', num: 'numeric(10,2)', date: 'date', bool: 'boolean' };

/** A random schema: tables whose columns are masked by origin, by name (`pii_…`) or not at all, views over them (some columns computed, one a join), their rows, and the policy. */
function randomSchema(r: Random): { setup: string; relations: Relations; policy: MaskingPolicy } {
  const relations: Relations = {};
  const policy: MaskingPolicy = { columns: [], names: [{ pattern: '^pii_', regex: /^pii_/i, strategy: 'redact' }], detectors: [], derived: 'mask' };
  const sql: string[] = [];
  const tables = 2 + r.int(3);
  for (let t = 0; t < tables; t++) {
    const name = `t${t}`;
    const cols: RelationColumn[] = [{ name: 'id', type: 'int', masked: false }];
    const width = 2 + r.int(4);
    for (let k = 0; k < width; k++) {
      const type = r.pick<Col['type']>(['int', 'text', 'text', 'num', 'date', 'bool']);
      const how = r.int(5);
      const col = { name: `${how === 0 ? 'pii_' : ''}${type}_${k}`, type, masked: how <= 1 };
      if (how === 1) policy.columns.push({ table: `public.${name}`, column: col.name, strategy: 'redact' });
      cols.push(col);
    }
    const rows = 6 + r.int(10);
    const values = Array.from({ length: rows }, (_, i) => `(${[String(i + 1), ...cols.slice(1).map((c) => sqlLiteral(r, c.type, rows))].join(', ')})`);
    sql.push(`create table ${name} (${cols.map((c) => `${c.name} ${SQL_TYPES[c.type]}${c.name === 'id' ? ' primary key' : ''}`).join(', ')})`, `insert into ${name} values ${values.join(', ')}`);
    relations[name] = cols;
  }
  // Views: a column passed through keeps its masking, a computed one takes what it is computed from; the last view joins two tables.
  const names = Object.keys(relations);
  for (let v = 0; v < 2; v++) {
    const base = r.pick(names);
    const other = v === 1 ? r.pick(names) : undefined;
    const cols: RelationColumn[] = [{ name: 'id', type: 'int', masked: false }];
    const list = ['b.id'];
    const sources = [...relations[base]!.slice(1).map((c) => ({ c, from: 'b' })), ...(other ? relations[other]!.slice(1).map((c) => ({ c, from: 'o' })) : [])];
    sources.forEach(({ c, from }, k) => {
      const out = `v${k}_${c.name}`;
      const shape = r.int(3);
      if (shape === 0 && c.type === 'text') list.push(`upper(${from}.${c.name}) as ${out}`);
      else if (shape === 0 && c.type === 'int') list.push(`${from}.${c.name} * 2 as ${out}`);
      else if (shape === 1) {
        const t = r.pick(sources);
        list.push(`${from}.${c.name}::text || coalesce(${t.from}.${t.c.name}::text, '-') as ${out}`);
        cols.push({ name: out, type: 'text', masked: c.masked || t.c.masked });
        return;
      } else list.push(`${from}.${c.name} as ${out}`);
      cols.push({ name: out, type: c.type, masked: c.masked });
    });
    const join = other ? ` left join ${other} o on o.id = b.${relations[base]!.find((c) => c.type === 'int' && c.name !== 'id')?.name ?? 'id'}` : '';
    sql.push(`create view view${v} as select ${list.join(', ')} from ${base} b${join}`);
    relations[`view${v}`] = cols;
  }
  sql.push(`grant select on ${Object.keys(relations).join(', ')} to public`);
  return { setup: `${sql.join(';\n')};`, relations, policy };
}

/** A generated query, and for each output column whether it must come back masked. */
interface Case {
  sql: string;
  masked: boolean[];
}

/** Random SELECTs over `relations`, each with what its output columns are computed from. */
class Generator {
  readonly #r: Random;
  readonly #relations: Relations;
  #alias = 0;

  constructor(r: Random, relations: Relations) {
    this.#r = r;
    this.#relations = relations;
  }

  #int(n: number): number {
    return this.#r.int(n);
  }

  #pick<T>(items: readonly T[]): T {
    return this.#r.pick(items);
  }

  /** A row source: a relation, a join of two, a subquery or a CTE's reference; its columns, and the WITH it needs. */
  #source(depth: number): { from: string; cols: Col[]; with?: string } {
    const kind = depth > 1 ? 0 : this.#int(5);
    if (kind <= 1) {
      const rel = this.#pick(Object.keys(this.#relations));
      const a = `r${this.#alias++}`;
      return { from: `${rel} ${a}`, cols: this.#relations[rel]!.map((c) => ({ sql: `${a}.${c.name}`, type: c.type, masked: c.masked })) };
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
        // A scalar subquery's value is computed from all it reads, its filter too.
        const rel = this.#pick(Object.keys(this.#relations));
        const inner = this.#relations[rel]!;
        const target = this.#pick(inner.filter((c) => c.type !== 'bool'));
        const corr = this.#pick(inner.filter((c) => c.type === 'int'));
        const outer = int ?? { sql: '1', type: 'int' as const, masked: false };
        const a = `s${this.#alias++}`;
        return { sql: `(select max(${a}.${target.name}) from ${rel} ${a} where ${a}.${corr.name} = ${outer.sql})`, type: target.type, masked: target.masked || corr.masked || outer.masked };
      }
      case 10: {
        if (depth > 0) return this.#pick(cols);
        const rel = this.#pick(Object.keys(this.#relations));
        const c = this.#pick(this.#relations[rel]!);
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

const random = new Random(SEED);
const schema = randomSchema(random);
let stack: HoopStack;
let masked: RunningConnect;

beforeAll(async () => {
  await loadSqlParser();
  stack = await startStack({ gateway: { sessionPolicy: () => ({ masking: { policy: schema.policy } }) } });
  await stack.pg.psql(schema.setup, { database: 'app' });
  masked = await stack.connect('app', await stack.token('alice'));
});

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
    const gen = new Generator(random, schema.relations);
    let exact = 0;
    let hidden = 0;
    try {
      for (let i = 0; i < CASES; i++) {
        const c = gen.next();
        const q: pg.QueryArrayConfig = { text: c.sql, rowMode: 'array', types: asText };
        const [d, h] = await Promise.all([direct.query(q), hoop.query(q).catch((e: Error) => e)]);
        const where = `case ${i} of seed ${SEED} (HOOP_MASKING_SEED=${SEED}):\n  ${c.sql}\n  masked columns: ${JSON.stringify(c.masked)}\n  schema: ${schema.setup}`;
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
    expect(exact).toBeGreaterThan(CASES / 2);
    expect(hidden).toBeGreaterThan(CASES / 2);
  }, 600_000);
});
