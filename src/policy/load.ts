/**
 * Loads a policy bundle from a checked-out config repo: `hoop.yaml`, or `policy/*.yaml` merged,
 * plus the test cases in `policy/tests/*.yaml`.
 *
 * Every problem is reported at once, each as `<file>:<line>:<col>: <dotted.field>: <what>`, with
 * the file relative to the repo. Secret references are kept as references; when an allow-list is
 * given (the gateway's `policy.allowedSecrets`) each must match it, and when an environment is
 * given (the gateway) each must resolve, but their values are not kept. Files must be regular
 * files inside the tree (no symlinks), at most 1 MiB each.
 *
 * @see ./schema.ts for the format
 * @see https://yaml.org/spec/1.2.2/
 */
import { argumentsGlob } from '../glob.js';
import { lstat, readFile, readdir, realpath } from 'node:fs/promises';
import { checkRunbook, type RunbookFileData, runbookFileSchema } from './runbooks.js';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import type * as z from 'zod';
import { ErrorCode, HoopError } from '../errors.js';
import { connectionSecrets, disabledTlsProblems, normaliseConnection } from '../config/connection.js';
import { databaseChoiceProblems } from './database-access.js';
import { readPem } from '../config/pem.js';
import { formatSecretRef, parseSecretRef, secretAllowed, unresolvedSecret, type SecretPattern, type SecretRef } from '../config/secrets.js';
import { type Locator, problemLine, readYamlWith, type Path, type Problem } from '../config/yaml.js';
import {
  policyFileSchema,
  reviewSettingsOf,
  type AccessRule,
  type AlertRule,
  type Reviewers,
  type Action,
  type MaskingPolicy,
  type Policy,
  type PolicyConnection,
  type PolicyTest,
  type SshTestRequest,
  type McpTestRequest,
  type RecordingPolicy,
  type SshRule,
  type StatementRule,
  RUN_DEFAULTS,
  SSH_DEFAULTS,
  HTTP_DEFAULTS,
  type HttpRule,
  MCP_DEFAULTS,
  type McpPolicy,
  type McpRule,
  type Runbook,
} from './schema.js';
import { LinearRegex } from '../linear-regex.js';
import { usualHoursOf } from './alert-rules.js';
import type { EgressRule } from './egress.js';
import { policyTestFileSchema } from './test-cases.js';
import { principalMatchOf, describedPrincipal } from './principal.js';

/** Largest policy or test file accepted. */
export const MAX_POLICY_FILE_BYTES = 1024 * 1024;
/** Most `policy/*.yaml` (and, separately, test) files accepted. */
export const MAX_POLICY_FILES = 200;

const HINT = 'fix the policy files (run `hoop policy show --dir .` to check them) and commit again';

/** A policy bundle failed validation; `problems` lists each as `file:line:col: field: what`. */
export class PolicyInvalidError extends HoopError {
  readonly problems: string[];

  constructor(problems: string[], dir?: string) {
    const n = problems.length;
    super(ErrorCode.CONFIG_INVALID, `invalid policy${dir ? ` in ${dir}` : ''} (${n} problem${n === 1 ? '' : 's'}):\n${problems.map((l) => `  ${l}`).join('\n')}`, { hint: HINT });
    this.problems = problems;
  }
}

interface SourceFile {
  /** Path relative to the bundle directory, with `/`. */
  name: string;
  locator?: Locator;
}

interface Located extends Problem {
  file: SourceFile;
  /** A known position (YAML syntax errors). */
  pos?: { line: number; col: number };
}

interface Origin {
  file: SourceFile;
  path: Path;
}

function where(o: Origin): string {
  const pos = o.file.locator?.position(o.path) ?? { line: 1, col: 1 };
  return `${o.file.name}:${pos.line}:${pos.col}`;
}

class Problems {
  readonly list: Located[] = [];

  add(file: SourceFile, path: Path, message: string, extra: { at?: Path; atKey?: boolean; pos?: { line: number; col: number } } = {}): void {
    this.list.push({ file, path, message, ...extra });
  }

  addAll(file: SourceFile, list: readonly Problem[]): void {
    for (const p of list) this.add(file, p.path, p.message, { ...(p.at ? { at: p.at } : {}), ...(p.atKey ? { atKey: true } : {}) });
  }

  /** These problems, but for a name not defined (`unknown connection "x"`, `unknown alert "y"`): a view that drops what follows from a file that did not read. */
  withoutUnknownNames(): Problems {
    const view = Object.create(this) as Problems;
    view.add = (file, path, message, extra) => {
      if (!/^unknown (connection|alert) "/.test(message)) this.add(file, path, message, extra);
    };
    return view;
  }

  format(): string[] {
    const located = this.list.map((p) => ({ p, pos: p.pos ?? p.file.locator?.position(p.at ?? p.path, p.atKey) ?? { line: 1, col: 1 } }));
    located.sort((a, b) => (a.p.file.name < b.p.file.name ? -1 : a.p.file.name > b.p.file.name ? 1 : 0) || a.pos.line - b.pos.line || a.pos.col - b.pos.col);
    return located.map(({ p, pos }) => problemLine(p.file.name, pos, p.path.length === 0 && p.pos ? undefined : p.path, p.message));
  }
}

function readProblem(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  return code ?? 'unreadable';
}

/**
 * Reads a file of the bundle, refusing symlinks (the file's own, or a directory's on its way: a
 * `policy` that links out of the repo) and oversized files.
 */
async function readBundleFile(root: string, abs: string): Promise<{ text?: string; problem?: string }> {
  try {
    const st = await lstat(abs);
    if (st.isSymbolicLink()) return { problem: 'is a symbolic link (policy files must be regular files in the repo)' };
    if (!(await insideTree(root, abs))) return { problem: 'lies outside the repository (a directory on its way is a symbolic link)' };
    if (!st.isFile()) return { problem: 'is not a regular file' };
    if (st.size > MAX_POLICY_FILE_BYTES) return { problem: `is larger than ${MAX_POLICY_FILE_BYTES} bytes` };
    return { text: await readFile(abs, 'utf8') };
  } catch (err) {
    return { problem: `cannot be read: ${readProblem(err)}` };
  }
}

/** Parses one YAML file and validates it with `schema`; problems go to `problems`. */
function parseFile<S extends z.ZodType>(text: string, file: SourceFile, schema: S, problems: Problems): z.output<S> | undefined {
  const read = readYamlWith(text, schema);
  if ('problems' in read) {
    for (const p of read.problems) problems.add(file, [], p.message, { pos: { line: p.line, col: p.col } });
    return undefined;
  }
  file.locator = read.locator;
  if ('invalid' in read) {
    problems.addAll(file, read.invalid);
    return undefined;
  }
  return read.data;
}

async function yamlFilesIn(dir: string): Promise<string[] | undefined> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw err;
  }
  return entries
    .filter((e) => !e.isDirectory() && /\.ya?ml$/i.test(e.name) && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
}

