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
import { lstat, readFile, readdir, realpath } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { ErrorCode, HoopError } from '../errors.js';
import { connectionSecrets, disabledTlsProblems, normaliseConnection } from '../config/connection.js';
import { readPem } from '../config/pem.js';
import { formatSecretRef, parseSecretRef, secretAllowed, unresolvedSecret, type SecretPattern, type SecretRef } from '../config/secrets.js';
import { Locator, parseWithSchema, yamlMessage, zodProblems, type Path, type Problem } from '../config/yaml.js';
import {
  policyFileSchema,
  policyTestFileSchema,
  reviewSettingsOf,
  type AccessRule,
  type Reviewers,
  type MaskingPolicy,
  type Policy,
  type PolicyConnection,
  type PolicyTest,
  type RecordingPolicy,
  type SshRule,
  type StatementRule,
  RUN_DEFAULTS,
  SSH_DEFAULTS,
} from './schema.js';
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

function dotted(path: Path): string {
  return path.length === 0 ? '(top level)' : path.map(String).join('.');
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

  format(): string[] {
    const located = this.list.map((p) => ({ p, pos: p.pos ?? p.file.locator?.position(p.at ?? p.path, p.atKey) ?? { line: 1, col: 1 } }));
    located.sort((a, b) => (a.p.file.name < b.p.file.name ? -1 : a.p.file.name > b.p.file.name ? 1 : 0) || a.pos.line - b.pos.line || a.pos.col - b.pos.col);
    return located.map(({ p, pos }) => `${p.file.name}:${pos.line}:${pos.col}: ${p.path.length === 0 && p.pos ? '' : `${dotted(p.path)}: `}${p.message}`);
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
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const pos = e.linePos?.[0] ?? lineCounter.linePos(e.pos[0]);
      problems.add(file, [], yamlMessage(e.message), { pos: { line: pos.line, col: pos.col } });
    }
    return undefined;
  }
  file.locator = new Locator(doc, lineCounter);
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (err) {
    problems.add(file, [], yamlMessage((err as Error).message));
    return undefined;
  }
  const parsed = parseWithSchema(schema, raw);
  if (!parsed.success) {
    problems.addAll(file, zodProblems(parsed.error, raw, schema));
    return undefined;
  }
  return parsed.data;
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
 * @see ../gateway/config.ts (`policy.allowedSecrets`, `parseSecretPattern`)
 */
