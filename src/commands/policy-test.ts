/**
 * `hoop policy test` and `hoop policy status` (./policy.ts registers them).
 *
 * `test` says what it reads (a working tree and the commit it is on, or a pulled commit), validates
 * it as the gateway validates a commit (its `policy.allowedSecrets`, from `GET /v1/policy`), fails
 * with the gateway's own problems when the gateway refused the commit the tree is on, then runs the
 * cases: decisions and alerts in the policy engine, SSH requests in the SSH judge, `masked:` cases
 * on a scratch database through the gateway's PostgreSQL engine (./policy-lab.ts).
 *
 * `status` shows what the gateway says: the commit in force, the repo and ref it follows, the
 * secret references it admits, the connections it cannot open, and the last commit it refused.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { commandTokenProvider, withGateway, type GatewayFlags } from '../client/client-config.js';
import { getPolicyStatus } from '../api-client/policy.js';
import { getSession } from '../api-client/sessions.js';
import { getWhoAmI } from '../api-client/identity.js';
import type { PolicyStatus } from '../api/answers.js';
import { describeError, ErrorCode, HoopError } from '../errors.js';
import type { CliIo } from '../io.js';
import { silentLogger } from '../log.js';
import { runPolicyTests, type ColumnMask, type MaskOutcome, type PolicyTestResult } from '../policy/evaluate.js';
import { PolicyInvalidError } from '../policy/load.js';
import type { Policy, PolicyTest } from '../policy/schema.js';
import { analyzeSql } from '../policy/sql/analyze.js';
import { openGatewaySql } from '../client/gateway-sql.js';
import { readEvents, withVerifiedRecording } from '../client/recordings-fetch.js';
import { gatewayPolicy, loadSource, type GatewayPolicy, type LoadedSource, type SourceOptions } from '../client/policy-source.js';
import { PolicyLab } from '../client/policy-lab.js';

/** The flags of `hoop policy test`. */
export type PolicyTestFlags = SourceOptions & GatewayFlags & { offline?: boolean; onConnections?: boolean };

/** How a case's outcome reads: its decision, alerts and masked columns. */
function outcomeText(r: PolicyTestResult): string {
  const decided = `${r.action}${r.rule ? ` by rule "${r.rule}"` : ''}`;
  const raised = r.raised ? `alerts ${r.raised.length > 0 ? r.raised.join(', ') : 'none'}` : undefined;
  const masks = r.masks
    ? `masked ${
        r.masks
          .filter((m) => m.masked)
          .map((m) => `${m.column} (${m.strategy})`)
          .join(', ') || 'nothing'
      }`
    : undefined;
  return [r.test.expect !== undefined || (!raised && !masks) ? decided : undefined, raised, masks].filter(Boolean).join(', ');
}

/** What a case wanted, as a failure says it. */
function wantedText(r: PolicyTestResult): string {
  const t = r.test;
  return [
    t.expect !== undefined ? `${t.expect}${t.rule ? ` by rule "${t.rule}"` : ''}` : undefined,
    t.alerts ? `alerts ${t.alerts.length > 0 ? t.alerts.join(', ') : 'none'}` : undefined,
    t.masked ? `masked ${t.masked.map((m) => (m.strategy ? `${m.column} (${m.strategy})` : m.column)).join(', ') || 'nothing'}` : undefined,
  ]
    .filter(Boolean)
    .join(', ');
}

/** The lines that say how the bundle relates to what the gateway runs, and the refusal that fails the test (if any). */
function againstGateway(loaded: LoadedSource, gw: GatewayPolicy): { notes: string[]; refusal?: string[] } {
  if ('unknown' in gw) return { notes: [`not checked against a gateway (${gw.unknown}): secret references were checked for form only`] };
  const s = gw.status;
  const notes = [`validated as ${gw.gateway} validates a commit (policy.allowedSecrets: ${s.allowedSecrets.join(', ') || 'none'})`];
  if (s.signedCommitsOnly) notes.push('the gateway applies only commits signed by its allowed signers: sign yours (git commit -S)');
  for (const u of s.unavailable) notes.push(`the gateway cannot open "${u.connection}" (commit ${s.commit.slice(0, 12)}): ${u.lacks.join('; ')}`);
  const head = loaded.tree?.head ?? loaded.policy.commit;
  if (head && s.refused?.commit === head && (loaded.tree?.changed ?? 0) === 0) {
    return { notes, refusal: [`the gateway refused commit ${head.slice(0, 12)} (the one read here) at ${s.refused.at}:`, ...s.refused.problems.map((p) => `  ${p}`)] };
  }
  if (head && head !== s.commit) notes.push(`the gateway runs commit ${s.commit.slice(0, 12)}, not ${head.slice(0, 12)}`);
  return { notes };
}

