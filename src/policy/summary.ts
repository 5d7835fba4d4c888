/**
 * A readable summary of a policy bundle for `hoop policy show`: commit, connections, access,
 * statement rules, masking, recording and tests. Secret references are shown as written
 * (`${env:NAME}`), never resolved.
 */
import type { SecretRef } from '../config/secrets.js';
import type { PrincipalMatch } from './principal.js';
import { RUN_DEFAULTS, type Policy, type RuleMatch } from './schema.js';

function ref(r: SecretRef): string {
  return r.kind === 'env' ? `\${env:${r.name}}` : `\${file:${r.path}}`;
}

function duration(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return [h ? `${h}h` : '', m ? `${m}m` : '', s ? `${s}s` : ''].join('') || '0s';
}

function matchText(m: RuleMatch): string {
  const parts: string[] = [];
  if (m.kinds) parts.push(`kinds ${m.kinds.join(',')}`);
  if (m.tables) parts.push(`tables ${m.tables.join(',')}`);
  if (m.functions) parts.push(`functions ${m.functions.join(',')}`);
  if (m.missingWhere) parts.push('missing WHERE');
  if (m.cteDml) parts.push('DML in WITH');
  if (m.multiStatement) parts.push('several statements');
  if (m.copyTarget) parts.push(`COPY ${m.copyTarget.join(',')}`);
  if (m.connections) parts.push(`connections ${m.connections.join(',')}`);
  if (m.subjects) parts.push(`subjects ${m.subjects.join(',')}`);
  if (m.groups) parts.push(`groups ${m.groups.join(',')}`);
  parts.push(...principalText(m));
  return parts.length > 0 ? parts.join('; ') : 'every statement';
}

/** A rule's principal keys, as `hoop policy show` says them. */
function principalText(m: PrincipalMatch): string[] {
  return [
    ...(m.via ? [`via ${m.via.join(',')}`] : []),
    ...(m.agents ? [`agents ${m.agents.join(',')}`] : []),
    ...(m.isolated !== undefined ? [m.isolated ? 'contained runs' : 'runs not contained'] : []),
  ];
}

function table(rows: string[][], indent = '  '): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map(
    (row) =>
      indent +
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
  );
}

/** The summary text, one section per part of the bundle; `source` says where it came from. */
export function describePolicy(policy: Policy, source: string): string {
  const out: string[] = [];
  out.push(`policy  ${policy.commit ? `commit ${policy.commit}` : 'working tree'} (${source})`);
  out.push('', `connections (${policy.connections.length})`);
  out.push(
    ...table(
      policy.connections.map((c) =>
        c.type === 'ssh'
          ? [c.name, `ssh ${c.user}@${c.host}:${c.port}`, c.privateKey ? `key ${ref(c.privateKey)}` : `password ${ref(c.password!)}`, `host keys ${c.hostKeys.join(' ')}`]
          : [
              c.name,
              `${c.type} ${c.user}@${c.host}:${c.port}/${c.database}`,
              `password ${ref(c.password)}`,
              `tls ${c.tls.mode}${c.tls.caFile ? ` ca ${c.tls.caFile}` : ''}${c.tls.serverName ? ` name ${c.tls.serverName}` : ''}`,
            ],
      ),
    ),
  );
  out.push('', `access (${policy.access.length}; deny by default)`);
  out.push(
    ...table(
      policy.access.map((a) => {
        const who = [
          a.subjects.length ? `subjects ${a.subjects.join(',')}` : '',
          a.emails.length ? `emails ${a.emails.join(',')}` : '',
          a.groups.length ? `groups ${a.groups.join(',')}` : '',
          ...principalText(a),
        ].filter(Boolean);
        const limits = Object.entries(a.limits ?? {}).map(([setting, ms]) => `${setting} ${ms % 1000 === 0 ? duration(ms / 1000) : `${ms}ms`}`);
        return [
          a.name,
          a.mode,
          `on ${a.connections.join(',')}`,
          who.join('; '),
          [a.maxSessionSeconds !== undefined ? `max ${duration(a.maxSessionSeconds)}` : 'no session limit', ...limits].join('; '),
        ];
      }),
    ),
  );
  out.push('', `statements (${policy.statements.rules.length} rules; unparseable SQL: ${policy.statements.unparseable}; most restrictive match wins)`);
  out.push(...table(policy.statements.rules.map((r) => [r.name, r.action, matchText(r.match), r.message ? JSON.stringify(r.message) : ''])));
  const m = policy.masking;
  out.push('', `masking (key ${m.key ? ref(m.key) : 'none'}; derived values: ${m.derived})`);
  out.push(
    ...table([
      ...m.columns.map((c) => ['column', `${c.table}.${c.column}`, c.strategy, principalText(c).join('; ')]),
      ...m.names.map((n) => ['name', `/${n.pattern}/i`, n.strategy, principalText(n).join('; ')]),
      ...m.detectors.map((d) => ['detector', d.detector, d.strategy, principalText(d).join('; ')]),
    ]),
  );
  const r = policy.recording;
  out.push('', `recording  results ${r.results}, row cap ${r.rowCap}, on failure ${r.onFailure}${r.auditors.length ? `, auditors ${r.auditors.join(',')}` : ''}`);
  const runs = policy.runs ?? RUN_DEFAULTS;
  out.push(
    `runs       at most ${duration(runs.maxSeconds)}, ended after ${duration(runs.heartbeatTimeoutMs / 1000)} without a heartbeat; ${runs.requireIsolation ? 'a command not contained is refused' : 'contained or not'}`,
  );
  if (policy.reviews?.requireSignInWithinMs !== undefined) out.push(`reviews    decisions need a sign-in within ${duration(policy.reviews.requireSignInWithinMs / 1000)}`);
  out.push('', `tests  ${policy.tests.length} case${policy.tests.length === 1 ? '' : 's'}`);
  return `${out.join('\n')}\n`;
}

/** The bundle as JSON-safe data (CA certificates as file names, patterns as strings). */
export function policyAsJson(policy: Policy): unknown {
  return {
    ...policy,
    connections: policy.connections.map(({ allow: _allow, ...c }) => {
      if (c.type === 'ssh') return c;
      const { ca: _ca, ...tls } = c.tls;
      return { ...c, tls };
    }),
    masking: { ...policy.masking, names: policy.masking.names.map(({ regex: _r, ...n }) => n) },
  };
}
