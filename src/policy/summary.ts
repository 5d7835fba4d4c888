/**
 * A readable summary of a policy bundle for `hoop policy show`: commit, connections, access (every
 * field that changes what someone may do: requestable grants, row limits, session limits,
 * timeouts), statement rules and their reviewers, masking, SSH, recording, runs, alerts and tests. Secret references are shown as written
 * (`${env:NAME}`), never resolved.
 */
import type { SecretRef } from '../config/secrets.js';
import type { McpValue } from '../config/connection.js';
import type { PrincipalMatch } from './principal.js';
import type { AlertRule } from './alert-rules.js';
import { paramInfo } from './runbook-params.js';
import {
  DEFAULT_MAX_GRANT_SECONDS,
  HTTP_DEFAULTS,
  type HttpRuleMatch,
  type HttpValueMatch,
  MCP_DEFAULTS,
  RUN_DEFAULTS,
  SSH_DEFAULTS,
  type AccessRule,
  type McpRuleMatch,
  type Policy,
  type ReviewSettings,
  type RuleMatch,
  type Runbook,
  type SshRuleMatch,
} from './schema.js';

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

/** How a review is decided, as `show` says it: who, how many, how long, what else. */
function reviewText(r: Partial<ReviewSettings> | undefined): string {
  if (!r) return '';
  return [
    r.groups?.length ? `reviewed by ${r.groups.join(',')}` : '',
    r.approvals !== undefined ? `${r.approvals} approval${r.approvals === 1 ? '' : 's'}` : '',
    r.timeoutMs !== undefined ? `held ${duration(r.timeoutMs / 1000)}` : '',
    r.selfApprove ? 'self-approval allowed' : '',
    r.windowMs ? `approval covers the same shape for ${duration(r.windowMs / 1000)}` : '',
    r.service ? `service ${r.service.name} first` : '',
    r.notify?.length ? `notifies ${r.notify.length} webhook${r.notify.length === 1 ? '' : 's'}` : '',
  ]
    .filter(Boolean)
    .join(', ');
}

/** A write's row limit, as `show` says it. */
function rowLimitText(o: { maxAffectedRows?: number; overLimit?: 'deny' | 'review' }): string {
  return o.maxAffectedRows !== undefined ? `writes over ${o.maxAffectedRows} rows ${o.overLimit === 'review' ? 'held for review' : 'refused'} (rolled back)` : '';
}

/** One access rule: whom it admits, to what, how, for how long, under which limits and conditions. */
function accessRow(a: AccessRule): string[] {
  const who = [
    a.subjects.length ? `subjects ${a.subjects.join(',')}` : '',
    a.emails.length ? `emails ${a.emails.join(',')}` : '',
    a.groups.length ? `groups ${a.groups.join(',')}` : '',
    ...principalText(a),
  ].filter(Boolean);
  const limits = Object.entries(a.limits ?? {}).map(([setting, ms]) => `${setting} ${ms % 1000 === 0 ? duration(ms / 1000) : `${ms}ms`}`);
  const grant = a.requestable
    ? `REQUESTABLE: admits nobody until a request is approved, for at most ${duration(a.maxGrantSeconds ?? DEFAULT_MAX_GRANT_SECONDS)}${a.review ? ` (${reviewText(a.review)})` : ''}`
    : 'standing';
  return [
    a.name,
    a.mode,
    `on ${a.connections.join(',')}`,
    who.join('; ') || 'nobody',
    [
      grant,
      a.maxSessionSeconds !== undefined ? `sessions up to ${duration(a.maxSessionSeconds)}` : 'no session limit',
      a.maxSessions !== undefined ? `at most ${a.maxSessions} open sessions` : '',
      rowLimitText(a),
      ...limits,
    ]
      .filter(Boolean)
      .join('; '),
  ];
}