async function exists(abs: string): Promise<boolean> {
  try {
    await lstat(abs);
    return true;
  } catch {
    return false;
  }
}

/** Checks that `abs` (already resolved) lies inside `root` once symlinks are resolved. */
async function insideTree(root: string, abs: string): Promise<boolean> {
  try {
    const [r, a] = await Promise.all([realpath(root), realpath(abs)]);
    return a === r || a.startsWith(r.endsWith(sep) ? r : r + sep);
  } catch {
    return false;
  }
}

type PolicyFileData = z.output<typeof policyFileSchema>;
type TestFileData = z.output<typeof policyTestFileSchema>;

/**
 * Options of {@link loadPolicyDir}.
 *
 * @see ../gateway/config/config.ts (`policy.allowedSecrets`) and ../config/secrets.ts (`parseSecretPattern`)
 */
export interface LoadPolicyOptions {
  /**
   * The secret references the bundle may use (the gateway's `policy.allowedSecrets`): every
   * connection password and `masking.key` must match one of them, or the bundle is refused and
   * that reference is never resolved. Absent: not checked (the CLI, which resolves none).
   */
  allowedSecrets?: readonly SecretPattern[];
  /**
   * The programs an MCP connection of the bundle may make the gateway run (the gateway's
   * `policy.allowedCommands`, each a pattern over the command's words as `argumentsGlob` reads
   * it): a `command` no entry admits is refused. Absent: not checked (the CLI, which runs none).
   */
  allowedCommands?: readonly string[];
}

/** Why `ref` (written `text`) is refused by the allow-list, and what to add to it. */
function notAllowed(text: string, ref: SecretRef): string {
  const canonical = formatSecretRef(ref);
  const written = text.trim();
  return `${written}${written === canonical ? '' : ` (that is ${canonical})`} is not allowed by the gateway's policy.allowedSecrets; add "${canonical}" (or a glob) there`;
}

/**
 * Loads and validates the policy bundle in `dir` (a checked-out config repo).
 *
 * With `options.allowedSecrets` (the gateway), every secret reference must match one of them.
 * With `env` (the gateway), every secret reference must resolve in it and `tls.ca` files outside
 * the repo must be readable; without it (the CLI), references are only checked for form. What a
 * connection lacks on this host (its secret, its CA file) does not make the bundle invalid: the
 * connection is `unavailable`, saying why (file:line), and the rest is in force. The masking key
 * and notification secrets must resolve.
 *
 * @throws PolicyInvalidError (HoopError CONFIG_INVALID) listing every problem.
 */
export async function loadPolicyDir(dir: string, env?: NodeJS.ProcessEnv, options: LoadPolicyOptions = {}): Promise<Policy> {
  const root = resolve(dir);
  const problems = new Problems();
  const { names, testFiles, runbookFiles } = await bundleFileNames(root, problems);
  const parsedFiles = await parseBundleFiles(
    root,
    names.map((name) => ({ name, abs: join(root, name) })),
    policyFileSchema,
    problems,
  );
  const parsedRunbooks = await parseBundleFiles(
    root,
    runbookFiles.map((f) => ({ name: `runbooks/${f}`, abs: join(root, 'runbooks', f) })),
    runbookFileSchema,
    problems,
  );
  const parsedTests = await parseBundleFiles(
    root,
    testFiles.map((t) => ({ name: `policy/tests/${t}`, abs: join(root, 'policy', 'tests', t) })),
    policyTestFileSchema,
    problems,
  );

  const merged = new MergedBundle(problems);
  for (const { file, data } of parsedFiles) merged.add(file, data);
  // A policy file that did not read leaves names undefined: what refers to them is no new mistake, so only the first cause is said.
  const complete = parsedFiles.length === names.length;
  checkNamesAndReferences(merged, problems, complete);

  // Secret references and CA files (some checked as promises, awaited below).
  const pending: Promise<void>[] = [];
  const checkSecret = secretChecker(root, env, options, problems, pending);
  for (const n of merged.notifySecrets) checkSecret(n.text, n.at, 'secret reference');
  const unavailable = new Map<number, Problems>();
  const cas = checkConnectionFiles(merged.connections, root, env, problems, checkSecret, pending, unavailable);
  if (merged.masking.key) checkSecret(merged.masking.key.text, merged.masking.key.at, 'masking key');
  if (options.allowedCommands) checkCommands(merged.connections, options.allowedCommands, problems);

  const connectionTypes = new Map(merged.connections.map((c) => [c.value.name, c.value.type]));
  const runbooks = checkedRunbooks(parsedRunbooks, { connectionTypes, statementRules: new Set(merged.rules.map((r) => r.value.name)) }, complete ? problems : problems.withoutUnknownNames());
  const tests = await policyTests(root, parsedTests, connectionTypes, new Set(merged.alerts.map((a) => a.value.name)), complete ? problems : problems.withoutUnknownNames());

  await Promise.all(pending);
  if (problems.list.length > 0) throw new PolicyInvalidError(problems.format(), root);
  const policy = assemblePolicy(merged, root, cas, tests, new Map([...unavailable].filter(([, p]) => p.list.length > 0).map(([i, p]) => [i, p.format()])));
  return runbooks.length > 0 ? { ...policy, runbooks } : policy;
}

/** The runbooks of `parsed` files, each checked against the bundle's connections and statement rules; problems go to `problems`. */
function checkedRunbooks(parsed: readonly { file: SourceFile; text: string; data: RunbookFileData }[], bundle: Parameters<typeof checkRunbook>[3], problems: Problems): Runbook[] {
  const runbooks: Runbook[] = [];
  for (const { file, text, data } of parsed) {
    const checked = checkRunbook(file.name, text, data, bundle);
    problems.addAll(file, checked.problems);
    if (checked.runbook) runbooks.push(checked.runbook);
  }
  return runbooks;
}

