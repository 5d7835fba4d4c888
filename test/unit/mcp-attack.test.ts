/**
 * Attacks on the MCP judge (src/policy/mcp.ts) that once got a call or a read past the policy, or
 * held the gateway's event loop: resource URIs spelled past a rule, an allow rule's path glob that
 * spells one odd segment, values that keep a path glob busy for seconds; and a bundle's MCP
 * connection that made an admitted command run code of the bundle's (src/policy/load.ts).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseSecretPatterns } from '../../src/config/secrets.js';
import { type PolicyInvalidError, loadPolicyDir } from '../../src/policy/load.js';
import { McpListings } from '../../src/mcp/pipeline/listings.js';
import { McpJudge } from '../../src/policy/mcp.js';
import { PERSON } from '../../src/policy/principal.js';
import { MCP_DEFAULTS, type McpPolicy } from '../../src/policy/schema.js';

const who = { subject: 'alice', groups: ['eng'], principal: PERSON };
const judge = (mcp: Partial<McpPolicy>) => new McpJudge({ ...MCP_DEFAULTS, ...mcp }, who, 'files', 'read-write', () => ({ groups: ['dba'], approvals: 1, timeoutSeconds: 60, notify: [] }) as never);
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
      // The helper's: a query or fragment fileURLToPath drops.
      'file:///etc/passwd?x',
      'file:///etc/passwd#',
      'file://localhost/etc/passwd?a=b',
      'file:///e%74c/passwd#',
    ])
      expect(j.decide(resource(uri)).action, uri).toBe('deny');
    expect(j.decide(resource('file:///srv/shared/notes.txt')).action).toBe('allow');
  });

  it('an allow rule admits a URI only when every spelling of it matches', () => {
    const j = judge({ default: 'deny', rules: [{ name: 'shared', match: { resources: ['file:///srv/shared/*'] }, action: 'allow' }] });
    expect(j.decide(resource('file:///srv/shared/notes.txt')).action).toBe('allow');
    expect(j.decide(resource('file:///srv/shared/a%20b.txt')).action).toBe('allow');
    for (const uri of [
      'file:///srv/shared/../../etc/passwd',
      'file:///srv/shared/%2e%2e/%2e%2e/etc/passwd',
      'file:///srv/shared/..%2f..%2fetc%2fpasswd',
      // A server that cuts `file://` off and joins the rest reads /etc/passwd.
      'file:///srv/shared/x?/../../../etc/passwd',
      'file:///srv/shared/x#/../../../etc/passwd',
    ])
      expect(j.decide(resource(uri)).action, uri).toBe('deny');
  });

  it('a review rule holds a URI however it is spelled', () => {
    const j = judge({ rules: [{ name: 'db-reviewed', match: { resources: ['db://customers/*'] }, action: 'review' }] });
    expect(j.decide(resource('DB://customers/1')).action).toBe('review');
    expect(j.decide(resource('db://customers/x/../1')).action).toBe('review');
  });
});

const tool = (name: string, args: unknown = {}) => ({ kind: 'tool' as const, name, arguments: args });

describe("a refusing rule's path", () => {
  it("meets a path by its directory's other name: the one its links resolve to (server-filesystem serves a linked root by both: the thirteenth attack)", () => {
    const root = mkdtempSync(join(tmpdir(), 'hoop-mcp-alias-'));
    try {
      mkdirSync(join(root, 'real', 'secret'), { recursive: true });
      symlinkSync(join(root, 'real'), join(root, 'link'));
      const j = judge({ rules: [{ name: 'no-secret', match: { tools: ['*'], arguments: { path: { globs: [`${join(root, 'link')}/secret/**`] } } }, action: 'deny' }] });
      for (const path of [join(root, 'link', 'secret', 'key.txt'), join(root, 'real', 'secret', 'key.txt'), join(root, 'real', 'secret')])
        expect(j.decide(tool('read_text_file', { path })).action, path).toBe('deny');
      // The other way (the second attack): a glob by the real name meets the linked one, and a link inside the root.
      symlinkSync(join(root, 'real', 'secret'), join(root, 'real', 'pub'));
      const byReal = judge({ rules: [{ name: 'no-secret', match: { tools: ['*'], arguments: { path: { globs: [`${join(root, 'real')}/secret/**`] } } }, action: 'deny' }] });
      for (const path of [join(root, 'link', 'secret', 'key.txt'), join(root, 'link', 'pub', 'key.txt'), join(root, 'real', 'pub', 'key.txt')])
        expect(byReal.decide(tool('read_text_file', { path })).action, path).toBe('deny');
      expect(j.decide(tool('read_text_file', { path: join(root, 'real', 'notes.txt') })).action).toBe('allow');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("an allow rule's path globs", () => {
  it('admit only the odd segments the pattern spells: `./**` is no way to `..`', () => {
    const j = judge({
      default: 'deny',
      rules: [{ name: 'here', match: { tools: ['read_file'], arguments: { path: { globs: ['./data/**', '../shared/**', '//server/share/**'] } } }, action: 'allow' }],
    });
    expect(j.decide(tool('read_file', { path: './data/a/b.txt' })).action).toBe('allow');
    expect(j.decide(tool('read_file', { path: '../shared/notes.txt' })).action).toBe('allow');
    expect(j.decide(tool('read_file', { path: '//server/share/x' })).action).toBe('allow');
    // Each was allowed: a pattern that spells one odd segment let the value have any.
    for (const path of ['./data/../../etc/passwd', './data/./../secret', '../shared/../../etc/passwd', '//server/share//../x', './data//etc'])
      expect(j.decide(tool('read_file', { path })).action, path).toBe('deny');
  });

  it('keep the event loop free: a 4 MiB list of long paths is judged at once', () => {
    const j = judge({
      default: 'deny',
      rules: [{ name: 'docs', match: { tools: ['read_*'], arguments: { paths: { globs: ['/srv/shared/**/*.md', '/srv/shared/**/*.txt', '/srv/shared/**/*.json'] } } }, action: 'allow' }],
    });
    const paths = Array.from({ length: 63 }, () => `/srv/shared/${'ab/'.repeat(21_000)}x.json`);
    const started = performance.now();
    // Before: about 4 s of the gateway's one event loop (every session's), per message.
    expect(j.decide(tool('read_multiple_files', { paths })).action).toBe('deny');
    expect(performance.now() - started).toBeLessThan(200);
    expect(j.decide(tool('read_multiple_files', { paths: ['/srv/shared/a/b.md', '/srv/shared/docs/c.json'] })).action).toBe('allow');
  });
});

