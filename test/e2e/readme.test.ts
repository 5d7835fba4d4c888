/**
 * Every command of the README and of the guides it links under "Guides" (docs/connect.md,
 * docs/agents.md, …), run as written, by a bash in which `npx hoop` is the built CLI
 * (`node bin/hoop.js`): the five-minute tour on `hoop demo`, the policy repo commands on
 * `examples/policy-repo`, and the real setup — the README's gateway.yaml, logins in the browser and
 * with a device code, `hoop connect`, the GitHub Actions workflow's `run:` steps — against real
 * parts started here, with only the docs' example addresses replaced by theirs. The last test fails
 * when the README or a guide holds a command no test ran.
 *
 * Not run here, by design: `npm ci` and `.ci/run` (what CI itself runs before this suite).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { TestBrowser } from '../harness/browser.js';
import { runProcess } from '../harness/clients.js';
import { createTestPki, type TestPki } from '../harness/certs.js';
import { startOidc, type TestOidc } from '../harness/oidc.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { freePort, pgBinDir, startPgCluster, type PgCluster } from '../harness/postgres.js';
import { eventually } from '../harness/wait.js';
import { startWorkloadIssuer, type WorkloadIssuer } from '../harness/workload-issuer.js';
import { findSshd } from '../../src/demo/sshd.js';
import { detectContainment } from '../../src/agent/containment.js';
import { runPolicyTests } from '../../src/policy/evaluate.js';
import { loadPolicyDir } from '../../src/policy/load.js';
import { sshJudgeFor } from '../../src/policy/ssh.js';

/** The demo script's checks: one more with an SSH target (when OpenSSH's server is installed), one more where runs are contained (the gate). */
const DEMO_STEPS = 12 + (findSshd() ? 1 : 0) + (detectContainment('auto', process.env).kind === 'bwrap' ? 1 : 0);

const root = resolve(import.meta.dirname, '../..');
const bin = join(root, 'bin/hoop.js');
const readme = readFileSync(join(root, 'README.md'), 'utf8');
/** The task guides: every docs/*.md the README links in its "Guides" section, in that order. */
const guideFiles = [...readme.slice(readme.indexOf('\n## Guides\n')).matchAll(/\]\((docs\/[a-z0-9-]+\.md)\)/g)].map((m) => m[1]!);
/**
 * The README and its guides as one text, README first: the tests below find each command and
 * yaml block wherever it lives. (Order matters only within one file: each filter below names
 * lines that one page holds.)
 */
const guides = guideFiles.map((f) => readFileSync(join(root, f), 'utf8')).join('\n');
const docs = `${readme}\n${guides}`;
/** Pages of docs/ that hold ```sh blocks and are not guides, with why their commands are not run here. */
const NOT_GUIDES: Record<string, string> = {
  'docs/recording-format.md': 'sha256sum and ssh-keygen on an exported recording: test/integration/recording-sessions.test.ts runs them on a bundle',
  'docs/http.md': 'hoop connect, exec and run on an HTTP connection, and curl on its port: test/integration/http-lane.test.ts runs each on a connection of its own',
  'docs/runbooks.md': 'hoop runbook ls, show and run against a policy repo with runbooks: test/integration/runbooks-api.test.ts and runbooks-run.test.ts run each on a repo of their own',
};
const exampleReadme = readFileSync(join(root, 'examples/policy-repo/README.md'), 'utf8');
/** Run by CI before this suite (`.ci/run` is CI's entry point; it runs `npm ci`, then `npm test`). */
const RUN_BY_CI = new Set(['npm ci', '.ci/run']);
/** Run by test/e2e/deployment.test.ts with this machine's free ports and a directory of its own (it checks these lines are the page's). */
const RUN_BY_DEPLOYMENT_TEST = new Set([
  "hoop gateway init --url https://127.0.0.1:8443 --idp dev --dir hoop-trial --connection 'prod-db=postgres://hoop_gateway@127.0.0.1:5432/app'",
  'hoop gateway dev-idp --users hoop-trial/dev-users.yaml',
]);
/** Run by test/e2e/package.test.ts, as written in a fresh copy of the checkout, into a prefix of its own (here it would install over the machine's hoop). */
const RUN_BY_PACKAGE_TEST = new Set(['npm ci', 'npm pack', 'npm install -g ./hoop-0.1.0.tgz']);

/** The command lines of the ```sh blocks of a markdown text (a block in a list item is indented). */
/** The anchors of a markdown text's headings, as GitHub makes them. */
function anchorsOf(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const [, heading] of markdown.replace(/```[\s\S]*?```/g, '').matchAll(/^#{1,6} (.+)$/gm)) {
    const slug = heading!
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N} _-]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    anchors.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return anchors;
}

function shCommands(markdown: string): string[] {
  return [...markdown.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) =>
    m[1]!
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#')),
  );
}