/**
 * The bundle's policy files (`hoop.yaml`, or `policy/*.yaml`) and test files (`policy/tests/*.yaml`).
 *
 * @throws PolicyInvalidError when there is no policy file, or more than {@link MAX_POLICY_FILES}.
 */
async function bundleFileNames(root: string, problems: Problems): Promise<{ names: string[]; testFiles: string[]; runbookFiles: string[] }> {
  const hasHoopYaml = await exists(join(root, 'hoop.yaml'));
  const policyFiles = (await yamlFilesIn(join(root, 'policy'))) ?? [];
  const testFiles = (await yamlFilesIn(join(root, 'policy', 'tests'))) ?? [];
  const runbookFiles = (await yamlFilesIn(join(root, 'runbooks'))) ?? [];
  let names: string[];
  if (hasHoopYaml && policyFiles.length > 0) {
    problems.add({ name: '.' }, [], 'both hoop.yaml and policy/*.yaml exist; keep the policy in one of them');
    names = [];
  } else if (hasHoopYaml) {
    names = ['hoop.yaml'];
  } else if (policyFiles.length > 0) {
    names = policyFiles.map((f) => `policy/${f}`);
  } else {
    throw new PolicyInvalidError([`${root}: no hoop.yaml and no policy/*.yaml`], root);
  }
  if (names.length > MAX_POLICY_FILES || testFiles.length > MAX_POLICY_FILES || runbookFiles.length > MAX_POLICY_FILES) {
    throw new PolicyInvalidError([`${root}: more than ${MAX_POLICY_FILES} policy, test or runbook files`], root);
  }
  return { names, testFiles, runbookFiles };
}

/** Reads and validates `files` one by one with `schema`: those that are valid, with their source file; problems go to `problems`. */
async function parseBundleFiles<S extends z.ZodType>(
  root: string,
  files: readonly { name: string; abs: string }[],
  schema: S,
  problems: Problems,
): Promise<{ file: SourceFile; text: string; data: z.output<S> }[]> {
  const parsed: { file: SourceFile; text: string; data: z.output<S> }[] = [];
  for (const { name, abs } of files) {
    const file: SourceFile = { name };
    const { text, problem } = await readBundleFile(root, abs);
    if (problem) {
      problems.add(file, [], problem);
      continue;
    }
    const data = parseFile(text!, file, schema, problems);
    if (data) parsed.push({ file, text: text!, data });
  }
  return parsed;
}

/**
 * The policy files merged: lists concatenated, every name defined once, every scalar setting set
 * once; each part with where it was written. Problems of one file's parts go to `problems`.
 */
class MergedBundle {
  readonly connections: { value: PolicyFileData['connections'][number]; at: Origin }[] = [];
  readonly access: { value: AccessRule; at: Origin }[] = [];
  readonly rules: { value: StatementRule; at: Origin }[] = [];
  readonly sshRules: { value: SshRule; at: Origin }[] = [];
  readonly mcpRules: { value: McpRule; at: Origin }[] = [];
  readonly mcpServerRequests = new Set<McpPolicy['serverRequests'][number]>();
  readonly httpRules: { value: HttpRule; at: Origin }[] = [];
  readonly httpUnmasked: string[] = [];
  readonly ssh: { forwarding: string[]; env?: string[] } = { forwarding: [] };
  readonly reviewers: Reviewers[] = [];
  readonly alerts: { value: AlertRule; at: Origin }[] = [];
  /** Review notification URLs given as secret references, checked with the other secrets. */
  readonly notifySecrets: { text: string; at: Origin }[] = [];
  readonly scalars = new Map<string, { value: unknown; at: Origin }>();
  readonly masking: Omit<MaskingPolicy, 'key' | 'derived'> & { key?: { text: string; at: Origin } } = { columns: [], names: [], detectors: [] };
  /** Where a masking rule asks for `hash` (which needs `masking.key`). */
  readonly hashAt: Origin[] = [];
  readonly auditors: string[] = [];
  readonly egress: EgressRule[] = [];
  readonly applyControls: string[] = [];
  readonly #problems: Problems;

  constructor(problems: Problems) {
    this.#problems = problems;
  }

  /** Merges one policy file in. */
  add(file: SourceFile, data: PolicyFileData): void {
    data.connections.forEach((value, i) => this.connections.push({ value, at: { file, path: ['connections', i] } }));
    data.access.forEach((value, i) => this.#addAccessRule(file, value, i));
    if (data.statements) this.#addStatements(file, data.statements);
    if (data.masking) this.#addMasking(file, data.masking);
    if (data.ssh) this.#addSsh(file, data.ssh);
    if (data.mcp) this.#addMcp(file, data.mcp);
    if (data.http) this.#addHttp(file, data.http);
    if (data.recording) {
      for (const k of ['results', 'rowCap', 'onFailure', 'retentionDays', 'sshInput'] as const) this.#setScalar(`recording.${k}`, data.recording[k], { file, path: ['recording', k] });
      if (data.recording.auditors) this.auditors.push(...data.recording.auditors);
    }
    if (data.runs) {
      for (const k of ['maxSeconds', 'heartbeatTimeout', 'requireIsolation', 'apply', 'review'] as const) this.#setScalar(`runs.${k}`, data.runs[k], { file, path: ['runs', k] });
      for (const e of data.runs.egress ?? []) this.egress.push(typeof e === 'string' ? { to: [e] } : e);
      this.applyControls.push(...(data.runs.applyControls ?? []));
    }
    if (data.reviews) this.#setScalar('reviews.requireSignInWithin', data.reviews.requireSignInWithin, { file, path: ['reviews', 'requireSignInWithin'] });
    data.alerts.forEach((a, i) => {
      const { when, clearedBy, notify, connections, ...rest } = a;
      this.alerts.push({
        value: {
          ...rest,
          event: when.event,
          count: when.count,
          withinMs: when.within,
          ...(when.table !== undefined ? { table: when.table } : {}),
          ...(when.hours !== undefined ? { usual: usualHoursOf(when)! } : {}),
          clearedBy: clearedBy ?? [],
          notify: notify ?? [],
          ...(connections ? { connections } : {}),
        },
        at: { file, path: ['alerts', i] },
      });
      this.#addNotifySecrets(file, notify, ['alerts', i, 'notify']);
    });
  }

  /** The value of scalar setting `key`, or `fallback` when no file sets it. */
  scalar<T>(key: string, fallback: T): T {
    return (this.scalars.get(key)?.value as T | undefined) ?? fallback;
  }

  /** Sets scalar setting `key` (when given); a problem when another file (or place) set it already. */
  #setScalar(key: string, value: unknown, at: Origin): void {
    if (value === undefined) return;
    const prev = this.scalars.get(key);
    if (prev) this.#problems.add(at.file, at.path, `is set again (already set at ${where(prev.at)}); set it in one file`, { atKey: true });
    else this.scalars.set(key, { value, at });
  }