describe("a deny rule's path globs", () => {
  const j = judge({
    rules: [
      { name: 'no-secrets', match: { tools: ['*'], arguments: { path: { globs: ['/srv/shared/secret/**', '**/.env'] } } }, action: 'deny' },
      { name: 'no-prod', match: { tools: ['*'], arguments: { environment: { globs: ['prod*'] } } }, action: 'deny' },
    ],
  });
  it('meet a relative path under whatever directory the server reads it', () => {
    // Each was allowed, and server-filesystem (serving /srv/shared) read /srv/shared/secret/key.
    for (const path of ['secret/key', './secret/key', '../shared/secret/key', 'shared/secret/key', '~/secret/key', '.env', 'config/.env'])
      expect(j.decide(tool('read_file', { path })).action, path).toBe('deny');
    expect(j.decide(tool('read_file', { path: '/srv/shared/notes.txt' })).action).toBe('allow');
  });
  it('that spell no `/` read values as they are', () => {
    expect(j.decide(tool('deploy', { environment: 'staging' })).action).toBe('allow');
    expect(j.decide(tool('deploy', { environment: 'production' })).action).toBe('deny');
  });
  it("meet every path a call holds, whatever the argument's name or depth (docs/mcp.md's rule, by the reference server's tools)", () => {
    // Each was allowed: the rule names `path`, these tools name their paths otherwise, or list the directory itself.
    const calls: Array<[string, unknown]> = [
      ['read_multiple_files', { paths: ['/srv/shared/notes.txt', '/srv/shared/secret/key'] }],
      ['move_file', { source: '/srv/shared/secret/key', destination: '/srv/shared/out' }],
      ['move_file', { source: 'secret/key', destination: 'out' }],
      ['list_directory', { path: '/srv/shared/secret' }],
      ['directory_tree', { path: '/srv/shared/secret/' }],
      ['search_files', { path: '/srv/shared/secret', pattern: '*' }],
      ['batch', { jobs: [{ spec: { input: '/srv/shared/secret/key' } }] }],
      ['copy', { from: { file: 'app/.env' } }],
    ];
    for (const [name, args] of calls) expect(j.decide(tool(name, args)).action, `${name} ${JSON.stringify(args)}`).toBe('deny');
    // What holds no path is not read as one: a file's content, a search pattern, a path that only shares a prefix.
    expect(j.decide(tool('write_file', { path: '/srv/shared/notes.txt', content: 'see secret/key\n' })).action).toBe('allow');
    // The directory above the secret one: a search of it lists the secret one's names (below).
    expect(j.decide(tool('search_files', { path: '/srv/shared', pattern: 'secret' })).action).toBe('deny');
    expect(j.decide(tool('list_directory', { path: '/srv/shared/secrets-policy' })).action).toBe('allow');
    // A call holding more strings than the judge reads is refused by every refusing path rule.
    expect(j.decide(tool('read_multiple_files', { paths: Array.from({ length: 10_001 }, (_, i) => `/srv/shared/f${i}`) })).action).toBe('deny');
  });
});

