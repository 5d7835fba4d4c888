/**
 * Attacks on the MCP judge (src/policy/mcp.ts) that once got a call or a read past the policy, or
 * held the gateway's event loop: resource URIs spelled past a rule, an allow rule's path glob that
 * spells one odd segment, values that keep a path glob busy for seconds.
 */
import { describe, expect, it } from 'vitest';
import { McpJudge } from '../../src/policy/mcp.js';
import { PERSON } from '../../src/policy/principal.js';
import { MCP_DEFAULTS, type McpPolicy } from '../../src/policy/schema.js';

const who = { subject: 'alice', groups: ['eng'], principal: PERSON };
const judge = (mcp: Partial<McpPolicy>) =>
  new McpJudge({ ...MCP_DEFAULTS, ...mcp }, who, 'files', 'read-write', () => ({ groups: ['dba'], approvals: 1, timeoutSeconds: 60, notify: [] }) as never);
const resource = (uri: string) => ({ kind: 'resource' as const, uri });

describe('resource URIs', () => {
  it('a deny rule meets a URI however it is spelled', () => {
    const j = judge({ rules: [{ name: 'no-config', match: { resources: ['file:///etc/**'] }, action: 'deny' }] });
    // Each of these was allowed, and a server that reads a file:// URI (fileURLToPath, a path join) reads /etc/passwd.
    for (const uri of [
      'file:///etc/passwd',
      'file:///srv/../etc/passwd',
      'file:///./etc/passwd',
      'file://localhost/etc/passwd',
      'FILE:///etc/passwd',
      'file:/etc/passwd',
      'file:///%65tc/passwd',
      'file:////etc/passwd',
      'file:///srv/%2e%2e/etc/passwd',
      'file:///srv/..%2F..%2Fetc/passwd',
    ])
      expect(j.decide(resource(uri)).action, uri).toBe('deny');
    expect(j.decide(resource('file:///srv/shared/notes.txt')).action).toBe('allow');
  });

  it('an allow rule admits a URI only when every spelling of it matches', () => {
    const j = judge({ default: 'deny', rules: [{ name: 'shared', match: { resources: ['file:///srv/shared/*'] }, action: 'allow' }] });
    expect(j.decide(resource('file:///srv/shared/notes.txt')).action).toBe('allow');
    expect(j.decide(resource('file:///srv/shared/a%20b.txt')).action).toBe('allow');
    for (const uri of ['file:///srv/shared/../../etc/passwd', 'file:///srv/shared/%2e%2e/%2e%2e/etc/passwd', 'file:///srv/shared/..%2f..%2fetc%2fpasswd'])
      expect(j.decide(resource(uri)).action, uri).toBe('deny');
  });

  it('a review rule holds a URI however it is spelled', () => {
    const j = judge({ rules: [{ name: 'db-reviewed', match: { resources: ['db://customers/*'] }, action: 'review' }] });
    expect(j.decide(resource('DB://customers/1')).action).toBe('review');
    expect(j.decide(resource('db://customers/x/../1')).action).toBe('review');
  });
});