  /** Notes the secret references of review settings (`at`: their path): notification URLs, the review service's URL and key. */
  #addReviewSecrets(file: SourceFile, review: { notify?: readonly { url: string }[] | undefined; service?: { url: string; secret: string } | undefined } | undefined, at: Path): void {
    this.#addNotifySecrets(file, review?.notify, [...at, 'notify']);
    const service = review?.service;
    if (!service) return;
    if (service.url.startsWith('${')) this.notifySecrets.push({ text: service.url, at: { file, path: [...at, 'service', 'url'] } });
    this.notifySecrets.push({ text: service.secret, at: { file, path: [...at, 'service', 'secret'] } });
  }

  /** Notes review notification URLs given as secret references (`at`: the path of the `notify` list). */
  #addNotifySecrets(file: SourceFile, notify: readonly { url: string }[] | undefined, at: Path): void {
    notify?.forEach((n, j) => {
      if (n.url.startsWith('${')) this.notifySecrets.push({ text: n.url, at: { file, path: [...at, j, 'url'] } });
    });
  }

  #addAccessRule(file: SourceFile, value: PolicyFileData['access'][number], i: number): void {
    const rule: AccessRule = {
      name: value.name,
      subjects: value.subjects,
      emails: value.emails,
      groups: value.groups,
      connections: value.connections,
      mode: value.mode,
      ...principalMatchOf(value),
      ...(value.maxSessionSeconds !== undefined ? { maxSessionSeconds: value.maxSessionSeconds } : {}),
      ...(value.maxSessions !== undefined ? { maxSessions: value.maxSessions } : {}),
      ...(value.requestable ? { requestable: true } : {}),
      ...(value.maxGrant !== undefined ? { maxGrantSeconds: value.maxGrant } : {}),
      ...(value.review !== undefined ? { review: reviewSettingsOf(value.review) } : {}),
      ...(value.maxAffectedRows !== undefined ? { maxAffectedRows: value.maxAffectedRows, overLimit: value.overLimit ?? 'deny' } : {}),
      ...(value.roles ? { roles: value.roles } : {}),
      ...(value.databases ? { databases: value.databases } : {}),
      limits: {
        ...(value.statementTimeout !== undefined ? { statement_timeout: value.statementTimeout } : {}),
        ...(value.lockTimeout !== undefined ? { lock_timeout: value.lockTimeout } : {}),
        ...(value.idleInTransactionTimeout !== undefined ? { idle_in_transaction_session_timeout: value.idleInTransactionTimeout } : {}),
      },
    };
    for (const key of ['maxGrant', 'review'] as const) {
      if (value[key] !== undefined && !value.requestable) this.#problems.add(file, ['access', i, key], 'is only for requestable access rules (add requestable: true)', { atKey: true });
    }
    if (value.overLimit !== undefined && value.maxAffectedRows === undefined)
      this.#problems.add(file, ['access', i, 'overLimit'], 'says what happens over maxAffectedRows, which this rule does not set', { atKey: true });
    this.#addReviewSecrets(file, value.review, ['access', i, 'review']);
    this.access.push({ value: rule, at: { file, path: ['access', i] } });
  }

  #addStatements(file: SourceFile, statements: NonNullable<PolicyFileData['statements']>): void {
    this.#setScalar('statements.unparseable', statements.unparseable, { file, path: ['statements', 'unparseable'] });
    statements.rules.forEach((value, i) => this.#addStatementRule(file, value, i));
    statements.reviewers.forEach((r, i) => {
      this.reviewers.push({ ...(r.connections ? { connections: r.connections } : {}), ...reviewSettingsOf(r) });
      this.#addReviewSecrets(file, r, ['statements', 'reviewers', i]);
    });
  }

  #addStatementRule(file: SourceFile, value: NonNullable<PolicyFileData['statements']>['rules'][number], i: number): void {
    const rule: StatementRule = {
      name: value.name,
      match: value.match as StatementRule['match'],
      action: value.action,
      ...(value.message !== undefined ? { message: value.message } : {}),
      ...(value.review !== undefined ? { review: reviewSettingsOf(value.review) } : {}),
      ...(value.maxAffectedRows !== undefined ? { maxAffectedRows: value.maxAffectedRows, overLimit: value.overLimit ?? 'deny' } : {}),
    };
    this.#addReviewSecrets(file, value.review, ['statements', 'rules', i, 'review']);
    const reviews = value.action === 'review' || value.overLimit === 'review';
    if (value.review !== undefined && !reviews)
      this.#problems.add(file, ['statements', 'rules', i, 'review'], `is only for rules whose action is review, or whose overLimit is review (this one is ${value.action})`, { atKey: true });
    if (value.maxAffectedRows !== undefined && value.action !== 'allow')
      this.#problems.add(
        file,
        ['statements', 'rules', i, 'maxAffectedRows'],
        `limits the writes an allow rule lets through (this rule's action is ${value.action}: it holds or refuses them whatever their size)`,
        { atKey: true },
      );
    if (value.overLimit !== undefined && value.maxAffectedRows === undefined)
      this.#problems.add(file, ['statements', 'rules', i, 'overLimit'], 'says what happens over maxAffectedRows, which this rule does not set', { atKey: true });
    this.rules.push({ value: rule, at: { file, path: ['statements', 'rules', i] } });
  }

  #addMasking(file: SourceFile, m: NonNullable<PolicyFileData['masking']>): void {
    if (m.key !== undefined) {
      const at: Origin = { file, path: ['masking', 'key'] };
      if (this.masking.key) this.#problems.add(file, at.path, `is set again (already set at ${where(this.masking.key.at)}); set it in one file`, { atKey: true });
      else this.masking.key = { text: m.key, at };
    }
    this.#setScalar('masking.derived', m.derived, { file, path: ['masking', 'derived'] });
    m.columns.forEach((c, i) => {
      this.masking.columns.push({ table: c.table, column: c.column, strategy: c.strategy, ...principalMatchOf(c) });
      if (c.strategy === 'hash') this.hashAt.push({ file, path: ['masking', 'columns', i, 'strategy'] });
    });
    m.names.forEach((n, i) => {
      this.masking.names.push({ pattern: n.pattern, regex: new LinearRegex(n.pattern, { ignoreCase: true }), strategy: n.strategy, ...principalMatchOf(n) });
      if (n.strategy === 'hash') this.hashAt.push({ file, path: ['masking', 'names', i, 'strategy'] });
    });
    m.detectors.forEach((d, i) => {
      this.masking.detectors.push({ detector: d.detector, strategy: d.strategy, ...principalMatchOf(d) });
      if (d.strategy === 'hash') this.hashAt.push({ file, path: ['masking', 'detectors', i, 'strategy'] });
    });
  }

  /**
   * A rule of section `section` (ssh, mcp, http) as loaded, its review's secrets noted, and a
   * review setting on a rule that does not review said.
   */
  #sectionRule<M>(
    file: SourceFile,
    section: 'ssh' | 'mcp' | 'http',
    i: number,
    value: { name: string; match: unknown; action: Action; message?: string | undefined; review?: Parameters<typeof reviewSettingsOf>[0] | undefined },
  ): { value: { name: string; match: M; action: Action; message?: string; review?: ReturnType<typeof reviewSettingsOf> }; at: Origin } {
    this.#addReviewSecrets(file, value.review, [section, 'rules', i, 'review']);
    if (value.review !== undefined && value.action !== 'review')
      this.#problems.add(file, [section, 'rules', i, 'review'], `is only for rules whose action is review (this one is ${value.action})`, { atKey: true });
    return {
      value: {
        name: value.name,
        match: value.match as M,
        action: value.action,
        ...(value.message !== undefined ? { message: value.message } : {}),
        ...(value.review !== undefined ? { review: reviewSettingsOf(value.review) } : {}),
      },
      at: { file, path: [section, 'rules', i] },
    };
  }

  #addSsh(file: SourceFile, ssh: NonNullable<PolicyFileData['ssh']>): void {
    for (const k of ['default', 'sftp'] as const) this.#setScalar(`ssh.${k}`, ssh[k], { file, path: ['ssh', k] });
    if (ssh.forwarding) this.ssh.forwarding.push(...ssh.forwarding);
    if (ssh.env) (this.ssh.env ??= []).push(...ssh.env);
    ssh.rules.forEach((value, i) => {
      const { shell, commands, patterns } = value.match;
      if (shell && (commands || patterns))
        this.#problems.add(file, ['ssh', 'rules', i, 'match', 'shell'], 'matches interactive shells, which have no command line: match commands or patterns in a rule of their own', { atKey: true });
      this.sshRules.push(this.#sectionRule<SshRule['match']>(file, 'ssh', i, value));
    });
  }

  #addHttp(file: SourceFile, http: NonNullable<PolicyFileData['http']>): void {
    for (const k of ['default', 'requestsPerMinute', 'maxRequestBytes'] as const) this.#setScalar(`http.${k}`, http[k], { file, path: ['http', k] });
    this.httpUnmasked.push(...(http.unmasked ?? []));
    http.rules.forEach((value, i) => this.httpRules.push(this.#sectionRule<HttpRule['match']>(file, 'http', i, value)));
  }

  #addMcp(file: SourceFile, mcp: NonNullable<PolicyFileData['mcp']>): void {
    this.#setScalar('mcp.default', mcp.default, { file, path: ['mcp', 'default'] });
    for (const r of mcp.serverRequests ?? []) this.mcpServerRequests.add(r);
    mcp.rules.forEach((value, i) => {
      const { arguments: args, tools, prompts } = value.match;
      if (args && !tools && !prompts)
        this.#problems.add(file, ['mcp', 'rules', i, 'match', 'arguments'], 'are the arguments of a tool call or prompt: name the tools or prompts they are for', { atKey: true });
      this.mcpRules.push(this.#sectionRule<McpRule['match']>(file, 'mcp', i, value));
    });
  }
}

