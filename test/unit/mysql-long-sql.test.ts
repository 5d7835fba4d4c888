/** Long MySQL texts are analysed off the event loop, and the analysis answers the judge after. */
import { describe, expect, it } from 'vitest';
import { analyzeMysql, loadMysqlParser } from '../../src/policy/mysql/analyze.js';
import { readLongMysql } from '../../src/policy/mysql/long-sql.js';
import { ticksWhile } from '../harness/event-loop.js';

describe('a long MySQL text', () => {
  it('is analysed in a worker: the event loop goes on meanwhile, and analyzeMysql then answers with that analysis', async () => {
    await loadMysqlParser();
    const sql = `INSERT INTO t (a, b) VALUES ${Array.from({ length: 4000 }, (_, i) => `(${i}, 'x${i}')`).join(', ')}`;
    const { ticks } = await ticksWhile(readLongMysql(sql, { database: 'app' }));
    // Analysed on the event loop, it would settle before any other callback ran.
    expect(ticks).toBeGreaterThan(0);
    const analysis = analyzeMysql(sql, { database: 'app' });
    expect(analysis).toMatchObject({ ok: true, statements: [{ kinds: ['insert'], tables: ['app.t'] }] });
  });
});