/** `hoop policy test`: see the module documentation. */
export async function policyTest(io: CliIo, opts: PolicyTestFlags): Promise<void> {
  const say = (line: string): void => void io.stderr.write(`hoop: ${line}\n`);
  const gw: GatewayPolicy = opts.offline ? { unknown: '--offline' } : await gatewayPolicy(io, opts);
  let loaded: LoadedSource;
  try {
    loaded = await loadSource(io, opts, 'status' in gw ? gw.status.allowedSecrets : undefined);
  } catch (err) {
    if (!(err instanceof PolicyInvalidError)) throw err;
    io.stdout.write(`✗ the gateway would refuse this policy (${err.problems.length} problem${err.problems.length === 1 ? '' : 's'}):\n${err.problems.map((p) => `    ${p}\n`).join('')}`);
    throw new HoopError(ErrorCode.CONFIG_INVALID, 'the policy is invalid: no test case ran', { hint: 'fix the problems above (file:line:col), then run hoop policy test again' });
  }
  say(`testing ${loaded.what}`);
  const { notes, refusal } = againstGateway(loaded, gw);
  for (const n of notes) say(n);
  if (loaded.refused || refusal) {
    io.stdout.write(`✗ ${(refusal ?? [`the newest commit of the ref was refused: ${loaded.refused}`]).join('\n')}\n`);
    throw new HoopError(ErrorCode.CONFIG_INVALID, 'the gateway refuses this commit: no test case ran', { hint: 'fix the problems above, commit, and run hoop policy test again' });
  }
  const p = loaded.policy;
  if (p.tests.length === 0) throw new HoopError(ErrorCode.USAGE, 'the bundle has no test cases', { hint: 'add policy/tests/*.yaml with a tests: list' });
  const results = await runCases(io, p, opts, say);
  for (const r of results) {
    if (r.passed) io.stdout.write(`✓ ${r.test.name}: ${outcomeText(r)}\n`);
    else io.stdout.write(`✗ ${r.test.name} (${r.test.source}): expected ${wantedText(r)}, got ${outcomeText(r)}\n    ${r.reason}\n`);
  }
  const failed = results.filter((r) => !r.passed).length;
  io.stdout.write(`\n${results.length - failed} passed, ${failed} failed\n`);
  if (failed > 0) {
    throw new HoopError(ErrorCode.CONFIG_INVALID, `${failed} of ${results.length} policy test${results.length === 1 ? '' : 's'} failed`, {
      hint: 'fix the policy or the expectations in policy/tests/',
      exitCode: 1,
    });
  }
}

/**
 * Runs the cases. A masking case with a fixture runs on a scratch database (started only when one
 * does); one without runs on the connection through the gateway ({@link connectionMasks}).
 */
async function runCases(io: CliIo, policy: Policy, flags: PolicyTestFlags, say: (line: string) => void): Promise<PolicyTestResult[]> {
  const onConnection = async (test: PolicyTest): Promise<MaskOutcome> =>
    flags.onConnections
      ? connectionMasks(io, flags, test)
      : { error: `without a fixture, the statements would run on ${test.connection} itself: pass --on-connections to let them (never for a change you have not read: a case's SQL is its author's)` };
  if (!policy.tests.some((t) => t.fixture)) return runPolicyTests(policy, { masks: onConnection });
  const started = Date.now();
  const lab = await PolicyLab.open(io, say);
  say(`masking cases with a fixture run on a scratch PostgreSQL through the gateway's engine (ready in ${Date.now() - started} ms)`);
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
    const deadline = Date.now() + INDEXED_WITHIN_MS;
    while ((await getSession(endpoint, (await provider.current()).token, gw.sessionId).catch(() => undefined))?.endedAt === undefined) {
      if (Date.now() > deadline) return { error: `session ${gw.sessionId} was not indexed within ${INDEXED_WITHIN_MS / 1000} s` };
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

/** `hoop policy status`: see the module documentation. */
export async function policyStatus(io: CliIo, opts: GatewayFlags & { json?: boolean }): Promise<void> {
  const { status, gateway } = await withGateway(io, opts, async (endpoint, token) => ({ status: await getPolicyStatus(endpoint, await token()), gateway: endpoint.gateway }));
  if (opts.json) {
    io.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
    return;
  }
  io.stdout.write(`${statusLines(status, gateway).join('\n')}\n`);
}

/** What `status` prints. */
function statusLines(s: PolicyStatus, gateway: string): string[] {
  return [
    `gateway      ${gateway}`,
    `repo         ${s.repo} (ref ${s.ref})`,
    `in force     ${s.commit} (applied ${s.loadedAt})`,
    `signatures   ${s.signedCommitsOnly ? 'only commits signed by the allowed signers are applied' : `not required: every commit on ${s.ref} is applied`}`,
    `secrets      ${s.allowedSecrets.join(', ') || 'none admitted (a bundle naming any secret is refused)'}`,
    ...(s.unavailable.length === 0 ? ['unavailable  none'] : s.unavailable.map((u, i) => `${i === 0 ? 'unavailable ' : '            '} ${u.connection}: ${u.lacks.join('; ')}`)),
    ...(s.refused ? [`refused      ${s.refused.commit} at ${s.refused.at}:`, ...s.refused.problems.map((p) => `               ${p}`)] : ['refused      none since the gateway started']),
  ];
}