/** An HTTP rule's match, as `show` says it. */
/** Whom and where a rule of a section is for, as `show` says it. */
function scopeText(m: { connections?: string[]; subjects?: string[]; groups?: string[] } & PrincipalMatch): string[] {
  return [m.connections ? `connections ${m.connections.join(',')}` : '', m.subjects ? `subjects ${m.subjects.join(',')}` : '', m.groups ? `groups ${m.groups.join(',')}` : '', ...principalText(m)];
}

/** Matchers of values by name (an MCP call's arguments, an HTTP request's parameters, headers, body fields), as `show` says them after `what`; '' when none. */
function valuesText(what: string, rec: Record<string, HttpValueMatch> | undefined): string {
  const said = Object.entries(rec ?? {}).map(([k, v]) => `${k} ${'equals' in v ? `= ${JSON.stringify(v.equals)}` : v.globs.join(',')}`);
  return said.length ? `${what} ${said.join('; ')}` : '';
}

function httpMatchText(m: HttpRuleMatch): string {
  const parts = [
    m.methods ? m.methods.join(',') : '',
    m.paths ? `paths ${m.paths.join(',')}` : '',
    valuesText('query', m.query),
    valuesText('headers', m.headers),
    valuesText('body', m.body),
    ...scopeText(m),
  ].filter(Boolean);
  return parts.join('; ') || 'every request';
}

/** An MCP rule's match, as `show` says it. */
function mcpMatchText(m: McpRuleMatch): string {
  const parts = [
    m.tools ? `tools ${m.tools.join(',')}` : '',
    m.resources ? `resources ${m.resources.join(',')}` : '',
    m.prompts ? `prompts ${m.prompts.join(',')}` : '',
    valuesText('arguments', m.arguments),
    ...scopeText(m),
  ].filter(Boolean);
  return parts.join('; ') || 'every call, read and prompt';
}

/** An SSH rule's match, as `show` says it. */
function sshMatchText(m: SshRuleMatch): string {
  const parts = [
    m.shell ? 'shells' : '',
    m.commands ? `commands ${m.commands.join(',')}` : '',
    m.patterns ? `patterns ${m.patterns.map((p) => `/${p}/`).join(',')}` : '',
    m.shellSyntax ? 'the whole line, shell syntax and all' : '',
    ...scopeText(m),
  ].filter(Boolean);
  return parts.join('; ') || 'every command';
}

/** An alert rule, as `show` says it. */
function alertRow(a: AlertRule): string[] {
  const usual = a.usual
    ? ` outside ${String(Math.floor(a.usual.fromMin / 60)).padStart(2, '0')}:${String(a.usual.fromMin % 60).padStart(2, '0')}-${String(Math.floor(a.usual.toMin / 60)).padStart(2, '0')}:${String(a.usual.toMin % 60).padStart(2, '0')} ${a.usual.timeZone}`
    : '';
  return [
    a.name,
    `${a.event}${a.table ? ` of ${a.table}` : ''}${usual}`,
    `${a.count} within ${duration(a.withinMs / 1000)} per ${a.per}${a.connections ? ` on ${a.connections.join(',')}` : ''}`,
    [a.suspend ? 'SUSPENDS until cleared' : 'notifies only', a.clearedBy.length ? `cleared by ${a.clearedBy.join(',')}` : 'cleared by auditors', a.notify.length ? `${a.notify.length} webhook(s)` : '']
      .filter(Boolean)
      .join('; '),
  ];
}

/** An MCP connection's environment or headers: each name, its secret's reference (never a value). */
function mcpValuesText(values: Record<string, McpValue> | undefined): string {
  return Object.entries(values ?? {})
    .map(([k, v]) => ('secret' in v ? `${k}=${ref(v.secret)}` : k))
    .join(' ');
}

