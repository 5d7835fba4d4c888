/**
 * What relations read (src/postgres/gateway/relation-reads.ts) when the catalog cannot answer: a
 * name reads anything (`*`), never nothing, and is asked again a few seconds on, not per
 * statement; statements are passed on in the order they ended. (Views and partitions against a
 * real catalog: test/integration/alerts.test.ts, test/integration/index-descendants.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { RelationReads, StatementReads, TTL_MS } from '../../src/postgres/gateway/relation-reads.js';
import { CatalogConnection } from '../../src/postgres/pipeline/masking/catalog-connection.js';

describe('relation reads', () => {
  it('a lookup that fails reads anything, and is not asked again for a few seconds', async () => {
    let now = 1_000_000;
    let opened = 0;
    const reads = new RelationReads(
      new CatalogConnection(() => {
        opened++;
        return Promise.reject(new Error('the catalog is down'));
      }),
      () => now,
    );
    expect(reads.known(['customers'])).toBeUndefined();
    expect(await reads.lookup(['customers'])).toEqual({ tables: ['*'], columns: [] });
    expect(opened).toBe(1);
    expect(reads.known(['customers'])).toEqual({ tables: ['*'], columns: [] });
    now += 6_000;
    expect(reads.known(['customers'])).toBeUndefined();
    await reads.lookup(['customers']);
    expect(opened).toBe(2);
    expect(TTL_MS).toBeGreaterThan(6_000);
  });

  it('after a change of the catalog, names read anything for the settling time, and are looked up again after it', async () => {
    let now = 1_000_000;
    let asked = 0;
    const catalog = {
      prepared: async () => {
        asked++;
        return [{ name: 'customers', oid: '1', kind: 'r', schema: 'public', table: 'customers', column: null, descends: null }];
      },
    } as unknown as CatalogConnection;
    const reads = new RelationReads(catalog, () => now, 2_000);
    // A table reads nothing beyond itself.
    expect(await reads.lookup(['customers'])).toEqual({ tables: [], columns: [] });
    expect(reads.known(['customers'])).toEqual({ tables: [], columns: [] });
    expect(asked).toBe(1);
    reads.changed();
    now += 1_999;
    expect(reads.known(['customers'])).toEqual({ tables: ['*'], columns: [] });
    expect(reads.known(['*'])).toEqual({ tables: [], columns: [] });
    now += 1;
    expect(reads.known(['customers'])).toBeUndefined();
    expect(await reads.lookup(['customers'])).toEqual({ tables: [], columns: [] });
    expect(asked).toBe(2);
    // 5 s unless told.
    const plain = new RelationReads(catalog, () => now);
    plain.changed();
    now += 4_999;
    expect(plain.known(['customers'])).toEqual({ tables: ['*'], columns: [] });
    now += 1;
    expect(plain.known(['customers'])).toBeUndefined();
  });

  it('a parent reads its descendants (tables, and pairs the index maps its columns by); one with over 1,000 reads anything', async () => {
    const row = (name: string, table: string) => ({ name, oid: '1', kind: 'p', schema: 'public', table, column: null, descends: '1' });
    const rows = [row('pay', 'pay_q1'), row('pay', 'pay_q2'), ...Array.from({ length: 1001 }, (_, i) => row('events', `events_${i}`))];
    const catalog = { prepared: async () => rows } as unknown as CatalogConnection;
    const reads = new RelationReads(catalog);
    expect(await reads.lookup(['pay'])).toEqual({
      tables: ['public.pay_q1', 'public.pay_q2'],
      columns: [],
      descendants: [
        { of: 'pay', table: 'public.pay_q1' },
        { of: 'pay', table: 'public.pay_q2' },
      ],
    });
    expect(await reads.lookup(['events'])).toEqual({ tables: ['*'], columns: [] });
  });

  it('a name already read as anything (`*`) needs no lookup', () => {
    const reads = new RelationReads(new CatalogConnection(() => Promise.reject(new Error('not asked'))));
    expect(reads.known(['*'])).toEqual({ tables: [], columns: [] });
  });

  it('passes statements on in the order they ended, one waiting for a lookup holding back those after it', async () => {
    const reads = new RelationReads(new CatalogConnection(() => Promise.reject(new Error('the catalog is down'))));
    const told: Array<{ n: number; tables: readonly string[] }> = [];
    const statements = new StatementReads<{ n: number; tables: readonly string[] }>(reads, (s) => told.push(s), undefined);
    statements.tell({ n: 1, tables: ['customers'] });
    statements.tell({ n: 2, tables: [] });
    expect(told).toEqual([]);
    await statements.settled();
    expect(told).toEqual([
      { n: 1, tables: ['customers', '*'] },
      { n: 2, tables: [] },
    ]);
    expect(statements.settled()).toBeUndefined();
    statements.tell({ n: 3, tables: [] });
    expect(told.at(-1)).toEqual({ n: 3, tables: [] });
  });

  it('a client that sends new names faster than they are looked up gets no more lookups: its statements read anything', async () => {
    let opened = 0;
    const reads = new RelationReads(
      new CatalogConnection(() => {
        opened++;
        return Promise.reject(new Error('the catalog is down'));
      }),
    );
    const told: Array<readonly string[]> = [];
    const statements = new StatementReads<{ tables: readonly string[] }>(reads, (s) => told.push(s.tables), undefined);
    for (let i = 0; i < 1500; i++) statements.tell({ tables: [`t${i}`] });
    await statements.settled();
    expect(told).toHaveLength(1500);
    expect(told.every((t) => t.length === 2 && t[1] === '*')).toBe(true);
    // The first 1,000 were looked up (and failed); the 500 behind them were not.
    expect(opened).toBe(1000);
  });
});