/**
 * Checks what the merged files name: every connection, rule and ssh rule name defined once, every
 * connection an access or statement rule names defined, an access rule that admits somebody, and
 * `masking.key` set when a masking rule hashes.
 */
function checkNamesAndReferences(merged: MergedBundle, all: Problems, complete: boolean): void {
  const problems = complete ? all : all.withoutUnknownNames();
  const unique = <T extends { name: string }>(items: { value: T; at: Origin }[], what: string): void => {
    const seen = new Map<string, Origin>();
    for (const { value, at } of items) {
      const first = seen.get(value.name);
      if (first) problems.add(at.file, [...at.path, 'name'], `duplicate ${what} name "${value.name}" (also defined at ${where({ file: first.file, path: [...first.path, 'name'] })})`);
      else seen.set(value.name, at);
    }
  };
  unique(merged.connections, 'connection');
  unique(merged.access, 'access rule');
  unique(merged.rules, 'statement rule');
  unique(merged.sshRules, 'ssh rule');
  unique(merged.mcpRules, 'mcp rule');
  unique(merged.httpRules, 'http rule');
  unique(merged.alerts, 'alert');

  const connectionNames = new Set(merged.connections.map((c) => c.value.name));
  const known = knownConnections(connectionNames);
  for (const { value, at } of merged.access) {
    if (value.subjects.length === 0 && value.emails.length === 0 && value.groups.length === 0) {
      problems.add(at.file, at.path, 'admits nobody: list subjects (or "*"), emails or groups');
    }
    value.connections.forEach((c, j) => {
      if (c !== '*' && !connectionNames.has(c)) problems.add(at.file, [...at.path, 'connections', j], `unknown connection "${c}" (known: ${known})`);
    });
    for (const [key, j, message] of databaseChoiceProblems(
      value,
      merged.connections.map((c) => c.value),
    ))
      problems.add(at.file, [...at.path, key, j], message);
  }
  for (const { value, at } of merged.rules) {
    value.match.connections?.forEach((c, j) => {
      if (!connectionNames.has(c)) problems.add(at.file, [...at.path, 'match', 'connections', j], `unknown connection "${c}" (known: ${known})`);
    });
  }
  for (const { value, at } of merged.alerts) {
    value.connections?.forEach((c, j) => {
      if (!connectionNames.has(c)) problems.add(at.file, [...at.path, 'connections', j], `unknown connection "${c}" (known: ${known})`);
    });
    if (value.clearedBy.length === 0 && merged.auditors.length === 0 && value.suspend)
      problems.add(at.file, [...at.path, 'suspend'], 'suspends, and nobody could clear it: list clearedBy groups, or the auditors (recording.auditors)', { atKey: true });
  }
  if (merged.hashAt.length > 0 && !merged.masking.key) {
    for (const at of merged.hashAt) problems.add(at.file, at.path, 'hash needs masking.key (a secret reference such as ${env:HOOP_MASK_KEY})');
  }
}

