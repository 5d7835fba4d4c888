/**
 * Rules on tables judged through the catalog (src/postgres/gateway/catalog-judge.ts, and
 * StatementJudge.judgeUnder): a relation counts as what the catalog says is under it; what it
 * cannot say (a name it lacks, one another session's open transaction redefines, one this
 * session renamed) is any table; what a session made is what it was made of. Against real
 * PostgreSQL: test/integration/rules-through-views.test.ts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { StatementJudge } from '../../src/policy/decide.js';
import { loadSqlParser } from '../../src/policy/sql/analyze.js';
import type { StatementRule } from '../../src/policy/schema.js';
import { CatalogJudge } from '../../src/session/catalog-judge.js';
import { analyzeSql } from '../../src/policy/sql/analyze.js';
import { RelationReads, TTL_MS } from '../../src/postgres/gateway/relation-reads.js';
import type { CatalogConnection } from '../../src/postgres/pipeline/masking/catalog-connection.js';
import { emptyPolicy } from '../harness/policy.js';

beforeAll(loadSqlParser);

const rules: StatementRule[] = [{ name: 'keep-guarded', match: { kinds: ['delete'], tables: ['guarded'] }, action: 'deny' }];
const who = { subject: 'alice', groups: [] };
const judgeOf = (): StatementJudge => new StatementJudge(emptyPolicy({ statements: { unparseable: 'deny', rules } }), who, 'app', 'read-write');

/** A catalog where `gv` is a view over `public.guarded` and `fv` one over `public.free` (their rows as RELATIONS_NAMED_SQL returns them). */
function catalog(views: Record<string, string> = { gv: 'guarded', fv: 'free' }, now?: () => number): { reads: RelationReads; asked: () => number } {
  let asked = 0;
  const conn = {
    prepared: async (_sql: string, params: Array<Buffer | string>) => {
      asked++;
      const names = String(params[0])
        .replace(/^\{|\}$/g, '')
        .split(',')
        .map((n) => n.replace(/^"|"$/g, ''));
      return names.flatMap(
        (name): Array<Record<string, string | null>> =>
          views[name]
            ? [{ name, oid: '1', kind: 'v', schema: 'public', table: views[name], column: 'id', descends: null }]
            : name === 'guarded' || name === 'free'
              ? [{ name, oid: '2', kind: 'r', schema: null, table: null, column: null, descends: null }]
              : [],
      );
    },
  } as unknown as CatalogConnection;
  return { reads: new RelationReads(conn, now), asked: () => asked };
}

async function judged(judge: CatalogJudge, sql: string): Promise<{ action: string; reason: string }> {
  await judge.pending([sql]);
  return judge.judge(sql);
}

