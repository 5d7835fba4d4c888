/**
 * A generated differential test of MySQL masking (issue 59), as test/integration/masking-differential.test.ts
 * is PostgreSQL's: a random schema in a real MariaDB (tables some of whose columns are masked by
 * origin or by name, views over them, rows) and random SELECTs over it (joins, views joined with
 * the tables they read, derived tables, CTEs, JSON_TABLE, UNION and UNION ALL, expressions, window
 * functions, aggregates, scalar subqueries), each run straight to MariaDB and through hoop, by the
 * text protocol (a query) and the binary one (a prepared statement) alike; the cases alternate
 * between a session whose policy masks by column rules and the name rule and one whose policy
 * masks by the name rule alone.
 *
 * The generator knows what each output column is computed from: one computed from a masked column
 * must not come back as MariaDB sent it; one computed from no masked column must come back exactly
 * as MariaDB sent it (its definition too), or redacted whole where hoop cannot trace it
 * (conservative: counted, reported and capped); a statement hoop refuses with its reason is
 * conservative too. A bare column of a base table, in a statement that reads no view, derived table,
 * CTE or JSON_TABLE, is traced (docs/mysql.md): it is never redacted unless masked. The seed is
 * fixed (HOOP_MASKING_SEED overrides it, HOOP_MASKING_CASES the count); a failure prints the case
 * and the schema.
 */
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import mysql, { type FieldPacket } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MaskingPolicy } from '../../src/policy/schema.js';
import { REDACTED } from '../../src/policy/masking/strategies.js';
import { startMariaDb, type MariaServer } from '../harness/mariadb.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';
import { type GeneratedType, Random, sqlLiteral } from '../harness/random.js';

const SEED = Number(process.env.HOOP_MASKING_SEED ?? 59);
const CASES = Number(process.env.HOOP_MASKING_CASES ?? 300);
/**
 * The most of the plain columns that may come back redacted whole: hoop traces bare columns of
 * base tables read directly, and in one SELECT over them whose list holds no subquery each computed
 * column by what it alone is computed from (docs/mysql.md); a statement that reads a view, a derived
 * table or a CTE has all its columns redacted, one with a subquery in its list its computed ones.
 */
const CONSERVATIVE_CEILING = 0.95;

/** The rules that mask a value, as bits: a column rule on its origin, a name rule (`^pii_`). */
const BY_ORIGIN = 1;
const BY_NAME = 2;

/** A column a query can read: its SQL, its type, the rules that mask its values or what they are computed from, and whether it is a bare column of a base table. */
interface Col {
  sql: string;
  type: GeneratedType;
  /** {@link BY_ORIGIN} and {@link BY_NAME} bits; 0 when computed from no masked column. */
  masked: number;
  /** A base table's column as it is, read directly: hoop reads its origin off the server's column definition. */
  bare: boolean;
}

/** A relation's column, as the generator sees it. */
type RelationColumn = Omit<Col, 'sql' | 'bare'> & { name: string };

/** The relations a schema holds, by name, and whether each is a base table. */
type Relations = Record<string, { base: boolean; cols: RelationColumn[]; reads?: string[] }>;

const SQL_TYPES: Record<Col['type'], string> = { int: 'int', text: 'text', num: 'decimal(10,2)', date: 'date', bool: 'boolean' };

/** MariaDB's text of `sql` as a string (CONCAT of a number or date is its text). */
const asChar = (sql: string): string => `CAST(${sql} AS CHAR)`;