export interface LoadPolicyOptions {
  /**
   * The secret references the bundle may use (the gateway's `policy.allowedSecrets`): every
   * connection password and `masking.key` must match one of them, or the bundle is refused and
   * that reference is never resolved. Absent: not checked (the CLI, which resolves none).
   */
  allowedSecrets?: readonly SecretPattern[];
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
 * the repo must be readable; without it (the CLI), references are only checked for form.
 *
 * @throws PolicyInvalidError (HoopError CONFIG_INVALID) listing every problem.
 */
export async function loadPolicyDir(dir: string, env?: NodeJS.ProcessEnv, options: LoadPolicyOptions = {}): Promise<Policy> {
  const root = resolve(dir);
  const problems = new Problems();
  const rootFile: SourceFile = { name: '.' };

  const hasHoopYaml = await exists(join(root, 'hoop.yaml'));
  const policyFiles = (await yamlFilesIn(join(root, 'policy'))) ?? [];
  const testFiles = (await yamlFilesIn(join(root, 'policy', 'tests'))) ?? [];
  let names: string[];
  if (hasHoopYaml && policyFiles.length > 0) {
    problems.add(rootFile, [], 'both hoop.yaml and policy/*.yaml exist; keep the policy in one of them');
    names = [];
  } else if (hasHoopYaml) {
    names = ['hoop.yaml'];
  } else if (policyFiles.length > 0) {
    names = policyFiles.map((f) => `policy/${f}`);
  } else {
    throw new PolicyInvalidError([`${root}: no hoop.yaml and no policy/*.yaml`], root);
  }
  if (names.length > MAX_POLICY_FILES || testFiles.length > MAX_POLICY_FILES) {
    throw new PolicyInvalidError([`${root}: more than ${MAX_POLICY_FILES} policy or test files`], root);
  }

  const parsedFiles: { file: SourceFile; data: PolicyFileData }[] = [];
  for (const name of names) {
    const file: SourceFile = { name };
    const { text, problem } = await readBundleFile(root, join(root, name));
    if (problem) {
      problems.add(file, [], problem);
      continue;
    }
    const data = parseFile(text!, file, policyFileSchema, problems);
    if (data) parsedFiles.push({ file, data });
  }
  const parsedTests: { file: SourceFile; data: TestFileData }[] = [];
  for (const t of testFiles) {
    const file: SourceFile = { name: `policy/tests/${t}` };
    const { text, problem } = await readBundleFile(root, join(root, 'policy', 'tests', t));
    if (problem) {
      problems.add(file, [], problem);
      continue;
    }
    const data = parseFile(text!, file, policyTestFileSchema, problems);
    if (data) parsedTests.push({ file, data });
  }

  // Merge: lists concatenated, every name defined once, every scalar setting set once.
  const connections: { value: PolicyFileData['connections'][number]; at: Origin }[] = [];
  const access: { value: AccessRule; at: Origin }[] = [];
  const rules: { value: StatementRule; at: Origin }[] = [];
  const sshRules: { value: SshRule; at: Origin }[] = [];
  const ssh: { forwarding: string[]; env?: string[] } = { forwarding: [] };
  const reviewers: Reviewers[] = [];
  /** Review notification URLs given as secret references, checked with the other secrets. */
  const notifySecrets: { text: string; at: Origin }[] = [];
  const scalars = new Map<string, { value: unknown; at: Origin }>();
  const masking: Omit<MaskingPolicy, 'key' | 'derived'> & { key?: { text: string; at: Origin } } = { columns: [], names: [], detectors: [] };
  const hashAt: Origin[] = [];
  const auditors: string[] = [];
  const setScalar = (key: string, value: unknown, at: Origin): void => {
    if (value === undefined) return;
    const prev = scalars.get(key);
    if (prev) problems.add(at.file, at.path, `is set again (already set at ${where(prev.at)}); set it in one file`, { atKey: true });
    else scalars.set(key, { value, at });
  };
  for (const { file, data } of parsedFiles) {
    data.connections.forEach((value, i) => connections.push({ value, at: { file, path: ['connections', i] } }));
    data.access.forEach((value, i) => {
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
        limits: {
          ...(value.statementTimeout !== undefined ? { statement_timeout: value.statementTimeout } : {}),
          ...(value.lockTimeout !== undefined ? { lock_timeout: value.lockTimeout } : {}),
          ...(value.idleInTransactionTimeout !== undefined ? { idle_in_transaction_session_timeout: value.idleInTransactionTimeout } : {}),
        },
      };
      for (const key of ['maxGrant', 'review'] as const) {
        if (value[key] !== undefined && !value.requestable) problems.add(file, ['access', i, key], 'is only for requestable access rules (add requestable: true)', { atKey: true });
      }
      if (value.overLimit !== undefined && value.maxAffectedRows === undefined)
        problems.add(file, ['access', i, 'overLimit'], 'says what happens over maxAffectedRows, which this rule does not set', { atKey: true });
      value.review?.notify?.forEach((n, j) => {
        if (n.url.startsWith('${')) notifySecrets.push({ text: n.url, at: { file, path: ['access', i, 'review', 'notify', j, 'url'] } });
      });
      access.push({ value: rule, at: { file, path: ['access', i] } });
    });
    if (data.statements) {
      setScalar('statements.unparseable', data.statements.unparseable, { file, path: ['statements', 'unparseable'] });
      data.statements.rules.forEach((value, i) => {
        const rule: StatementRule = {
          name: value.name,
          match: value.match as StatementRule['match'],
          action: value.action,
          ...(value.message !== undefined ? { message: value.message } : {}),
          ...(value.review !== undefined ? { review: reviewSettingsOf(value.review) } : {}),
          ...(value.maxAffectedRows !== undefined ? { maxAffectedRows: value.maxAffectedRows, overLimit: value.overLimit ?? 'deny' } : {}),
        };
        value.review?.notify?.forEach((n, j) => {
          if (n.url.startsWith('${')) notifySecrets.push({ text: n.url, at: { file, path: ['statements', 'rules', i, 'review', 'notify', j, 'url'] } });
        });
        const reviews = value.action === 'review' || value.overLimit === 'review';
        if (value.review !== undefined && !reviews)
          problems.add(file, ['statements', 'rules', i, 'review'], `is only for rules whose action is review, or whose overLimit is review (this one is ${value.action})`, { atKey: true });
        if (value.maxAffectedRows !== undefined && value.action !== 'allow')
          problems.add(
            file,
            ['statements', 'rules', i, 'maxAffectedRows'],
            `limits the writes an allow rule lets through (this rule's action is ${value.action}: it holds or refuses them whatever their size)`,
            { atKey: true },
          );
        if (value.overLimit !== undefined && value.maxAffectedRows === undefined)
          problems.add(file, ['statements', 'rules', i, 'overLimit'], 'says what happens over maxAffectedRows, which this rule does not set', { atKey: true });
        rules.push({ value: rule, at: { file, path: ['statements', 'rules', i] } });
      });
      data.statements.reviewers.forEach((r, i) => {
        reviewers.push({ ...(r.connections ? { connections: r.connections } : {}), ...reviewSettingsOf(r) });
        r.notify?.forEach((n, j) => {
          if (n.url.startsWith('${')) notifySecrets.push({ text: n.url, at: { file, path: ['statements', 'reviewers', i, 'notify', j, 'url'] } });
        });
      });
    }
    const m = data.masking;
    if (m) {
      if (m.key !== undefined) {
        const at: Origin = { file, path: ['masking', 'key'] };
        if (masking.key) problems.add(file, at.path, `is set again (already set at ${where(masking.key.at)}); set it in one file`, { atKey: true });
        else masking.key = { text: m.key, at };
      }
      setScalar('masking.derived', m.derived, { file, path: ['masking', 'derived'] });
      m.columns.forEach((c, i) => {
        masking.columns.push({ table: c.table, column: c.column, strategy: c.strategy, ...principalMatchOf(c) });
        if (c.strategy === 'hash') hashAt.push({ file, path: ['masking', 'columns', i, 'strategy'] });
      });
      m.names.forEach((n, i) => {
        masking.names.push({ pattern: n.pattern, regex: new RegExp(n.pattern, 'i'), strategy: n.strategy, ...principalMatchOf(n) });
        if (n.strategy === 'hash') hashAt.push({ file, path: ['masking', 'names', i, 'strategy'] });
      });
      m.detectors.forEach((d, i) => {
        masking.detectors.push({ detector: d.detector, strategy: d.strategy, ...principalMatchOf(d) });
        if (d.strategy === 'hash') hashAt.push({ file, path: ['masking', 'detectors', i, 'strategy'] });
      });
    }
    if (data.ssh) {
      for (const k of ['default', 'sftp'] as const) setScalar(`ssh.${k}`, data.ssh[k], { file, path: ['ssh', k] });
      if (data.ssh.forwarding) ssh.forwarding.push(...data.ssh.forwarding);
      if (data.ssh.env) (ssh.env ??= []).push(...data.ssh.env);
      data.ssh.rules.forEach((value, i) => {
        value.review?.notify?.forEach((n, j) => {
          if (n.url.startsWith('${')) notifySecrets.push({ text: n.url, at: { file, path: ['ssh', 'rules', i, 'review', 'notify', j, 'url'] } });
        });
        if (value.review !== undefined && value.action !== 'review')
          problems.add(file, ['ssh', 'rules', i, 'review'], `is only for rules whose action is review (this one is ${value.action})`, { atKey: true });
        const { shell, commands, patterns } = value.match;
        if (shell && (commands || patterns))
          problems.add(file, ['ssh', 'rules', i, 'match', 'shell'], 'matches interactive shells, which have no command line: match commands or patterns in a rule of their own', { atKey: true });
        sshRules.push({
          value: {
            name: value.name,
            match: value.match as SshRule['match'],
            action: value.action,
            ...(value.message !== undefined ? { message: value.message } : {}),
            ...(value.review !== undefined ? { review: reviewSettingsOf(value.review) } : {}),
          },
          at: { file, path: ['ssh', 'rules', i] },
        });
      });
    }
    if (data.recording) {
      for (const k of ['results', 'rowCap', 'onFailure', 'retentionDays', 'sshInput'] as const) setScalar(`recording.${k}`, data.recording[k], { file, path: ['recording', k] });
      if (data.recording.auditors) auditors.push(...data.recording.auditors);
    }
    if (data.runs) for (const k of ['maxSeconds', 'heartbeatTimeout', 'requireIsolation'] as const) setScalar(`runs.${k}`, data.runs[k], { file, path: ['runs', k] });
    if (data.reviews) setScalar('reviews.requireSignInWithin', data.reviews.requireSignInWithin, { file, path: ['reviews', 'requireSignInWithin'] });
  }

