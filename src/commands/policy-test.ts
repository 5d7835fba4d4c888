/**
 * `hoop policy test` and `hoop policy status` (./policy.ts registers them).
 *
 * `test` says what it reads (a working tree and the commit it is on, or a pulled commit), validates
 * it as the gateway validates a commit (its `policy.allowedSecrets`, from `GET /v1/policy`), fails
 * with the gateway's own problems when the gateway refused the commit the tree is on, then runs the
 * cases: decisions and alerts in the policy engine, SSH requests in the SSH judge, `masked:` cases
 * on a scratch database through the gateway's PostgreSQL engine (../client/policy-cases.ts).
 *
 * `status` shows what the gateway says: the commit in force, the repo and ref it follows, the
 * secret references it admits, the connections it cannot open, and the last commit it refused.
 */
import { getPolicyStatus } from '../api-client/policy.js';
import type { PolicyStatus } from '../api/answers.js';
import { withGateway, type GatewayFlags } from '../client/client-config.js';
import { type PolicyCasesFlags, runPolicyCases } from '../client/policy-cases.js';
import { againstGateway, gatewayPolicy, loadSource, type GatewayPolicy, type LoadedSource, type SourceOptions } from '../client/policy-source.js';
import { ErrorCode, HoopError, hoopSays } from '../errors.js';
import type { CliIo } from '../io.js';
import type { PolicyTestResult } from '../policy/evaluate.js';
import { PolicyInvalidError } from '../policy/load.js';
import { palette, printJson } from '../ui/output.js';

/** The flags of `hoop policy test`. */
export type PolicyTestFlags = SourceOptions & PolicyCasesFlags & { offline?: boolean; json?: boolean };

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

/** `hoop policy test`: see the module documentation. */
export async function policyTest(io: CliIo, opts: PolicyTestFlags): Promise<void> {
  const say = (line: string): void => void io.stderr.write(`${hoopSays(line)}\n`);
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
  const results = await runPolicyCases(io, p, opts, say);
  const failed = results.filter((r) => !r.passed).length;
  if (opts.json) {
    const cases = results.map((r) => ({ name: r.test.name, source: r.test.source, passed: r.passed, expected: wantedText(r), got: outcomeText(r), ...(r.passed ? {} : { reason: r.reason }) }));
    printJson(io, { policy: loaded.what, passed: results.length - failed, failed, cases });
  } else {
    const paint = palette(io);
    for (const r of results) {
      if (r.passed) io.stdout.write(`${paint.good('✓')} ${r.test.name}: ${outcomeText(r)}\n`);
      else io.stdout.write(`${paint.bad('✗')} ${r.test.name} (${r.test.source}): expected ${wantedText(r)}, got ${outcomeText(r)}\n    ${r.reason}\n`);
    }
    io.stdout.write(`\n${results.length - failed} passed, ${failed === 0 ? '0 failed' : paint.bad(`${failed} failed`)}\n`);
  }
  if (failed > 0) {
    throw new HoopError(ErrorCode.CONFIG_INVALID, `${failed} of ${results.length} policy test${results.length === 1 ? '' : 's'} failed`, {
      hint: 'fix the policy or the expectations in policy/tests/',
      exitCode: 1,
    });
  }
}

/** `hoop policy status`: see the module documentation. */
export async function policyStatus(io: CliIo, opts: GatewayFlags & { json?: boolean }): Promise<void> {
  const { status, gateway } = await withGateway(io, opts, async (endpoint, token) => ({ status: await getPolicyStatus(endpoint, await token()), gateway: endpoint.gateway }));
  if (opts.json) {
    printJson(io, status);
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