/** A random schema: tables whose columns are masked by origin, by name (`pii_…`) or not at all, views over them (some columns computed, one a join), their rows, and the policy. */
function randomSchema(r: Random): { setup: string[]; relations: Relations; policy: MaskingPolicy } {
  const relations: Relations = {};
  const policy: MaskingPolicy = { columns: [], names: [{ pattern: '^pii_', regex: /^pii_/i, strategy: 'redact' }], detectors: [], derived: 'mask' };
  const sql: string[] = [];
  const tables = 3 + r.int(2);
  for (let t = 0; t < tables; t++) {
    const name = `t${t}`;
    const cols: RelationColumn[] = [{ name: 'id', type: 'int', masked: 0 }];
    const width = 2 + r.int(4);
    // Some tables have no masked column: what is computed from them alone is exact.
    const clean = t > 0 && r.int(3) === 0;
    for (let k = 0; k < width; k++) {
      const type = r.pick<Col['type']>(['int', 'text', 'text', 'num', 'date', 'bool']);
      const how = clean ? 4 : r.int(5);
      const col = { name: `${how === 0 ? 'pii_' : ''}${type}_${k}`, type, masked: how === 0 ? BY_NAME : how === 1 ? BY_ORIGIN : 0 };
      if (how === 1) policy.columns.push({ table: `app.${name}`, column: col.name, strategy: 'redact' });
      cols.push(col);
    }
    const rows = 6 + r.int(10);
    const values = Array.from({ length: rows }, (_, i) => `(${[String(i + 1), ...cols.slice(1).map((c) => sqlLiteral(r, c.type, rows))].join(', ')})`);
    sql.push(`CREATE TABLE ${name} (${cols.map((c) => `${c.name} ${SQL_TYPES[c.type]}${c.name === 'id' ? ' PRIMARY KEY' : ''}`).join(', ')})`, `INSERT INTO ${name} VALUES ${values.join(', ')}`);
    relations[name] = { base: true, cols };
  }
  // Views: a column passed through keeps its masking, a computed one takes what it is computed from; the last view joins two tables.
  const names = Object.keys(relations);
  for (let v = 0; v < 2; v++) {
    const base = r.pick(names);
    const other = v === 1 ? r.pick(names) : undefined;
    const cols: RelationColumn[] = [{ name: 'id', type: 'int', masked: 0 }];
    const list = ['b.id'];
    const sources = [...relations[base]!.cols.slice(1).map((c) => ({ c, from: 'b' })), ...(other ? relations[other]!.cols.slice(1).map((c) => ({ c, from: 'o' })) : [])];
    sources.forEach(({ c, from }, k) => {
      const out = `v${k}_${c.name}`;
      const shape = r.int(3);
      if (shape === 0 && c.type === 'text') list.push(`UPPER(${from}.${c.name}) AS ${out}`);
      else if (shape === 0 && c.type === 'int') list.push(`${from}.${c.name} * 2 AS ${out}`);
      else if (shape === 1) {
        const t = r.pick(sources);
        list.push(`CONCAT(${asChar(`${from}.${c.name}`)}, COALESCE(${asChar(`${t.from}.${t.c.name}`)}, '-')) AS ${out}`);
        cols.push({ name: out, type: 'text', masked: c.masked | t.c.masked });
        return;
      } else list.push(`${from}.${c.name} AS ${out}`);
      cols.push({ name: out, type: c.type, masked: c.masked });
    });
    const join = other ? ` LEFT JOIN ${other} o ON o.id = b.${relations[base]!.cols.find((c) => c.type === 'int' && c.name !== 'id')?.name ?? 'id'}` : '';
    sql.push(`CREATE VIEW view${v} AS SELECT ${list.join(', ')} FROM ${base} b${join}`);
    relations[`view${v}`] = { base: false, cols, reads: [base, ...(other ? [other] : [])] };
  }
  return { setup: sql, relations, policy };
}

/** A generated query, its parameters, and for each output column the rules that mask it (bits), and whether hoop traces it. */
interface Case {
  sql: string;
  params: number[];
  masked: number[];
  traced: boolean[];
  /** Which columns are computed (not a bare column of a relation). */
  computed: boolean[];
}

/** Random MariaDB SELECTs over `relations`, each with what its output columns are computed from. */
class Generator {
  readonly #r: Random;
  readonly #relations: Relations;
  #alias = 0;
  /** The case reads a derived table, a CTE or a view somewhere: hoop trusts no origin in it (MariaDB names a view's columns by an alias). */
  #opaque = false;
  #params: number[] = [];
  /** The relations' names the case has used as aliases. */
  #named = new Set<string>();

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

