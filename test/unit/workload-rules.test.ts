/**
 * Workload claim rules: glob matching, claim lookup (nested, dotted keys), subject templates,
 * and how several rules combine.
 */
import { describe, expect, it } from 'vitest';
import type { WorkloadRule } from '../../src/gateway/config/config.js';
import { globMatches } from '../../src/glob.js';
import { applyWorkloadRules, parseSubjectTemplate, readClaim, renderSubjectTemplate, ruleMatches } from '../../src/gateway/config/workload-rules.js';

describe('globMatches', () => {
  it('matches exact values and * runs, anchored at both ends', () => {
    const cases: Array<[string, string, boolean]> = [
      ['acme/api', 'acme/api', true],
      ['acme/api', 'acme/api2', false],
      ['acme/api', 'xacme/api', false],
      ['acme/*', 'acme/api', true],
      ['acme/*', 'acme/', true],
      ['acme/*', 'acme', false],
      ['*', '', true],
      ['*', 'anything/at/all', true],
      ['refs/heads/*', 'refs/heads/feature/x', true],
      ['refs/*/main', 'refs/heads/main', true],
      ['refs/*/main', 'refs/heads/mainx', false],
      ['*main*', 'refs/heads/main', true],
      ['a*b*c', 'aXbYc', true],
      ['a*b*c', 'aXbY', false],
      ['a**c', 'ac', true],
      ['a.c', 'abc', false],
      ['[ab]', 'a', false],
      ['?', 'a', false],
      ['ACME/*', 'acme/api', false],
    ];
    for (const [p, v, want] of cases) expect(globMatches(p, v), `${p} ~ ${v}`).toBe(want);
  });

  it('answers on patterns that make backtracking regexes explode (a backtracking match would not end; how fast: test/perf/parsing-speed.test.ts)', () => {
    const value = `${'a'.repeat(20_000)}b`;
    expect(globMatches('*a*a*a*a*a*a*c', value)).toBe(false);
    expect(globMatches('*a*a*a*a*a*a*b', value)).toBe(true);
  });
});

describe('readClaim', () => {
  const claims = {
    sub: 'system:serviceaccount:ci:runner',
    'kubernetes.io': { namespace: 'ci', serviceaccount: { name: 'runner' } },
    realm_access: { roles: ['a'] },
    'a.b': 'flat',
  };
  it('finds exact, nested and dotted-key claims', () => {
    expect(readClaim(claims, 'sub')).toBe('system:serviceaccount:ci:runner');
    expect(readClaim(claims, 'kubernetes.io.namespace')).toBe('ci');
    expect(readClaim(claims, 'kubernetes.io.serviceaccount.name')).toBe('runner');
    expect(readClaim(claims, 'realm_access.roles')).toEqual(['a']);
    expect(readClaim(claims, 'a.b')).toBe('flat');
    expect(readClaim(claims, 'kubernetes.io.nope')).toBeUndefined();
    expect(readClaim(claims, 'toString')).toBeUndefined();
    expect(readClaim(claims, '__proto__')).toBeUndefined();
  });
});

describe('subject templates', () => {
  it('parse, or say what is wrong', () => {
    expect(parseSubjectTemplate('ci:{repository}@{ref}')).toEqual({ parts: [{ text: 'ci:' }, { claim: 'repository' }, { text: '@' }, { claim: 'ref' }] });
    expect(parseSubjectTemplate('{sub}')).toEqual({ parts: [{ claim: 'sub' }] });
    expect(parseSubjectTemplate('ci:{repo')).toEqual({ problem: 'has a "{" without its "}" at position 4' });
    expect(parseSubjectTemplate('ci:{a{b}}')).toEqual({ problem: 'has a "{" without its "}" at position 4' });
    expect(parseSubjectTemplate('ci:}')).toEqual({ problem: 'has a "}" without its "{" at position 4' });
    expect(parseSubjectTemplate('ci:{ }')).toEqual({ problem: 'has an empty claim name "{}" at position 4' });
    expect('problem' in parseSubjectTemplate('fixed')).toBe(true);
  });

  it('render scalar claims; a missing or non-scalar claim renders nothing', () => {
    const claims = { repository: 'acme/api', run: 7, nested: { x: 'y' }, list: ['a'] };
    expect(renderSubjectTemplate('ci:{repository}#{run}', claims)).toBe('ci:acme/api#7');
    expect(renderSubjectTemplate('{nested.x}', claims)).toBe('y');
    expect(renderSubjectTemplate('ci:{missing}', claims)).toBeUndefined();
    expect(renderSubjectTemplate('ci:{list}', claims)).toBeUndefined();
    expect(renderSubjectTemplate('ci:{nested}', claims)).toBeUndefined();
  });
});

describe('rules', () => {
  const github = {
    sub: 'repo:acme/api:ref:refs/heads/main',
    repository: 'acme/api',
    repository_owner: 'acme',
    ref: 'refs/heads/main',
    run_attempt: '1',
    environment: 'prod',
  };
  const rule = (claims: Record<string, string>, groups: string[] = [], subject?: string): WorkloadRule => ({ claims, groups, ...(subject ? { subject } : {}) });

  it('a rule matches only when every claim it lists matches', () => {
    expect(ruleMatches(rule({ repository: 'acme/api', ref: 'refs/heads/main' }), github)).toBe(true);
    expect(ruleMatches(rule({ repository: 'acme/api', ref: 'refs/heads/dev' }), github)).toBe(false);
    expect(ruleMatches(rule({ repository: 'acme/*', environment: '*' }), github)).toBe(true);
    expect(ruleMatches(rule({ repository: 'acme/*', workflow: '*' }), github)).toBe(false);
    expect(ruleMatches(rule({}), github)).toBe(false);
    expect(ruleMatches(rule({ run_attempt: '1' }), { ...github, run_attempt: 1 })).toBe(true);
    expect(ruleMatches(rule({ fork: 'false' }), { fork: false })).toBe(true);
    expect(ruleMatches(rule({ repository: '*' }), { repository: ['acme/api'] })).toBe(false);
  });

  it('subject from the first matching rule, groups of every matching rule', () => {
    const rules = [
      rule({ repository: 'other/*' }, ['nope'], 'other:{repository}'),
      rule({ repository: 'acme/api', ref: 'refs/heads/main' }, ['deployers'], 'ci:{repository}'),
      rule({ repository_owner: 'acme' }, ['acme-ci', 'deployers']),
      rule({ environment: 'prod' }, ['prod'], 'env:{environment}'),
    ];
    expect(applyWorkloadRules(rules, github, github.sub)).toEqual({ subject: 'ci:acme/api', groups: ['deployers', 'acme-ci', 'prod'] });
    expect(applyWorkloadRules(rules.slice(2), github, github.sub)).toEqual({ subject: github.sub, groups: ['acme-ci', 'deployers', 'prod'] });
    expect(applyWorkloadRules(rules.slice(0, 1), github, github.sub)).toBeUndefined();
  });

  it('a rule whose template cannot be filled does not match', () => {
    const rules = [rule({ repository: 'acme/*' }, ['a'], 'ci:{workflow}'), rule({ repository_owner: 'acme' }, ['b'])];
    expect(applyWorkloadRules(rules, github, 'fallback')).toEqual({ subject: 'fallback', groups: ['b'] });
    expect(applyWorkloadRules(rules.slice(0, 1), github, 'fallback')).toBeUndefined();
  });
});