describe('resource URIs on a file system that may ignore case', () => {
  it('a refusing rule compares case-folded; an allow rule as written', () => {
    const j = judge({ rules: [{ name: 'no-config', match: { resources: ['file:///etc/**'] }, action: 'deny' }] });
    for (const uri of ['file:///ETC/passwd', 'file:///Etc/shadow', 'FILE:///eTc/passwd']) expect(j.decide(resource(uri)).action, uri).toBe('deny');
    const allow = judge({ default: 'deny', rules: [{ name: 'shared', match: { resources: ['file:///srv/shared/*'] }, action: 'allow' }] });
    expect(allow.decide(resource('file:///SRV/shared/notes.txt')).action).toBe('deny');
  });
});

describe("a bundle's MCP connection", () => {
  const base = mkdtempSync(join(tmpdir(), 'hoop-mcp-attack-'));
  afterAll(() => rmSync(base, { recursive: true, force: true }));
  const allowedCommands = [`${process.execPath} /srv/mcp/server.mjs`];
  const bundle = (env: Record<string, string>): string => {
    const dir = mkdtempSync(join(base, 'r'));
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, 'hoop.yaml'),
      `version: 1\naccess:\n  - { name: a, subjects: [alice], connections: [files], mode: read-write }\nconnections:\n  - name: files\n    type: mcp\n    command: [${process.execPath}, /srv/mcp/server.mjs]\n    env: ${JSON.stringify(env)}\n`,
    );
    return dir;
  };
  const problems = (env: Record<string, string>) =>
    loadPolicyDir(bundle(env), undefined, { allowedSecrets: [], allowedCommands }).then(
      () => [] as string[],
      (err: PolicyInvalidError) => err.problems,
    );

  it('may not set what makes the admitted command run other code', async () => {
    const marker = join(base, 'ran');
    const options = `--import=data:text/javascript,import{writeFileSync}from'node:fs';writeFileSync('${marker}','x')`;
    // What that bundle would have made the gateway run: the admitted program, and the bundle's code first.
    execFileSync(process.execPath, ['-e', '0'], { env: { PATH: process.env.PATH, NODE_OPTIONS: options } });
    expect(existsSync(marker)).toBe(true);
    // Before: accepted, as its command is admitted.
    for (const env of [
      { NODE_OPTIONS: options } as Record<string, string>,
      { PATH: '/tmp/bin' },
      { npm_config_registry: 'https://registry.evil.example' },
      { LD_PRELOAD: '/tmp/x.so' },
      { PYTHONPATH: '/tmp' },
      { UV_INDEX_URL: 'https://evil.example' },
    ])
      expect((await problems(env)).join('\n'), JSON.stringify(env)).toMatch(/changes what the program runs or loads/);
  });

  it("may set the server's own variables, each to a secret the operator keeps, never to the bundle's text", async () => {
    const own = { GITHUB_TOKEN: '${env:APP_GH}', NODE_ENV: '${env:APP_NODE_ENV}', GOOGLE_CLOUD_PROJECT: '${file:/run/secrets/hoop/project}' };
    const admitted = (env: Record<string, string>) =>
      loadPolicyDir(bundle(env), undefined, { allowedSecrets: parseSecretPatterns(['${env:APP_*}', '${file:/run/secrets/hoop/*}']), allowedCommands }).then(
        () => [] as string[],
        (err: PolicyInvalidError) => err.problems,
      );
    expect(await admitted(own)).toEqual([]);
    expect((await admitted({ GITLAB_URL: 'https://gitlab.evil.example' })).join('\n')).toMatch(/GITLAB_URL: must be a secret reference/);
  });
});

