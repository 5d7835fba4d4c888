/**
 * MCP connections and the `mcp` section of a policy bundle: what an entry may say (one of command
 * and url; a bundle's command only as the gateway's allowedCommands admits), and the judge's
 * decisions on tool calls (names, argument globs read as paths by allow rules, `equals`, lists),
 * resources, prompts, listings, read-only access and the server's requests; and the line reader
 * every MCP message crosses.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LineReader, parseMessage } from '../../src/mcp/wire/json-rpc.js';
import { loadPolicyDir } from '../../src/policy/load.js';
import { McpJudge } from '../../src/policy/mcp.js';
import { describePolicy } from '../../src/policy/summary.js';
import { runPolicyTests } from '../../src/policy/evaluate.js';
import { PERSON } from '../../src/policy/principal.js';
import { MCP_DEFAULTS, type McpPolicy } from '../../src/policy/schema.js';
import { policyRepos } from '../harness/policy.js';

const { repo, problemsOf } = policyRepos('hoop-policy-mcp-');

const who = { subject: 'alice', groups: ['eng'], principal: PERSON };
const judge = (mcp: Partial<McpPolicy>, mode: 'read-only' | 'read-write' = 'read-write') =>
  new McpJudge({ ...MCP_DEFAULTS, ...mcp }, who, 'files', mode, () => ({ groups: ['dba'], approvals: 1, timeoutSeconds: 60, notify: [] }) as never);
const tool = (name: string, args: unknown = {}) => ({ kind: 'tool' as const, name, arguments: args });

describe('MCP connection entries', () => {
  const head = 'version: 1\naccess:\n  - { name: a, subjects: [alice], connections: [files], mode: read-write }\nconnections:\n';
  it('takes a command or a url, one of them', async () => {
    expect(await problemsOf(loadPolicyDir(repo(`${head}  - { name: files, type: mcp, url: "https://mcp.example/mcp" }\n`)))).toEqual([]);
    expect((await problemsOf(loadPolicyDir(repo(`${head}  - { name: files, type: mcp }\n`)))).join('\n')).toMatch(/a command the gateway runs \(stdio\) or a url/);
    expect((await problemsOf(loadPolicyDir(repo(`${head}  - { name: files, type: mcp, url: "ftp://x/" }\n`)))).join('\n')).toMatch(/http:\/\/ or https:\/\//);
  });

  it("runs a bundle's command only when the gateway's allowedCommands admits it", async () => {
    const dir = repo(`${head}  - { name: files, type: mcp, command: [npx, -y, "@modelcontextprotocol/server-filesystem", /srv/data] }\n`);
    expect(await problemsOf(loadPolicyDir(dir, undefined, { allowedSecrets: [], allowedCommands: [] }))).toEqual([expect.stringMatching(/not allowed by the gateway's policy.allowedCommands/)]);
    expect(await problemsOf(loadPolicyDir(dir, undefined, { allowedSecrets: [], allowedCommands: ['npx -y @modelcontextprotocol/server-filesystem /srv/**'] }))).toEqual([]);
    // Where it runs is the operator's to choose (the policy repo's own checkout could hold an .npmrc).
    const moved = repo(`${head}  - { name: files, type: mcp, command: [npx, -y, "@modelcontextprotocol/server-filesystem", /srv/data], cwd: /tmp }\n`);
    expect((await problemsOf(loadPolicyDir(moved, undefined, { allowedSecrets: [], allowedCommands: ['npx -y @modelcontextprotocol/server-filesystem /srv/**'] }))).join('\n')).toMatch(
      /cwd: is the gateway operator's to choose/,
    );
    // A star stays within one word: another program's arguments do not sneak in.
    expect(
      await problemsOf(
        loadPolicyDir(repo(`${head}  - { name: files, type: mcp, command: [npx, -y, "evil", /srv/data] }\n`), undefined, {
          allowedSecrets: [],
          allowedCommands: ['npx -y @modelcontextprotocol/* /srv/**'],
        }),
      ),
    ).toHaveLength(1);
  });

  it('loads mcp rules, refusing arguments without the tools they are for', async () => {
    const ok = await loadPolicyDir(
      repo(
        `${head}  - { name: files, type: mcp, url: "https://x/mcp" }\nmcp:\n  default: deny\n  serverRequests: [roots]\n  rules:\n    - { name: r, match: { tools: [read_*], arguments: { path: "/srv/**", mode: { equals: 1 } } }, action: allow }\n`,
      ),
    );
    expect(describePolicy(ok, 'test')).toMatch(
      /^mcp \(tool calls, resources and prompts: deny unless a rule says otherwise; the server may ask the agent for roots\)\n {2}r +allow +tools read_\*; arguments path \/srv\/\*\*; mode = 1/m,
    );
    expect(ok.mcp).toEqual({
      default: 'deny',
      serverRequests: ['roots'],
      rules: [{ name: 'r', match: { tools: ['read_*'], arguments: { path: { globs: ['/srv/**'] }, mode: { equals: 1 } } }, action: 'allow' }],
    });
    expect(
      (
        await problemsOf(loadPolicyDir(repo(`${head}  - { name: files, type: mcp, url: "https://x/mcp" }\nmcp:\n  rules:\n    - { name: r, match: { arguments: { path: "/x" } }, action: deny }\n`)))
      ).join('\n'),
    ).toMatch(/name the tools or prompts they are for/);
  });
});

describe('mcp: test cases', () => {
  it('judges tool calls, reads and prompts as the gateway does, and says which rule', async () => {
    const dir = repo(
      `version: 1\nconnections:\n  - { name: files, type: mcp, url: "https://x/mcp" }\n  - { name: db, type: postgres, host: h, database: d, user: u, password: "\${env:P}" }\naccess:\n  - { name: a, subjects: [alice], connections: [files], mode: read-write }\nmcp:\n  rules:\n    - { name: no-etc, match: { tools: ["*"], arguments: { path: "/etc/**" } }, action: deny }\n`,
    );
    mkdirSync(join(dir, 'policy', 'tests'), { recursive: true });
    writeFileSync(
      join(dir, 'policy', 'tests', 'mcp.yaml'),
      `tests:\n  - { name: reads, as: { subject: alice }, connection: files, mcp: [{ tool: read, arguments: { path: /srv/a } }, { resource: "file:///srv/a" }], expect: allow }\n  - { name: etc, as: { subject: alice }, connection: files, mcp: { tool: read, arguments: { path: /etc/passwd } }, expect: deny, rule: no-etc }\n  - { name: wrong, as: { subject: alice }, connection: files, mcp: { tool: read, arguments: { path: /etc/passwd } }, expect: allow }\n`,
    );
    const results = await runPolicyTests(await loadPolicyDir(dir));
    expect(results.map((r) => [r.test.name, r.passed])).toEqual([
      ['reads', true],
      ['etc', true],
      ['wrong', false],
    ]);
    writeFileSync(join(dir, 'policy', 'tests', 'mcp.yaml'), 'tests:\n  - { name: t, as: { subject: alice }, connection: db, mcp: { tool: x }, expect: allow }\n');
    expect((await problemsOf(loadPolicyDir(dir))).join('\n')).toMatch(/"db" is a postgres connection: mcp: cases ask MCP connections/);
  });
});

describe('the mcp judge', () => {
  it('takes the most restrictive matching rule, else the default', () => {
    const j = judge({
      rules: [
        { name: 'w', match: { tools: ['write_*'] }, action: 'review' },
        { name: 'no-etc', match: { tools: ['*'], arguments: { path: { globs: ['/etc/**'] } } }, action: 'deny' },
      ],
    });
    expect(j.decide(tool('read_file', { path: '/srv/a' })).action).toBe('allow');
    expect(j.decide(tool('write_file', { path: '/srv/a' }))).toMatchObject({ action: 'review', rule: 'w' });
    expect(j.decide(tool('write_file', { path: '/etc/passwd' }))).toMatchObject({ action: 'deny', rule: 'no-etc' });
  });

  it("reads a deny rule's globs against the path as written and resolved", () => {
    const j = judge({ rules: [{ name: 'secret', match: { tools: ['*'], arguments: { path: { globs: ['/srv/secret/*'] } } }, action: 'deny' }] });
    expect(j.decide(tool('read', { path: '/srv/public/../secret/key' })).action).toBe('deny');
    expect(j.decide(tool('read', { path: '/srv/secret/a/b' })).action).toBe('deny');
    // A list is denied when one of its items is.
    expect(j.decide(tool('read_many', { path: ['/srv/public/a', '/srv/secret/k'] })).action).toBe('deny');
  });

  it("reads a deny rule's globs against every way a server reads the path: a trailing slash, backslashes, another case", () => {
    const j = judge({ rules: [{ name: 'secret', match: { tools: ['*'], arguments: { path: { globs: ['/srv/shared/secret', '/srv/HR/**'] } } }, action: 'deny' }] });
    // Before: allowed (list_directory of secret/ lists secret; a case-insensitive file system opens /srv/hr as /srv/HR).
    for (const path of ['/srv/shared/secret/', '/srv/shared/secret//', '/srv/shared/x/../secret/', '/srv/hr/salaries.csv', '/SRV/HR/a', '\\srv\\HR\\a', '/srv/shared/x\\..\\secret'])
      expect(j.decide(tool('list_directory', { path })).action, path).toBe('deny');
    expect(j.decide(tool('list_directory', { path: '/srv/shared/secrets' })).action).toBe('allow');
  });

  it('reads a deny rule case-folded as a file system folds case, for every spelling of the path: relative, absolute, the directory, Unicode folds', () => {
    const globs = ['/srv/shared/secret/**', '**/.env', '/srv/shared/keys/id_rsa', '/srv/shared/secret/*.pem'];
    const j = judge({ rules: [{ name: 'secret', match: { tools: ['*'], arguments: { path: { globs } } }, action: 'deny' }] });
    // Before (the fourteenth attack): each allowed; a case-insensitive file system opens them as the denied files.
    for (const path of ['/srv/shared/\u017fecret/key', '/srv/shared/\u017fECRET/key', '.ENV', 'KEYS/id_rsa', 'keys/ID_RSA', 'secret/a.PEM', '/srv/shared/SECRET', '/srv/shared/KEYS/\u0131d_rsa'])
      expect(j.decide(tool('read_text_file', { path })).action, path).toBe('deny');
    // Generated: every glob's file in a random case of each letter, absolute and relative, is denied; a neighbour is not.
    let seed = 3;
    const flip = (text: string): string => [...text].map((c) => ((seed = (seed * 1103515245 + 12345) % 2147483648) % 2 === 0 ? c.toUpperCase() : c)).join('');
    for (let i = 0; i < 200; i++) {
      for (const path of ['/srv/shared/secret/a/b', '/srv/app/.env', '/srv/shared/keys/id_rsa', '/srv/shared/secret/x.pem', 'secret/x.pem', 'keys/id_rsa', 'app/.env'])
        expect(j.decide(tool('read_text_file', { path: flip(path) })).action, flip(path)).toBe('deny');
    }
    expect(j.decide(tool('read_text_file', { path: '/srv/shared/secrets/a' })).action).toBe('allow');
  });

  it("reads an allow rule's globs as paths: * within a segment, ** across, no `..` it does not spell", () => {
    const j = judge({ default: 'deny', rules: [{ name: 'srv', match: { tools: ['read'], arguments: { path: { globs: ['/srv/data/*'] } } }, action: 'allow' }] });
    expect(j.decide(tool('read', { path: '/srv/data/a.txt' })).action).toBe('allow');
    expect(j.decide(tool('read', { path: '/srv/data/sub/a.txt' })).action).toBe('deny');
    expect(j.decide(tool('read', { path: '/srv/data/../../etc/passwd' })).action).toBe('deny');
    expect(j.decide(tool('read', { path: '/srv/data//x' })).action).toBe('deny');
    expect(j.decide(tool('read', {})).action).toBe('deny');
    // Every item of a list must match.
    expect(j.decide(tool('read', { path: ['/srv/data/a', '/etc/passwd'] })).action).toBe('deny');
    const deep = judge({ default: 'deny', rules: [{ name: 'srv', match: { tools: ['read'], arguments: { path: { globs: ['/srv/**/*.txt'] } } }, action: 'allow' }] });
    expect(deep.decide(tool('read', { path: '/srv/a/b/c.txt' })).action).toBe('allow');
    expect(deep.decide(tool('read', { path: '/srv/a/b/c.sh' })).action).toBe('deny');
  });

  it('matches JSON values with equals, nested arguments with a.b', () => {
    const j = judge({ rules: [{ name: 'dry', match: { tools: ['deploy'], arguments: { 'options.dryRun': { equals: false } } }, action: 'deny' }] });
    expect(j.decide(tool('deploy', { options: { dryRun: false } })).action).toBe('deny');
    expect(j.decide(tool('deploy', { options: { dryRun: true } })).action).toBe('allow');
    expect(j.decide(tool('deploy', { options: 'dryRun' })).action).toBe('allow');
  });

  it('judges resources and prompts by their own globs; a rule naming none matches all three', () => {
    const j = judge({
      rules: [
        { name: 'etc', match: { resources: ['file:///etc/*'] }, action: 'deny' },
        { name: 'agents', match: { via: ['run'] }, action: 'deny' },
      ],
    });
    expect(j.decide({ kind: 'resource', uri: 'file:///etc/shadow' }).action).toBe('deny');
    expect(j.decide({ kind: 'resource', uri: 'file:///srv/a' }).action).toBe('allow');
    expect(j.decide(tool('file:///etc/shadow')).action).toBe('allow');
  });

  it('lists a tool unless every call of it would be denied', () => {
    const j = judge({
      rules: [
        { name: 'no-move', match: { tools: ['move_*'] }, action: 'deny' },
        { name: 'no-etc', match: { tools: ['read'], arguments: { path: { globs: ['/etc/**'] } } }, action: 'deny' },
      ],
    });
    expect(j.shows('tool', 'move_file')).toBe(false);
    expect(j.shows('tool', 'read')).toBe(true);
    const closed = judge({ default: 'deny', rules: [{ name: 'r', match: { tools: ['read'] }, action: 'review' }] });
    expect(closed.shows('tool', 'read')).toBe(true);
    expect(closed.shows('tool', 'write')).toBe(false);
  });

  it('runs under read-only access only the tools a rule allows', () => {
    const j = judge({ rules: [{ name: 'reads', match: { tools: ['read_*'] }, action: 'allow' }] }, 'read-only');
    expect(j.decide(tool('read_file')).action).toBe('allow');
    expect(j.decide(tool('write_file'))).toMatchObject({ action: 'deny', rule: 'hoop:read-only-access' });
    expect(j.shows('tool', 'write_file')).toBe(false);
    expect(j.decide({ kind: 'resource', uri: 'file:///a' }).action).toBe('allow');
  });

  it('lets the server ask the agent only what serverRequests lists', () => {
    expect(judge({}).serverMay('sampling/createMessage')).toBe(false);
    const j = judge({ serverRequests: ['roots'] });
    expect(j.serverMay('roots/list')).toBe(true);
    expect(j.serverMay('elicitation/create')).toBe(false);
    expect(j.serverMay('tools/call')).toBe(false);
  });
});

