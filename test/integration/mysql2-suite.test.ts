/**
 * The mysql2 driver's own test suite (issue 59), run twice: straight at a real MariaDB, and through
 * `hoop connect`'s local port with a policy in force (statement rules judged, a masking stage on
 * every result). Each of the suite's test files is one outcome (poku runs a file as a process, its
 * exit status the verdict); a file that passes direct and fails through hoop must be a refusal
 * docs/mysql.md names, listed in {@link NAMED_REFUSALS} with the refusal it meets.
 *
 * CI cannot reach GitHub, so the suite is a checkout made by hand (docs/mysql.md says how) and
 * this file runs only when `HOOP_MYSQL2_SUITE` names it:
 *
 *     HOOP_MYSQL2_SUITE=/tmp/mysql2-src npx vitest run test/integration/mysql2-suite.test.ts
 *
 * Each path has a server of its own, made alike (`CREATE DATABASE test`, the suite's database), so
 * both runs start from the same state. Both sign in as the server's `root` (the suite's user, which
 * creates users and sets global variables): the hoop connection's `user` is `root`. Both use TLS
 * (the suite's `MYSQL_USE_TLS=1`), so what the server says of the connection's TLS agrees. A report
 * (JSON) lists each difference, and the files that fail on one path or both.
 */
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProcess } from '../harness/clients.js';
import { mariaDbInstalled, startMariaDb, type MariaServer } from '../harness/mariadb.js';
import { PolicyGitRepo } from '../harness/policy-git.js';
import { startStack, type HoopStack, type RunningConnect } from '../harness/stack.js';

const SUITE = process.env.HOOP_MYSQL2_SUITE;
/** How many of the suite's files run at once (its own default is 8; this machine may have 2 cores). */
const CONCURRENCY = Number(process.env.HOOP_MYSQL2_SUITE_CONCURRENCY ?? 3);
/** The longest one file may run (the suite's own limit for its sequential files). */
const FILE_TIMEOUT_MS = 60_000;

/** A refusal docs/mysql.md names, and what shows it in a file's output through hoop. */
interface NamedRefusal {
  refusal: string;
  shows: RegExp;
}

