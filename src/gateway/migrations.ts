/**
 * The store's schema, whole: each feature's steps (its tables, kept beside the feature), in the
 * order of their versions, which run once each at start and with `hoop gateway migrate`
 * (./store/store-postgres.ts). Append only: a released step never changes, and a new one takes the
 * next version.
 */
import { ALERTS_MIGRATIONS } from './alerts/alerts-postgres.js';
import { WEBHOOK_MINUTES_MIGRATIONS } from './alerts/webhook-minutes-postgres.js';
import { DIRECT_CREDENTIALS_MIGRATIONS } from './credentials/direct-credentials-postgres.js';
import { CLIENT_RECORDS_MIGRATIONS } from './records/client-records-postgres.js';
import { SESSION_INDEX_MIGRATIONS } from './records/recordings-postgres.js';
import { RUNS_MIGRATIONS } from './runs/runs-postgres.js';
import { SESSION_SLOTS_MIGRATIONS } from './sessions/session-slots-postgres.js';
import { STORE_MIGRATIONS, type Migration } from './store/store-postgres.js';

/** Every step of the schema, by version (1, 2, 3, … with none missing). */
export const MIGRATIONS: readonly Migration[] = inOrder([
  ...STORE_MIGRATIONS,
  ...CLIENT_RECORDS_MIGRATIONS,
  ...RUNS_MIGRATIONS,
  ...SESSION_INDEX_MIGRATIONS,
  ...ALERTS_MIGRATIONS,
  ...DIRECT_CREDENTIALS_MIGRATIONS,
  ...SESSION_SLOTS_MIGRATIONS,
  ...WEBHOOK_MINUTES_MIGRATIONS,
]);

/** `steps` sorted by version. @throws Error when two share a version or one is missing (a mistake in the source, found at load). */
function inOrder(steps: Migration[]): Migration[] {
  const sorted = steps.sort((a, b) => a.version - b.version);
  sorted.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`the store's schema has no step ${i + 1} (found ${m.version}: ${m.name})`);
  });
  return sorted;
}