describe('rules on tables, through the catalog', () => {
  it('judges a view as the tables under it; a plain table keeps its cached decision', async () => {
    const { reads } = catalog();
    const inner = judgeOf();
    const judge = new CatalogJudge(inner, reads, analyzeSql);
    expect((await judged(judge, 'DELETE FROM gv WHERE id = 1')).action).toBe('deny');
    expect((await judged(judge, 'DELETE FROM fv WHERE id = 1')).action).toBe('allow');
    await judge.pending(['DELETE FROM free WHERE id = 1']);
    expect(judge.judge('DELETE FROM free WHERE id = 1')).toBe(inner.judge('DELETE FROM free WHERE id = 1'));
  });

  it('judges a name the catalog lacks, or one not looked up, as any table, and says so', async () => {
    const { reads } = catalog();
    const judge = new CatalogJudge(judgeOf(), reads, analyzeSql);
    const v = await judged(judge, 'DELETE FROM nowhere');
    expect(v.action).toBe('deny');
    expect(v.reason).toContain('nowhere is judged as any table');
    // Judged without its lookup (the lookup failed or raced a change): any table too.
    expect(judge.judge('DELETE FROM elsewhere').action).toBe('deny');
    // Reads are not deletes: the rule's kinds still decide.
    expect(judge.judge('SELECT * FROM elsewhere').action).toBe('allow');
  });

  it("holds a view another session's open transaction redefines as any table until that transaction ends, then asks the catalog again", async () => {
    const views = { gv: 'guarded', fv: 'free' };
    const { reads, asked } = catalog(views);
    const a = new CatalogJudge(judgeOf(), reads, analyzeSql);
    const b = new CatalogJudge(judgeOf(), reads, analyzeSql);
    expect((await judged(b, 'DELETE FROM fv')).action).toBe('allow');
    expect(a.judge('CREATE OR REPLACE VIEW public.fv AS SELECT * FROM guarded').action).toBe('allow');
    const during = await judged(b, 'DELETE FROM fv');
    expect(during.action).toBe('deny');
    expect(during.reason).toContain('fv is judged as any table');
    // a's own later statements read fv as what it made it of.
    expect(a.judge('DELETE FROM fv').action).toBe('deny');
    views.fv = 'guarded'; // committed
    const before = asked();
    a.ended();
    expect((await judged(b, 'DELETE FROM fv')).action).toBe('deny');
    expect(asked()).toBeGreaterThan(before);
  });

  it('keeps what a session made (not yet in the catalog) as what it named; a renamed relation is any table', async () => {
    const { reads } = catalog();
    const judge = new CatalogJudge(judgeOf(), reads, analyzeSql);
    expect(judge.judge('CREATE TABLE fresh (id int)').action).toBe('allow');
    expect((await judged(judge, 'DELETE FROM fresh')).action).toBe('allow');
    expect(judge.judge('CREATE TEMP VIEW tv AS SELECT * FROM guarded').action).toBe('allow');
    expect((await judged(judge, 'DELETE FROM tv')).action).toBe('deny');
    judge.ended();
    // Kept past the transaction (a temporary relation lives as long as the session).
    expect((await judged(judge, 'DELETE FROM tv')).action).toBe('deny');
    expect(judge.judge('ALTER TABLE fresh RENAME TO renamed').action).toBe('allow');
    expect((await judged(judge, 'DELETE FROM renamed')).reason).toContain('renamed is judged as any table');
  });

  it("keeps a lookup's answers that a change of other relations, made while it ran, cannot have made stale", async () => {
    let release!: () => void;
    const rows = [
      { name: 'gv', oid: '1', kind: 'v', schema: 'public', table: 'inner_v', column: 'id', descends: null },
      { name: 'gv', oid: '1', kind: 'v', schema: 'public', table: 'guarded', column: 'id', descends: null },
      { name: 'free', oid: '2', kind: 'r', schema: null, table: null, column: null, descends: null },
    ];
    const conn = { prepared: () => new Promise((resolve) => (release = () => resolve(rows))) } as unknown as CatalogConnection;
    const reads = new RelationReads(conn);
    const judge = new CatalogJudge(judgeOf(), reads, analyzeSql);
    const first = judge.pending(['SELECT * FROM gv JOIN free USING (id)']);
    reads.changed(['unrelated']);
    release();
    await first;
    expect(reads.under('gv')).toEqual(['public.inner_v', 'public.guarded']);
    expect(reads.under('free')).toEqual([]);
    // A change of a view gv reads through drops gv, not free; one made during a lookup keeps gv's answer out.
    reads.changed(['inner_v']);
    expect(reads.under('gv')).toBeUndefined();
    expect(reads.under('free')).toEqual([]);
    const second = judge.pending(['DELETE FROM gv']);
    reads.changed(['inner_v']);
    release();
    await second;
    expect(reads.under('gv')).toBeUndefined();
    expect(judge.judge('DELETE FROM gv').action).toBe('deny');
  });

  it("says whether judging again would read the same: not once an answer expired or was dropped, or a relation was redefined here or in another session's open transaction", async () => {
    let now = 1_000;
    const { reads } = catalog({ gv: 'guarded', fv: 'free' }, () => now);
    const a = new CatalogJudge(judgeOf(), reads, analyzeSql);
    const b = new CatalogJudge(judgeOf(), reads, analyzeSql);
    const again = async (): Promise<NonNullable<ReturnType<CatalogJudge['lastReads']>>> => {
      expect((await judged(a, 'DELETE FROM fv WHERE id = 1')).action).toBe('allow');
      const r = a.lastReads();
      expect(new Set(r?.answers.map(([name]) => name))).toEqual(new Set(['fv']));
      expect(a.unchanged(r!)).toBe(true);
      return r!;
    };
    let r = await again();
    now += TTL_MS + 1;
    expect(a.unchanged(r)).toBe(false);
    r = await again();
    reads.changed(['free']);
    expect(a.unchanged(r)).toBe(false);
    // (A lookup that began in the same millisecond as a change keeps nothing of what it may have made stale.)
    now += 1;
    r = await again();
    expect(b.judge('CREATE OR REPLACE VIEW public.fv AS SELECT * FROM guarded').action).toBe('allow');
    expect(a.unchanged(r)).toBe(false);
    expect((await judged(a, 'DELETE FROM fv WHERE id = 1')).action).toBe('deny');
    // Judged while another session's transaction redefines fv (no answer asked for): not the same once that ends.
    expect((await judged(a, 'SELECT * FROM fv WHERE id = 1')).action).toBe('allow');
    const during = a.lastReads()!;
    expect(during.answers).toEqual([]);
    b.ended();
    expect(a.unchanged(during)).toBe(false);
    now += 1;
    r = await again();
    expect(a.judge('CREATE TEMP VIEW mine AS SELECT * FROM free').action).toBe('allow');
    expect(a.unchanged(r)).toBe(false);
    // A judgment that read an answer not known (no lookup yet) is not one to judge again by.
    a.judge('DELETE FROM unknown_yet WHERE id = 1');
    expect(a.lastReads()).toBeUndefined();
  });
});