  const unique = <T extends { name: string }>(items: { value: T; at: Origin }[], what: string): void => {
    const seen = new Map<string, Origin>();
    for (const { value, at } of items) {
      const first = seen.get(value.name);
      if (first) problems.add(at.file, [...at.path, 'name'], `duplicate ${what} name "${value.name}" (also defined at ${where({ file: first.file, path: [...first.path, 'name'] })})`);
      else seen.set(value.name, at);
    }
  };
  unique(connections, 'connection');
  unique(access, 'access rule');
  unique(rules, 'statement rule');
  unique(sshRules, 'ssh rule');

  const connectionNames = new Set(connections.map((c) => c.value.name));
  const known = [...connectionNames].join(', ') || 'none defined';
  for (const { value, at } of access) {
    if (value.subjects.length === 0 && value.emails.length === 0 && value.groups.length === 0) {
      problems.add(at.file, at.path, 'admits nobody: list subjects (or "*"), emails or groups');
    }
    value.connections.forEach((c, j) => {
      if (c !== '*' && !connectionNames.has(c)) problems.add(at.file, [...at.path, 'connections', j], `unknown connection "${c}" (known: ${known})`);
    });
  }
  for (const { value, at } of rules) {
    value.match.connections?.forEach((c, j) => {
      if (!connectionNames.has(c)) problems.add(at.file, [...at.path, 'match', 'connections', j], `unknown connection "${c}" (known: ${known})`);
    });
  }
  if (hashAt.length > 0 && !masking.key) {
    for (const at of hashAt) problems.add(at.file, at.path, 'hash needs masking.key (a secret reference such as ${env:HOOP_MASK_KEY})');
  }

