/**
 * `hoop policy test`'s cases, run: decisions and alerts in the policy engine, SSH requests in the
 * SSH judge, `masked:` cases with a fixture on a scratch database through the gateway's PostgreSQL
 * engine (./policy-lab.ts), and, with `--on-connections`, those without a fixture on their
 * connection itself, through the gateway, read-only.
 */
import { realClock } from '../clock.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { getWhoAmI } from '../api-client/identity.js';
import { getSession } from '../api-client/sessions.js';
import { describeError } from '../errors.js';
import type { CliIo } from '../io.js';
import { silentLogger } from '../log.js';
import { type ColumnMask, type MaskOutcome, type PolicyTestResult, runPolicyTests } from '../policy/evaluate.js';
import type { Policy, PolicyTest } from '../policy/schema.js';
import { analyzeSql } from '../policy/sql/analyze.js';
import { commandTokenProvider, type GatewayFlags } from './client-config.js';
import { openGatewaySql } from './gateway-sql.js';
import { FIXTURE_BUDGET, PolicyLab } from './policy-lab.js';
import { readEvents, withVerifiedRecording } from './recordings-fetch.js';

/** Whether masking cases without a fixture may run on their connections (`--on-connections`). */
export type PolicyCasesFlags = GatewayFlags & { onConnections?: boolean; fixtureSeconds?: number; fixtureMib?: number };

/**
 * Runs the cases. A masking case with a fixture runs on a scratch database (started only when one
 * does); one without runs on the connection through the gateway ({@link connectionMasks}).
 */
export async function runPolicyCases(io: CliIo, policy: Policy, flags: PolicyCasesFlags, say: (line: string) => void): Promise<PolicyTestResult[]> {
  const onConnection = async (test: PolicyTest): Promise<MaskOutcome> =>
    flags.onConnections
      ? connectionMasks(io, flags, test)
      : { error: `without a fixture, the statements would run on ${test.connection} itself: pass --on-connections to let them (never for a change you have not read: a case's SQL is its author's)` };
  if (!policy.tests.some((t) => t.fixture)) return runPolicyTests(policy, { masks: onConnection });
  const started = realClock.now();
  const lab = await PolicyLab.open(io, say, {
    ms: (flags.fixtureSeconds ?? FIXTURE_BUDGET.ms / 1000) * 1000,
    bytes: (flags.fixtureMib ?? FIXTURE_BUDGET.bytes / 1024 / 1024) * 1024 * 1024,
  });
  say(`masking cases with a fixture run on a scratch PostgreSQL through the gateway's engine (ready in ${realClock.now() - started} ms)`);
  try {
    return await runPolicyTests(policy, { masks: (test) => (test.fixture ? lab.masks(policy, test) : onConnection(test)) });
  } finally {
    await lab.close();
  }
}

/** How long a case's statements may run on a real connection. */
const CONNECTION_TIMEOUT = '10s';

/** How long the gateway may take to index a session that just ended. */
const INDEXED_WITHIN_MS = 15_000;

/**
 * Why `sql` may not run on a real connection for a test (undefined when it may): only reads do, in a
 * read-only transaction the statements cannot end (a config repo's cases are not trusted code).
 */
function notAReadOnlyQuery(sql: string): string | undefined {
  const analysis = analyzeSql(sql);
  if (!analysis.ok) return 'it does not parse';
  const other = analysis.statements.flatMap((s) => (s.cteDml ? ['a write in WITH'] : s.kinds)).find((k) => k !== 'select');
  return other === undefined ? undefined : `it is not only SELECT (${other})`;
}

/**
 * A masking case without a fixture, with `--on-connections`: its statements on the connection
 * itself, through the gateway, for at most 10 s, as the signed-in identity (which must be the case's: the gateway masks for whoever calls) under
 * the policy the gateway runs, in a read-only transaction rolled back after (only SELECTs run); the
 * columns masked as the session's recording says (masked whole: by column, name or a value
 * computed from a masked one).
 */
async function connectionMasks(io: CliIo, flags: GatewayFlags, test: PolicyTest): Promise<MaskOutcome> {
  const refused = test.sql!.map(notAReadOnlyQuery).find((why) => why !== undefined);
  if (refused) return { error: `without a fixture, the statements run on ${test.connection} itself, where a test only reads: ${refused}; give the case a fixture:` };
  const provider = await commandTokenProvider(io, flags);
  try {
    const endpoint = { gateway: provider.gateway, ...(provider.ca ? { ca: provider.ca } : {}) };
    const me = await getWhoAmI(endpoint, (await provider.current()).token);
    if (me.subject !== test.as.subject || test.as.principal !== undefined) {
      return { error: `without a fixture, the statements run on ${test.connection} as you (${me.subject}), not as the case's identity: give the case a fixture: to check another's masking` };
    }
    const gw = await openGatewaySql({ provider, name: test.connection, application: 'hoop policy test', log: silentLogger, say: () => {} });
    try {
      for (const text of ['begin read only', `set local statement_timeout = '${CONNECTION_TIMEOUT}'`, ...test.sql!, 'rollback']) {
        const failed = await gw.run(text, { columns: () => {}, row: () => {}, complete: () => {}, notice: () => {} });
        // The server's words may quote the data: only the SQLSTATE is said (the session's recording has the rest).
        if (failed)
          return {
            error: `on ${test.connection} through the gateway: ${'held' in failed ? `held for review ${failed.held.id}` : `the statements failed (SQLSTATE ${failed.code}; session ${gw.sessionId})`}`,
          };
      }
    } finally {
      gw.close();
    }
    const deadline = realClock.now() + INDEXED_WITHIN_MS;
    while ((await getSession(endpoint, (await provider.current()).token, gw.sessionId).catch(() => undefined))?.endedAt === undefined) {
      if (realClock.now() > deadline) return { error: `session ${gw.sessionId} was not indexed within ${INDEXED_WITHIN_MS / 1000} s` };
      await sleep(100);
    }
    return await withVerifiedRecording(io, flags, gw.sessionId, async (dir, check) => {
      let columns: ColumnMask[] = [];
      for await (const e of readEvents(dir, check.manifest!)) {
        if ((e.t !== 'columns' && e.t !== 'result') || !Array.isArray(e.names)) continue;
        const masked = Array.isArray(e.masked) ? (e.masked as Array<{ strategy: string } | null>) : [];
        columns = (e.names as string[]).map((column, i) => (masked[i] ? { column, masked: true, strategy: masked[i]!.strategy } : { column, masked: false }));
      }
      return { columns, where: `on ${test.connection} through the gateway as ${me.subject}, under the policy it runs (session ${gw.sessionId})` };
    });
  } catch (err) {
    return { error: `on ${test.connection} through the gateway: ${describeError(err)}` };
  } finally {
    provider.close();
  }
}