/** The connection names, as an unknown connection's problem lists them. */
function knownConnections(connectionNames: ReadonlySet<string>): string {
  return [...connectionNames].join(', ') || 'none defined';
}

/**
 * Checks one secret reference, written `text` at `at`, for `what` it is; one that does not resolve
 * goes to `unresolved` (default: the problems).
 */
type SecretCheck = (text: string, at: Origin, what: string, unresolved?: Problems) => void;

/**
 * The check of a secret reference: a reference (not a literal; a `${file:}` one absolute), allowed
 * by `options.allowedSecrets` when given, and resolving in `env` when given (a promise added to
 * `pending`).
 */
function secretChecker(root: string, env: NodeJS.ProcessEnv | undefined, options: LoadPolicyOptions, problems: Problems, pending: Promise<void>[]): SecretCheck {
  return (text, at, what, unresolved = problems) => {
    const m = /^\$\{file:([^}]*)\}$/.exec(text.trim());
    if (m && !isAbsolute(m[1]!.trim())) {
      problems.add(at.file, at.path, 'a ${file:...} reference must be an absolute path on the gateway host (secrets never live in the config repo)');
      return;
    }
    const ref = parseSecretRef(text, root);
    if (!ref) {
      problems.add(at.file, at.path, 'must be a secret reference like ${env:NAME} or ${file:/absolute/path}, not a literal');
      return;
    }
    if (options.allowedSecrets && !secretAllowed(ref, options.allowedSecrets)) {
      problems.add(at.file, at.path, notAllowed(text, ref));
      return;
    }
    if (env) {
      pending.push(
        unresolvedSecret(ref, env, what).then((message) => {
          if (message) unresolved.add(at.file, at.path, message);
        }),
      );
    }
  };
}

/**
 * Environment variables that change what a program runs or loads, not what it is given: a
 * program's search path, an interpreter's options and module paths (`NODE_OPTIONS=--import=data:…`
 * runs any code in `node` and `npx`), a package manager's registry, a shell's start-up file, the
 * dynamic linker's. A bundle may not set them for a program of its own: the command the gateway's
 * operator admitted would run something else. (A list of the known ones: new tools bring others.)
 */
const LOADER_ENV =
  /^(PATH|HOME|ENV|BASH_ENV|BASHOPTS|SHELLOPTS|PS4|IFS|CDPATH|CLASSPATH|GCONV_PATH|LOCPATH|HOSTALIASES|JAVA_TOOL_OPTIONS|_JAVA_OPTIONS|JDK_JAVA_OPTIONS|PERLLIB|PERL5[A-Z0-9_]*|RUBYOPT|RUBYLIB|PYTHON[A-Z0-9_]*|GO(FLAGS|PROXY|PATH|ROOT|TOOLCHAIN|ENV|BIN|INSECURE|NOSUMDB|PRIVATE|EXPERIMENT)|HTTPS?_PROXY|ALL_PROXY|NO_PROXY|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|(LD|DYLD|NODE|NPM_CONFIG|NPX|YARN|PNPM|COREPACK|BUN|DENO|PIP|UV|POETRY|CONDA|GEM|BUNDLE|JAVA|MAVEN|GRADLE|CARGO|RUSTUP|GIT|XDG|DOTNET|MALLOC|LUA|DOCKER|SSL_CERT)_[A-Z0-9_]*)$/i;
/** Loader variables as harmless as they are common. */
const PLAIN_ENV = new Set(['NODE_ENV']);

/**
 * Refuses each MCP connection whose `command` the gateway's `policy.allowedCommands` does not
 * admit, or whose `env` changes what that command runs ({@link LOADER_ENV}): whoever writes the
 * repo must not choose what the gateway runs.
 */
function checkCommands(connections: MergedBundle['connections'], allowed: readonly string[], problems: Problems): void {
  const patterns = allowed.map((p) => argumentsGlob(p));
  for (const { value, at } of connections) {
    if (value.type !== 'mcp' || value.command === undefined) continue;
    // What the program runs with is the operator's too: its directory, and each variable's value a secret the operator keeps (never text the bundle chose).
    if (value.cwd !== undefined)
      problems.add(at.file, [...at.path, 'cwd'], "is the gateway operator's to choose: a bundle's MCP server runs in the gateway's data directory (remove cwd; give paths as the command's arguments)");
    for (const [name, text] of Object.entries(value.env ?? {})) {
      if (LOADER_ENV.test(name) && !PLAIN_ENV.has(name.toUpperCase()))
        problems.add(
          at.file,
          [...at.path, 'env', name],
          `${name} changes what the program runs or loads, and a bundle may not set it (the command admitted by the gateway's policy.allowedCommands would run something else)`,
        );
      else if (!/^\s*\$\{(env|file):[^}]*\}\s*$/.test(text))
        problems.add(
          at.file,
          [...at.path, 'env', name],
          "must be a secret reference the gateway's policy.allowedSecrets admits (a bundle's text could change what the admitted command does); give other settings as the command's arguments",
        );
    }
    if (patterns.some((admits) => admits(value.command!))) continue;
    problems.add(
      at.file,
      [...at.path, 'command'],
      `${JSON.stringify(value.command.join(' '))} is not allowed by the gateway's policy.allowedCommands; the gateway's operator adds it (or a glob: "npx -y @modelcontextprotocol/server-filesystem /srv/**")`,
    );
  }
}

