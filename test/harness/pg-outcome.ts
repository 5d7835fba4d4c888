/** What a statement did through a client, as write-rule tests compare it: `ok`, or its SQLSTATE and message. */
import type pg from 'pg';

/** The SQLSTATE and message `sql` fails with, or `ok`. */
export async function outcome(client: pg.Client, sql: string | pg.QueryConfig, values?: unknown[]): Promise<string> {
  try {
    await (typeof sql === 'string' ? client.query(sql, values) : client.query(sql));
    return 'ok';
  } catch (err) {
    const e = err as { code?: string; message: string };
    return `${e.code}: ${e.message}`;
  }
}