const SQL_MODE: NamedRefusal = { refusal: 'SET sql_mode, or a character set other than UTF-8 (a lexing change)', shows: /rule "parser-consistency": sql_mode must stay as the session began/ };
const JSON_TYPE: NamedRefusal = {
  refusal: "MariaDB's extended column metadata is not offered: a JSON column reads as text",
  shows: /◌ [^\n]*JSON[^\n]*\n\s*✘|✘ Ensure JSON return parsed/,
};
const UNPARSEABLE_SYNTAX_ERROR: NamedRefusal = {
  refusal: "SQL the parser cannot read is refused as unparseable: a syntax error is ERROR 1227, not the server's 1064",
  shows: /Actual:\s+(1227|"hoop: denied by rule \\"unparseable\\")/,
};
const CHANGE_USER: NamedRefusal = {
  refusal: "COM_CHANGE_USER (met first: CREATE USER 'u'@'%', which the parser cannot read)",
  shows: /rule "unparseable": the statement could not be parsed as MySQL SQL \(a syntax error [^\n]* in a CREATE USER statement\)/,
};
const LOCAL_INFILE: NamedRefusal = { refusal: 'LOAD DATA LOCAL INFILE', shows: /rule "unparseable": [^\n]* in a LOAD DATA statement/ };

/**
 * Files that pass direct and fail through hoop, each with the refusal of docs/mysql.md it meets.
 * Every one was read: the failure is that refusal, not another.
 */
const NAMED_REFUSALS: Record<string, NamedRefusal> = {
  'test/integration/connection/encoding/test-track-encodings.test.mts': SQL_MODE,
  'test/integration/connection/test-binary-notnull-nulls.test.mts': SQL_MODE,
  'test/integration/connection/test-invalid-date-result.test.mts': SQL_MODE,
  'test/integration/connection/test-timestamp.test.mts': SQL_MODE,
  'test/integration/regressions/test-#1019.test.mts': SQL_MODE,
  'test/global/integration/connection/test-track-state-change.test.mts': SQL_MODE,
  'test/integration/connection/test-select-json.test.mts': JSON_TYPE,
  'test/integration/connection/test-execute-bind-json.test.mts': JSON_TYPE,
  'test/integration/connection/test-insert-json.test.mts': JSON_TYPE,
  'test/integration/connection/test-typecast.test.mts': JSON_TYPE,
  'test/integration/connection/test-typecast-execute.test.mts': JSON_TYPE,
  'test/integration/parsers/json-parse.test.mts': JSON_TYPE,
  'test/integration/connection/test-binary-multiple-results.test.mts': {
    refusal: 'routine bodies (CREATE PROCEDURE … BEGIN … END) are unparseable',
    shows: /rule "unparseable": [^\n]*CREATE PROCEDURE/,
  },
  'test/integration/connection/test-column-inspect.test.mts': { refusal: 'what the parser cannot read is unparseable: a ZEROFILL column', shows: /rule "unparseable": [^\n]*found: ZEROFILL/ },
  'test/integration/connection/test-errors.test.mts': UNPARSEABLE_SYNTAX_ERROR,
  'test/integration/regressions/test-#433.test.mts': UNPARSEABLE_SYNTAX_ERROR,
  'test/integration/connection/test-reset-connection.test.mts': { refusal: 'COM_RESET_CONNECTION on a governed session', shows: /hoop: COM_RESET_CONNECTION is not relayed/ },
  'test/integration/test-pool-disconnect.test.mts': { refusal: 'KILL is unparseable', shows: /rule "unparseable": [^\n]*\(Kill\)/ },
  'test/global/integration/connection/test-load-infile.test.mts': LOCAL_INFILE,
  'test/global/integration/connection/test-backpressure-load-data-infile.test.mts': LOCAL_INFILE,
  'test/global/integration/connection/test-change-user.test.mts': CHANGE_USER,
  'test/global/integration/connection/test-change-user-plugin-auth.test.mts': CHANGE_USER,
  'test/global/integration/pool/test-pool-change-user-isolation.test.mts': CHANGE_USER,
  'test/global/integration/promise-wrappers/test-promise-wrapper-change-user.test.mts': CHANGE_USER,
  'test/global/integration/regressions/2052.test.mts': {
    refusal: "another database at sign-in than the connection's (the suite reads the server's version signed in to `mysql`)",
    shows: /hoop: suite serves the database test, not mysql/,
  },
};

/** One file's run: its exit status and what it printed (colours removed). */
interface FileOutcome {
  passed: boolean;
  code: number | null;
  output: string;
}
type RunOutcomes = Map<string, FileOutcome>;

/** The suite's test files as its poku config finds them: the parallel ones (unit, integration), then the sequential ones (global). */
function suiteFiles(root: string): { parallel: string[]; sequential: string[] } {
  const walk = (dir: string): string[] =>
    readdirSync(dir)
      .flatMap((name) => {
        const path = join(dir, name);
        return statSync(path).isDirectory() ? walk(path) : /\.test\.m?ts$/.test(name) ? [relative(root, path)] : [];
      })
      .sort();
  return { parallel: [...walk(join(root, 'test/unit')), ...walk(join(root, 'test/integration'))], sequential: walk(join(root, 'test/global')) };
}

/** Runs every file of the suite against the server `env` names; resolves each file's outcome. */
async function runSuite(root: string, env: NodeJS.ProcessEnv): Promise<RunOutcomes> {
  const { parallel, sequential } = suiteFiles(root);
  const outcomes: RunOutcomes = new Map();
  const runFile = async (file: string): Promise<void> => {
    const r = await runProcess('node', ['--import=tsx', file], {
      cwd: root,
      timeoutMs: FILE_TIMEOUT_MS,
      // Only what the suite reads: the runner's own variables (vitest's) are not the suite's business.
      env: { PATH: process.env.PATH, HOME: process.env.HOME, CI: '1', MYSQL_USE_TLS: '1', ...env },
    }).catch((err: Error) => ({ code: null, stdout: '', stderr: err.message }));
    // Without the colours of poku's reporter.
    const output = (r.stdout + r.stderr).replace(/\x1b\[[0-9;]*m/g, '');
    outcomes.set(file, { passed: r.code === 0, code: r.code, output });
  };
  const queue = [...parallel];
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let file = queue.shift(); file !== undefined; file = queue.shift()) await runFile(file);
    }),
  );
  for (const file of sequential) await runFile(file);
  return outcomes;
}

/** The tests of a file that failed (poku's ✘ lines, under the test they belong to), hoop's refusals it met, and its last lines when it said neither. */
function failureOf(o: FileOutcome): { failed: string[]; refusals: string[]; tail?: string } {
  const lines = o.output.split('\n');
  const failed = lines.flatMap((line, i) => {
    if (!line.includes('✘')) return [];
    const title = lines
      .slice(0, i)
      .reverse()
      .find((l) => l.includes('◌'));
    return [`${title?.trim() ?? ''} ${line.trim()}`.trim()];
  });
  const refusals = [...new Set(o.output.match(/hoop: [^\n]{0,200}/g) ?? [])];
  return { failed: [...new Set(failed)], refusals, ...(refusals.length === 0 && failed.length === 0 && { tail: lines.slice(-12).join('\n') }) };
}

/** A server for one path, with the suite's database. */
async function suiteServer(): Promise<MariaServer> {
  const db = await startMariaDb();
  await db.sql('CREATE DATABASE test');
  return db;
}

