import { describe, expect, it } from 'vitest';
import { readTarget } from '../../src/http/wire/target.js';
import { type HttpAsk, HttpJudge } from '../../src/policy/http.js';
import { loadPolicyDir } from '../../src/policy/load.js';
import { PERSON } from '../../src/policy/principal.js';
import { describePolicy } from '../../src/policy/summary.js';
import { HTTP_DEFAULTS, type HttpPolicy } from '../../src/policy/schema.js';
import { policyRepos } from '../harness/policy.js';
import { Random } from '../harness/random.js';

const { repo, problemsOf } = policyRepos('hoop-policy-http-');

const who = { subject: 'alice', groups: ['eng'], principal: PERSON };
const judge = (http: Partial<HttpPolicy>, mode: 'read-only' | 'read-write' = 'read-write') =>
  new HttpJudge({ ...HTTP_DEFAULTS, ...http }, who, 'shop-api', mode, () => ({ groups: ['ops'], approvals: 1, timeoutSeconds: 60, notify: [] }) as never);

/** A request as the gateway reads it: `target` through the target reader, headers by lower-case name. */
function ask(method: string, target: string, o: { headers?: Record<string, string[]>; body?: HttpAsk['body'] } = {}): HttpAsk {
  const t = readTarget(target);
  if ('refused' in t) throw new Error(t.refused);
  return { method, segments: t.segments, query: t.query, headers: new Map(Object.entries(o.headers ?? {})), ...(o.body !== undefined ? { body: o.body } : {}) };
}