/** A connection's CA file: its contents once read (the gateway's), and its path. */
type CaFile = { data?: Buffer; file: string };

/**
 * Checks each connection's secret references and TLS settings, and reads each `tls.ca` (reads that
 * finish later are added to `pending`): the CA files by connection index, filled as they are read.
 */
function checkConnectionFiles(
  connections: MergedBundle['connections'],
  root: string,
  env: NodeJS.ProcessEnv | undefined,
  problems: Problems,
  checkSecret: SecretCheck,
  pending: Promise<void>[],
  unavailable: Map<number, Problems>,
): Map<number, CaFile> {
  const cas = new Map<number, CaFile>();
  connections.forEach(({ value, at }, i) => {
    // What the gateway lacks for one connection (its secret, its CA file) makes that connection unavailable, not the policy invalid.
    const lacks = new Problems();
    unavailable.set(i, lacks);
    for (const [path, text] of connectionSecrets(value)) checkSecret(text, { file: at.file, path: [...at.path, ...path] }, 'secret reference', lacks);
    if (value.type === 'ssh' || value.type === 'mcp') return;
    problems.addAll(at.file, disabledTlsProblems(value.tls, [...at.path, 'tls']));
    const ca = value.tls.ca;
    if (ca === undefined || ('mode' in value.tls && value.tls.mode === 'disable')) return;
    const caAt: Path = [...at.path, 'tls', 'ca'];
    if (isAbsolute(ca)) {
      if (!env) {
        cas.set(i, { file: ca });
        return;
      }
      pending.push(
        readPem(ca, 'certificate').then(({ data, problem }) => {
          if (problem) lacks.add(at.file, caAt, problem);
          else cas.set(i, { data: data!, file: ca });
        }),
      );
      return;
    }
    pending.push(readRepoCa(root, at.file, ca, caAt, problems, (found) => cas.set(i, found)));
  });
  return cas;
}

/** Reads a `tls.ca` given relative to its policy file: a regular file inside the config repo. */
async function readRepoCa(root: string, file: SourceFile, ca: string, caAt: Path, problems: Problems, found: (ca: CaFile) => void): Promise<void> {
  const fileDir = resolve(root, file.name, '..');
  const target = resolve(fileDir, ca);
  const rel = relative(root, target);
  if (rel.startsWith('..') || isAbsolute(rel) || !(await insideTree(root, target))) {
    problems.add(file, caAt, `${ca} is not a file inside the config repo`);
    return;
  }
  const st = await lstat(target).catch(() => undefined);
  if (st?.isSymbolicLink()) {
    problems.add(file, caAt, `${ca} is a symbolic link`);
    return;
  }
  // Inside the checkout, which is checked as a whole (and `hoop policy check` reads a person's own clone).
  const { data, problem } = await readPem(target, 'certificate', (f) => readFile(f));
  if (problem) problems.add(file, caAt, problem.replace(root + sep, ''));
  else found({ data: data!, file: target });
}

/** One `ssh:` entry of a test case as the judge asks it. */
function sshAskOf(a: string | { shell: true } | { sftp: true } | { exec: string } | { forward: string }): SshTestRequest {
  if (typeof a === 'string') return { kind: 'exec', command: a };
  if ('shell' in a) return { kind: 'shell' };
  if ('sftp' in a) return { kind: 'sftp' };
  if ('exec' in a) return { kind: 'exec', command: a.exec };
  const colon = a.forward.lastIndexOf(':');
  return { kind: 'forward', host: a.forward.slice(0, colon), port: Number(a.forward.slice(colon + 1)) };
}

/** One `mcp:` entry of a test case as the judge asks it. */
function mcpAskOf(a: { tool: string; arguments?: unknown } | { resource: string } | { prompt: string; arguments?: unknown }): McpTestRequest {
  if ('tool' in a) return { kind: 'tool', name: a.tool, arguments: a.arguments ?? {} };
  if ('prompt' in a) return { kind: 'prompt', name: a.prompt, arguments: a.arguments ?? {} };
  return { kind: 'resource', uri: a.resource };
}

/** A case's `fixture:`: an SQL file of the repo (a regular file inside it), read. */
async function fixtureOf(root: string, file: SourceFile, at: Path, name: string, problems: Problems): Promise<{ file: string; sql: string } | undefined> {
  const abs = resolve(root, name);
  const rel = relative(root, abs);
  if (rel.startsWith('..') || isAbsolute(rel)) {
    problems.add(file, at, `${name} is not a file inside the config repo`);
    return undefined;
  }
  const { text, problem } = await readBundleFile(root, abs);
  if (problem) {
    problems.add(file, at, `${name} ${problem}`);
    return undefined;
  }
  return { file: rel, sql: text! };
}

/**
 * The bundle's test cases: each name once, each on a defined connection of the type it asks of
 * (SQL of PostgreSQL, `ssh` of SSH), each as a principal that can be described, each fixture a
 * file of the repo.
 */