const ready = SUITE !== undefined && existsSync(join(SUITE, 'node_modules/poku')) && existsSync(join(SUITE, 'node_modules/tsx')) && mariaDbInstalled();

describe.skipIf(!ready)(
  `the mysql2 driver's own suite, direct and through hoop${ready ? '' : ' (skipped: HOOP_MYSQL2_SUITE names no mysql2 checkout with its devDependencies installed, or MariaDB is not installed; see docs/mysql.md)'}`,
  () => {
    const root = SUITE!;
    let direct: RunOutcomes;
    let viaHoop: RunOutcomes;
    let db: MariaServer | undefined;
    let stack: HoopStack | undefined;
    let repo: PolicyGitRepo | undefined;
    let connect: RunningConnect | undefined;

    beforeAll(async () => {
      db = await suiteServer();
      direct = await runSuite(root, { MYSQL_HOST: db.host, MYSQL_PORT: String(db.port), MYSQL_USER: db.root.user, MYSQL_PASSWORD: db.root.password });
      await db.stop();
      db = await suiteServer();
      const server = db;
      repo = new PolicyGitRepo('hoop-mysql2-suite-');
      const policyRepo = repo;
      stack = await startStack({
        env: { MARIA_ROOT_PASSWORD: server.root.password },
        policy: () => {
          policyRepo.commit(`version: 1
connections:
  - { name: suite, type: mysql, host: 127.0.0.1, port: ${server.port}, database: test, user: root, password: "\${env:MARIA_ROOT_PASSWORD}", tls: { mode: verify-full, ca: ${server.caFile}, serverName: localhost } }
access:
  - { name: people, subjects: [alice], connections: [suite], mode: read-write }
statements:
  rules:
    - { name: no-file-reads, match: { functions: [load_file] }, action: deny, message: files are not read here }
masking:
  names:
    - { pattern: "^hoop_never_read$", strategy: redact }
`);
          return policyRepo.gatewayBlock(['${env:MARIA_*}']);
        },
      });
      // The suite runs for many minutes through one hoop connect, whose token is not renewed.
      connect = await stack.connect('suite', await stack.token('alice', [], undefined, 3600));
      const i = connect.info;
      viaHoop = await runSuite(root, { MYSQL_HOST: i.host, MYSQL_PORT: String(i.port), MYSQL_USER: i.user, MYSQL_PASSWORD: i.password });
    }, 60 * 60_000);

    afterAll(async () => {
      await connect?.stop();
      await stack?.close();
      repo?.remove();
      await db?.stop();
    });

    it('gives each test file the outcome it has direct, but for the refusals docs/mysql.md names', () => {
      const files = [...direct.keys()];
      const count = (run: RunOutcomes, passed: boolean): number => [...run.values()].filter((o) => o.passed === passed).length;
      const differences = files.filter((f) => direct.get(f)!.passed && !viaHoop.get(f)?.passed);
      const report = {
        suite: root,
        files: files.length,
        direct: { passed: count(direct, true), failed: count(direct, false) },
        hoop: { passed: count(viaHoop, true), failed: count(viaHoop, false) },
        differences: differences.map((f) => ({ file: f, refusal: NAMED_REFUSALS[f]?.refusal ?? 'NOT NAMED', ...failureOf(viaHoop.get(f)!) })),
        failingBoth: files.filter((f) => !direct.get(f)!.passed && !viaHoop.get(f)?.passed).map((f) => ({ file: f, ...failureOf(direct.get(f)!) })),
        onlyThroughHoop: files.filter((f) => !direct.get(f)!.passed && viaHoop.get(f)?.passed).map((f) => ({ file: f, ...failureOf(direct.get(f)!) })),
      };
      const reportFile = process.env.HOOP_MYSQL2_SUITE_REPORT ?? join(tmpdir(), 'mysql2-suite-report.json');
      writeFileSync(reportFile, `${JSON.stringify(report, null, 2)}\n`);
      console.log(
        `mysql2 suite: ${report.files} files; direct ${report.direct.passed} passed, ${report.direct.failed} failed; through hoop ${report.hoop.passed} passed, ${report.hoop.failed} failed; ${differences.length} differences (report: ${reportFile})`,
      );
      expect(viaHoop.size).toBe(direct.size);
      const unexplained = differences.filter((f) => !NAMED_REFUSALS[f]?.shows.test(viaHoop.get(f)!.output));
      expect(unexplained.map((f) => `${f}: ${JSON.stringify(failureOf(viaHoop.get(f)!))}`)).toEqual([]);
      expect(
        Object.keys(NAMED_REFUSALS).filter((f) => !differences.includes(f)),
        'a named refusal no longer seen',
      ).toEqual([]);
    });
  },
);