describe('the http section of a policy file', () => {
  it('loads rules by method, path, query, header and body field', async () => {
    const dir = repo(
      [
        'version: 1',
        'http:',
        '  default: deny',
        '  rules:',
        '    - { name: reads, match: { methods: [get, HEAD], paths: ["/customers/**"] }, action: allow }',
        '    - { name: refunds, match: { methods: [POST], paths: ["/orders/*/refund"], body: { amount: "*" } }, action: review, message: refunds are reviewed }',
        '    - { name: no-csv, match: { query: { format: [csv, tsv] }, headers: { X-Debug: "*" } }, action: deny }',
        '',
      ].join('\n'),
    );
    const policy = await loadPolicyDir(dir);
    expect(policy.http).toEqual({
      default: 'deny',
      unmasked: [],
      maxRequestBytes: 8 * 1024 * 1024,
      rules: [
        { name: 'reads', match: { methods: ['GET', 'HEAD'], paths: ['/customers/**'] }, action: 'allow' },
        { name: 'refunds', match: { methods: ['POST'], paths: ['/orders/*/refund'], body: { amount: { globs: ['*'] } } }, action: 'review', message: 'refunds are reviewed' },
        { name: 'no-csv', match: { query: { format: { globs: ['csv', 'tsv'] } }, headers: { 'x-debug': { globs: ['*'] } } }, action: 'deny' },
      ],
    });
  });

  it('is shown by `hoop policy show` when it says something', async () => {
    const shown = describePolicy(
      await loadPolicyDir(repo('version: 1\nhttp:\n  rules:\n    - { name: refunds, match: { methods: [post], paths: ["/orders/*/refund"], query: { dry: { equals: false } } }, action: deny }\n')),
      'test',
    );
    expect(shown).toMatch(/^http \(requests: allow unless a rule says otherwise; read-only access runs GET, HEAD and OPTIONS only\)$/m);
    expect(shown).toMatch(/refunds\s+deny\s+POST; paths \/orders\/\*\/refund; query dry = false/);
    expect(describePolicy(await loadPolicyDir(repo('version: 1\n')), 'test')).not.toMatch(/^http/m);
  });

  it('says what is wrong, where', async () => {
    const bad = (rule: string) => problemsOf(loadPolicyDir(repo(`version: 1\nhttp:\n  rules:\n    - ${rule}\n`)));
    expect((await bad('{ name: a, match: { paths: ["admin/**"] }, action: deny }')).join('\n')).toMatch(/must be a path glob starting with \//);
    expect((await bad('{ name: a, match: { methods: ["GET /x"] }, action: deny }')).join('\n')).toMatch(/must be a method name/);
    expect((await bad('{ name: a, match: { headers: { "x debug": "*" } }, action: deny }')).join('\n')).toMatch(/must be a header name/);
    expect((await bad('{ name: a, match: { bodies: {} }, action: deny }')).join('\n')).toMatch(/bodies/);
    expect((await bad('{ name: a, match: {}, action: deny, review: { approvals: 1 } }')).join('\n')).toMatch(/only for rules whose action is review/);
    expect((await problemsOf(loadPolicyDir(repo('version: 1\nhttp:\n  rules:\n    - { name: a, action: deny }\n    - { name: a, action: allow }\n')))).join('\n')).toMatch(
      /duplicate http rule name "a"/,
    );
  });
});

describe('HttpJudge', () => {
  it('denies a route whatever the case it is spelled in; an allow rule takes only the case it names', () => {
    const j = judge({
      default: 'deny',
      rules: [
        { name: 'no-admin', match: { paths: ['/admin/**'] }, action: 'deny' },
        { name: 'public', match: { paths: ['/public/**'] }, action: 'allow' },
      ],
    });
    expect(j.decide(ask('GET', '/admin/users'))).toMatchObject({ action: 'deny', rule: 'no-admin' });
    expect(j.decide(ask('GET', '/ADMIN/Users'))).toMatchObject({ action: 'deny', rule: 'no-admin' });
    expect(j.decide(ask('GET', '/%41dmin/users'))).toMatchObject({ action: 'deny', rule: 'no-admin' });
    expect(j.decide(ask('GET', '/administrator'))).toMatchObject({ action: 'deny', reason: expect.stringMatching(/no http rule matches GET \/administrator; the default is deny/) });
    expect(j.decide(ask('GET', '/public/a/b'))).toMatchObject({ action: 'allow', rule: 'public' });
    expect(j.decide(ask('GET', '/PUBLIC/a'))).toEqual({ action: 'deny', reason: 'no http rule matches GET /PUBLIC/a; the default is deny' });
  });

  it('a `*` stays in one segment, `**` crosses them; methods name methods', () => {
    const j = judge({ rules: [{ name: 'refunds', match: { methods: ['POST'], paths: ['/orders/*/refund'] }, action: 'review' }] });
    expect(j.decide(ask('POST', '/orders/42/refund'))).toMatchObject({ action: 'review', rule: 'refunds', review: { approvals: 1 } });
    expect(j.decide(ask('GET', '/orders/42/refund'))).toMatchObject({ action: 'allow' });
    expect(j.decide(ask('POST', '/orders/42/x/refund'))).toMatchObject({ action: 'allow' });
    expect(j.decide(ask('POST', '/orders/4%2F2/refund'.replace('%2F', '-')))).toMatchObject({ action: 'review' });
  });

  it('query parameters: a refusing rule meets one of a repeated parameter, by any case of its name; an allow rule needs all', () => {
    const deny = judge({ rules: [{ name: 'no-csv', match: { query: { format: { globs: ['csv'] } } }, action: 'deny' }] });
    expect(deny.decide(ask('GET', '/export?format=json&format=csv'))).toMatchObject({ action: 'deny' });
    expect(deny.decide(ask('GET', '/export?FORMAT=CSV'))).toMatchObject({ action: 'deny' });
    expect(deny.decide(ask('GET', '/export?format=c%73v'))).toMatchObject({ action: 'deny' });
    expect(deny.decide(ask('GET', '/export'))).toMatchObject({ action: 'allow' });
    const allow = judge({ default: 'deny', rules: [{ name: 'json-only', match: { query: { format: { globs: ['json'] } } }, action: 'allow' }] });
    expect(allow.decide(ask('GET', '/export?format=json'))).toMatchObject({ action: 'allow' });
    expect(allow.decide(ask('GET', '/export?format=json&format=csv'))).toMatchObject({ action: 'deny' });
    expect(allow.decide(ask('GET', '/export?format=JSON'))).toMatchObject({ action: 'deny' });
  });

  it('a refusing rule reads a parameter wherever servers merge parameters from, under every name they read it by', () => {
    const deny = judge({
      rules: [
        { name: 'no-csv', match: { query: { format: { globs: ['csv'] } } }, action: 'deny' },
        { name: 'no-vip', match: { methods: ['POST'], body: { tier: { globs: ['vip'] } } }, action: 'deny' },
      ],
    });
    const json = (value: unknown): HttpAsk['body'] => ({ json: value });
    const typed = { 'content-type': ['application/json'] };
    // A JSON body's top level (Rails' params, Laravel's input()), in any case, a list of values too.
    expect(deny.decide(ask('POST', '/export', { headers: typed, body: json({ format: 'csv' }) }))).toMatchObject({ action: 'deny', rule: 'no-csv' });
    expect(deny.decide(ask('POST', '/export', { headers: typed, body: json({ Format: ['json', 'csv'] }) }))).toMatchObject({ action: 'deny', rule: 'no-csv' });
    expect(deny.decide(ask('POST', '/export', { headers: typed, body: 'unread' }))).toMatchObject({ action: 'deny', rule: 'no-csv' });
    // A body of another type is merged by no server: the query rule does not read it (the body rule meets it: the gateway cannot read it).
    expect(deny.decide(ask('POST', '/export', { headers: { 'content-type': ['application/octet-stream'] }, body: 'unread' }))).toMatchObject({ action: 'deny', rule: 'no-vip' });
    expect(deny.decide(ask('PUT', '/export', { headers: { 'content-type': ['application/octet-stream'] }, body: 'unread' }))).toMatchObject({ action: 'allow' });
    expect(deny.decide(ask('POST', '/export', { headers: typed, body: json({ nested: { format: 'csv' } }) }))).toMatchObject({ action: 'allow' });
    // Leading blanks PHP drops from a name, and the characters it reads as `_`.
    expect(deny.decide(ask('GET', '/export?%20format=csv'))).toMatchObject({ action: 'deny', rule: 'no-csv' });
    expect(deny.decide(ask('GET', '/export?%20%20format=csv'))).toMatchObject({ action: 'deny', rule: 'no-csv' });
    // A body rule on a top-level field reads the query's parameter of that name (merged into one set of parameters).
    expect(deny.decide(ask('POST', '/orders/1?tier=vip'))).toMatchObject({ action: 'deny', rule: 'no-vip' });
    expect(deny.decide(ask('POST', '/orders/1?Tier=VIP', { headers: typed, body: json({ tier: 'std' }) }))).toMatchObject({ action: 'deny', rule: 'no-vip' });
    expect(deny.decide(ask('POST', '/orders/1?tier=std', { headers: typed, body: json({ tier: 'std' }) }))).toMatchObject({ action: 'allow' });
    // A nested field from a parameter that names it (`user[role]`, `user.role`), as qs, PHP and Rails read one.
    const nested = judge({ rules: [{ name: 'no-admin-role', match: { methods: ['PATCH'], body: { 'user.role': { globs: ['admin'] } } }, action: 'deny' }] });
    for (const t of ['/users/1?user[role]=admin', '/users/1?user.role=admin', '/users/1?User[Role]=ADMIN', '/users/1?user[role][]=admin'])
      expect(nested.decide(ask('PATCH', t)), t).toMatchObject({ action: 'deny', rule: 'no-admin-role' });
    expect(nested.decide(ask('PATCH', '/users/1?user[name]=admin'))).toMatchObject({ action: 'allow' });
    // A body that does not say it is JSON (NDJSON) is merged by no server: a query rule does not meet it unread.
    expect(deny.decide(ask('PUT', '/_bulk', { headers: { 'content-type': ['application/x-ndjson'] }, body: 'unread' }))).toMatchObject({ action: 'allow' });
    // An allow rule is not widened: it takes only what it names, where it names it.
    const allow = judge({ default: 'deny', rules: [{ name: 'json-only', match: { query: { format: { globs: ['json'] } } }, action: 'allow' }] });
    expect(allow.decide(ask('POST', '/export', { headers: typed, body: json({ format: 'json' }) }))).toMatchObject({ action: 'deny' });
  });

  it('headers and JSON body fields, with equals; a body the gateway cannot read meets only refusing rules', () => {
    const j = judge({
      default: 'deny',
      rules: [
        { name: 'no-debug', match: { headers: { 'x-debug': { globs: ['*'] } } }, action: 'deny' },
        { name: 'no-admin-role', match: { methods: ['PATCH'], body: { 'user.role': { globs: ['admin'] } } }, action: 'deny' },
        { name: 'small-refunds', match: { methods: ['PATCH'], body: { 'user.role': { equals: 'clerk' } } }, action: 'allow' },
      ],
    });
    expect(j.decide(ask('GET', '/x', { headers: { 'x-debug': ['1'] } }))).toMatchObject({ action: 'deny', rule: 'no-debug' });
    expect(j.decide(ask('PATCH', '/users/1', { body: { json: { user: { role: 'Admin' } } } }))).toMatchObject({ action: 'deny', rule: 'no-admin-role' });
    expect(j.decide(ask('PATCH', '/users/1', { body: { json: { user: { role: ['clerk', 'admin'] } } } }))).toMatchObject({ action: 'deny', rule: 'no-admin-role' });
    expect(j.decide(ask('PATCH', '/users/1', { body: { json: { user: { role: 'clerk' } } } }))).toMatchObject({ action: 'allow', rule: 'small-refunds' });
    expect(j.decide(ask('PATCH', '/users/1', { body: 'unread' }))).toMatchObject({ action: 'deny', rule: 'no-admin-role' });
    expect(j.decide(ask('PATCH', '/users/1', { body: { json: { user: {} } } }))).toEqual({ action: 'deny', reason: 'no http rule matches PATCH /users/1; the default is deny' });
  });

  it('read-only access runs GET, HEAD and OPTIONS only, whatever the rules allow', () => {
    const j = judge({ rules: [{ name: 'all', match: {}, action: 'allow' }] }, 'read-only');
    for (const m of ['GET', 'HEAD', 'OPTIONS']) expect(j.decide(ask(m, '/orders'))).toMatchObject({ action: 'allow' });
    for (const m of ['POST', 'PUT', 'PATCH', 'DELETE', 'PROPFIND']) expect(j.decide(ask(m, '/orders'))).toMatchObject({ action: 'deny', rule: 'hoop:read-only-access' });
  });
});

describe('a denied route under generated spellings', () => {
  it('is denied whenever the target, as WHATWG URL parsing reads it, reaches it; or the target is refused', () => {
    const j = judge({ rules: [{ name: 'no-admin', match: { paths: ['/admin/**', '/admin'] }, action: 'deny' }] });
    const pieces = ['/', '//', 'admin', 'ADMIN', '%61dmin', 'Adm%49n', '.', '..', '%2e', '%2E%2E', 'x', '%2f', ';', '%20', '%00', 'users'];
    const random = new Random(7);
    let reached = 0;
    for (let i = 0; i < 20_000; i++) {
      let target = '/';
      for (let k = random.int(6); k >= 0; k--) target += pieces[random.int(pieces.length)];
      const t = readTarget(target);
      let route: string;
      try {
        route = new URL(target, 'http://gateway.test').pathname.split('/').map(decodeURIComponent).join('/').toLowerCase();
      } catch {
        continue;
      }
      if (!/^\/admin(\/|$)/.test(route)) continue;
      reached++;
      if ('refused' in t) continue;
      expect(j.decide({ method: 'GET', segments: t.segments, query: t.query, headers: new Map() }), target).toMatchObject({ action: 'deny' });
    }
    expect(reached).toBeGreaterThan(500);
  });
});
