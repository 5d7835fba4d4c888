/**
 * What `hoop gateway migrate` and `hoop gateway status` do to a shared store (`store: { kind:
 * postgres }`): bring it up to this version's schema, and read its status. Each opens the store
 * with its URL resolved, and ends the pool after.
 */
import type pg from 'pg';
import { resolveSecret } from '../config/secrets.js';
import type { GatewayConfig } from './config/config.js';
import { storeStatus, type StoreStatus } from './replicas/replica.js';
import { MIGRATIONS } from './migrations.js';
import { describeStoreUrl, migrate, openStorePool } from './store/store-postgres.js';

/** A shared store's settings. */
type PostgresStore = Extract<GatewayConfig['store'], { kind: 'postgres' }>;

/** Runs `use` on a pool of `store` (`where`: its URL without the password), then ends the pool. */
async function withStore<T>(store: PostgresStore, env: NodeJS.ProcessEnv, use: (pool: pg.Pool, where: string) => Promise<T>): Promise<T> {
  const url = await resolveSecret(store.url, env);
  const where = describeStoreUrl(url);
  const pool = await openStorePool(url);
  try {
    return await use(pool, where);
  } finally {
    await pool.end();
  }
}

/** Brings `store` up to this version's schema; resolves where it is, its schema's version, and the migrations applied now (`version (name)`). */
export function migrateStore(store: PostgresStore, env: NodeJS.ProcessEnv): Promise<{ where: string; version: number; applied: string[] }> {
  return withStore(store, env, async (pool, where) => {
    const { version, applied } = await migrate(pool, MIGRATIONS);
    return { where, version, applied: applied.map((v) => `${v} (${MIGRATIONS.find((m) => m.version === v)!.name})`) };
  });
}

/** Whether `store` answers (it throws when not), the replicas it has seen and what waits; and where it is. */
export function readStoreStatus(store: PostgresStore, env: NodeJS.ProcessEnv): Promise<{ where: string; status: StoreStatus }> {
  return withStore(store, env, async (pool, where) => ({ where, status: await storeStatus(pool, store.deadAfterSeconds * 1000) }));
}
