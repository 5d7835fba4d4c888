/**
 * Access rules: deny by default; subjects, "*", emails and groups admit; the least restrictive
 * mode and the longest session among admitting rules apply.
 */
import { describe, expect, it } from 'vitest';
import { accessFor, admits } from '../../src/policy/access.js';
import { stillIncludes } from '../../src/policy/database-access.js';
import type { AccessRule, Policy } from '../../src/policy/schema.js';
import { emptyPolicy } from '../harness/policy.js';

const conn = (name: string) => ({
  name,
  type: 'postgres' as const,
  host: 'h',
  port: 5432,
  database: 'd',
  user: 'u',
  password: { kind: 'env' as const, name: 'P' },
  roles: [{ user: 'u_ro', password: { kind: 'env' as const, name: 'P_RO' } }],
  databases: ['reports'],
  tls: { mode: 'prefer' as const },
  allowCleartextWithoutTls: false,
  allow: { subjects: [], emails: [], groups: [] },
});

function policy(access: Partial<AccessRule>[]): Policy {
  return emptyPolicy({
    connections: [conn('prod'), conn('staging')],
    access: access.map((a, i) => ({ name: `r${i}`, subjects: [], emails: [], groups: [], connections: ['*'], mode: 'read-only', ...a })),
  });
}

describe('accessFor', () => {
  it('denies by default', () => {
    expect(accessFor(policy([]), { subject: 'alice', groups: [] }, 'prod')).toBeUndefined();
    expect(accessFor(policy([{ groups: ['dba'] }]), { subject: 'alice', groups: ['dev'] }, 'prod')).toBeUndefined();
  });

  it('admits by subject, "*", email (case-insensitive) or group', () => {
    const who = { subject: 'alice', email: 'Alice@Example.org', groups: ['dev'] };
    expect(admits({ ...policy([{ subjects: ['alice'] }]).access[0]! }, who)).toBe(true);
    expect(accessFor(policy([{ subjects: ['*'] }]), { subject: 'anyone', groups: [] }, 'prod')).toMatchObject({ mode: 'read-only', rule: 'r0' });
    expect(accessFor(policy([{ emails: ['alice@example.org'] }]), who, 'prod')?.rule).toBe('r0');
    expect(accessFor(policy([{ groups: ['ops', 'dev'] }]), who, 'prod')?.rule).toBe('r0');
    expect(accessFor(policy([{ subjects: ['bob'] }]), who, 'prod')).toBeUndefined();
  });

  it('matches connections by name or "*", and never for an undefined connection', () => {
    const p = policy([{ subjects: ['alice'], connections: ['staging'] }]);
    expect(accessFor(p, { subject: 'alice', groups: [] }, 'staging')?.rule).toBe('r0');
    expect(accessFor(p, { subject: 'alice', groups: [] }, 'prod')).toBeUndefined();
    expect(accessFor(policy([{ subjects: ['*'] }]), { subject: 'alice', groups: [] }, 'ghost')).toBeUndefined();
  });

  it('gives the least restrictive mode and the longest session of the admitting rules', () => {
    const p = policy([
      { subjects: ['alice'], mode: 'read-only', maxSessionSeconds: 3600 },
      { groups: ['dba'], mode: 'read-write', maxSessionSeconds: 600, connections: ['prod'] },
      { groups: ['dba'], mode: 'read-write', maxSessionSeconds: 1200, connections: ['staging'] },
    ]);
    expect(accessFor(p, { subject: 'alice', groups: ['dba'] }, 'prod')).toEqual({
      mode: 'read-write',
      rule: 'r1',
      maxSessionSeconds: 3600,
      rules: ['r0', 'r1'],
      limits: {},
      maxSessions: 32,
      databaseAccess: { roles: ['u'], databases: ['d'] },
    });
    expect(accessFor(p, { subject: 'alice', groups: [] }, 'prod')).toEqual({
      mode: 'read-only',
      rule: 'r0',
      maxSessionSeconds: 3600,
      rules: ['r0'],
      limits: {},
      maxSessions: 32,
      databaseAccess: { roles: ['u'], databases: ['d'] },
    });
    const unlimited = policy([{ subjects: ['alice'], maxSessionSeconds: 60 }, { groups: ['dev'] }]);
    expect(accessFor(unlimited, { subject: 'alice', groups: ['dev'] }, 'prod')).toEqual({
      mode: 'read-only',
      rule: 'r0',
      rules: ['r0', 'r1'],
      limits: {},
      maxSessions: 32,
      databaseAccess: { roles: ['u'], databases: ['d'] },
    });
  });

  it("gives the database roles and databases of every admitting rule, the connection's own first; a rule that lists none gives the connection's own", () => {
    const p = policy([
      { subjects: ['alice'], roles: ['u_ro'], databases: ['reports'] },
      { groups: ['dba'], roles: ['u', 'u_ro'] },
      { groups: ['odd'], roles: ['nobody-here'], databases: ['elsewhere'] },
    ]);
    expect(accessFor(p, { subject: 'alice', groups: [] }, 'prod')?.databaseAccess).toEqual({ roles: ['u_ro'], databases: ['reports'] });
    expect(accessFor(p, { subject: 'alice', groups: ['dba'] }, 'prod')?.databaseAccess).toEqual({ roles: ['u', 'u_ro'], databases: ['d', 'reports'] });
    // Only the rules that give the mode: a read-only rule's role is not used read-write.
    const modes = policy([
      { groups: ['audit'], roles: ['u_ro'], mode: 'read-only' },
      { groups: ['dev'], mode: 'read-write' },
    ]);
    expect(accessFor(modes, { subject: 'dan', groups: ['audit', 'dev'] }, 'prod')?.databaseAccess).toEqual({ roles: ['u'], databases: ['d'] });
    // A requestable rule's roles while its grant is what the access rests on; a standing rule of the same mode keeps only its own.
    const jit = policy([
      { groups: ['dev'], roles: ['u'] },
      { groups: ['dev'], roles: ['u_ro'], requestable: true },
    ]);
    const grant = [{ rule: 'r1', connection: 'prod', mode: 'read-only' as const, until: Date.now() + 60_000, request: 'q1' }];
    expect(accessFor(jit, { subject: 'eve', groups: ['dev'] }, 'prod', grant)?.databaseAccess).toEqual({ roles: ['u'], databases: ['d'] });
    const onlyJit = policy([{ groups: ['dev'], roles: ['u_ro'], requestable: true }]);
    expect(accessFor(onlyJit, { subject: 'eve', groups: ['dev'] }, 'prod', [{ ...grant[0]!, rule: 'r0' }])).toMatchObject({ until: grant[0]!.until, databaseAccess: { roles: ['u_ro'] } });
    // A role or database the connection does not hold is never given (a rule over "*" may name one another connection has).
    expect(accessFor(p, { subject: 'carol', groups: ['odd'] }, 'prod')?.databaseAccess).toEqual({ roles: [], databases: [] });
  });

  it('gives the most sessions at once of the admitting rules, each 32 unless it says', () => {
    const p = policy([{ subjects: ['alice'], maxSessions: 5 }, { groups: ['pool'], maxSessions: 400 }, { groups: ['dev'] }]);
    expect(accessFor(p, { subject: 'alice', groups: [] }, 'prod')?.maxSessions).toBe(5);
    expect(accessFor(p, { subject: 'alice', groups: ['pool'] }, 'prod')?.maxSessions).toBe(400);
    expect(accessFor(p, { subject: 'alice', groups: ['dev'] }, 'prod')?.maxSessions).toBe(32);
  });

  it('gives the longest server timeouts of the admitting rules; one without a limit lifts it', () => {
    const p = policy([
      { subjects: ['alice'], limits: { statement_timeout: 10_000, lock_timeout: 1000 } },
      { groups: ['dba'], limits: { statement_timeout: 60_000 } },
    ]);
    expect(accessFor(p, { subject: 'alice', groups: [] }, 'prod')?.limits).toEqual({ statement_timeout: 10_000, lock_timeout: 1000 });
    expect(accessFor(p, { subject: 'alice', groups: ['dba'] }, 'prod')?.limits).toEqual({ statement_timeout: 60_000 });
  });
});