async function policyTests(
  root: string,
  parsedTests: readonly { file: SourceFile; data: TestFileData }[],
  connectionTypes: ReadonlyMap<string, string>,
  alertNames: ReadonlySet<string>,
  problems: Problems,
): Promise<PolicyTest[]> {
  const known = knownConnections(new Set(connectionTypes.keys()));
  const tests: PolicyTest[] = [];
  const testSeen = new Map<string, Origin>();
  for (const { file, data } of parsedTests) {
    for (const [i, t] of data.tests.entries()) {
      const at: Origin = { file, path: ['tests', i] };
      const first = testSeen.get(t.name);
      if (first) problems.add(file, [...at.path, 'name'], `duplicate test name "${t.name}" (also defined at ${where({ file: first.file, path: [...first.path, 'name'] })})`);
      else testSeen.set(t.name, at);
      const type = connectionTypes.get(t.connection);
      if (type === undefined) problems.add(file, [...at.path, 'connection'], `unknown connection "${t.connection}" (known: ${known})`);
      else if (t.ssh !== undefined && type !== 'ssh') problems.add(file, [...at.path, 'ssh'], `"${t.connection}" is a ${type} connection: ssh: cases ask SSH connections (use sql:)`);
      else if (t.mcp !== undefined && type !== 'mcp') problems.add(file, [...at.path, 'mcp'], `"${t.connection}" is a ${type} connection: mcp: cases ask MCP connections`);
      else if (t.sql !== undefined && type !== 'postgres') problems.add(file, [...at.path, 'sql'], `"${t.connection}" is a ${type} connection: sql: cases ask PostgreSQL connections (use ssh:)`);
      const principal = describedPrincipal(t.as);
      if (typeof principal === 'string') problems.add(file, [...at.path, 'as'], principal);
      (t.alerts ?? []).forEach((name, j) => {
        if (!alertNames.has(name)) problems.add(file, [...at.path, 'alerts', j], `unknown alert "${name}" (known: ${[...alertNames].join(', ') || 'none: the policy has no alerts:'})`);
      });
      const fixture = t.fixture !== undefined ? await fixtureOf(root, file, [...at.path, 'fixture'], t.fixture, problems) : undefined;
      const masked =
        t.masked === undefined ? undefined : Array.isArray(t.masked) ? t.masked.map((column) => ({ column })) : Object.entries(t.masked).map(([column, strategy]) => ({ column, strategy }));
      tests.push({
        name: t.name,
        as: { subject: t.as.subject, groups: t.as.groups, ...(t.as.email !== undefined ? { email: t.as.email } : {}), ...(typeof principal === 'object' ? { principal } : {}) },
        connection: t.connection,
        ...(t.sql !== undefined ? { sql: typeof t.sql === 'string' ? [t.sql] : t.sql } : {}),
        ...(t.ssh !== undefined ? { ssh: (Array.isArray(t.ssh) ? t.ssh : [t.ssh]).map(sshAskOf) } : {}),
        ...(t.mcp !== undefined ? { mcp: (Array.isArray(t.mcp) ? t.mcp : [t.mcp]).map(mcpAskOf) } : {}),
        ...(t.expect !== undefined ? { expect: t.expect } : {}),
        ...(t.rule !== undefined ? { rule: t.rule } : {}),
        ...(t.rows !== undefined ? { rows: t.rows } : {}),
        ...(t.alerts !== undefined ? { alerts: t.alerts } : {}),
        ...(t.at !== undefined ? { at: new Date(t.at) } : {}),
        ...(masked ? { masked } : {}),
        ...(fixture ? { fixture } : {}),
        source: where(at),
      });
    }
  }
  return tests;
}

/** The policy of a merged bundle without problems: each setting a file did not set takes its default. */
function assemblePolicy(merged: MergedBundle, root: string, cas: ReadonlyMap<number, CaFile>, tests: PolicyTest[], unavailable: ReadonlyMap<number, string[]>): Policy {
  const { scalars } = merged;
  const scalar = <T>(key: string, fallback: T): T => merged.scalar(key, fallback);
  const recording: RecordingPolicy = {
    results: scalar('recording.results', 'masked'),
    rowCap: scalar('recording.rowCap', 1000),
    onFailure: scalar('recording.onFailure', 'close'),
    auditors: [...new Set(merged.auditors)],
    ...(scalars.has('recording.retentionDays') ? { retentionDays: scalar('recording.retentionDays', 0) } : {}),
    ...(scalars.has('recording.sshInput') ? { sshInput: scalar<'none' | 'exec' | 'all'>('recording.sshInput', 'exec') } : {}),
  };
  return {
    connections: merged.connections.map(({ value }, i): PolicyConnection => {
      const c = normaliseConnection(value, root, cas.get(i));
      const lacks = unavailable.get(i);
      return lacks ? { ...c, unavailable: lacks } : c;
    }),
    access: merged.access.map((a) => a.value),
    statements: { unparseable: scalar('statements.unparseable', 'deny'), rules: merged.rules.map((r) => r.value), reviewers: merged.reviewers },
    masking: {
      ...(merged.masking.key ? { key: parseSecretRef(merged.masking.key.text, root)! } : {}),
      columns: merged.masking.columns,
      names: merged.masking.names,
      detectors: merged.masking.detectors,
      derived: scalar('masking.derived', 'mask'),
    },
    recording,
    ssh: {
      default: scalar('ssh.default', SSH_DEFAULTS.default),
      sftp: scalar('ssh.sftp', SSH_DEFAULTS.sftp),
      forwarding: merged.ssh.forwarding,
      env: merged.ssh.env ?? SSH_DEFAULTS.env,
      rules: merged.sshRules.map((r) => r.value),
    },
    mcp: { default: scalar('mcp.default', MCP_DEFAULTS.default), serverRequests: [...merged.mcpServerRequests], rules: merged.mcpRules.map((r) => r.value) },
    http: {
      default: scalar('http.default', HTTP_DEFAULTS.default),
      rules: merged.httpRules.map((r) => r.value),
      unmasked: [...new Set(merged.httpUnmasked)],
      ...(scalars.has('http.requestsPerMinute') ? { requestsPerMinute: scalar('http.requestsPerMinute', 0) } : {}),
      maxRequestBytes: scalar('http.maxRequestBytes', HTTP_DEFAULTS.maxRequestBytes),
    },
    runs: {
      maxSeconds: scalar('runs.maxSeconds', RUN_DEFAULTS.maxSeconds),
      heartbeatTimeoutMs: scalar('runs.heartbeatTimeout', RUN_DEFAULTS.heartbeatTimeoutMs),
      requireIsolation: scalar('runs.requireIsolation', RUN_DEFAULTS.requireIsolation),
      egress: merged.egress,
      apply: scalar('runs.apply', RUN_DEFAULTS.apply),
      review: scalar('runs.review', RUN_DEFAULTS.review),
      applyControls: merged.applyControls,
    },
    ...(scalars.has('reviews.requireSignInWithin') ? { reviews: { requireSignInWithinMs: scalar('reviews.requireSignInWithin', 0) } } : {}),
    alerts: merged.alerts.map((a) => a.value),
    tests,
  };
}
