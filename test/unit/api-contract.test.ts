/**
 * The gateway API's contract (src/api/): the paths the CLI builds are the paths the gateway
 * routes, with the same values coming back out; bodies the CLI sends are what the gateway
 * accepts; error answers are read the same way by both clients.
 */
import { describe, expect, it } from 'vitest';
import { codeFitsStatus, readErrorBody, statusOfCode } from '../../src/api/answers.js';
import { accessRequestBody, BodyProblem, parseBody, reviewDecisionBody, runAskBody } from '../../src/api/bodies.js';
import { API_ROUTES, apiPath } from '../../src/api/paths.js';
import { ErrorCode } from '../../src/errors.js';

const routed = (relative: string, route: RegExp): RegExpExecArray | null => route.exec(`/${relative.split('?')[0]}`);

describe('gateway API paths', () => {
  it('each path the CLI builds is routed by the gateway, its parts recovered', () => {
    const name = 'prod db/ü';
    expect(decodeURIComponent(routed(apiPath.connection(name), API_ROUTES.connection)![1]!)).toBe(name);
    expect(decodeURIComponent(routed(apiPath.tunnel(name), API_ROUTES.tunnel)![1]!)).toBe(name);
    expect(routed(apiPath.mux, API_ROUTES.mux)).not.toBeNull();
    const session = 'sess_0123456789abcdef';
    expect(routed(apiPath.session(session), API_ROUTES.session)!.slice(1, 4)).toEqual([session, undefined, undefined]);
    expect(routed(apiPath.sessionFiles(session), API_ROUTES.session)!.slice(1, 4)).toEqual([session, '/files', undefined]);
    expect(routed(apiPath.sessionFiles(session, 'chunk-000001.jsonl'), API_ROUTES.session)![3]).toBe('chunk-000001.jsonl');
    expect(routed(apiPath.clientRecord(session, 'manifest.json'), API_ROUTES.clientRecord)!.slice(1, 3)).toEqual([session, 'manifest.json']);
    const run = 'run-0123456789abcdefgh';
    expect(routed(apiPath.runRecord(run, 'events.jsonl'), API_ROUTES.runRecord)!.slice(1, 3)).toEqual([run, 'events.jsonl']);
    expect(routed(apiPath.runControl(run, 'heartbeat'), API_ROUTES.runControl)!.slice(1, 3)).toEqual([run, 'heartbeat']);
    expect(routed(apiPath.reviews('pending'), API_ROUTES.reviews)!.slice(1, 3)).toEqual([undefined, undefined]);
    expect(routed(apiPath.review('rv-1', 30), API_ROUTES.reviews)![1]).toBe('rv-1');
    expect(apiPath.review('rv-1', 30)).toBe('v1/reviews/rv-1?wait=30');
    expect(routed(apiPath.reviewDecision('rv-1', 'deny'), API_ROUTES.reviews)!.slice(1, 3)).toEqual(['rv-1', 'deny']);
    expect(apiPath.sessions({ column: 'customers.email', denied: 'true' })).toBe('v1/sessions?column=customers.email&denied=true');
    expect(apiPath.sessions()).toBe('v1/sessions');
  });

  it('a path that would climb out of its place is not routed', () => {
    expect(routed('v1/sessions/../keys', API_ROUTES.session)).toBeNull();
    expect(routed(apiPath.sessionFiles('sess_0123456789abcdef', '../x'), API_ROUTES.session)).toBeNull();
    expect(routed('v1/runs/run-short/end', API_ROUTES.runControl)).toBeNull();
  });
});

describe('gateway API bodies', () => {
  it('what the CLI sends parses on the gateway, to the same values', () => {
    const ask = { connections: ['app', 'app', 'ssh-box'], agent: 'claude', via: 'run' as const, isolation: 'bwrap', command: 'claude --print' };
    expect(parseBody(runAskBody, ask)).toEqual(ask);
    expect(parseBody(accessRequestBody, { connection: 'app', mode: 'read-write', seconds: 3600, reason: ' deploy fix ' })).toEqual({
      connection: 'app',
      mode: 'read-write',
      seconds: 3600,
      reason: 'deploy fix',
    });
    expect(parseBody(accessRequestBody, { connection: 'app', seconds: 60, reason: 'look' }).mode).toBe('read-only');
    expect(parseBody(reviewDecisionBody, {})).toEqual({});
    expect(parseBody(reviewDecisionBody, null)).toBeNull();
  });

  it('a body that does not fit says the first problem in its field’s words, and names the field', () => {
    const problem = (schema: Parameters<typeof parseBody>[0], body: unknown): [string | undefined, string] => {
      try {
        parseBody(schema, body);
      } catch (err) {
        if (err instanceof BodyProblem) return [err.field, err.message];
        throw err;
      }
      throw new Error('accepted');
    };
    expect(problem(runAskBody, [])).toEqual([undefined, 'the request body must be a JSON object { connections, agent, via, isolation }']);
    expect(problem(runAskBody, { connections: Array(65).fill('a'), isolation: 'none' })[1]).toMatch(
      /^connections must list the run's connections \(0 to 64 names; none: the run reaches only the runbooks its agent may run\)$/,
    );
    expect(problem(runAskBody, { connections: ['a', ''], isolation: 'none' })[0]).toBe('connections');
    expect(problem(runAskBody, { connections: ['a'], isolation: 'none', command: 'x'.repeat(4097) })).toEqual(['command', 'command must be a text of at most 4096 characters']);
    expect(problem(accessRequestBody, { connection: 'a', seconds: 0.5, reason: 'r' })).toEqual(['seconds', 'seconds must be a whole number of seconds, at least 1']);
    expect(problem(accessRequestBody, { connection: 'a', seconds: 5, reason: '   ' })[0]).toBe('reason');
    expect(problem(reviewDecisionBody, { reason: 'x'.repeat(1001) })).toEqual(['reason', 'reason must be a text of at most 1000 characters']);
  });
});

describe('gateway API errors', () => {
  it('one table gives each code its status, and a client takes a code at its word only with that status', () => {
    expect(statusOfCode(ErrorCode.SESSION_UNKNOWN)).toBe(404);
    expect(statusOfCode(ErrorCode.TOO_MANY_SESSIONS)).toBe(429);
    expect(statusOfCode(ErrorCode.INTERNAL)).toBe(500);
    expect(codeFitsStatus(ErrorCode.SESSION_UNKNOWN, 404)).toBe(true);
    expect(codeFitsStatus(ErrorCode.SESSION_UNKNOWN, 500)).toBe(false);
    expect(codeFitsStatus('MADE_UP', 404)).toBe(false);
  });

  it('an error body is read as printable text, cut, and nothing of a body that is not one', () => {
    const body = Buffer.from(JSON.stringify({ error: { code: 'ACCESS_DENIED', message: 'no\u001b[31m way\n', hint: 'x'.repeat(20), extra: 1 } }));
    expect(readErrorBody(body, 10)).toEqual({ code: 'ACCESS_DEN…', message: 'no [31m wa…', hint: 'xxxxxxxxxx…' });
    expect(readErrorBody(Buffer.from('<html>502</html>'))).toEqual({});
    expect(readErrorBody(Buffer.from('{"error":"flat"}'))).toEqual({});
  });
});