/** The summary text, one section per part of the bundle, every field that changes what someone may do; `source` says where it came from. */
export function describePolicy(policy: Policy, source: string): string {
  const out: string[] = [];
  out.push(`policy  ${policy.commit ? `commit ${policy.commit}` : 'working tree'} (${source})`);
  out.push('', `connections (${policy.connections.length})`);
  out.push(
    ...table(
      policy.connections.map((c) => [
        ...(c.type === 'mcp'
          ? [c.name, c.command ? `mcp stdio ${c.command.join(' ')}` : `mcp ${c.url}`, mcpValuesText(c.env ?? c.headers), '']
          : c.type === 'http'
            ? [
                c.name,
                `http ${c.url}`,
                c.credential ? `${c.credential.kind} ${ref('token' in c.credential ? c.credential.token : 'password' in c.credential ? c.credential.password : c.credential.value)}` : 'no credential',
                c.tls.caFile ? `tls ca ${c.tls.caFile}` : '',
              ]
            : c.type === 'ssh'
              ? [c.name, `ssh ${c.user}@${c.host}:${c.port}`, c.privateKey ? `key ${ref(c.privateKey)}` : `password ${ref(c.password!)}`, `host keys ${c.hostKeys.join(' ')}`]
              : [
                  c.name,
                  `${c.type} ${c.user}@${c.host}:${c.port}/${c.database}`,
                  `password ${ref(c.password)}`,
                  `tls ${c.tls.mode}${c.tls.caFile ? ` ca ${c.tls.caFile}` : ''}${c.tls.serverName ? ` name ${c.tls.serverName}` : ''}${c.type === 'postgres' && c.allowCleartextWithoutTls ? '; cleartext password without TLS allowed' : ''}`,
                ]),
        c.unavailable ? `UNAVAILABLE here: ${c.unavailable.join('; ')}` : '',
      ]),
    ),
  );
  out.push('', `access (${policy.access.length}; deny by default)`);
  out.push(...table(policy.access.map(accessRow)));
  out.push('', `statements (${policy.statements.rules.length} rules; unparseable SQL: ${policy.statements.unparseable}; most restrictive match wins)`);
  out.push(
    ...table(
      policy.statements.rules.map((r) => [r.name, r.action, matchText(r.match), [reviewText(r.review), rowLimitText(r)].filter(Boolean).join('; '), r.message ? JSON.stringify(r.message) : '']),
    ),
  );
  for (const r of policy.statements.reviewers ?? []) out.push(`  reviewers${r.connections ? ` on ${r.connections.join(',')}` : ''}: ${reviewText(r) || 'defaults'}`);
  const m = policy.masking;
  out.push('', `masking (key ${m.key ? ref(m.key) : 'none'}; derived values: ${m.derived})`);
  out.push(
    ...table([
      ...m.columns.map((c) => ['column', `${c.table}.${c.column}`, c.strategy, principalText(c).join('; ')]),
      ...m.names.map((n) => ['name', `/${n.pattern}/i`, n.strategy, principalText(n).join('; ')]),
      ...m.detectors.map((d) => ['detector', d.detector, d.strategy, principalText(d).join('; ')]),
    ]),
  );
  const ssh = policy.ssh ?? SSH_DEFAULTS;
  out.push(
    '',
    `ssh (shells and commands: ${ssh.default} unless a rule says otherwise; sftp ${ssh.sftp}; forwarding ${ssh.forwarding.length ? `to ${ssh.forwarding.join(',')}` : 'refused'}; client variables ${ssh.env.join(',') || 'none'})`,
  );
  out.push(...table(ssh.rules.map((r) => [r.name, r.action, sshMatchText(r.match), reviewText(r.review), r.message ? JSON.stringify(r.message) : ''])));
  const mcp = policy.mcp ?? MCP_DEFAULTS;
  out.push('', `mcp (tool calls, resources and prompts: ${mcp.default} unless a rule says otherwise; the server may ask the agent for ${mcp.serverRequests.join(',') || 'nothing'})`);
  out.push(...table(mcp.rules.map((r) => [r.name, r.action, mcpMatchText(r.match), reviewText(r.review), r.message ? JSON.stringify(r.message) : ''])));
  const http = policy.http ?? HTTP_DEFAULTS;
  // Said only when it says something, or some connection is of type http.
  if (http.rules.length > 0 || http.default !== HTTP_DEFAULTS.default || http.unmasked.length > 0 || http.requestsPerMinute !== undefined || policy.connections.some((c) => c.type === 'http')) {
    out.push('', `http (requests: ${http.default} unless a rule says otherwise; read-only access runs GET, HEAD and OPTIONS only)`);
    out.push(...table(http.rules.map((r) => [r.name, r.action, httpMatchText(r.match), reviewText(r.review), r.message ? JSON.stringify(r.message) : ''])));
    out.push(`  responses where masking applies: JSON, NDJSON and event streams masked${http.unmasked.length ? `; ${http.unmasked.join(', ')} unmasked` : ''}; other types refused`);
    out.push(`  request bodies up to ${http.maxRequestBytes} bytes${http.requestsPerMinute !== undefined ? `; ${http.requestsPerMinute} requests a minute per identity and connection` : ''}`);
  }
  const r = policy.recording;
  out.push(
    '',
    `recording  results ${r.results}, row cap ${r.rowCap}, on failure ${r.onFailure}${r.sshInput ? `, ssh input ${r.sshInput}` : ''}${r.retentionDays !== undefined ? `, kept ${r.retentionDays} days` : ''}${r.auditors.length ? `, auditors ${r.auditors.join(',')}` : ''}`,
  );
  const runs = policy.runs ?? RUN_DEFAULTS;
  out.push(
    `runs       at most ${duration(runs.maxSeconds)}, ended after ${duration(runs.heartbeatTimeoutMs / 1000)} without a heartbeat; ${runs.requireIsolation ? 'a command not contained is refused' : 'contained or not'}`,
  );
  if (policy.reviews?.requireSignInWithinMs !== undefined) out.push(`reviews    decisions need a sign-in within ${duration(policy.reviews.requireSignInWithinMs / 1000)}`);
  const alerts = policy.alerts ?? [];
  out.push('', `alerts (${alerts.length})`, ...table(alerts.map(alertRow)));
  if (policy.runbooks) out.push('', `runbooks (${policy.runbooks.length}; running them is not built yet)`, ...table(policy.runbooks.map(runbookRow)));
  out.push('', `tests  ${policy.tests.length} case${policy.tests.length === 1 ? '' : 's'}`);
  return `${out.join('\n')}\n`;
}