/** The ```yaml block of the README or a guide whose first line is `first`. */
function yamlBlock(first: string): string {
  const blocks = [...docs.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((b) => b.startsWith(first));
  if (blocks.length !== 1) throw new Error(`the README and its guides have ${blocks.length} yaml blocks starting with ${first}, not one`);
  return blocks[0]!;
}

const ran = new Set<string>();
/** The demo's two fixed ports, this test's own (the README's `npx hoop demo` takes them from the environment): whatever else runs on the machine holds 8443 and 6432. */
const demoPorts: Record<string, string> = {};
const base = mkdtempSync(join(tmpdir(), 'hoop-e2e-readme-'));
const home = join(base, 'home');
mkdirSync(home);
const children: ChildProcess[] = [];

/** A bash prelude: `npx hoop` (and `npm run bench`) are this checkout's, as they are in its directory, and `hoop` the installed one (test/e2e/package.test.ts installs the package itself). */
const prelude = `
npx() { if [ "$1" = hoop ]; then shift; ${JSON.stringify(process.execPath)} ${JSON.stringify(bin)} "$@"; else command npx "$@"; fi; }
hoop() { ${JSON.stringify(process.execPath)} ${JSON.stringify(bin)} "$@"; }
npm() { if [ "$*" = "run bench" ]; then ${JSON.stringify(process.execPath)} ${JSON.stringify(join(root, 'bench/pg-path.mjs'))}; else command npm "$@"; fi; }
export -f npx npm hoop
`;

interface Shell {
  child: ChildProcess;
  output: () => string;
  stdout: () => string;
  waitFor(re: RegExp, ms?: number): Promise<RegExpExecArray>;
  exited: Promise<number | null>;
}

/**
 * Runs README `lines` (recorded as run) in one bash, after `before` (setup that is not a README
 * command); `tty` runs it on a pseudo-terminal (util-linux `script`), as a person's shell.
 */
function bash(lines: string[], o: { env?: NodeJS.ProcessEnv; cwd?: string; before?: string; tty?: boolean } = {}): Shell {
  for (const l of lines) ran.add(l);
  const script = `${prelude}\n${o.before ?? ''}\n${lines.join('\n')}\n`;
  const env = { PATH: `${pgBinDir()}:${process.env.PATH}`, HOME: home, TERM: 'dumb', LANG: 'C.UTF-8', ...demoPorts, ...o.env };
  const child = o.tty
    ? spawn('script', ['-qefc', `stty cols 120 rows 30; bash -c ${shellQuote(script)}`, '/dev/null'], { cwd: o.cwd ?? root, env, stdio: ['pipe', 'pipe', 'pipe'], detached: true })
    : spawn('bash', ['-c', script], { cwd: o.cwd ?? root, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  children.push(child);
  let all = '';
  let out = '';
  const waiters: Array<() => void> = [];
  child.stdout!.on('data', (b: Buffer) => {
    all += b.toString();
    out += b.toString();
    for (const w of [...waiters]) w();
  });
  child.stderr!.on('data', (b: Buffer) => {
    all += b.toString();
    for (const w of [...waiters]) w();
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    child,
    output: () => all.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, ''),
    stdout: () => out,
    exited,
    waitFor: (re, ms = 60_000) =>
      new Promise((resolveWait, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re} in:\n${all}`)), ms);
        const check = (): void => {
          const m = re.exec(all.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, ''));
          if (m) {
            clearTimeout(timer);
            waiters.splice(waiters.indexOf(check), 1);
            resolveWait(m);
          }
        };
        waiters.push(check);
        check();
        // Output may still be on its way when the process has exited: a moment for it before giving up.
        void exited.then(() => setTimeout(() => reject(new Error(`exited before ${re}:\n${all}`)), 50));
      }),
  };
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Runs README `lines` to the end; resolves the exit code and everything printed. */
async function run(lines: string[], o: Parameters<typeof bash>[1] = {}): Promise<{ code: number | null; output: string; stdout: string }> {
  const sh = bash(lines, o);
  const code = await sh.exited;
  return { code, output: sh.output(), stdout: sh.stdout() };
}

/**
 * `hoop login` as the README gives it (`line`), on a terminal, with a $BROWSER that only notes the
 * URL; `dana` signs in on the provider's page in the test browser. Resolves the login's shell, ended.
 */
async function browserSignIn(line: string, o: { dir: string; env: NodeJS.ProcessEnv; cwd?: string }): Promise<Shell> {
  const opened = join(o.dir, 'opened-url');
  writeFileSync(join(o.dir, 'browser'), `#!/bin/sh\nprintf '%s' "$1" > '${opened}'\n`, { mode: 0o755 });
  const login = bash([line], { env: { ...o.env, BROWSER: join(o.dir, 'browser') }, tty: true, ...(o.cwd ? { cwd: o.cwd } : {}) });
  await login.waitFor(/Waiting for the browser/);
  // $BROWSER runs beside hoop: its file may come a moment after hoop says it is waiting.
  const url = await eventually(
    () => {
      const url = existsSync(opened) ? readFileSync(opened, 'utf8') : '';
      expect(url, 'the URL $BROWSER was given').not.toBe('');
      return url;
    },
    { timeout: 60_000, interval: 25 },
  );
  expect((await new TestBrowser().authorize(url, 'dana')).status).toBe(200);
  expect(await login.exited).toBe(0);
  return login;
}

/** Ctrl-C to a process group started by {@link bash}. */
async function interrupt(sh: Shell): Promise<number | null> {
  process.kill(-sh.child.pid!, 'SIGINT');
  return sh.exited;
}

afterAll(async () => {
  for (const c of children) {
    try {
      process.kill(-c.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  // As root, the demo keeps PostgreSQL's data where the postgres OS user can reach it.
  rmSync(join('/var/lib/hoop-demo', createHash('sha256').update(join(home, '.local/state/hoop/demo/postgres')).digest('hex').slice(0, 16)), { recursive: true, force: true });
  rmSync(base, { recursive: true, force: true });
});

beforeAll(async () => {
  if (!existsSync(join(root, 'dist/cli.js'))) throw new Error('run `npm run build` first (npm test does)');
  demoPorts.HOOP_DEMO_GATEWAY_PORT = String(await freePort());
  demoPorts.HOOP_DEMO_PORT = String(await freePort());
});

describe('the README, run as written', () => {
  it('the docs: a README a newcomer reads in one sitting, one link per guide, and every guide held to this test', () => {
    expect(readme.trimEnd().split('\n').length).toBeLessThanOrEqual(300);
    expect(guideFiles).toEqual(expect.arrayContaining(['docs/connect.md', 'docs/agents.md', 'docs/policy.md', 'docs/reviews.md', 'docs/recordings.md', 'docs/deployment.md', 'docs/reference.md']));
    expect(new Set(guideFiles).size).toBe(guideFiles.length);
    // A page of docs/ with commands is a guide (read here), or says why its commands are run elsewhere.
    const withCommands = readdirSync(join(root, 'docs'))
      .map((f) => `docs/${f}`)
      .filter((f) => f.endsWith('.md') && /```sh\n/.test(readFileSync(join(root, f), 'utf8')));
    expect(withCommands.filter((f) => !guideFiles.includes(f) && !(f in NOT_GUIDES))).toEqual([]);
    // Every link between the README and docs/ lands on a file, and on a heading when it names one.
    const broken: string[] = [];
    for (const page of [
      'README.md',
      ...readdirSync(join(root, 'docs'))
        .filter((f) => f.endsWith('.md'))
        .map((f) => `docs/${f}`),
    ]) {
      const text = readFileSync(join(root, page), 'utf8').replace(/```[\s\S]*?```/g, '');
      for (const [, target, anchor] of text.matchAll(/\]\(([^)\s#]*\.md|)(?:#([^)\s]+))?\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue;
        const file = target ? join(root, dirname(page), target) : join(root, page);
        if (!existsSync(file)) {
          broken.push(`${page}: ${target}`);
          continue;
        }
        if (anchor && !anchorsOf(readFileSync(file, 'utf8')).has(anchor)) broken.push(`${page}: ${target}#${anchor}`);
      }
    }
    expect(broken).toEqual([]);
    // The product's own pointers (hints, generated files, comments) name pages that exist, and headings they hold.
    const sources = (dir: string): string[] =>
      readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
    const pointers: string[] = [];
    for (const file of sources('src')) {
      const text = readFileSync(join(root, file), 'utf8');
      for (const [, page, anchor] of text.matchAll(/docs\/([a-z0-9-]+\.md)(?:#([a-z0-9-]+))?/g)) {
        const target = join(root, 'docs', page!);
        if (!existsSync(target) || (anchor && !anchorsOf(readFileSync(target, 'utf8')).has(anchor))) pointers.push(`${file}: docs/${page}${anchor ? `#${anchor}` : ''}`);
      }
      if (/the README \("/.test(text)) pointers.push(`${file}: names a section of the README, whose sections moved to docs/`);
    }
    expect(pointers).toEqual([]);
  });

  it('the top: install and run the demo; the whole suite is what CI runs', () => {
    const [first, second] = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)][0]![1]!.trim().split('\n');
    expect(first).toBe('npm ci && npx hoop demo');
    expect(second).toBe('.ci/run');
    const ci = readFileSync(join(root, '.ci/run'), 'utf8');
    expect(ci).toContain('npm ci');
    expect(
      ci
        .trimEnd()
        .split('\n')
        .filter((l) => /^npm /.test(l)),
    ).toEqual(['npm test']);
    expect(statSync(join(root, '.ci/run')).mode & 0o111).not.toBe(0);
    // npm ci builds (its `dependencies` script: an installer of the packed tarball is not asked to allow a script of hoop's).
    expect(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).scripts.dependencies).toBe('npm run build');
    ran.add(first!);
    ran.add(second!);
  });

  it('five minutes with the demo', async () => {
    const demo = bash(['npx hoop demo']);
    await demo.waitFor(/hoop demo is running/);
    const printed = demo.stdout();
    expect(printed).toContain(`source ${home}/.local/state/hoop/demo/env`);
    // As root, the postgres OS user cannot reach a home under a 0700 temporary directory: the banner says where its files went.
    if (process.getuid?.() === 0) expect(printed).toMatch(/but PostgreSQL's files: .+ so they are in \/var\/lib\/hoop-demo\/[0-9a-f]{16} \(removed with --fresh/);

    const second = shCommands(readme).filter((l) => l.startsWith('psql -c') || l.startsWith('source '));
    const [source, masked, drop, update, del] = second;
    expect(source).toBe('source ~/.local/state/hoop/demo/env');
    const sourced = async (line: string) => run([source!, line]);
    const rows = await sourced(masked!);
    expect(rows.output).toMatch(/Ada Lovelace \| \[redacted\] \| \*{4} \*{4} \*{4} \d{4} \| \*{3}-\*{2}-\d{4}/);
    expect(rows.output).toContain('(3 rows)');
    const dropped = await sourced(drop!);
    expect(dropped.code).not.toBe(0);
    expect(dropped.output).toContain('ERROR:  hoop: denied by rule "no-drop-or-truncate"');
    expect((await sourced(update!)).output.trim()).toBe('UPDATE 1');

    // The DELETE waits for a reviewer; Rae denies it from a second terminal.
    expect(del).toBe("psql -c 'delete from orders'");
    const waiting = bash([source!, del!]);
    const [, id] = await waiting.waitFor(/NOTICE: {2}hoop: statement held for review (rv-[0-9a-f]{16}) \(rule "review-mass-writes"\)/);
    const reviewer = shCommands(readme).filter((l) => l.startsWith('HOOP_CONFIG_DIR=$HOOP_DEMO_REVIEWER'));
    expect(reviewer).toEqual(['HOOP_CONFIG_DIR=$HOOP_DEMO_REVIEWER npx hoop review ls', "HOOP_CONFIG_DIR=$HOOP_DEMO_REVIEWER npx hoop review deny rv-5c1e0b7a9d3f2e41 --reason 'not during the demo'"]);
    const listed0 = await sourced(reviewer[0]!);
    expect(listed0.output).toMatch(new RegExp(`${id} +pending 0/1 +demo@hoop\\.example +demo-db +review-mass-writes +.*delete from orders`));
    ran.add(reviewer[1]!);
    const denied = await sourced(reviewer[1]!.replace('rv-5c1e0b7a9d3f2e41', id!));
    expect(denied.output.trim()).toBe(`review ${id}: denied by rae@hoop.example: not during the demo`);
    expect(await waiting.exited).not.toBe(0);
    expect(waiting.output()).toContain(`(review ${id}): not during the demo`);

    // The Reviews reference: list, show, approve (the held statement runs: here inside a transaction rolled back), wait, deny.
    const reference = shCommands(docs).filter((l) => /^npx hoop review /.test(l));
    expect(reference.map((l) => l.split(/\s+/).slice(0, 4).join(' '))).toEqual([
      'npx hoop review ls',
      'npx hoop review show',
      'npx hoop review approve',
      'npx hoop review deny',
      'npx hoop review show',
    ]);
    const asRae = { before: `source ~/.local/state/hoop/demo/env; export HOOP_CONFIG_DIR=$HOOP_DEMO_REVIEWER` };
    const held = bash([source!, "psql -c 'begin; delete from orders; rollback'"]);
    const [, one] = await held.waitFor(/review (rv-[0-9a-f]{16})/);
    const use = (line: string, rv: string): string => {
      ran.add(line);
      return line.replace(/rv-5c1e0b7a9d3f2e41/g, rv);
    };
    expect((await run([use(reference[0]!, one!)], asRae)).output).toContain(one);
    expect((await run([use(reference[1]!, one!)], asRae)).output).toContain('    begin; delete from orders; rollback');
    expect((await run([use(reference[2]!, one!)], asRae)).output).toContain(`review ${one}: approved by rae@hoop.example`);
    expect(await held.exited).toBe(0);
    expect(held.output()).toContain('DELETE 60');
    const waited = await run([source!, use(reference[4]!, one!)]);
    expect(waited.code).toBe(0);
    expect(waited.output).toContain(`review ${one}: approved by rae@hoop.example`);
    const heldAgain = bash([source!, del!]);
    const [, two] = await heldAgain.waitFor(/review (rv-[0-9a-f]{16})/);
    expect((await run([use(reference[3]!, two!)], asRae)).output).toContain(`review ${two}: denied by rae@hoop.example: use a WHERE`);
    expect(await heldAgain.exited).not.toBe(0);

    const cli = shCommands(readme).filter((l) => /^npx hoop (whoami|connections|policy (check|test))/.test(l) && !l.includes('--dir'));
    expect(cli).toHaveLength(5); // the tour's four, and policy test after the policy edit (whoami and connections are run again by docs/connect.md's tests)
    const whoami = await sourced('npx hoop whoami');
    expect(whoami.code).toBe(0);
    expect(whoami.output).toMatch(/^demo <demo@hoop\.example>/);
    expect(whoami.output).toMatch(/groups: +engineers/);
    expect((await sourced('npx hoop connections')).output).toMatch(/demo-db +postgres +shop +read-write/);
    const check = await sourced(cli.find((l) => l.startsWith('npx hoop policy check'))!);
    expect(check.code).toBe(1);
    expect(check.output).toMatch(/decision +deny\nrule +read-only-access/);
    const test = await sourced('npx hoop policy test');
    expect(test.code).toBe(0);
    expect(test.output).toContain('8 passed, 0 failed');

    // The policy is code: $EDITOR makes the change the README's comment names.
    const lines = shCommands(readme);
    const at = lines.findIndex((l) => l.startsWith('$EDITOR'));
    const [edit, retest, commit, again] = lines.slice(at, at + 4);
    expect([retest, commit?.startsWith('git -C'), again?.startsWith('sleep 6')]).toEqual(['npx hoop policy test', true, true]);
    // The editor changes the rule and its case, as the comment says.
    writeFileSync(join(base, 'editor'), `#!/bin/sh\nsed -i -e 's/column: card_number, strategy: last4/column: card_number, strategy: redact/' -e 's/card_number: last4/card_number: redact/' "$@"\n`, {
      mode: 0o755,
    });
    const gitEnv = { EDITOR: join(base, 'editor'), GIT_AUTHOR_NAME: 'You', GIT_AUTHOR_EMAIL: 'you@example.invalid', GIT_COMMITTER_NAME: 'You', GIT_COMMITTER_EMAIL: 'you@example.invalid' };
    const changed = await run([source!, edit!, retest!, commit!, again!], { env: gitEnv });
    expect(changed.code).toBe(0);
    expect(changed.output).toContain('8 passed, 0 failed'); // the repo's own cases hold after the README's edit
    expect(changed.output).toMatch(/Ada Lovelace \| \[redacted\]/);

    // The recordings of those sessions.
    const [ls, replay, verify] = shCommands(readme).filter((l) => l.startsWith('npx hoop sessions'));
    expect([ls, replay, verify]).toEqual(['npx hoop sessions ls', 'npx hoop sessions replay last', 'npx hoop sessions verify last']);
    let listed = '';
    for (let i = 0; i < 50 && !/client-terminated/.test(listed); i++) listed = (await sourced(ls!)).output;
    expect(listed).toMatch(/^ID\s+STARTED\s+USER\s+VIA\s+CONNECTION/m);
    expect(listed).toMatch(/\s+demo\s+connect\s+demo-db\s+1\s+1\s+0\s+client-terminated\s+complete/); // the DROP, refused: it read nothing
    const replayed = await sourced(replay!);
    expect(replayed.code).toBe(0);
    expect(replayed.output).toContain('demo-db=> select name, card_number from customers limit 2');
    expect(replayed.output).not.toMatch(/\d{4} \d{4} \d{4} \d{4}/);
    const verified = await sourced(verify!);
    expect(verified.code).toBe(0);
    expect(verified.output).toMatch(/verified: \d+ chunk\(s\), \d+ events, complete, signed by SHA256:/);

    // An agent wrapped by hoop run.
    const wrapped = shCommands(readme).filter((l) => l.startsWith('npx hoop run --connect demo-db'));
    expect(wrapped).toEqual(["npx hoop run --connect demo-db -- psql -c 'select name, card_number from customers limit 2'"]);
    const agentRun = await sourced(wrapped[0]!);
    expect(agentRun.code).toBe(0);
    expect(agentRun.output).toMatch(/Ada Lovelace \| \*{4} \*{4} \*{4} \d{4}|Ada Lovelace \| \[redacted\]/);
    expect(agentRun.output).toContain('(2 rows)');
    // It said its id, and the command that lists its sessions, which works as said.
    const listRun = /`(hoop sessions ls --run run-\S+)` lists its sessions/.exec(agentRun.output)?.[1];
    expect(listRun, agentRun.output).toBeDefined();
    expect((await run([source!, listRun!])).output).toMatch(/demo-db/);

    // An agent's MCP client on demo-files, as the README's mcp config line writes it.
    const [mcpConfig, toolSessions] = shCommands(readme).filter((l) => l.startsWith('npx hoop mcp config') || l.startsWith('npx hoop sessions ls --tool'));
    const project = mkdtempSync(join(base, 'mcp-demo-'));
    expect((await run([source!, mcpConfig!], { cwd: project })).code).toBe(0);
    const servers = (JSON.parse(readFileSync(join(project, '.mcp.json'), 'utf8')) as { mcpServers: Record<string, { command: string; args: string[]; env?: Record<string, string> }> }).mcpServers;
    expect(servers['demo-files']).toMatchObject({ command: process.execPath, args: [bin, 'mcp', '--connection', 'demo-files'] });
    const client = new Client({ name: 'readme-agent', version: '1' });
    await client.connect(
      new StdioClientTransport({ command: servers['demo-files']!.command, args: servers['demo-files']!.args, env: { PATH: process.env.PATH ?? '', HOME: home, ...servers['demo-files']!.env } }),
    );
    try {
      const refunds = await client.callTool({ name: 'read_text_file', arguments: { path: join(home, '.local/state/hoop/demo/files/refunds.csv') } });
      expect(JSON.stringify(refunds)).toContain('**** **** **** 1111');
      expect(JSON.stringify(refunds)).not.toContain('4111 1111 1111 1111');
      const held = client.callTool({ name: 'write_file', arguments: { path: join(home, '.local/state/hoop/demo/files/new.txt'), content: 'x' } }, undefined, { timeout: 60_000 });
      held.catch(() => undefined);
      await eventually(async () => expect((await sourced('HOOP_CONFIG_DIR=$HOOP_DEMO_REVIEWER npx hoop review ls')).output).toContain('write_file'));
    } finally {
      await client.close();
    }
    expect(existsSync(join(home, '.local/state/hoop/demo/files/new.txt'))).toBe(false);
    const called = await eventually(async () => {
      const r = await sourced(toolSessions!);
      expect(r.output).toMatch(/demo-files/);
      return r;
    });
    expect(called.code).toBe(0);

    // The shop's REST API, its token held by the gateway: the customer masked.
    const api = shCommands(readme).filter((l) => l.startsWith('npx hoop exec demo-api'));
    expect(api).toEqual(['npx hoop exec demo-api GET /customers/1']);
    const customer = await sourced(api[0]!);
    expect(customer.code, customer.output).toBe(0);
    expect(JSON.parse(customer.stdout)).toMatchObject({ id: 1, name: 'Ada Lovelace', email: '[redacted]', card_number: expect.stringMatching(/^\*{4} \*{4} \*{4} \d{4}$/) });

    expect(await interrupt(demo)).toBe(0);
    const scripted = await run(['npx hoop demo --script']);
    expect(scripted.code, scripted.output).toBe(0);
    expect(scripted.output).toContain(`${DEMO_STEPS} of ${DEMO_STEPS} expected outcomes happened.`);
  });

  it('Alerts: the rules shown load as the section says', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hoop-readme-alerts-'));
    try {
      writeFileSync(join(dir, 'hoop.yaml'), `version: 1\n${yamlBlock('alerts:')}`);
      const policy = await loadPolicyDir(dir);
      expect(policy.alerts).toEqual([
        expect.objectContaining({ name: 'refusal-burst', event: 'refused', count: 5, withinMs: 600_000, per: 'identity', suspend: false, notify: [{ url: '${env:SECOPS_SLACK}', format: 'slack' }] }),
        expect.objectContaining({ name: 'agent-denied-twice', event: 'review-denied', count: 2, withinMs: 3_600_000, per: 'agent', suspend: true, clearedBy: ['secops'] }),
        expect.objectContaining({ name: 'bulk-customers', event: 'rows-read', table: 'customers', count: 1000, withinMs: 60_000, per: 'identity' }),
        expect.objectContaining({ name: 'night-work', event: 'off-hours', count: 20, withinMs: 3_600_000, usual: { fromMin: 480, toMin: 1140, days: [1, 2, 3, 4, 5], timeZone: 'Europe/Paris' } }),
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('Test cases: the cases shown load and run, the alert cases raising the alerts of docs/alerts.md', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hoop-readme-tests-'));
    try {
      mkdirSync(join(dir, 'policy', 'tests'), { recursive: true });
      writeFileSync(
        join(dir, 'hoop.yaml'),
        `version: 1
connections:
  - { name: prod-db, type: postgres, host: db.internal, port: 5432, database: app, user: app_rw, password: "\${env:PROD_DB_PASSWORD}" }
access:
  - { name: people, subjects: ["*"], connections: [prod-db], mode: read-write }
statements:
  rules:
    - { name: ci-never-deletes, match: { kinds: [delete], subjects: ["ci:acme/api"] }, action: deny }
    - { name: agents-write-review, match: { via: [run], kinds: [write] }, action: review }
    - { name: no-drop, match: { kinds: [drop] }, action: deny }
${yamlBlock('alerts:')}`,
      );
      writeFileSync(join(dir, 'policy', 'tests', 'ci.yaml'), yamlBlock('# policy/tests/ci.yaml'));
      const policy = await loadPolicyDir(dir);
      expect(policy.tests.map((t) => t.sql?.length)).toEqual([1, 1, 5, 1]);
      const results = await runPolicyTests(policy);
      expect(results.map((r) => [r.test.name, r.passed, r.raised])).toEqual([
        ['the migration pipeline never deletes data', true, undefined],
        ["an agent's writes wait for a reviewer", true, undefined],
        ['a burst of drops raises the alert', true, ['refusal-burst']],
        ['a bulk read of customers raises the alert', true, ['bulk-customers']],
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('SSH sessions: the policy shown loads, and judges as the section says', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hoop-readme-ssh-'));
    try {
      writeFileSync(join(dir, 'hoop.yaml'), `version: 1\n${yamlBlock('# in the policy repo')}`);
      const policy = await loadPolicyDir(dir);
      const judge = (groups: string[], mode: 'read-only' | 'read-write' = 'read-write') => sshJudgeFor(policy, { subject: 'x', groups }, 'bastion', mode);
      const agent = judge(['agents']);
      expect(agent.decide({ kind: 'shell' }, 'bash').action).toBe('deny');
      expect(agent.decide({ kind: 'exec', command: 'bash -i' }, 'bash').action).toBe('deny');
      expect(agent.decide({ kind: 'exec', command: './deploy.sh v2' }, 'bash')).toMatchObject({ action: 'review', message: 'deploys need a second pair of eyes' });
      const engineer = judge(['engineers']);
      expect(engineer.decide({ kind: 'shell' }, 'bash').action).toBe('allow');
      for (const command of ['rm -rf /srv/app', 'rm -R /srv/app', 'rm -f -r /srv/app', 'rm --recursive /srv/app', '/bin/rm -rf /srv/app', 'sudo rm -rf /srv/app', 'ls; rm -rf $DIR', '$X -rf /srv/app'])
        expect(engineer.decide({ kind: 'exec', command }, 'bash')).toMatchObject({ action: 'deny', rule: 'no-recursive-rm' });
      // A pattern anchored at the command: an unknown word elsewhere (`$(hostname)`), or rm as an argument, is not a delete.
      for (const command of ['echo deployed on $(hostname)', 'ls -d $HOME', 'echo rm -rf is not allowed']) expect(engineer.decide({ kind: 'exec', command }, 'bash').action, command).toBe('allow');
      expect(engineer.decide({ kind: 'exec', command: 'rm /srv/app/old.log' }, 'bash').action).toBe('allow');
      expect(engineer.forward('db.internal', 5432)).toBe(true);
      expect(judge([], 'read-only').decide({ kind: 'exec', command: 'touch /srv/x' }, 'bash').action).toBe('deny');
      expect(judge([], 'read-only').decide({ kind: 'exec', command: 'scp -f /srv/x' }, 'bash').action).toBe('allow');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the policy repo: examples/policy-repo passes its tests, and check/show answer as shown', async () => {
    const lines = [...shCommands(docs), ...shCommands(exampleReadme)].filter((l) => l.includes('--dir examples/policy-repo'));
    expect(lines.length).toBeGreaterThanOrEqual(5);
    for (const line of new Set(lines)) {
      const r = await run([line]);
      const want = line.includes('policy check') ? (line.includes('"delete from orders"') ? 2 : 1) : 0;
      expect({ line, code: r.code }).toEqual({ line, code: want });
      if (line.includes('policy test')) expect(r.output).toMatch(/^\d+ passed, 0 failed$/m);
      if (line.includes('masking-derived')) expect(r.output).toMatch(/rule +masking-derived/);
      if (line.includes('truncate')) expect(r.output).toMatch(/rule +no-drop-or-truncate/);
      if (line.includes('policy show')) expect(r.output).toMatch(/^connections \(3\)$/m);
    }
  });

  it('hoop mcp: the config line writes the MCP configuration docs/agents.md shows', async () => {
    const line = shCommands(docs).find((l) => l.startsWith('hoop mcp config'))!;
    const dir = mkdtempSync(join(base, 'mcp-'));
    const r = await run([line], { cwd: dir });
    expect(r.code).toBe(0);
    const written = JSON.parse(readFileSync(join(dir, '.mcp.json'), 'utf8')) as { mcpServers: { hoop: { type: string; command: string; args: string[] } } };
    expect(written.mcpServers.hoop).toMatchObject({ type: 'stdio', command: process.execPath, args: [bin, 'mcp'] });
  });

  it("editors: policy schema writes the JSON Schemas docs/policy.md's yaml-language-server line names", async () => {
    const lines = shCommands(docs).filter((l) => l.startsWith('npx hoop policy schema'));
    expect(lines).toHaveLength(2);
    const dir = mkdtempSync(join(base, 'schema-'));
    const r = await run(lines, { cwd: dir });
    expect(r.code).toBe(0);
    const policy = JSON.parse(readFileSync(join(dir, 'hoop.schema.json'), 'utf8')) as { $schema: string; properties: Record<string, unknown> };
    const tests = JSON.parse(readFileSync(join(dir, 'hoop-tests.schema.json'), 'utf8')) as { properties: { tests: unknown } };
    expect(policy.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(Object.keys(policy.properties)).toContain('masking');
    expect(tests.properties.tests).toBeDefined();
    expect(yamlBlock('# yaml-language-server: $schema=./hoop.schema.json')).toContain('version: 1');
  });

  describe('setting hoop up in five steps', () => {
    const dir = join(base, 'five');
    let pg: PgCluster;
    let oidc: TestOidc;
    let gateway: Shell | undefined;
    /** The README's example addresses, and what stands in for them here. */
    const stand: Array<[string, string]> = [];
    const substitute = (text: string): string => stand.reduce((t, [from, to]) => t.split(from).join(to), text);

    beforeAll(async () => {
      mkdirSync(dir, { recursive: true });
      [pg, oidc] = await Promise.all([startPgCluster(), startOidc({ audience: 'hoop', accounts: { dana: { groups: ['dba'], email: 'dana@acme.example' } } })]);
      await pg.psql("create table orders (id int primary key, status text, note text); insert into orders values (1, 'paid', 'mail ada@acme.example')", { user: pg.users.scram });
      const port = await freePort();
      stand.push(
        ['https://hoop.acme.example:8443', `https://127.0.0.1:${port}`],
        ['https://sso.acme.example/realms/acme', oidc.issuer],
        ['hoop_gateway@db.internal:5432/app?sslmode=verify-full', `${pg.users.scram.user}@127.0.0.1:${pg.port}/app?sslmode=disable`],
        ["HOOP_DB_PROD_DB_PASSWORD='…'", `HOOP_DB_PROD_DB_PASSWORD='${pg.users.scram.password}'`],
      );
    });

    afterAll(async () => {
      if (gateway) await interrupt(gateway);
      await Promise.all([pg?.stop(), oidc?.close()]);
    });

    it('init writes a configuration the gateway starts on; a person signs in in the browser, connects, and reads through the starter policy', async () => {
      const lines = shCommands(readme);
      const at = lines.findIndex((l) => l.startsWith('npm ci && npm pack && npm install -g'));
      const [init, start, login, connect] = lines.slice(at + 1, at + 5);
      expect(init).toMatch(/^hoop gateway init --url https:\/\/hoop\.acme\.example:8443 --idp keycloak /);
      for (const l of [init!, start!, login!, connect!]) ran.add(l);

      const written = await run([substitute(init!)], { cwd: dir });
      expect(written.code).toBe(0);
      // Step 3, what to register: the test's provider has that client already.
      expect(written.output).toContain('Register hoop at Keycloak (docs/deployment.md#keycloak)');
      expect(written.output).toContain('redirect     http://127.0.0.1/callback, on any port');
      expect(written.output).toContain('tokens       access tokens for the audience hoop, groups in the groups claim');
      expect((await run(['npx hoop policy test --dir policy-repo --offline'], { cwd: dir })).output).toMatch(/^5 passed, 0 failed$/m);

      gateway = bash([substitute(start!)], { cwd: dir });
      await gateway.waitFor(/"event":"gateway.listening"/);

      const env = { HOOP_CONFIG_DIR: join(dir, 'person'), HOOP_TOKEN_STORE: 'file' };
      await browserSignIn(substitute(login!), { dir, env, cwd: dir });

      const open = bash([connect!], { cwd: dir, env });
      const psqlLine = await open.waitFor(/^ {2}(PGPASSFILE=\S+ psql '[^']+')$/m);
      const read = await run([`${psqlLine[1]} -XAt -c 'select id, status, note from orders' -c 'delete from orders'`]);
      ran.delete(`${psqlLine[1]} -XAt -c 'select id, status, note from orders' -c 'delete from orders'`);
      expect(read.stdout.trim()).toBe('1|paid|mail [redacted]'); // the starter policy's detector
      expect(read.output).toContain('read-only'); // and its read-only access
      expect(await interrupt(open)).toBe(0);
      expect(Number((await pg.psql('select count(*) from orders')).trim())).toBe(1);
    });
  });

  describe('setting hoop up for real', () => {
    let pki: TestPki;
    let pg: PgCluster;
    let oidc: TestOidc;
    let wl: WorkloadIssuer;
    let repo: PolicyGitRepo;
    let gatewayUrl: string;
    let gateway: Shell;
    const dir = join(base, 'real');
    const secrets = join(dir, 'secrets');
    /** The docs' example addresses and paths, and what stands in for them here. */
    const stand: Array<[string, string]> = [];
    const substitute = (text: string): string => stand.reduce((t, [from, to]) => t.split(from).join(to), text);
    const cliEnv = (name: string): NodeJS.ProcessEnv => ({ HOOP_CONFIG_DIR: join(dir, name), HOOP_TOKEN_STORE: 'file', HOOP_CA_FILE: pki.caFile });

    beforeAll(async () => {
      mkdirSync(secrets, { recursive: true });
      [pki, pg, oidc, wl] = await Promise.all([
        createTestPki(),
        startPgCluster(),
        startOidc({ audience: 'hoop', accounts: { dana: { groups: ['dba'], email: 'dana@acme.example' } } }),
        startWorkloadIssuer(),
      ]);
      await pg.psql(
        `create table customers (id int primary key, name text, email text, card_number text);
         insert into customers values (1, 'Ada', 'ada@acme.example', '4111 1111 1111 1111'), (2, 'Alan', 'alan@acme.example', '5500 0000 0000 0004');
         create table orders (id int primary key, status text);
         insert into orders select g, case when g % 3 = 0 then 'paid' else 'shipped' end from generate_series(1, 30) g;`,
        { user: pg.users.scram },
      );
      const cert = await pki.issue('gateway', ['IP:127.0.0.1']);
      const port = await freePort();
      gatewayUrl = `https://127.0.0.1:${port}`;

      // The config repo: examples/policy-repo, its prod-db at this test's database, commits signed.
      repo = new PolicyGitRepo('hoop-e2e-readme-policy-');
      cpSync(join(root, 'examples/policy-repo'), repo.dir, { recursive: true });
      const connections = join(repo.dir, 'policy/connections.yaml');
      const text = readFileSync(connections, 'utf8');
      const prod = /- name: prod-db[\s\S]*?\n\n/.exec(text)![0];
      writeFileSync(
        connections,
        text.replace(
          prod,
          prod
            .replace('host: prod-db.internal.acme.example', 'host: 127.0.0.1')
            .replace(/port: 5432/, `port: ${pg.port}`)
            .replace('user: hoop_gateway', `user: ${pg.users.scram.user}`)
            .replace(/tls:\n(\s+\S.*\n){3}/, 'tls: { mode: disable }\n'),
        ),
      );
      stand.push(
        ['0.0.0.0:8443', `127.0.0.1:${port}`],
        ['/etc/hoop/tls/gateway.crt', cert.certFile],
        ['/etc/hoop/tls/gateway.key', cert.keyFile],
        ['/var/lib/hoop', join(dir, 'data')],
        ['https://login.acme.example', oidc.issuer],
        ['https://token.actions.githubusercontent.com', wl.issuer],
        ['https://git.acme.example/platform/hoop-policy.git', repo.dir],
        ['/etc/hoop/allowed_signers', join(dir, 'allowed_signers')],
        ['/run/secrets/hoop/', `${secrets}/`],
        ['https://hoop.acme.example', gatewayUrl],
        ['/var/log/hoop/audit.jsonl', join(dir, 'audit.jsonl')],
      );
      for (const file of ['policy/connections.yaml']) writeFileSync(join(repo.dir, file), substitute(readFileSync(join(repo.dir, file), 'utf8')));
      writeFileSync(join(secrets, 'analytics-replica'), 'unused\n');
      const key = repo.sshKey('policy-admin');
      writeFileSync(join(dir, 'allowed_signers'), `author@example.org namespaces="git" ${readFileSync(`${key}.pub`, 'utf8')}`);
      repo.git('add', '-A');
      repo.git('-c', 'gpg.format=ssh', '-c', `user.signingkey=${key}`, 'commit', '-q', '-S', '-m', 'The policy');
      writeFileSync(join(dir, 'gateway.yaml'), substitute(yamlBlock('# gateway.yaml')));

      const command = shCommands(docs).find((l) => l.startsWith('npx hoop gateway'))!;
      expect(command).toBe('npx hoop gateway --config gateway.yaml');
      gateway = bash([command], { cwd: dir, env: { PROD_DB_PASSWORD: pg.users.scram.password, STAGING_DB_PASSWORD: 'unused', HOOP_MASK_KEY: 'a mask key for the README test' } });
      await gateway.waitFor(/"event":"gateway.listening"/);
    });

    afterAll(async () => {
      if (gateway) await interrupt(gateway);
      await Promise.all([pg?.stop(), oidc?.close(), wl?.close(), pki?.cleanup()]);
      repo?.remove();
    });

    it("the gateway loads docs/deployment.md's gateway.yaml with the signed example policy repo", () => {
      expect(gateway.output()).toContain('"connections":["prod-db","analytics-replica","staging-db"]');
      expect(gateway.output()).not.toContain('unsigned');
    });

    it('identity: browser and device logins as docs/connect.md gives them, then whoami', async () => {
      const [browser, whoami, device] = shCommands(guides).filter((l) => /^npx hoop (login|whoami)/.test(l));
      expect([browser, whoami, device]).toEqual(['npx hoop login --gateway https://hoop.acme.example', 'npx hoop whoami', 'npx hoop login --gateway https://hoop.acme.example --device']);

      const env = cliEnv('person');
      const login = await browserSignIn(substitute(browser!), { dir, env });
      ran.add(browser!);
      expect(login.output()).toContain(`Logged in to ${gatewayUrl} as dana`);
      const who = await run([whoami!], { env });
      expect(who.output).toMatch(/^dana <dana@acme\.example>/);
      expect(who.output).toMatch(/groups: +dba/);

      const onDevice = bash([substitute(device!)], { env: cliEnv('device'), tty: true });
      ran.add(device!);
      const code = await onDevice.waitFor(/Open (\S+) and enter the code\s+([A-Z0-9]{4}-[A-Z0-9]{4})/);
      await new TestBrowser().approveDevice(code[1]!, code[2]!, 'dana');
      expect(await onDevice.exited).toBe(0);
      expect(onDevice.output()).toContain(`Logged in to ${gatewayUrl} as dana`);
    });

    it('hoop connect: connections, then psql through the local port sees masked values', async () => {
      const [connections, connect] = shCommands(guides).filter((l) => /^npx hoop conn/.test(l) && !l.includes('--direct'));
      expect([connections, connect]).toEqual(['npx hoop connections', 'npx hoop connect prod-db']);
      const env = cliEnv('person');
      const ls = await run([connections!], { env });
      expect(ls.output).toMatch(/prod-db +postgres +app +read-write/);
      const open = bash([connect!], { env });
      const line = await open.waitFor(/^ {2}(PGPASSFILE=\S+ psql '[^']+')$/m);
      const r = await run([`${line[1]} -XAt -c 'select email, card_number from customers order by id'`]);
      ran.delete(`${line[1]} -XAt -c 'select email, card_number from customers order by id'`);
      expect(r.stdout.trim().split('\n')).toEqual([expect.stringMatching(/^h:[0-9a-f]{16}\|\*{4} \*{4} \*{4} 1111$/), expect.stringMatching(/^h:[0-9a-f]{16}\|\*{4} \*{4} \*{4} 0004$/)]);
      expect(await interrupt(open)).toBe(0);
    });

    it('hoop connect --direct: psql with the connection string it prints reaches the gateway itself and sees masked values', async () => {
      const [direct] = shCommands(docs).filter((l) => l.startsWith('npx hoop connect --direct'));
      expect(direct).toBe('npx hoop connect --direct prod-db');
      const open = bash([direct!], { env: cliEnv('person') });
      const line = await open.waitFor(/^ {2}(PGPASSFILE=\S+ psql '[^']+')$/m);
      expect(line[1]).toMatch(/channel_binding=require'$/);
      const r = await run([`${line[1]} -XAt -c 'select email, card_number from customers order by id'`]);
      ran.delete(`${line[1]} -XAt -c 'select email, card_number from customers order by id'`);
      expect(r.stdout.trim().split('\n')).toEqual([expect.stringMatching(/^h:[0-9a-f]{16}\|\*{4} \*{4} \*{4} 1111$/), expect.stringMatching(/^h:[0-9a-f]{16}\|\*{4} \*{4} \*{4} 0004$/)]);
      expect(await interrupt(open)).toBe(0);
    });

    it('hoop run and hoop exec: the same rows, masked, through psql wrapped and as CSV', async () => {
      const agents = ['npx hoop run --connect prod-db', 'npx hoop exec prod-db'].flatMap((start) => shCommands(docs).filter((l) => l.startsWith(start)));
      expect(agents).toEqual([
        "npx hoop run --connect prod-db -- psql -XAt -c 'select email, card_number from customers order by id'",
        "npx hoop exec prod-db --csv -c 'select email, card_number from customers order by id'",
      ]);
      const masked = (sep: string) => [1111, '0004'].map((last) => expect.stringMatching(new RegExp(`^h:[0-9a-f]{16}\\${sep}\\*{4} \\*{4} \\*{4} ${last}$`)));
      const [wrapped, exec] = [await run([agents[0]!], { env: cliEnv('person') }), await run([agents[1]!], { env: cliEnv('person') })];
      // (the output in the assertion: what went wrong, when something does)
      expect({ wrapped: wrapped.code, exec: exec.code, output: wrapped.output }).toMatchObject({ wrapped: 0, exec: 0 });
      expect(wrapped.stdout.trim().split('\n')).toEqual(masked('|'));
      expect(exec.stdout.trim().split('\n')).toEqual(['email,card_number', ...masked(',')]);
    });

    it('access requests: an engineer asks for read-write on prod-db and waits; a DBA approves it with hoop review', async () => {
      const [line] = shCommands(docs).filter((l) => l.startsWith('npx hoop request '));
      expect(line).toBe("npx hoop request prod-db --mode read-write --for 1h --reason 'INC-4312: fix the stuck orders' --wait");
      const env = { HOOP_TOKEN: await oidc.token({ subject: 'erin', groups: ['engineers'] }), HOOP_GATEWAY: gatewayUrl, HOOP_CA_FILE: pki.caFile };
      const asking = bash([line!], { env });
      const [, id] = await asking.waitFor(/request (rv-[0-9a-f]{16}) for read-write access to prod-db: pending/);
      const approved = await run([`npx hoop review approve ${id}`], { env: cliEnv('person') }); // dana, group dba
      expect(approved.code).toBe(0);
      expect(await asking.exited).toBe(0);
      expect(asking.output()).toMatch(new RegExp(`request ${id}: approved by dana@acme\\.example: read-write access to prod-db until `));
      const listed = await run(['npx hoop connections'], { env });
      expect(listed.output).toMatch(/prod-db +postgres +app +read-write \(requested, until /);
    });

    it("CI: the GitHub Actions workflow's run steps sign in as ci:acme/api and report through hoop", async () => {
      const workflow = parseYaml(yamlBlock('# .github/workflows/')) as {
        permissions: Record<string, string>;
        jobs: Record<string, { env: Record<string, string>; steps: Array<{ uses?: string; run?: string; 'working-directory'?: string }> }>;
      };
      expect(workflow.permissions['id-token']).toBe('write');
      const job = Object.values(workflow.jobs)[0]!;
      // The workspace: this checkout where the workflow checks hoop out.
      const workspace = join(dir, 'workspace');
      mkdirSync(join(workspace, 'runner-temp'), { recursive: true });
      symlinkSync(root, join(workspace, 'hoop'));
      const endpoint = wl.githubActionsEndpoint();
      const env = {
        ...cliEnv('ci'),
        HOOP_CA_FILE: pki.caFile,
        CI: 'true',
        GITHUB_ACTIONS: 'true',
        RUNNER_TEMP: join(workspace, 'runner-temp'),
        ACTIONS_ID_TOKEN_REQUEST_URL: endpoint.url,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: endpoint.bearer,
        ...Object.fromEntries(Object.entries(job.env).map(([k, v]) => [k, substitute(v)])),
      };
      const outputs: string[] = [];
      for (const step of job.steps) {
        if (step.uses) {
          expect(step.uses).toMatch(/^actions\/(checkout|setup-node)@v\d+$/); // GitHub's own: a checkout and Node
          continue;
        }
        const lines = step.run!.trimEnd().split('\n');
        if (lines.join('\n') === 'npm ci') {
          ran.add('npm ci');
          continue;
        }
        const sh = bash(lines, { env, cwd: join(workspace, step['working-directory'] ?? '.'), before: 'set -e' });
        expect({ step: lines[0], code: await sh.exited, output: sh.output() }).toMatchObject({ step: lines[0], code: 0 });
        outputs.push(sh.output());
      }
      expect(outputs.join('\n')).toContain('as ci:acme/api (workload)');
      expect(outputs.at(-1)).toMatch(/paid +\| +10/);
      expect(outputs.at(-1)).toMatch(/shipped +\| +20/);
      // The gateway's audit stream saw the sessions of this setup (file sink, flushed each second).
      const audit = await eventually(
        () => {
          const audit = existsSync(join(dir, 'audit.jsonl'))
            ? readFileSync(join(dir, 'audit.jsonl'), 'utf8')
                .trim()
                .split('\n')
                .map((l) => JSON.parse(l) as Record<string, unknown>)
            : [];
          expect(audit.some((e) => e.event === 'session.start' && e.subject === 'ci:acme/api')).toBe(true);
          return audit;
        },
        { timeout: 60_000, interval: 100 },
      );
      expect(audit).toContainEqual(expect.objectContaining({ v: 1, event: 'session.start', subject: 'ci:acme/api', connection: 'prod-db' }));
      expect(audit).toContainEqual(expect.objectContaining({ v: 1, event: 'session.end', subject: 'dana', connection: 'prod-db' }));
    });
  });

  it('the benchmark runs (briefly here)', async () => {
    const r = await run(['npm run bench'], {
      env: {
        // What is checked is that each part runs and reports, not its figures: a second a run, after a second's warm-up.
        BENCH_SECONDS: '1',
        BENCH_SCALE: '1',
        BENCH_COPY_ROWS: '10000',
        BENCH_COPY_RUNS: '1',
        BENCH_PATHS: 'ssh,hoop-direct',
        BENCH_RUNS: 'latency',
        BENCH_LIMITS: '0',
        BENCH_SCP: '0',
        BENCH_IDLE: '0',
        BENCH_AGENT_RUNS: '1',
        BENCH_GATE_FILES: '100',
        // A second through each path first: beside a busy loop the first transaction through a cold gateway took over the 1 s measured (0 transactions, nothing to read).
        BENCH_WARMUP: '1',
        BENCH_MCP: '0',
        BENCH_MYSQL_ROWS: '1000',
      },
    });
    expect(r.code).toBe(0);
    expect(r.output).toMatch(/^hoop direct, all on +\d+\.\d+ +x\d/m);
    expect(r.output).toMatch(/^\| hoop run, contained through the gate \(whole run of `true`\) \| \d+\.\d ms/m);
    expect(r.output).toMatch(/^\| the gate: 100 changed files of 10 KiB read, judged, applied \| \d+\.\d ms/m);
  });

  it('shell completion, set up as the reference says, completes hoop in bash, zsh and fish', async () => {
    const lines = shCommands(docs).filter((l) => l.includes('hoop completion '));
    expect(lines).toHaveLength(3);
    const shellHome = join(base, 'completion-home');
    mkdirSync(shellHome);
    const r = await run([...lines, 'complete -p hoop', 'COMP_WORDS=(hoop sessions l); COMP_CWORD=2; _hoop_complete; echo "offered: ${COMPREPLY[*]}"'], { env: { HOME: shellHome } });
    for (const l of lines) for (const part of l.split(' && ')) ran.add(part);
    expect(r.code, r.output).toBe(0);
    expect(r.stdout).toContain('complete -F _hoop_complete hoop');
    expect(r.stdout).toContain('offered: ls');
    const zsh = await runProcess('zsh', ['-fc', 'fpath+=~/.zfunc; autoload -U compinit; compinit -u -D; print -r -- "uses: $_comps[hoop]"'], { env: { HOME: shellHome } });
    expect(zsh.stdout).toContain('uses: _hoop');
    // fish completes a command it finds: hoop installed (here, this checkout's) on PATH.
    mkdirSync(join(shellHome, 'bin'));
    writeFileSync(join(shellHome, 'bin', 'hoop'), `#!/bin/sh\nexec ${process.execPath} ${bin} "$@"\n`, { mode: 0o755 });
    const fish = await runProcess('fish', ['-c', 'complete -C "hoop sessions l"'], {
      env: { HOME: shellHome, XDG_CONFIG_HOME: join(shellHome, '.config'), PATH: `${join(shellHome, 'bin')}:${process.env.PATH}` },
    });
    expect(fish.stdout.split('\n')[0]).toBe('ls');
  });

  it('ran every command of the README and its guides', () => {
    const workflowRuns = Object.values((parseYaml(yamlBlock('# .github/workflows/')) as { jobs: Record<string, { steps: Array<{ run?: string }> }> }).jobs)[0]!.steps.flatMap((s) =>
      s.run ? s.run.trimEnd().split('\n') : [],
    );
    const all = [...shCommands(docs), ...shCommands(exampleReadme), ...workflowRuns].flatMap((l) => l.split(' && '));
    expect(all.filter((l) => !ran.has(l) && !RUN_BY_CI.has(l) && !RUN_BY_PACKAGE_TEST.has(l) && !RUN_BY_DEPLOYMENT_TEST.has(l))).toEqual([]);
  });
});