describe('temporary access', () => {
  it("a requestable rule admits only through a live grant for it, and a granted mode keeps its own rule's limits", () => {
    const p = policy([
      { subjects: ['alice'], mode: 'read-only' },
      { subjects: ['alice'], mode: 'read-write', maxSessionSeconds: 600, limits: { statement_timeout: 5000 }, requestable: true },
    ]);
    const who = { subject: 'alice', groups: [] };
    expect(accessFor(p, who, 'prod')).toMatchObject({ mode: 'read-only', rule: 'r0' });
    const now = Date.now();
    const grant = { rule: 'r1', connection: 'prod', mode: 'read-write' as const, until: now + 60_000, request: 'rv-1' };
    expect(accessFor(p, who, 'prod', [grant], now)).toMatchObject({ mode: 'read-write', rule: 'r1', maxSessionSeconds: 600, limits: { statement_timeout: 5000 }, until: grant.until, request: 'rv-1' });
    expect(accessFor(p, who, 'prod', [{ ...grant, until: now - 1 }], now)).toMatchObject({ mode: 'read-only' });
    expect(accessFor(p, who, 'prod', [{ ...grant, connection: 'other' }], now)).toMatchObject({ mode: 'read-only' });
    expect(accessFor(p, who, 'prod', [{ ...grant, mode: 'read-only' }], now)).toMatchObject({ mode: 'read-only', rule: 'r0' });
    // Of two grants, the one that lasts longest.
    const later = { ...grant, until: now + 120_000, request: 'rv-2' };
    expect(accessFor(p, who, 'prod', [grant, later], now)).toMatchObject({ until: later.until, request: 'rv-2' });
  });

  it('a renewed token keeps a session only while its access still allows every role and database it did', () => {
    expect(stillIncludes({ roles: ['u', 'u_ro'], databases: ['d'] }, { roles: ['u'], databases: ['d'] })).toBe(true);
    expect(stillIncludes({ roles: ['u'], databases: ['d'] }, { roles: ['u', 'u_ro'], databases: ['d'] })).toBe(false);
    expect(stillIncludes({ roles: ['u'], databases: ['d'] }, { roles: ['u'], databases: ['d', 'reports'] })).toBe(false);
    expect(stillIncludes(undefined, { roles: ['u'], databases: ['d'] })).toBe(false);
    expect(stillIncludes(undefined, undefined)).toBe(true);
  });
});