/** A runbook as `show` says it: name, connection, steps, parameters, who may run it, its review. */
function runbookRow(r: Runbook): string[] {
  const who = r.run.map((g) => [...(g.subjects ? [`subjects ${g.subjects.join(',')}`] : []), ...(g.groups ? [`groups ${g.groups.join(',')}`] : []), ...principalText(g)].join('; ') || 'anyone');
  const steps = `${r.steps.length} ${r.steps[0]!.kind} step${r.steps.length === 1 ? '' : 's'}`;
  return [r.name, r.connection, steps, `(${r.params.specs.map((p) => `${p.name}: ${p.type}`).join(', ')})`, `run by ${who.join(' | ')}`, r.review ? reviewText(r.review) || 'reviewed' : 'no review'];
}

/** The bundle as JSON-safe data (CA certificates as file names, patterns as strings, runbooks' parameters as declared). */
export function policyAsJson(policy: Policy): unknown {
  return {
    ...policy,
    ...(policy.runbooks ? { runbooks: policy.runbooks.map((r) => ({ ...r, params: r.params.specs.map(paramInfo) })) } : {}),
    connections: policy.connections.map(({ allow: _allow, ...c }) => {
      if (c.type === 'ssh' || c.type === 'mcp') return c;
      const { ca: _ca, ...tls } = c.tls;
      return { ...c, tls };
    }),
    masking: { ...policy.masking, names: policy.masking.names.map(({ regex: _r, ...n }) => n) },
  };
}
