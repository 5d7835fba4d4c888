/**
 * `hoop policy check "SQL"`: the decision for one statement under a bundle, as the gateway would
 * make it for the identity described (or without one, the statement rules alone), and why: exit 0
 * allow, 1 deny, 2 review.
 */
import { ErrorCode, HoopError } from '../errors.js';
import type { CliIo } from '../io.js';
import { evaluateStatement } from '../policy/evaluate.js';
import { describedPrincipal, VIAS, type Via } from '../policy/principal.js';
import { loadSource, type SourceOptions } from '../client/policy-source.js';
import { nearestName } from '../suggest.js';
import { reviewTerms } from '../text-format.js';
import { palette, printJson } from '../ui/output.js';

/** The flags of `hoop policy check`. */
export type PolicyCheckFlags = SourceOptions & { as?: string; email?: string; group: string[]; connection?: string; via?: string; agent?: string; notIsolated?: boolean; json?: boolean };

/** `hoop policy check`: see the module documentation. */
export async function policyCheck(io: CliIo, sql: string, opts: PolicyCheckFlags): Promise<void> {
  const { policy: p, what } = await loadSource(io, opts);
  let connection = opts.connection;
  if (connection === undefined) {
    // Statements go to SQL connections: the only one of those, whatever else the policy defines.
    const sqlConnections = p.connections.filter((c) => c.type === 'postgres' || c.type === 'mysql');
    if (sqlConnections.length !== 1) {
      throw new HoopError(ErrorCode.USAGE, 'which connection?', { hint: `pass --connection (one of: ${sqlConnections.map((c) => c.name).join(', ') || 'no SQL connection is defined'})` });
    }
    connection = sqlConnections[0]!.name;
  } else if (!p.connections.some((c) => c.name === connection)) {
    const names = p.connections.map((c) => c.name);
    const near = nearestName(connection, names);
    throw new HoopError(ErrorCode.USAGE, `the policy defines no connection "${connection}"${near ? `: did you mean "${near}"?` : ''}`, {
      hint: `pass --connection one of: ${names.join(', ') || 'no connection is defined'}`,
    });
  }
  if (opts.as === undefined && (opts.email !== undefined || opts.group.length > 0)) {
    throw new HoopError(ErrorCode.USAGE, '--email and --group describe the identity given with --as', { hint: 'add --as SUBJECT' });
  }
  if (opts.via !== undefined && !(VIAS as readonly string[]).includes(opts.via)) throw new HoopError(ErrorCode.USAGE, `--via must be one of ${VIAS.join(', ')}`);
  const principal = describedPrincipal({ via: opts.via as Via | undefined, agent: opts.agent, ...(opts.notIsolated ? { isolated: false } : {}) });
  if (typeof principal === 'string') throw new HoopError(ErrorCode.USAGE, principal.replace('agent and isolated', '--agent and --not-isolated').replace('via:', '--via'));
  if (opts.as === undefined && principal !== undefined) throw new HoopError(ErrorCode.USAGE, '--via and --agent describe how the identity given with --as comes', { hint: 'add --as SUBJECT' });
  const who =
    opts.as !== undefined ? { subject: opts.as, groups: opts.group, ...(opts.email !== undefined ? { email: opts.email.toLowerCase() } : {}), ...(principal ? { principal } : {}) } : undefined;
  const { access, decision } = await evaluateStatement(p, who, connection, sql);
  const accessText = who
    ? access
      ? `${access.mode} by rule "${access.rule}"${access.maxSessionSeconds !== undefined ? `, sessions up to ${access.maxSessionSeconds}s` : ''}`
      : 'none'
    : 'not checked (no --as); statement rules applied as for read-write';
  const review = decision.action === 'review' ? (decision.review ? reviewTerms(decision.review) : 'no reviewers are named, so it would be refused') : undefined;
  if (opts.json) {
    printJson(io, {
      decision: decision.action,
      rule: decision.rule ?? null,
      ...(decision.message ? { message: decision.message } : {}),
      reason: decision.reason,
      ...(review ? { review } : {}),
      access: who ? (access ?? null) : 'not checked',
      policy: p.commit ?? what,
    });
  } else {
    const lines = [
      `decision  ${palette(io).word(decision.action)}`,
      `rule      ${decision.rule ?? '(none)'}`,
      ...(decision.message ? [`message   ${decision.message}`] : []),
      `reason    ${decision.reason}`,
      ...(review ? [`review    ${review}`] : []),
      `access    ${accessText}`,
      `policy    ${p.commit ?? what}`,
    ];
    io.stdout.write(`${lines.join('\n')}\n`);
  }
  if (decision.action !== 'allow') {
    throw new HoopError(ErrorCode.ACCESS_DENIED, decision.action === 'deny' ? 'the statement would be denied' : 'the statement would need approval', {
      exitCode: decision.action === 'deny' ? 1 : 2,
    });
  }
}