  // Secret references and CA files.
  const pending: Promise<void>[] = [];
  const checkSecret = (text: string, at: Origin, what: string): void => {
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
          if (message) problems.add(at.file, at.path, message);
        }),
      );
    }
  };
  for (const n of notifySecrets) checkSecret(n.text, n.at, 'secret reference');
  const cas = new Map<number, { data?: Buffer; file: string }>();
  connections.forEach(({ value, at }, i) => {
    for (const [key, text] of connectionSecrets(value)) checkSecret(text, { file: at.file, path: [...at.path, key] }, 'secret reference');
    if (value.type !== 'postgres') return;
    problems.addAll(at.file, disabledTlsProblems(value.tls, [...at.path, 'tls']));
    const ca = value.tls.ca;
    if (ca === undefined || value.tls.mode === 'disable') return;
    const caAt: Path = [...at.path, 'tls', 'ca'];
    if (isAbsolute(ca)) {
      if (!env) {
        cas.set(i, { file: ca });
        return;
      }
      pending.push(
        readPem(ca, 'certificate').then(({ data, problem }) => {
          if (problem) problems.add(at.file, caAt, problem);
          else cas.set(i, { data: data!, file: ca });
        }),
      );
      return;
    }
    const fileDir = resolve(root, at.file.name, '..');
    const target = resolve(fileDir, ca);
    const rel = relative(root, target);
    pending.push(
      (async () => {
        if (rel.startsWith('..') || isAbsolute(rel) || !(await insideTree(root, target))) {
          problems.add(at.file, caAt, `${ca} is not a file inside the config repo`);
          return;
        }
        const st = await lstat(target).catch(() => undefined);
        if (st?.isSymbolicLink()) {
          problems.add(at.file, caAt, `${ca} is a symbolic link`);
          return;
        }
        const { data, problem } = await readPem(target, 'certificate');
        if (problem) problems.add(at.file, caAt, problem.replace(root + sep, ''));
        else cas.set(i, { data: data!, file: target });
      })(),
    );
  });
  if (masking.key) checkSecret(masking.key.text, masking.key.at, 'masking key');

  // Tests.
  const tests: PolicyTest[] = [];
  const testSeen = new Map<string, Origin>();
  for (const { file, data } of parsedTests) {
    data.tests.forEach((t, i) => {
      const at: Origin = { file, path: ['tests', i] };
      const first = testSeen.get(t.name);
      if (first) problems.add(file, [...at.path, 'name'], `duplicate test name "${t.name}" (also defined at ${where({ file: first.file, path: [...first.path, 'name'] })})`);
      else testSeen.set(t.name, at);
      if (!connectionNames.has(t.connection)) problems.add(file, [...at.path, 'connection'], `unknown connection "${t.connection}" (known: ${known})`);
      const principal = describedPrincipal(t.as);
      if (typeof principal === 'string') problems.add(file, [...at.path, 'as'], principal);
      tests.push({
        name: t.name,
        as: { subject: t.as.subject, groups: t.as.groups, ...(t.as.email !== undefined ? { email: t.as.email } : {}), ...(typeof principal === 'object' ? { principal } : {}) },
        connection: t.connection,
        sql: t.sql,
        expect: t.expect,
        ...(t.rule !== undefined ? { rule: t.rule } : {}),
        source: where(at),
      });
    });
  }

  await Promise.all(pending);
  if (problems.list.length > 0) throw new PolicyInvalidError(problems.format(), root);

  const scalar = <T>(key: string, fallback: T): T => (scalars.get(key)?.value as T | undefined) ?? fallback;
  const recording: RecordingPolicy = {
    results: scalar('recording.results', 'masked'),
    rowCap: scalar('recording.rowCap', 1000),
    onFailure: scalar('recording.onFailure', 'close'),
    auditors: [...new Set(auditors)],
    ...(scalars.has('recording.retentionDays') ? { retentionDays: scalar('recording.retentionDays', 0) } : {}),
    ...(scalars.has('recording.sshInput') ? { sshInput: scalar<'none' | 'exec' | 'all'>('recording.sshInput', 'exec') } : {}),
  };
  return {
    connections: connections.map(({ value }, i): PolicyConnection => normaliseConnection(value, root, cas.get(i))),
    access: access.map((a) => a.value),
    statements: { unparseable: scalar('statements.unparseable', 'deny'), rules: rules.map((r) => r.value), reviewers },
    masking: {
      ...(masking.key ? { key: parseSecretRef(masking.key.text, root)! } : {}),
      columns: masking.columns,
      names: masking.names,
      detectors: masking.detectors,
      derived: scalar('masking.derived', 'mask'),
    },
    recording,
    ssh: {
      default: scalar('ssh.default', SSH_DEFAULTS.default),
      sftp: scalar('ssh.sftp', SSH_DEFAULTS.sftp),
      forwarding: ssh.forwarding,
      env: ssh.env ?? SSH_DEFAULTS.env,
      rules: sshRules.map((r) => r.value),
    },
    runs: {
      maxSeconds: scalar('runs.maxSeconds', RUN_DEFAULTS.maxSeconds),
      heartbeatTimeoutMs: scalar('runs.heartbeatTimeout', RUN_DEFAULTS.heartbeatTimeoutMs),
      requireIsolation: scalar('runs.requireIsolation', RUN_DEFAULTS.requireIsolation),
    },
    ...(scalars.has('reviews.requireSignInWithin') ? { reviews: { requireSignInWithinMs: scalar('reviews.requireSignInWithin', 0) } } : {}),
    tests,
  };
}