describe('MCP lines', () => {
  it('classifies messages and what is not one', () => {
    expect(parseMessage('{"jsonrpc":"2.0","id":1,"method":"tools/list"}')).toMatchObject({ kind: 'request', id: 1, method: 'tools/list' });
    expect(parseMessage('{"jsonrpc":"2.0","method":"notifications/initialized"}')).toMatchObject({ kind: 'notification' });
    expect(parseMessage('{"jsonrpc":"2.0","id":"a","result":{}}')).toMatchObject({ kind: 'response', id: 'a' });
    expect(parseMessage('[1]')).toMatchObject({ code: -32600, invalid: expect.stringMatching(/batch/) });
    expect(parseMessage('{"jsonrpc":"2.0","id":{},"method":"x"}')).toMatchObject({ code: -32600 });
    expect(parseMessage('{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}')).toMatchObject({ code: -32600, id: 1 });
    expect(parseMessage('{"jsonrpc":"2.0","id":1,"result":{},"error":{}}')).toMatchObject({ code: -32600 });
    expect(parseMessage('nope')).toMatchObject({ code: -32700 });
  });

  it('splits lines across chunks, a character cut between them included, and stops at the cap', () => {
    const lines: string[] = [];
    let over = 0;
    const r = new LineReader(
      (t) => lines.push(t),
      (b) => (over = b),
      16,
    );
    const text = Buffer.from('é1\r\n\n2\n');
    r.push(text.subarray(0, 1));
    r.push(text.subarray(1));
    expect(lines).toEqual(['é1', '2']);
    r.push(Buffer.from('x'.repeat(20)));
    expect(over).toBe(20);
    r.push(Buffer.from('\nmore\n'));
    expect(lines).toEqual(['é1', '2']);
  });
});