describe('a directory above what a deny rule protects (the fifteenth attack)', () => {
  const tool = (name: string, args: Record<string, unknown>) => ({ kind: 'tool' as const, name, arguments: args });
  const rules = [{ name: 'no-secrets', match: { tools: ['*'], arguments: { path: { globs: ['/data/team/secret/**', '**/.env'] } } }, action: 'deny' as const }];

  it('is refused to a tool that may rename or remove it (the server did not list it read-only): move_file team → team-archive carried the secret to a name no rule met', () => {
    const j = judge({ default: 'allow', rules });
    for (const args of [
      { source: '/data/team', destination: '/data/team-archive' },
      { source: '/data/team/secret', destination: '/data/x' },
      { source: '/data/', destination: '/elsewhere' },
      { source: 'team', destination: 'team-archive' },
      { source: '/DATA/Team', destination: '/data/y' },
      { source: '/data/team/./', destination: '/data/z' },
    ])
      expect(j.decide(tool('move_file', args)).action, JSON.stringify(args)).toBe('deny');
    // Beside it, below it elsewhere, and a glob with no fixed directory (it meets the file wherever it goes): as before.
    expect(j.decide(tool('move_file', { source: '/data/team/notes.txt', destination: '/data/n.txt' })).action).toBe('allow');
    expect(j.decide(tool('move_file', { source: '/data/other', destination: '/data/o2' })).action).toBe('allow');
    expect(j.decide(tool('move_file', { source: '/data/app', destination: '/data/app2' })).action).toBe('allow');
  });

  it("is refused to every tool, whatever the server says of its tools: directory_tree and search_files of the parent, listed readOnlyHint, listed the secret directory's tree (the sixteenth attack)", () => {
    const j = judge({ default: 'allow', rules });
    // The session's tools/list, as the listings stage reads it: the reference server's read-only tools.
    const listing = { result: { tools: ['list_directory', 'directory_tree', 'search_files', 'read_text_file'].map((name) => ({ name, annotations: { readOnlyHint: true } })) } };
    new McpListings(j).toAgent(listing, { method: 'tools/list' });
    for (const [name, args] of [
      ['directory_tree', { path: '/data' }],
      ['directory_tree', { path: '/data/team/' }],
      ['search_files', { path: '/data', pattern: '**/*' }],
      ['list_directory', { path: '/data/team' }],
      ['list_directory', { path: '/data/team/secret' }],
      ['read_text_file', { path: '.' }],
    ] as const)
      expect(j.decide(tool(name, args)).action, `${name} ${JSON.stringify(args)}`).toBe('deny');
    // Ordinary reads of what is beside it pass.
    for (const [name, args] of [
      ['read_text_file', { path: '/data/team/notes.txt' }],
      ['list_directory', { path: '/data/other' }],
      ['directory_tree', { path: '/data/team-archive' }],
      ['search_files', { path: '/data/other', pattern: 'secret' }],
    ] as const)
      expect(j.decide(tool(name, args)).action, `${name} ${JSON.stringify(args)}`).toBe('allow');
  });
});

describe('a call too long to judge (the sixteenth attack: 10,000 relative paths held the gateway 45 s)', () => {
  const rules = [0, 1, 2, 3, 4].map((n) => ({
    name: `no-keys-${n}`,
    match: { tools: ['*'], arguments: { path: { globs: [`/srv/shared/team${n}/secret/**/*.key`, `**/.env${n}`] } } },
    action: 'deny' as const,
  }));
  it('meets every refusing path rule unread, in well under a second; a call of ordinary size is read', () => {
    const j = judge({ rules } as never);
    const paths = Array.from({ length: 9_999 }, () => 'a/'.repeat(195));
    const started = performance.now();
    expect(j.decide({ kind: 'tool', name: 'read_multiple_files', arguments: { paths } })).toMatchObject({ action: 'deny', rule: 'no-keys-0' });
    expect(performance.now() - started).toBeLessThan(2000);
    const few = Array.from({ length: 200 }, (_, i) => `/srv/shared/notes/n${i}.txt`);
    expect(j.decide({ kind: 'tool', name: 'read_multiple_files', arguments: { paths: few } })).toMatchObject({ action: 'allow' });
    expect(j.decide({ kind: 'tool', name: 'read_multiple_files', arguments: { paths: [...few, '/srv/shared/team3/secret/a/b.key'] } })).toMatchObject({ action: 'deny', rule: 'no-keys-3' });
  });
});