  /** An alias for a relation read: mostly a fresh one, sometimes the name of a relation of the schema (once a case), which a column's origin must not be mistaken for. */
  #aliasFor(): string {
    const named = this.#pick(Object.keys(this.#relations));
    if (this.#int(5) === 0 && !this.#named.has(named)) {
      this.#named.add(named);
      return named;
    }
    return `r${this.#alias++}`;
  }

  /** A relation to read, of any kind: a view makes the case opaque. */
  #relation(): string {
    const rel = this.#pick(Object.keys(this.#relations));
    if (!this.#relations[rel]!.base) this.#opaque = true;
    return rel;
  }

  /** Relation `rel` as a statement may name it: bare, in backticks, in the database `app`. */
  #spell(rel: string): string {
    return this.#pick([rel, `\`${rel}\``, `app.${rel}`, `\`app\`.\`${rel}\``]);
  }

  /** Column `name` as a statement may name it: as it is, in backticks, in upper case (MariaDB's column names are not case-sensitive). */
  #column(name: string): string {
    return this.#pick([name, name, `\`${name}\``, name.toUpperCase()]);
  }

  /** A row source: a relation, a join of two, a derived table or a CTE's reference; its columns, and the WITH it needs. */
  #source(depth: number): { from: string; cols: Col[]; with?: string } {
    const kind = depth > 1 ? 0 : this.#int(5);
    if (kind <= 1) {
      const rel = this.#relation();
      const { base, cols } = this.#relations[rel]!;
      const a = this.#aliasFor();
      return { from: `${this.#spell(rel)} ${a}`, cols: cols.map((c) => ({ sql: `${a}.${this.#column(c.name)}`, type: c.type, masked: c.masked, bare: base })) };
    }
    if (kind === 2 && this.#int(3) === 0) {
      // A view joined with a table it reads, the view sometimes aliased by that table's name.
      const view = this.#pick(Object.keys(this.#relations).filter((r) => !this.#relations[r]!.base));
      const { cols, reads } = this.#relations[view]!;
      const table = this.#pick(reads!);
      this.#opaque = true;
      const v = this.#named.has(table) || this.#int(2) === 0 ? `r${this.#alias++}` : (this.#named.add(table), table);
      const t = `r${this.#alias++}`;
      const viewCols = cols.map((c) => ({ sql: `${v}.${this.#column(c.name)}`, type: c.type, masked: c.masked, bare: false }));
      const tableCols = this.#relations[table]!.cols.map((c) => ({ sql: `${t}.${this.#column(c.name)}`, type: c.type, masked: c.masked, bare: true }));
      return { from: `${this.#spell(view)} ${v} ${this.#pick(['JOIN', 'LEFT JOIN'])} ${this.#spell(table)} ${t} ON ${t}.id = ${v}.id`, cols: [...viewCols, ...tableCols] };
    }
    if (kind === 2 && this.#int(4) === 0) {
      // JSON_TABLE over a text column of the source before it: a row source that is not a table.
      const left = this.#source(depth + 1);
      const text = left.cols.find((c) => c.type === 'text');
      if (text) {
        this.#opaque = true;
        const a = `j${this.#alias++}`;
        return {
          from: `${left.from} CROSS JOIN JSON_TABLE(JSON_ARRAY(${text.sql}), '$[*]' COLUMNS (v TEXT PATH '$')) AS ${a}`,
          cols: [...left.cols, { sql: `${a}.v`, type: 'text', masked: text.masked, bare: false }],
          ...(left.with ? { with: left.with } : {}),
        };
      }
      return left;
    }
    if (kind === 2) {
      const left = this.#source(depth + 1);
      const right = this.#source(depth + 1);
      const li = left.cols.find((c) => c.type === 'int');
      const ri = right.cols.find((c) => c.type === 'int');
      const join = this.#pick(['JOIN', 'LEFT JOIN']);
      const withs = [left.with, right.with].filter(Boolean).join(', ');
      // A join on the right is parenthesized: `a JOIN b JOIN c ON … ON …` is MySQL's too, but not one the parser reads.
      const inner = right.from.includes(' JOIN ') ? `(${right.from})` : right.from;
      return { from: `${left.from} ${join} ${inner} ON ${li && ri ? `${ri.sql} = ${li.sql}` : 'TRUE'}`, cols: [...left.cols, ...right.cols], ...(withs ? { with: withs } : {}) };
    }
    // A derived table or a CTE: its columns are named, and carry what they are computed from.
    this.#opaque = true;
    const inner = this.#select(depth + 1, 1 + this.#int(3));
    const a = `q${this.#alias++}`;
    const cols = inner.cols.map((c, i) => ({ sql: `${a}.c${i}`, type: c.type, masked: c.masked, bare: false }));
    if (kind === 3) return { from: `(${inner.sql}) ${a}`, cols };
    return { from: a, cols, with: `${a} AS (${inner.sql})` };
  }

  /** An expression over `cols` (aggregates when `agg`), with its type and whether it is computed from a masked value. */
  #expr(cols: Col[], agg: boolean): Col {
    const of = (type: Col['type']): Col | undefined => {
      const fit = cols.filter((c) => c.type === type);
      return fit.length > 0 ? this.#pick(fit) : undefined;
    };
    const computed = (sql: string, type: Col['type'], ...from: Col[]): Col => ({ sql, type, masked: from.reduce((m, c) => m | c.masked, 0), bare: false });
    const text = of('text');
    const int = of('int');
    const choice = this.#int(agg ? 7 : 17);
    if (agg) {
      const c = this.#pick(cols);
      switch (choice) {
        case 0:
          return computed('COUNT(*)', 'int');
        case 1:
          return computed(`COUNT(${c.sql})`, 'int', c);
        case 2:
          return computed(`MAX(${c.sql})`, c.type, c);
        case 3:
          return int ? computed(`SUM(${int.sql})`, 'num', int) : computed('COUNT(*)', 'int');
        case 4:
          return text ? computed(`GROUP_CONCAT(${text.sql} ORDER BY ${text.sql} SEPARATOR ',')`, 'text', text) : computed('COUNT(1)', 'int');
        case 5:
          return computed(`COUNT(DISTINCT ${c.sql})`, 'int', c);
        default:
          return computed(`MIN(${c.sql})`, c.type, c);
      }
    }
    switch (choice) {
      case 0:
      case 1:
      case 2:
      case 3:
        return this.#pick(cols);
      case 4:
        return text ? computed(`UPPER(${text.sql})`, 'text', text) : computed(`'k'`, 'text');
      case 5:
        return text ? computed(`CHAR_LENGTH(${text.sql})`, 'int', text) : computed('7', 'int');
      case 6:
        return int ? computed(`(${int.sql} * 3 + 1)`, 'int', int) : computed('3', 'int');
      case 7: {
        const a = text ?? computed(`'a'`, 'text');
        const b = of('text') ?? a;
        return computed(`COALESCE(${a.sql}, ${b.sql}, 'none')`, 'text', a, b);
      }
      case 8: {
        const cond = this.#pick(cols);
        const a = this.#pick(cols);
        return computed(`CASE WHEN ${cond.sql} IS NULL THEN ${asChar(a.sql)} ELSE 'x' END`, 'text', cond, a);
      }
      case 9:
        return this.#pick<Col>([computed(`'const'`, 'text'), computed('42', 'int'), computed('TRUE', 'bool'), computed('NULL', 'text')]);
      case 10: {
        // A scalar subquery's value is computed from all it reads, its filter too.
        const rel = this.#relation();
        const inner = this.#relations[rel]!.cols;
        const target = this.#pick(inner);
        const corr = this.#pick(inner.filter((c) => c.type === 'int'));
        const outer = int ?? computed('1', 'int');
        const a = `s${this.#alias++}`;
        return computed(
          `(SELECT MAX(${a}.${target.name}) FROM ${rel} ${a} WHERE ${a}.${corr.name} = ${outer.sql})`,
          target.type,
          { ...target, sql: '', bare: false },
          { ...corr, sql: '', bare: false },
          outer,
        );
      }
      case 11: {
        if (this.#int(2) === 0) {
          // A scalar subquery of one row, by the relation's id: its column as it is.
          const rel = this.#relation();
          const target = this.#pick(this.#relations[rel]!.cols);
          const outer = int ?? computed('1', 'int');
          const a = `s${this.#alias++}`;
          return computed(`(SELECT ${a}.${target.name} FROM ${rel} ${a} WHERE ${a}.id = ${outer.sql})`, target.type, { ...target, sql: '', bare: false }, outer);
        }
        const rel = this.#relation();
        const c = this.#pick(this.#relations[rel]!.cols);
        const a = `e${this.#alias++}`;
        return computed(`EXISTS (SELECT 1 FROM ${rel} ${a} WHERE ${a}.${c.name} IS NOT NULL)`, 'bool', { ...c, sql: '', bare: false });
      }
      case 12: {
        const a = this.#pick(cols);
        return computed(`IFNULL(${asChar(a.sql)}, 'nil')`, 'text', a);
      }
      case 13: {
        // A window function: its value is computed from what it orders by, and what it reads (RANK: rows that tie tie, as ROW_NUMBER's would not in both runs).
        const a = this.#pick(cols);
        const b = this.#pick(cols);
        return this.#pick([
          computed(`RANK() OVER (ORDER BY ${a.sql}, ${b.sql})`, 'int', a, b),
          computed(`COUNT(${a.sql}) OVER ()`, 'int', a),
          computed(`MAX(${asChar(a.sql)}) OVER (PARTITION BY ${b.sql})`, 'text', a, b),
        ]);
      }
      case 14: {
        const a = this.#pick(cols);
        const b = this.#pick(cols);
        return computed(`IF(${a.sql} IS NULL, ${asChar(b.sql)}, 'set')`, 'text', a, b);
      }
      case 15:
        return text
          ? this.#pick([computed(`LEFT(${text.sql}, 2)`, 'text', text), computed(`REPLACE(${text.sql}, 'a', 'b')`, 'text', text), computed(`JSON_OBJECT('k', ${text.sql})`, 'text', text)])
          : computed(`'j'`, 'text');
      default: {
        const a = this.#pick(cols);
        const b = this.#pick(cols);
        return computed(`CONCAT(${asChar(a.sql)}, '|', ${asChar(b.sql)})`, 'text', a, b);
      }
    }
  }

  /** A SELECT with `width` columns `c0`, `c1`, ... and its WITH clause folded in; at the top, sometimes a parameter in its filter. */
  #select(depth: number, width: number): { sql: string; cols: Col[] } {
    const src = this.#source(depth);
    const agg = this.#int(4) === 0;
    // Aggregates, sometimes grouped by the first column, a column as it is.
    const grouped = agg && width > 1 && this.#int(2) === 0;
    const cols = Array.from({ length: width }, (_, i) => (grouped && i === 0 ? this.#pick(src.cols) : this.#expr(src.cols, agg)));
    const filter = this.#int(4);
    const int = src.cols.find((c) => c.type === 'int');
    let where = '';
    if (filter === 0) where = ` WHERE ${this.#pick(src.cols).sql} IS NOT NULL`;
    else if (filter === 1 && depth === 0 && int) {
      where = ` WHERE ${int.sql} <= ?`;
      this.#params.push(1 + this.#int(12));
    } else if (filter === 2 && int) {
      // A filter by a subquery: which rows come is not what the columns are computed from.
      const rel = this.#relation();
      where = ` WHERE ${int.sql} IN (SELECT x.id FROM ${rel} x)`;
    }
    const list = cols.map((c, i) => `${c.sql} AS c${i}`).join(', ');
    // A derived table or CTE sometimes keeps only its first rows (in an order of all its columns, so both runs keep the same).
    const limit = depth > 0 && this.#int(4) === 0 ? ` ORDER BY ${cols.map((_, i) => i + 1).join(', ')} LIMIT ${1 + this.#int(5)}` : '';
    const sql = `${src.with ? `WITH ${src.with} ` : ''}SELECT ${list} FROM ${src.from}${where}${grouped ? ' GROUP BY 1' : ''}${limit}`;
    return { sql, cols };
  }

  /** One case: a SELECT, sometimes a UNION or UNION ALL of two, ordered by every column. */
  next(): Case {
    this.#alias = 0;
    this.#opaque = false;
    this.#params = [];
    this.#named = new Set();
    const width = 1 + this.#int(4);
    const order = (n: number): string => `ORDER BY ${Array.from({ length: n }, (_, i) => i + 1).join(', ')}`;
    if (this.#int(20) === 0) {
      // Every column of a relation, by the names it has.
      const rel = this.#relation();
      const { base, cols } = this.#relations[rel]!;
      return { sql: `SELECT * FROM ${this.#spell(rel)} ${order(cols.length)}`, params: [], masked: cols.map((c) => c.masked), traced: cols.map(() => base), computed: cols.map(() => false) };
    }
    const first = this.#select(0, width);
    if (this.#int(6) === 0) {
      const second = this.#select(0, width);
      // The branches as they are (MariaDB finds the columns' common types; a branch's WITH cannot stand there), or each read as text from a derived table.
      const asIs = this.#int(2) === 0 && !/^WITH /.test(first.sql) && !/^WITH /.test(second.sql);
      const branch = (s: { sql: string; cols: Col[] }): string => (asIs ? s.sql : `SELECT ${s.cols.map((_, i) => `${asChar(`c${i}`)} AS c${i}`).join(', ')} FROM (${s.sql}) u${this.#alias++}`);
      const op = this.#pick(['UNION ALL', 'UNION']);
      return {
        sql: `${branch(first)} ${op} ${branch(second)} ${order(width)}`,
        params: this.#params,
        masked: first.cols.map((c, i) => c.masked | second.cols[i]!.masked),
        traced: first.cols.map(() => false),
        computed: first.cols.map(() => true),
      };
    }
    // One SELECT over base tables read directly whose list holds no subquery: each column is traced, a computed one by what it alone is computed from.
    const lineage = !this.#opaque && !first.cols.some((c) => /\bSELECT\b/.test(c.sql));
    return {
      sql: `${first.sql} ${order(width)}`,
      params: this.#params,
      masked: first.cols.map((c) => c.masked),
      traced: first.cols.map((c) => !this.#opaque && (c.bare || lineage)),
      computed: first.cols.map((c) => !c.bare),
    };
  }
}

/** What of a column definition the client reads a value by: an exact column's must be the server's. */
const definition = (f: FieldPacket): unknown => ({
  name: f.name,
  type: f.columnType,
  flags: f.flags,
  charset: f.characterSet,
  decimals: f.decimals,
  length: f.columnLength,
  table: f.orgTable,
  column: f.orgName,
});

/** One result: its rows as arrays, its column definitions. */
type Result = { rows: unknown[][]; fields: FieldPacket[] };

const random = new Random(SEED);
const schema = randomSchema(random);
/** The policy without its column rules: a session that masks by name alone. */
const namesOnly: MaskingPolicy = { ...schema.policy, columns: [] };
let db: MariaServer;
let stack: HoopStack;
/** Each policy's session: alice's masks by column rules and the name rule, bob's by the name rule alone. */
const sessions: Array<{ subject: string; masks: number; connect?: RunningConnect }> = [
  { subject: 'alice', masks: BY_ORIGIN | BY_NAME },
  { subject: 'bob', masks: BY_NAME },
];

beforeAll(async () => {
  db = await startMariaDb();
  // Tables first: hoop trusts the origins of the base tables it finds when a session opens.
  await db.sql(`ALTER DATABASE app CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;\n${schema.setup.join(';\n')};`, { database: 'app' });
  stack = await startStack({
    env: { MARIA_PASSWORD: db.users.native.password },
    connections: `  - { name: shop, type: mysql, host: 127.0.0.1, port: ${db.port}, database: app, user: app, password: "\${env:MARIA_PASSWORD}", tls: { mode: require }, allow: { subjects: [alice, bob] } }\n`,
    gateway: { sessionPolicy: (identity) => ({ masking: { policy: identity.subject === 'bob' ? namesOnly : schema.policy } }) },
  });
  for (const s of sessions) s.connect = await stack.connect('shop', await stack.token(s.subject));
});

afterAll(async () => {
  for (const s of sessions) await s.connect?.stop();
  await stack?.close();
  await db?.stop();
});

describe(`generated MariaDB SELECTs, direct and through hoop, as queries and prepared (seed ${SEED}, ${CASES} cases)`, () => {
  it('a column computed from a masked column is never revealed; one computed from none is exact or, untraced, redacted whole', async () => {
    // Both drivers read values alike: numbers, decimals, dates and JSON as the text the server sent (JSON is told only in MariaDB's
    // extended metadata, which hoop does not offer); each connection keeps few prepared statements.
    const options = {
      database: 'app',
      charset: 'UTF8MB4_GENERAL_CI',
      rowsAsArray: true,
      dateStrings: true,
      supportBigNumbers: true,
      bigNumberStrings: true,
      decimalNumbers: false,
      jsonStrings: true,
      maxPreparedStatements: 8,
    };
    const direct = await mysql.createConnection({ ...options, host: db.host, port: db.port, user: db.users.native.user, password: db.users.native.password });
    const hoops = await Promise.all(
      sessions.map((s) => {
        const info = s.connect!.info as unknown as { host: string; port: number; user: string; password: string; sslCa: string };
        return mysql.createConnection({ ...options, host: info.host, port: info.port, user: info.user, password: info.password, ssl: { ca: readFileSync(info.sslCa) } });
      }),
    );
    const gen = new Generator(random, schema.relations);
    const counts = { exact: 0, hidden: 0, conservative: 0, plain: 0, refused: 0, statements: 0, computedExact: 0 };
    const refusals = new Map<string, number>();
    const started = Date.now();
    try {
      for (let i = 0; i < CASES; i++) {
        const c = gen.next();
        // The cases alternate between the policies.
        const session = sessions[i % sessions.length]!;
        const hoop = hoops[i % sessions.length]!;
        const masked = c.masked.map((m) => (m & session.masks) !== 0);
        const where = `case ${i} of seed ${SEED} (HOOP_MASKING_SEED=${SEED}), ${session.subject}'s policy${session.masks === BY_NAME ? ' (name rules only)' : ''}:\n  ${c.sql}\n  parameters: ${JSON.stringify(c.params)}\n  masked columns: ${JSON.stringify(masked)}\n  traced columns: ${JSON.stringify(c.traced)}\n  schema: ${schema.setup.join(';\n')}`;
        const run = (conn: mysql.Connection, prepared: boolean): Promise<Result | Error> =>
          (prepared ? conn.execute(c.sql, c.params) : conn.query(c.sql, c.params)).then(
            ([rows, fields]) => ({ rows: rows as unknown[][], fields: fields as FieldPacket[] }),
            (e: Error) => e,
          );
        const [dText, dBinary, hText, hBinary] = await Promise.all([run(direct, false), run(direct, true), run(hoop, false), run(hoop, true)]);
        for (const [protocol, d, h] of [['text', dText, hText] as const, ['binary', dBinary, hBinary] as const]) {
          const at = `${where}\n  protocol: ${protocol}`;
          if (d instanceof Error) throw new Error(`${at}\n  directly: ${d.message}`);
          counts.statements++;
          if (h instanceof Error) {
            // A refusal names why (hoop's word); any other error of a statement the server ran is wrong.
            expect(h.message, `${at}\n  through hoop: ${h.message}`).toMatch(/^hoop: /);
            counts.refused++;
            refusals.set(h.message.slice(0, 160), (refusals.get(h.message.slice(0, 160)) ?? 0) + 1);
            continue;
          }
          expect(h.rows.length, at).toBe(d.rows.length);
          d.fields.forEach((field, col) => {
            const values = d.rows.map((row) => row[col]);
            const got = h.rows.map((row) => row[col]);
            const nonNull = values.filter((v) => v !== null).length;
            if (masked[col]) {
              // Not one value revealed: each masked or NULL.
              got.forEach((v, r) => {
                if (values[r] !== null) expect([REDACTED, null], `${at}\n  row ${r} column ${col + 1}: masked, was ${String(values[r])}`).toContain(v);
              });
              counts.hidden += nonNull;
              return;
            }
            counts.plain++;
            const sent = definition(field);
            const rewritten = !isDeepStrictEqual(definition(h.fields[col]!), sent);
            if ((nonNull > 0 || rewritten) && got.every((v, r) => (values[r] === null ? v === null : v === REDACTED))) {
              // Redacted whole: hoop could not trace it, which it may say only of a column it does not read directly.
              expect(c.traced[col], `${at}\n  column ${col + 1}: a column hoop traces (a bare column of a base table read directly, or one computed from such columns alone) came back redacted`).toBe(
                false,
              );
              counts.conservative++;
              return;
            }
            expect(got, `${at}\n  column ${col + 1}: exact`).toEqual(values);
            expect(definition(h.fields[col]!), `${at}\n  column ${col + 1}: its definition as the server sent it`).toEqual(sent);
            counts.exact += nonNull;
            if (c.computed[col]) counts.computedExact++;
          });
        }
      }
    } finally {
      await direct.end();
      for (const hoop of hoops) await hoop.end();
    }
    const rate = counts.plain === 0 ? 0 : (counts.conservative / counts.plain).toFixed(3);
    console.log(
      `mysql masking differential (seed ${SEED}): ${CASES} cases, ${counts.statements} statements in ${Date.now() - started} ms; values: ${counts.exact} exact, ${counts.hidden} masked; computed columns exact: ${counts.computedExact}; plain columns: ${counts.conservative} of ${counts.plain} redacted whole (rate ${rate}); ${counts.refused} statements refused${[...refusals].map(([why, n]) => `\n  ${n} × ${why}`).join('')}`,
    );
    // Both kinds were met often, and hoop redacted no more plain values than its design does.
    expect(counts.exact).toBeGreaterThan(CASES);
    expect(counts.hidden).toBeGreaterThan(CASES);
    // Computed columns come back exact where what they are computed from is not masked.
    expect(counts.computedExact).toBeGreaterThan(CASES / 10);
    expect(counts.conservative / counts.plain).toBeLessThan(CONSERVATIVE_CEILING);
  }, 600_000);
});
