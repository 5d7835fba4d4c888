/**
 * A request's body as the judge reads it: JSON declared as JSON, read; anything the gateway cannot
 * be sure the upstream reads the same (another type, a coding, too large, not JSON, a key written
 * twice) unread, which only refusing rules meet.
 */
import { describe, expect, it } from 'vitest';
import { judgedBody, MAX_JUDGED_BODY_BYTES } from '../../src/http/pipeline/request-body.js';
import { HttpJudge } from '../../src/policy/http.js';
import { PERSON } from '../../src/policy/principal.js';

const json: Array<[string, string]> = [['content-type', 'application/json; charset=utf-8']];
const body = (text: string): Buffer => Buffer.from(text);

describe('judgedBody', () => {
  it('reads JSON declared as JSON', () => {
    expect(judgedBody(json, body('{"user":{"role":"clerk"},"n":[1,2]}'))).toEqual({ json: { user: { role: 'clerk' }, n: [1, 2] } });
    expect(judgedBody([['content-type', 'application/merge-patch+json']], body('{"a":1}'))).toEqual({ json: { a: 1 } });
    expect(judgedBody(json, body('{"id":12345678901234567890}'))).toMatchObject({ json: { id: expect.anything() } });
    expect(judgedBody(json, undefined)).toBeUndefined();
    expect(judgedBody(json, Buffer.alloc(0))).toBeUndefined();
  });

  it.each<[string, Array<[string, string]>, string]>([
    ['another type', [['content-type', 'text/plain']], '{"role":"admin"}'],
    ['no type', [], '{"role":"admin"}'],
    ['two types', [...json, ['content-type', 'text/plain']], '{"role":"admin"}'],
    ['a coding', [...json, ['content-encoding', 'gzip']], '{"role":"admin"}'],
    ['not JSON', json, '{"role":"admin"'],
    ['a key twice', json, '{"role":"clerk","role":"admin"}'],
    ['a key twice, deeper', json, '{"user":[{"a":1},{"role":"clerk","x":{},"role":"admin"}]}'],
    ['too large', json, `{"pad":"${'x'.repeat(MAX_JUDGED_BODY_BYTES)}"}`],
  ])('leaves unread: %s', (_, fields, text) => {
    expect(judgedBody(fields, body(text))).toBe('unread');
  });

  it('a body written to read two ways meets a rule that refuses what one way says', () => {
    const judge = new HttpJudge(
      { default: 'allow', unmasked: [], maxRequestBytes: 8 * 1024 * 1024, rules: [{ name: 'no-admin-role', match: { body: { role: { globs: ['admin'] } } }, action: 'deny' }] },
      { subject: 'alice', groups: [], principal: PERSON },
      'api',
      'read-write',
    );
    const ask = (text: string) => ({
      method: 'PATCH',
      segments: ['users', '1'],
      query: [],
      headers: new Map(),
      ...(judgedBody(json, body(text)) !== undefined ? { body: judgedBody(json, body(text))! } : {}),
    });
    expect(judge.decide(ask('{"role":"clerk"}'))).toMatchObject({ action: 'allow' });
    expect(judge.decide(ask('{"role":"clerk","role":"admin"}'))).toMatchObject({ action: 'deny', rule: 'no-admin-role' });
    expect(judge.decide(ask('{"role":"admin","role":"clerk"}'))).toMatchObject({ action: 'deny', rule: 'no-admin-role' });
  });
});
