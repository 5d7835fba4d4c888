/**
 * The gateway's configuration file: where it listens, which OpenID issuers it trusts, which
 * upstream servers it can reach and who may use them.
 *
 * The file is YAML. Relative paths are resolved against the directory of the file. Unknown keys
 * are errors, so a typo never passes silently. Every problem is reported at once, each as
 * `<file>:<line>:<col>: <dotted.field.path>: <what is wrong>`.
 *
 * ```yaml
 * listen: 127.0.0.1:8443              # host:port, IPv6 as "[::1]:8443"; port 0 picks a free port
 * tls: { cert: ./gateway.crt, key: ./gateway.key }   # required unless listen is loopback
 * log: { level: info }                # debug | info | warn | error
 * issuers:                            # OpenID providers whose tokens are accepted
 *   - issuer: https://idp.example.com # exactly as in the tokens' `iss`; https unless loopback
 *     audience: hoop                  # one or a list; a token must carry one of them in `aud`
 *     algorithms: [RS256, ES256]      # default RS256, PS256, ES256, EdDSA (asymmetric only)
 *     subjectClaim: sub               # defaults: sub, groups, email
 *     groupsClaim: groups
 *     emailClaim: email
 *     clockToleranceSeconds: 30       # 0..60, default 30
 *     kind: user                      # user (people, via hoop login; default) | workload (CI, services)
 *     tokenType: access               # access (RFC 9068 typ at+jwt) | id (not at+jwt) | any (default)
 *   - issuer: https://token.actions.githubusercontent.com
 *     audience: hoop
 *     kind: workload
 *     rules:                          # required for kind workload; any rule may match, all its claims must
 *       - claims: { repository: acme/api, ref: "refs/heads/*" }   # exact values, or globs with *
 *         groups: [deployers]         # the identity's groups: those of every matching rule
 *         subject: "ci:{repository}"  # optional template over claims; default: the subject claim
 * login:                              # what `hoop login` uses (GET /v1/auth/config); optional
 *   issuer: https://idp.example.com   # one of `issuers`, of kind user
 *   clientId: hoop-cli                # a public client (PKCE), no secret
 *   scopes: [openid, profile, email, offline_access]   # the default; must include openid
 *   resource: https://hoop.example.com                 # optional RFC 8707 resource indicator
 * dataDir: ./hoop-data                # the gateway's state (device keys); default <dir of this file>/hoop-data
 * connections:
 *   - name: prod-db                   # [a-z0-9][a-z0-9-_.]{0,62}, unique
 *     type: postgres
 *     host: db.internal
 *     port: 5432                      # default 5432
 *     database: app
 *     user: app_rw
 *     password: ${env:PROD_DB_PASSWORD}   # or ${file:./prod-db.pass}; never a literal
 *     tls: { mode: verify-full, ca: ./db-ca.pem, serverName: db.internal }  # mode default prefer
 *     allowCleartextWithoutTls: false # send a cleartext password without TLS that verified the server? default no
 *     allow: { subjects: [], emails: [], groups: [dba] }   # '*' in subjects: anyone signed in
 * postgres:                           # limits of PostgreSQL sessions; all optional
 *   maxStatementBytes: 64MiB          # longest SQL text judged (bytes, or with kB/MB/GB); longer is refused
 *   maxMaskedMessageBytes: 64MiB      # largest row / COPY line / error masking may hold whole
 *   startupSettings: [application_name, timezone]      # settings a client may set at startup (default list in startup.ts)
 * policy:                             # instead of `connections`: load them, access and rules from a config repo
 *   repo: https://git.example.com/acme/hoop-policy.git   # a git URL, or a path (relative to this file)
 *   ref: main                         # branch, tag or commit; default main
 *   allowedSigners: ./allowed_signers # optional: only commits SSH-signed by these keys are accepted
 *   allowedSecrets:                   # the secret references the bundle may use; none by default
 *     - "${env:PROD_DB_*}"            # * in a name: any run of letters, digits and _
 *     - "${file:/run/secrets/hoop/*}" # * in a path: any run of characters within one segment (never /)
 *   pullIntervalSeconds: 60           # 1..86400, default 60
 *   workDir: ./hoop-data/policy       # default <dataDir>/policy
 * ```
 *
 * Secret references must be resolvable when the file is loaded, but their values are not kept:
 * {@link resolveSecret} is called again whenever a connection is opened, so rotation needs no
 * restart.
 *
 * `policy.allowedSecrets` guards the gateway's secrets from the config repo: whoever can commit
 * there could otherwise point a connection at a server of theirs with `${file:/any/path}` or
 * `${env:ANY_VAR}` as its password. A bundle whose connection password or `masking.key` uses a
 * reference no entry admits is refused like any invalid commit. Entries are `${env:NAME}` or
 * `${file:/absolute/path}`, where `*` matches any run (including none) of the characters of a
 * variable name, or of one path segment (never `/`; `**` is refused). A `${file:}` reference is
 * matched once normalised (`..` and `.` resolved, as the gateway opens it), so
 * `${file:/run/secrets/hoop/../../../etc/passwd}` is `/etc/passwd` and not under
 * `/run/secrets/hoop/*`. Symbolic links are not followed: keep the allowed directories the gateway's.
 *
 * @see https://yaml.org/spec/1.2.2/
 * @see https://openid.net/specs/openid-connect-discovery-1_0.html#IssuerDiscovery (issuer form)
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNECT-SSLMODE
 * @see https://www.rfc-editor.org/rfc/rfc9068#section-2.1 (the at+jwt type of JWT access tokens)
 * @see https://www.rfc-editor.org/rfc/rfc8707 (resource indicators)
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { isLoopbackHost } from '../loopback.js';
import { dirname, join, resolve } from 'node:path';
import { LineCounter, isMap, isNode, isScalar, parseDocument, visit } from 'yaml';
import { z } from 'zod';
import { HoopError, ErrorCode } from '../errors.js';
import { parseSubjectTemplate } from './workload-rules.js';

/** The loaded gateway configuration. */
export interface GatewayConfig {
  /** Absolute path of the file it was loaded from. */
  file: string;
  listen: { host: string; port: number };
  /** Absent only when `listen` is a loopback address. */
  tls?: { cert: Buffer; key: Buffer; certFile: string; keyFile: string };
  issuers: IssuerConfig[];
  connections: ConnectionConfig[];
  log: { level: 'debug' | 'info' | 'warn' | 'error' };
  /** Absolute path of the directory that holds the gateway's state. */
  dataDir: string;
  /** What the CLI needs to log in, served at `GET /v1/auth/config`; absent when not configured. */
  login?: LoginConfig;
  /** The config repo the policy (connections, access, rules) comes from; then `connections` is empty. */
  policy?: PolicySourceConfig;
  /** Limits of the PostgreSQL engine. */
  postgres: PostgresLimitsConfig;
}

/**
 * What the gateway holds and lets through for PostgreSQL sessions.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
export interface PostgresLimitsConfig {
  /** Longest SQL text (bytes) of a Query or Parse the gateway judges; a longer one is refused. */
  maxStatementBytes?: number;
  /** Largest server message (a row, a COPY line, an error) masking may hold whole; a larger one ends the session. */
  maxMaskedMessageBytes?: number;
  /** Settings a client may give at startup (parameters, or options -c), lower-case; absent: the default list. */
  startupSettings?: string[];
}

/**
 * Where the gateway loads its policy bundle from.
 *
 * @see https://git-scm.com/docs/git-fetch
 * @see https://git-scm.com/docs/git-config#Documentation/git-config.txt-gpgsshallowedSignersFile
 */
export interface PolicySourceConfig {
  /** A git URL as written, or an absolute path (a relative one resolved against the config file's directory). */
  repo: string;
  ref: string;
  /** Absolute path of the allowed-signers file, when commits must be signed. */
  allowedSignersFile?: string;
  /** The secret references the bundle may use, as written (validated by {@link parseSecretPattern}); empty: none. */
  allowedSecrets: string[];
  pullIntervalSeconds: number;
  /** Absolute path of the mirror and checkouts. */
  workDir: string;
}

/**
 * How `hoop login` signs people in: the OpenID provider (one of the user issuers), the public
 * client registered there for the CLI, the scopes to ask for and an optional resource indicator.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8252 (OAuth for native apps)
 * @see https://www.rfc-editor.org/rfc/rfc8707 (resource indicators)
 */
export interface LoginConfig {
  issuer: string;
  clientId: string;
  scopes: string[];
  resource?: string;
}

/**
 * A claim rule of a workload issuer: every claim listed must match (exact value, or a glob where
 * `*` matches any run of characters); the groups of every matching rule are the identity's groups.
 *
 * @see https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect#understanding-the-oidc-token
 */
export interface WorkloadRule {
  /** Claim name (dots reach into objects) to pattern. */
  claims: Record<string, string>;
  groups: string[];
  /** A template such as `ci:{repository}`; absent: the token's subject claim. */
  subject?: string;
}

/**
 * One trusted OpenID provider.
 *
 * @see https://openid.net/specs/openid-connect-core-1_0.html#IDToken
 * @see https://www.rfc-editor.org/rfc/rfc9068 (JWT access tokens)
 */
export interface IssuerConfig {
  /** Compared exactly with the token's `iss` claim and the discovery document's `issuer`. */
  issuer: string;
  /** A token must carry at least one of these in `aud`. */
  audience: string[];
  /** JWS algorithms accepted; asymmetric only. */
  algorithms: string[];
  subjectClaim: string;
  groupsClaim: string;
  emailClaim: string;
  clockToleranceSeconds: number;
  /** `user`: people signing in with `hoop login`; `workload`: CI jobs and services, mapped by {@link IssuerConfig.rules}. */
  kind: 'user' | 'workload';
  /** Which tokens are accepted: JWT access tokens (`typ: at+jwt`), ID tokens (anything else), or both. */
  tokenType: 'access' | 'id' | 'any';
  /** Empty for user issuers; at least one for workload issuers. */
  rules: WorkloadRule[];
}

/**
 * Where a secret lives. Only the gateway resolves it, with {@link resolveSecret}.
 *
 * Written `${env:NAME}` or `${file:path}` in the file.
 */
export type SecretRef = { kind: 'env'; name: string } | { kind: 'file'; path: string };

/**
 * One upstream PostgreSQL server the gateway can open sessions to.
 *
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS
 */
export interface ConnectionConfig {
  name: string;
  type: 'postgres';
  host: string;
  port: number;
  database: string;
  user: string;
  password: SecretRef;
  /** `mode` follows libpq's `sslmode` (default `prefer`, as in libpq). */
  tls: { mode: 'disable' | 'prefer' | 'require' | 'verify-full'; ca?: Buffer; caFile?: string; serverName?: string };
  /** Whether a cleartext password may be sent when the upstream link is not encrypted. */
  allowCleartextWithoutTls: boolean;
  /** Who may use it. `*` in `subjects` admits any authenticated identity; all empty admits nobody. */
  allow: { subjects: string[]; emails: string[]; groups: string[] };
}

/** Algorithms accepted by default. */
export const DEFAULT_ALGORITHMS: readonly string[] = ['RS256', 'PS256', 'ES256', 'EdDSA'];

/** Scopes `hoop login` asks for unless the configuration says otherwise. @see https://openid.net/specs/openid-connect-core-1_0.html#ScopeClaims */
export const DEFAULT_LOGIN_SCOPES: readonly string[] = ['openid', 'profile', 'email', 'offline_access'];

/** Asymmetric JWS algorithms an issuer may be configured with (no `none`, no HMAC). @see https://www.rfc-editor.org/rfc/rfc7518#section-3.1 */
export const ALLOWED_ALGORITHMS = [
  'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519',
] as const;

const HINT = 'fix the file and start the gateway again';
const SECRET_REF = /^\$\{(env|file):([^}]*)\}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const CONNECTION_NAME = /^[a-z0-9][a-z0-9-_.]{0,62}$/;

/**
 * Parses a `${env:NAME}` or `${file:path}` reference; file paths are resolved against `baseDir`.
 * Returns undefined when `text` is not a well-formed reference.
 *
 * @see https://12factor.net/config (configuration from the environment)
 */
export function parseSecretRef(text: string, baseDir: string): SecretRef | undefined {
  const m = SECRET_REF.exec(text.trim());
  if (!m) return undefined;
  const [, kind, arg = ''] = m;
  if (kind === 'env') return ENV_NAME.test(arg) ? { kind: 'env', name: arg } : undefined;
  return arg.trim() === '' ? undefined : { kind: 'file', path: resolve(baseDir, arg.trim()) };
}

/**
 * Resolves a secret reference to its value: the environment variable, or the file's content
 * without one trailing newline. Errors name the variable or file, never the value.
 *
 * @see https://docs.docker.com/engine/swarm/secrets/ (secrets mounted as files)
 * @throws HoopError SECRET_UNRESOLVED
 */
export async function resolveSecret(ref: SecretRef, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (ref.kind === 'env') {
    const value = env[ref.name];
    if (value === undefined || value === '') {
      throw new HoopError(ErrorCode.SECRET_UNRESOLVED, `environment variable ${ref.name} is ${value === undefined ? 'not set' : 'empty'}`, {
        hint: `set ${ref.name} in the gateway's environment`,
      });
    }
    return value;
  }
  let text: string;
  try {
    text = await readFile(ref.path, 'utf8');
  } catch (err) {
    throw new HoopError(ErrorCode.SECRET_UNRESOLVED, `cannot read secret file ${ref.path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, {
      hint: 'make the file exist and readable by the gateway',
      cause: err,
    });
  }
  const value = text.endsWith('\r\n') ? text.slice(0, -2) : text.endsWith('\n') ? text.slice(0, -1) : text;
  if (value === '') {
    throw new HoopError(ErrorCode.SECRET_UNRESOLVED, `secret file ${ref.path} is empty`, { hint: 'write the secret into the file' });
  }
  return value;
}

/**
 * Whether `ref` can be resolved in `env`: undefined when it can, else the problem, prefixed with
 * `what` (it names the variable or file, never a value).
 *
 * @see https://12factor.net/config (configuration from the environment)
 */
export async function unresolvedSecret(ref: SecretRef, env: NodeJS.ProcessEnv, what = 'secret reference'): Promise<string | undefined> {
  try {
    await resolveSecret(ref, env);
    return undefined;
  } catch (err) {
    return `${what} does not resolve: ${(err as Error).message}`;
  }
}

/**
 * A secret reference in its canonical form: `${env:NAME}`, or `${file:/path}` with the path normalised.
 *
 * @see https://nodejs.org/api/path.html#pathresolvepaths (normalisation)
 */
export function formatSecretRef(ref: SecretRef): string {
  return ref.kind === 'env' ? `\${env:${ref.name}}` : `\${file:${resolve('/', ref.path)}}`;
}

/**
 * One entry of the gateway's `policy.allowedSecrets`: the secret references a policy bundle may
 * use. In `${env:PROD_DB_*}` a `*` stands for any run (including none) of letters, digits and
 * `_`; in `${file:/run/secrets/hoop/*}` for any run of characters within one path segment (never
 * `/`). File references are compared once normalised (see {@link secretAllowed}).
 *
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/basedefs/V1_chap08.html (environment variable names)
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/basedefs/V1_chap04.html#tag_04_16 (pathname resolution)
 */
export interface SecretPattern {
  /** As written (trimmed). */
  text: string;
  kind: SecretRef['kind'];
  /** The whole variable name or normalised absolute path must match. */
  regex: RegExp;
}

const ENV_PATTERN = /^[A-Za-z0-9_*]+$/;

const escapeRegex = (text: string): string => text.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');

function globRegex(glob: string, star: string): RegExp {
  return new RegExp(`^${glob.split('*').map(escapeRegex).join(star)}$`);
}

/**
 * Parses an entry of `policy.allowedSecrets` (see {@link SecretPattern}): `${env:...}` with a
 * variable name that may hold `*` (not `*` alone: that would admit the whole environment), or
 * `${file:/...}` with an absolute, normalised path (no empty, `.` or `..` segments, no trailing
 * `/`) that may hold `*` but not `**`.
 *
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/basedefs/V1_chap08.html (environment variable names)
 * @returns the pattern, or what is wrong with the entry
 */
export function parseSecretPattern(text: string): SecretPattern | { problem: string } {
  const trimmed = text.trim();
  const m = SECRET_REF.exec(trimmed);
  if (!m) return { problem: 'must be a secret reference or a glob of them, like "${env:PROD_DB_*}" or "${file:/run/secrets/hoop/*}"' };
  const kind = m[1] as SecretRef['kind'];
  const arg = kind === 'file' ? m[2]!.trim() : m[2]!;
  if (kind === 'env') {
    if (!ENV_PATTERN.test(arg) || !ENV_NAME.test(arg.replaceAll('*', 'A'))) {
      return { problem: '${env:...} takes a variable name of letters, digits and _ (not starting with a digit), with * for any run of them' };
    }
    if (!/[^*]/.test(arg)) return { problem: "would admit every variable of the gateway's environment; name them, e.g. ${env:PROD_DB_*}" };
    return { text: trimmed, kind, regex: globRegex(arg, '[A-Za-z0-9_]*') };
  }
  if (!arg.startsWith('/')) return { problem: '${file:...} takes an absolute path on the gateway host, e.g. ${file:/run/secrets/hoop/*}' };
  if (/[\x00-\x1f\x7f]/.test(arg)) return { problem: 'the path must not contain control characters' };
  if (arg.slice(1).split('/').some((seg) => seg === '' || seg === '.' || seg === '..')) {
    return { problem: 'the path must be normalised: no empty, "." or ".." segments and no trailing /' };
  }
  if (arg.includes('**')) return { problem: '** is not supported: * matches within one path segment (list each directory)' };
  return { text: trimmed, kind, regex: globRegex(arg, '[^/]*') };
}

/**
 * Parses every entry of an allow-list of secret references (see {@link parseSecretPattern}).
 *
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/basedefs/V1_chap04.html#tag_04_16 (pathname resolution)
 * @throws HoopError USAGE naming each malformed entry.
 */
export function parseSecretPatterns(list: readonly string[]): SecretPattern[] {
  const parsed = list.map((text) => ({ text, result: parseSecretPattern(text) }));
  const bad = parsed.filter((p) => 'problem' in p.result);
  if (bad.length > 0) {
    throw new HoopError(ErrorCode.USAGE, `allowed secrets: ${bad.map((p) => `${JSON.stringify(p.text)} ${(p.result as { problem: string }).problem}`).join('; ')}`);
  }
  return parsed.map((p) => p.result as SecretPattern);
}

/**
 * True when a pattern admits `ref`. A file path is normalised first (`.` and `..` resolved, as
 * opening it would), so a reference can never climb out of an allowed directory by its spelling.
 *
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/basedefs/V1_chap04.html#tag_04_16 (pathname resolution)
 */
export function secretAllowed(ref: SecretRef, patterns: readonly SecretPattern[]): boolean {
  const value = ref.kind === 'env' ? ref.name : resolve('/', ref.path);
  return patterns.some((p) => p.kind === ref.kind && p.regex.test(value));
}

/** Parses `host:port` or `[v6]:port`; undefined when malformed. */
function parseListen(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const host = m[1] ?? m[2]!;
  if (m[1] !== undefined && isIP(host) !== 6) return undefined;
  const port = Number(m[3]);
  return port <= 65535 ? { host, port } : undefined;
}

function issuerProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'must be an absolute URL such as https://idp.example.com';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'must be an https URL';
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) return 'must use https (plain http is only allowed for a loopback issuer)';
  if (url.search || url.hash || value.includes('?') || value.includes('#')) return 'must not have a query or fragment';
  if (url.username || url.password) return 'must not contain credentials';
  return undefined;
}

const nonEmpty = (what: string) => z.string({ error: `must be ${what}` }).trim().min(1, { error: `must be ${what}` });
const stringList = z.array(nonEmpty('a non-empty string')).default([]);

const listenSchema = z.string({ error: 'must be host:port, e.g. 127.0.0.1:8443 or [::1]:8443' }).transform((v, ctx) => {
  const parsed = parseListen(v);
  if (!parsed) {
    ctx.addIssue({ code: 'custom', message: 'must be host:port with a port from 0 to 65535, e.g. 127.0.0.1:8443 or [::1]:8443' });
    return z.NEVER;
  }
  return parsed;
});

const claimPattern = z
  .union([z.string(), z.number(), z.boolean()], { error: 'must be a value or a pattern with * (a string, number or boolean)' })
  .transform((v) => String(v))
  .refine((v) => v !== '', { error: 'must not be empty (write "*" to require only that the claim exists)' });

const ruleSchema = z.strictObject({
  claims: z
    .record(z.string().trim().min(1, { error: 'claim names must not be empty' }), claimPattern, { error: 'must map claim names to values, e.g. { repository: acme/api }' })
    .refine((v) => Object.keys(v).length > 0, { error: 'must list at least one claim (write sub: "*" to match every token of the issuer)' }),
  groups: stringList,
  subject: z
    .string({ error: 'must be a template such as "ci:{repository}"' })
    .check((ctx) => {
      const parsed = parseSubjectTemplate(ctx.value);
      if ('problem' in parsed) ctx.issues.push({ code: 'custom', input: ctx.value, message: parsed.problem });
    })
    .optional(),
});

const issuerSchema = z.strictObject({
  issuer: z.string({ error: 'must be the issuer URL' }).check((ctx) => {
    const problem = issuerProblem(ctx.value);
    if (problem) ctx.issues.push({ code: 'custom', message: problem, input: ctx.value });
  }),
  audience: z
    .union([nonEmpty('a non-empty string'), z.array(nonEmpty('a non-empty string')).min(1, { error: 'must list at least one audience' })], {
      error: 'must be a string or a list of strings',
    })
    .transform((v) => (typeof v === 'string' ? [v] : v)),
  algorithms: z
    .array(z.enum(ALLOWED_ALGORITHMS, { error: `must be one of ${ALLOWED_ALGORITHMS.join(', ')} (symmetric and "none" are refused)` }))
    .min(1, { error: 'must list at least one algorithm' })
    .default([...DEFAULT_ALGORITHMS] as (typeof ALLOWED_ALGORITHMS)[number][]),
  subjectClaim: nonEmpty('a claim name').default('sub'),
  groupsClaim: nonEmpty('a claim name').default('groups'),
  emailClaim: nonEmpty('a claim name').default('email'),
  clockToleranceSeconds: z
    .number({ error: 'must be a number of seconds' })
    .int({ error: 'must be a whole number of seconds' })
    .min(0, { error: 'must be at least 0' })
    .max(60, { error: 'must be at most 60 seconds' })
    .default(30),
  kind: z.enum(['user', 'workload'], { error: 'must be user or workload' }).default('user'),
  tokenType: z.enum(['access', 'id', 'any'], { error: 'must be access, id or any' }).default('any'),
  rules: z.array(ruleSchema, { error: 'must be a list of rules' }).optional(),
});

const secretSchema = z.string({ error: 'must be a secret reference like ${env:NAME} or ${file:path}' }).check((ctx) => {
  if (!SECRET_REF.test(ctx.value.trim())) {
    ctx.issues.push({ code: 'custom', input: ctx.value, message: 'must be a secret reference like ${env:NAME} or ${file:path}, not a literal password' });
  } else if (parseSecretRef(ctx.value, '/') === undefined) {
    ctx.issues.push({ code: 'custom', input: ctx.value, message: 'malformed secret reference: ${env:NAME} needs a variable name of letters, digits and _, ${file:path} a path' });
  }
});

const port = (min: number) =>
  z
    .number({ error: 'must be a port number' })
    .int({ error: 'must be a whole number' })
    .min(min, { error: `must be from ${min} to 65535` })
    .max(65535, { error: `must be from ${min} to 65535` });

/**
 * The schema of one connection entry (shared with the policy bundle, which omits `allow`).
 *
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS
 */
export const connectionSchema = z.strictObject({
  name: z.string({ error: 'must be a name' }).regex(CONNECTION_NAME, {
    error: 'must be 1-63 characters of a-z, 0-9, "-", "_", "." starting with a letter or digit',
  }),
  type: z.literal('postgres', { error: 'must be postgres (the only type supported)' }),
  host: nonEmpty('a host name or address').refine((v) => !/\s/.test(v), { error: 'must not contain spaces' }),
  port: port(1).default(5432),
  database: nonEmpty('a database name'),
  user: nonEmpty('a user name'),
  password: secretSchema,
  tls: z
    .strictObject({
      mode: z.enum(['disable', 'prefer', 'require', 'verify-full'], { error: 'must be one of disable, prefer, require, verify-full' }).default('prefer'),
      ca: nonEmpty('a path to a PEM file').optional(),
      serverName: nonEmpty('a host name').optional(),
    })
    .default({ mode: 'prefer' }),
  allowCleartextWithoutTls: z.boolean({ error: 'must be true or false' }).default(false),
  allow: z
    .strictObject({ subjects: stringList, emails: stringList, groups: stringList })
    .default({ subjects: [], emails: [], groups: [] }),
});

/**
 * A connection entry as {@link connectionSchema} parses it; a policy bundle's entries have no `allow`.
 *
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS
 */
export type ConnectionEntry = Omit<z.output<typeof connectionSchema>, 'allow'> & { allow?: ConnectionConfig['allow'] };

/**
 * The {@link ConnectionConfig} of a validated entry, for the gateway configuration and a policy
 * bundle alike: the password reference parsed (a relative `${file:}` path against `baseDir`), the
 * CA as read (`data` absent when only its path is known), `allow` empty when the entry has none.
 *
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS
 */
export function normaliseConnection(entry: ConnectionEntry, baseDir: string, ca?: { file: string; data?: Buffer }): ConnectionConfig {
  return {
    name: entry.name,
    type: entry.type,
    host: entry.host,
    port: entry.port,
    database: entry.database,
    user: entry.user,
    password: parseSecretRef(entry.password, baseDir)!,
    tls: {
      mode: entry.tls.mode,
      ...(ca?.data ? { ca: ca.data } : {}),
      ...(ca ? { caFile: ca.file } : {}),
      ...(entry.tls.serverName !== undefined ? { serverName: entry.tls.serverName } : {}),
    },
    allowCleartextWithoutTls: entry.allowCleartextWithoutTls,
    allow: entry.allow ?? { subjects: [], emails: [], groups: [] },
  };
}

/**
 * The keys of a connection's `tls` (`tls` as written, at `path`) that `mode: disable` makes
 * meaningless, as problems located at the key.
 *
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNECT-SSLMODE
 */
export function disabledTlsProblems(tls: unknown, path: Path): Problem[] {
  const t = asRecord(tls);
  if (t?.mode !== 'disable') return [];
  return (['ca', 'serverName'] as const)
    .filter((k) => t[k] !== undefined)
    .map((k) => ({ path: [...path, k], message: 'has no effect with mode: disable; remove it or choose another mode', atKey: true }));
}

const loginSchema = z.strictObject({
  issuer: nonEmpty('the URL of a configured issuer of kind user'),
  clientId: nonEmpty('the client id registered for hoop at the identity provider'),
  scopes: z
    .array(z.string({ error: 'must be a scope name' }).regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, { error: 'must be a scope name (no spaces or quotes)' }), { error: 'must be a list of scopes' })
    .min(1, { error: 'must list at least one scope' })
    .refine((v) => v.includes('openid'), { error: 'must include openid (hoop login uses OpenID Connect)' })
    .default([...DEFAULT_LOGIN_SCOPES]),
  resource: z
    .string({ error: 'must be an absolute URL' })
    .check((ctx) => {
      let ok = false;
      try {
        ok = new URL(ctx.value).protocol !== '' && !ctx.value.includes('#');
      } catch {
        ok = false;
      }
      if (!ok) ctx.issues.push({ code: 'custom', input: ctx.value, message: 'must be an absolute URL without a fragment (RFC 8707)' });
    })
    .optional(),
});

/** True for `scheme://...` and scp-like `user@host:path`; anything else is a local path. */
function isGitUrl(text: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(text) || (/^[^/\\:]+@[^/\\:]+:/.test(text) && !text.startsWith('/'));
}

const policySourceSchema = z.strictObject({
  repo: nonEmpty('a git URL or the path of a git repository').refine((v) => !v.startsWith('-') && !/^ext::/i.test(v), {
    error: 'must be a git URL or path (not starting with "-", no ext:: transport)',
  }),
  ref: nonEmpty('a branch, tag or commit')
    .refine((v) => !v.startsWith('-') && !/[\x00-\x20\x7f~^:?*[\\]|\.\.|@\{|\/\/|\/$|\.lock$|^\/|\.$/.test(v), { error: 'is not a valid git ref name' })
    .default('main'),
  allowedSigners: nonEmpty('a path to an allowed-signers file').optional(),
  allowedSecrets: z
    .array(
      z.string({ error: 'must be a secret reference or a glob of them, like "${env:PROD_DB_*}" or "${file:/run/secrets/hoop/*}"' }).check((ctx) => {
        const parsed = parseSecretPattern(ctx.value);
        if ('problem' in parsed) ctx.issues.push({ code: 'custom', input: ctx.value, message: parsed.problem });
      }),
      { error: 'must be a list of secret references or globs of them, like ["${env:PROD_DB_*}", "${file:/run/secrets/hoop/*}"]' },
    )
    .default([]),
  pullIntervalSeconds: z
    .number({ error: 'must be a number of seconds' })
    .int({ error: 'must be a whole number of seconds' })
    .min(1, { error: 'must be from 1 to 86400' })
    .max(86400, { error: 'must be from 1 to 86400' })
    .default(60),
  workDir: nonEmpty('a directory path').optional(),
});

const BYTE_UNITS: Readonly<Record<string, number>> = { b: 1, kb: 1024, kib: 1024, mb: 1024 ** 2, mib: 1024 ** 2, gb: 1024 ** 3, gib: 1024 ** 3 };

/** A size in bytes: a number, or a string such as 64MiB, 512kB, 1GB (1024-based, as PostgreSQL's units). */
const bytesSchema = (min: number, max: number) =>
  z.union([z.number(), z.string()], { error: 'must be a size in bytes, such as 67108864 or 64MiB' }).transform((v, ctx) => {
    const m = typeof v === 'number' ? [String(v), String(v), 'b'] : /^\s*(\d+)\s*([a-z]*)\s*$/i.exec(v);
    const unit = BYTE_UNITS[(m?.[2] || 'b').toLowerCase()];
    const n = m && unit ? Number(m[1]) * unit : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      ctx.addIssue({ code: 'custom', message: `must be a size from ${min} bytes to ${max / 1024 ** 3} GiB, such as 64MiB` });
      return z.NEVER;
    }
    return n;
  });

const postgresLimitsSchema = z.strictObject({
  maxStatementBytes: bytesSchema(1024, 1024 ** 3 - 1).optional(),
  maxMaskedMessageBytes: bytesSchema(64 * 1024, 1024 ** 3 - 1).optional(),
  startupSettings: z
    .array(
      nonEmpty('a setting name')
        .transform((v) => v.toLowerCase())
        .refine((v) => /^[a-z_][a-z0-9_.]*$/.test(v), { error: 'must be a setting name such as application_name' }),
      { error: 'must be a list of setting names' },
    )
    .optional(),
});

const fileSchema = z.strictObject(
  {
    listen: listenSchema.default({ host: '127.0.0.1', port: 8443 }),
    tls: z
      .strictObject({ cert: nonEmpty('a path to a PEM certificate'), key: nonEmpty('a path to a PEM private key') })
      .optional(),
    issuers: z.array(issuerSchema, { error: 'must be a list of issuers' }).min(1, { error: 'must list at least one issuer' }),
    connections: z.array(connectionSchema, { error: 'must be a list of connections' }).default([]),
    log: z
      .strictObject({ level: z.enum(['debug', 'info', 'warn', 'error'], { error: 'must be one of debug, info, warn, error' }).default('info') })
      .default({ level: 'info' }),
    dataDir: nonEmpty('a directory path').optional(),
    login: loginSchema.optional(),
    policy: policySourceSchema.optional(),
    postgres: postgresLimitsSchema.default({}),
  },
  { error: (iss) => (iss.code === 'invalid_type' ? 'the file must be a mapping (key: value) at the top level' : undefined) },
);

/** A field's path in a parsed YAML document. */
export type Path = (string | number)[];
/** One validation problem, located later with {@link Locator}. */
export interface Problem {
  /** The field the message is about. */
  path: Path;
  message: string;
  /** Where to point when that is not the field itself. */
  at?: Path;
  /** Point at the key of the field rather than its value. */
  atKey?: boolean;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

/** "unknown key", with the nearest of `knownKeys` (the keys valid where `key` was written) when one is close; never `key` itself. */
function unknownKeyMessage(key: string, knownKeys: readonly string[]): string {
  const best = knownKeys
    .filter((k) => k !== key)
    .map((k) => ({ k, d: editDistance(key, k) }))
    .sort((x, y) => x.d - y.d)[0];
  return best && best.d <= Math.max(1, Math.floor(key.length / 3)) ? `unknown key (did you mean "${best.k}"?)` : 'unknown key';
}

/** A schema's definition, as far as {@link bareSchema} and {@link schemaAt} read it. */
interface SchemaDef {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  out?: z.ZodType;
}

/**
 * The schema under the wrappers that do not change what a value must look like: optional,
 * default, nullable, readonly, catch, and the pipes `.transform()` makes.
 *
 * @see https://zod.dev/api#optionals
 * @see https://zod.dev/api#transforms
 */
function bareSchema(schema: z.ZodType): z.ZodType {
  let s = schema;
  for (let i = 0; i < 32; i++) {
    const def = s.def as SchemaDef;
    if (def.innerType) s = def.innerType;
    else if (def.type === 'pipe' && def.in && def.out) s = def.in instanceof z.ZodTransform ? def.out : def.in;
    else break;
  }
  return s;
}

/** The option of a union that takes a value shaped like `value` (an object, a list or a scalar); else `schema`. */
function unionOption(schema: z.ZodType, value: unknown): z.ZodType {
  if (!(schema instanceof z.ZodUnion)) return schema;
  const options = (schema.options as readonly z.ZodType[]).map(bareSchema);
  const shaped = options.find((o) =>
    Array.isArray(value) ? o instanceof z.ZodArray : asRecord(value) ? o instanceof z.ZodObject || o instanceof z.ZodRecord : !(o instanceof z.ZodArray || o instanceof z.ZodObject || o instanceof z.ZodRecord),
  );
  return shaped ?? schema;
}

/**
 * The schema that validates the value at `path` of `raw` (unwrapped by {@link bareSchema}), or
 * undefined when `schema` has no such place.
 *
 * @see https://zod.dev/api#objects
 */
function schemaAt(schema: z.ZodType, path: Path, raw: unknown): z.ZodType | undefined {
  let s = unionOption(bareSchema(schema), raw);
  let v = raw;
  for (const p of path) {
    let next: z.ZodType | undefined;
    if (s instanceof z.ZodObject && typeof p === 'string') next = Object.hasOwn(s.shape, p) ? (s.shape[p] as z.ZodType) : undefined;
    else if (s instanceof z.ZodArray && typeof p === 'number') next = s.element as z.ZodType;
    else if (s instanceof z.ZodRecord) next = s.valueType as z.ZodType;
    if (!next) return undefined;
    v = valueAt(v, [p]);
    s = unionOption(bareSchema(next), v);
  }
  return s;
}

/** The keys an object may hold at `path` of `raw`, by `schema`; empty when that place is not an object. */
function keysAt(schema: z.ZodType, path: Path, raw: unknown): string[] {
  const s = schemaAt(schema, path, raw);
  return s instanceof z.ZodObject ? Object.keys(s.shape) : [];
}

/** A scalar the user wrote, when it is safe and plain enough to quote back in an example. */
function echoable(value: unknown): string | undefined {
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return typeof value === 'string' && /^[A-Za-z0-9_.@/+-]{1,64}$/.test(value) ? value : undefined;
}

/** How a field is shown in an example: `[...]` for a list, `{...}` for an object, the choices of a short enumeration, else `...`. */
function placeholder(schema: z.ZodType): string {
  const s = bareSchema(schema);
  if (s instanceof z.ZodArray) return '[...]';
  if (s instanceof z.ZodObject || s instanceof z.ZodRecord) return '{...}';
  if (s instanceof z.ZodBoolean) return 'true|false';
  if (s instanceof z.ZodLiteral && s.values.size === 1) return String([...s.values][0]);
  if (s instanceof z.ZodEnum && s.options.length <= 4) return s.options.join('|');
  return '...';
}

/**
 * An example of what `object` takes, such as `{ subject: alice, groups: [...] }`: its required
 * fields and its lists (or its first three fields when it has none), the first one filled with
 * `input` when the user wrote a plain scalar that field accepts.
 */
function objectExample(object: z.ZodObject, input: unknown): string {
  const entries = Object.entries(object.shape) as [string, z.ZodType][];
  let shown = entries.filter(([, s]) => !s.safeParse(undefined).success || bareSchema(s) instanceof z.ZodArray);
  if (shown.length === 0) shown = entries.slice(0, 3);
  shown = shown.slice(0, 6);
  const echo = echoable(input);
  const seed = echo !== undefined && shown[0] && shown[0][1].safeParse(input).success ? echo : undefined;
  return `{ ${shown.map(([k, s], i) => `${k}: ${i === 0 && seed !== undefined ? seed : placeholder(s)}`).join(', ')} }`;
}

/** An example of what `list` takes: `[x]` when the user wrote one plain value `x` it would take, else `[...]` or `[{ ... }]`. */
function listExample(list: z.ZodArray, input: unknown): string {
  const element = bareSchema(list.element as z.ZodType);
  const echo = echoable(input);
  if (echo !== undefined && (list.element as z.ZodType).safeParse(input).success) return `[${echo}]`;
  if (element instanceof z.ZodObject) return `[${objectExample(element, input)}]`;
  return `[${placeholder(element)}]`;
}

/** What a value is, in words: "a list", "an object", "a string", "a number", "true", "an empty value". */
function describeValue(value: unknown): string {
  if (value === null) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'number') return 'a number';
  return String(value);
}

/**
 * Words a type issue the schema left to zod's default message ("Invalid input: expected object,
 * received string"): what was expected, with an example for objects and lists, and what was
 * written instead. Given as the error map of a parse, it applies only where the schema did not
 * word the issue itself.
 *
 * @see https://zod.dev/error-customization#per-parse-error-customization
 */
export function issueWording(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.code !== 'invalid_type') return undefined;
  const input = issue.input;
  const got = input === undefined ? '' : `, not ${describeValue(input)}`;
  const inst = issue.inst;
  switch (issue.expected) {
    case 'object':
      if (inst instanceof z.ZodObject) return `expected an object like ${objectExample(inst, input)}`;
      return `expected a mapping (key: value)${got}`;
    case 'array':
      return inst instanceof z.ZodArray ? `expected a list like ${listExample(inst, input)}` : `expected a list${got}`;
    case 'string':
      return `expected a string${got}`;
    case 'number':
      return typeof input === 'string' && input.trim() !== '' && Number.isFinite(Number(input))
        ? `expected a number, not a string (write ${input.trim()} without quotes)`
        : `expected a number${got}`;
    case 'boolean':
      return `expected true or false${got}`;
    default:
      return undefined;
  }
}

/**
 * Validates `raw` with `schema`, type issues the schema does not word itself worded by
 * {@link issueWording}; turn a failure into problems with {@link zodProblems}.
 *
 * @see https://zod.dev/error-customization#per-parse-error-customization
 */
export function parseWithSchema<S extends z.ZodType>(schema: S, raw: unknown): z.ZodSafeParseResult<z.output<S>> {
  return schema.safeParse(raw, { error: issueWording });
}

function dotted(path: Path): string {
  return path.length === 0 ? '(top level)' : path.map(String).join('.');
}

/**
 * A YAML syntax error message without the source excerpt the library appends (it may hold a secret).
 *
 * @see https://eemeli.org/yaml/#errors
 */
export function yamlMessage(message: string): string {
  return message.split('\n')[0]!.replace(/ at line \d+, column \d+:?\s*$/, '');
}

/**
 * Finds the 1-based line and column of a field of a parsed YAML document.
 *
 * @see https://eemeli.org/yaml/#linecounter
 */
export class Locator {
  constructor(
    private readonly doc: ReturnType<typeof parseDocument>,
    private readonly lines: LineCounter,
  ) {}

  /** 1-based line and column of the node at `path`, or of its nearest existing ancestor. */
  position(path: Path, atKey = false): { line: number; col: number } {
    for (let n = path.length; n >= 0; n--) {
      const sub = path.slice(0, n);
      if (atKey && n === path.length && n > 0) {
        const parent = sub.length > 1 ? this.doc.getIn(sub.slice(0, -1), true) : this.doc.contents;
        if (isMap(parent)) {
          const pair = parent.items.find((p) => isScalar(p.key) && p.key.value === sub[sub.length - 1]);
          if (pair && isNode(pair.key) && pair.key.range) return this.lines.linePos(pair.key.range[0]);
        }
        continue;
      }
      const node = sub.length === 0 ? this.doc.contents : this.doc.getIn(sub, true);
      if (isNode(node) && node.range) return this.lines.linePos(node.range[0]);
    }
    return { line: 1, col: 1 };
  }
}

function configError(lines: string[]): HoopError {
  const n = lines.length;
  return new HoopError(
    ErrorCode.CONFIG_INVALID,
    `invalid gateway configuration (${n} problem${n === 1 ? '' : 's'}):\n${lines.map((l) => `  ${l}`).join('\n')}`,
    { hint: HINT },
  );
}

function valueAt(raw: unknown, path: Path): unknown {
  let v = raw;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[p];
  }
  return v;
}

/** For a number or true/false written in quotes (`port: "5432"`), how to write it; else empty. */
function quotedScalarHint(issue: z.core.$ZodIssue, value: unknown): string {
  if (issue.code !== 'invalid_type' || typeof value !== 'string' || issue.message.includes('without quotes')) return '';
  const text = value.trim();
  const fits = issue.expected === 'number' ? text !== '' && Number.isFinite(Number(text)) : issue.expected === 'boolean' && (text === 'true' || text === 'false');
  return fits ? ` (write ${text} without quotes)` : '';
}

/**
 * Turns the issues of validating `raw` with `schema` into problems; an unknown key gets a "did
 * you mean" from the keys `schema` allows where it was written (never the key itself).
 *
 * @see https://zod.dev/error-customization
 */
export function zodProblems(error: z.ZodError, raw: unknown, schema: z.ZodType): Problem[] {
  const out: Problem[] = [];
  for (const issue of error.issues) {
    const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
    if (issue.code === 'unrecognized_keys') {
      const known = keysAt(schema, path, raw);
      for (const key of issue.keys) out.push({ path: [...path, key], message: unknownKeyMessage(key, known), atKey: true });
    } else if (path.length > 0 && valueAt(raw, path) === undefined) {
      out.push({ path, message: `is missing (${issue.message})` });
    } else {
      out.push({ path, message: issue.message + quotedScalarHint(issue, valueAt(raw, path)) });
    }
  }
  return out;
}

function asRecord(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function readErrorMessage(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  return code ?? 'unreadable';
}

/** What {@link readPem} expects the file to hold. */
export type PemKind = 'certificate' | 'key';

/**
 * Reads a PEM file and checks it holds a certificate or an unencrypted private key.
 *
 * @see https://www.rfc-editor.org/rfc/rfc7468
 */
export async function readPem(abs: string, kind: PemKind): Promise<{ data?: Buffer; problem?: string }> {
  let data: Buffer;
  try {
    data = await readFile(abs);
  } catch (err) {
    return { problem: `cannot read ${abs}: ${readErrorMessage(err)}` };
  }
  try {
    if (kind === 'certificate') new X509Certificate(data);
    else createPrivateKey(data);
  } catch {
    return { problem: `${abs} does not hold a PEM ${kind === 'certificate' ? 'certificate' : 'private key (unencrypted)'}` };
  }
  return { data };
}

/**
 * Parses and validates the text of a gateway configuration file. Reads the files it names and
 * checks that every secret reference resolves (without keeping the values).
 *
 * @throws HoopError CONFIG_INVALID listing every problem with its file, line and column.
 */
export async function parseGatewayConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): Promise<GatewayConfig> {
  const abs = resolve(file);
  const baseDir = dirname(abs);
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw configError(
      doc.errors.map((e) => {
        const pos = e.linePos?.[0] ?? lineCounter.linePos(e.pos[0]);
        return `${abs}:${pos.line}:${pos.col}: ${yamlMessage(e.message)}`;
      }),
    );
  }
  const locator = new Locator(doc, lineCounter);
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (err) {
    let pos = { line: 1, col: 1 };
    visit(doc, {
      Alias(_key, node) {
        if (node.range && (err as Error).message.includes(node.source)) {
          pos = lineCounter.linePos(node.range[0]);
          return visit.BREAK;
        }
        return undefined;
      },
    });
    throw configError([`${abs}:${pos.line}:${pos.col}: ${yamlMessage((err as Error).message)}`]);
  }
  const problems: Problem[] = [];
  const parsed = parseWithSchema(fileSchema, raw);
  if (!parsed.success) problems.push(...zodProblems(parsed.error, raw, fileSchema));

  const root = asRecord(raw);
  const rawListen = typeof root?.listen === 'string' ? parseListen(root.listen) : root?.listen === undefined ? { host: '127.0.0.1', port: 0 } : undefined;
  if (rawListen && root?.tls === undefined && !isLoopbackHost(rawListen.host)) {
    problems.push({
      path: ['tls'],
      at: root?.listen === undefined ? [] : ['listen'],
      message: `is required because ${rawListen.host} is not a loopback address (add tls: { cert: ..., key: ... })`,
    });
  }

  const files = new Map<string, { file: string; data: Buffer }>();
  const pending: Promise<void>[] = [];
  const wantFile = (path: Path, value: unknown, kind: PemKind): void => {
    if (typeof value !== 'string' || value.trim() === '') return;
    const target = resolve(baseDir, value.trim());
    pending.push(
      readPem(target, kind).then(({ data, problem }) => {
        if (problem) problems.push({ path, message: problem });
        else files.set(path.join('.'), { file: target, data: data! });
      }),
    );
  };
  const tls = asRecord(root?.tls);
  wantFile(['tls', 'cert'], tls?.cert, 'certificate');
  wantFile(['tls', 'key'], tls?.key, 'key');

  const rawConnections = Array.isArray(root?.connections) ? root.connections : [];
  const seen = new Map<string, number>();
  rawConnections.forEach((c: unknown, i) => {
    const conn = asRecord(c);
    if (!conn) return;
    if (typeof conn.name === 'string') {
      const first = seen.get(conn.name);
      if (first === undefined) seen.set(conn.name, i);
      else {
        const where = locator.position(['connections', first, 'name']);
        problems.push({ path: ['connections', i, 'name'], message: `duplicate connection name "${conn.name}" (first defined at line ${where.line})` });
      }
    }
    wantFile(['connections', i, 'tls', 'ca'], asRecord(conn.tls)?.ca, 'certificate');
    problems.push(...disabledTlsProblems(conn.tls, ['connections', i, 'tls']));
    const ref = typeof conn.password === 'string' ? parseSecretRef(conn.password, baseDir) : undefined;
    if (ref) {
      pending.push(
        unresolvedSecret(ref, env).then((message) => {
          if (message) problems.push({ path: ['connections', i, 'password'], message });
        }),
      );
    }
  });

  const rawIssuers = Array.isArray(root?.issuers) ? root.issuers : [];
  const seenIssuers = new Set<string>();
  rawIssuers.forEach((iss: unknown, i) => {
    const name = asRecord(iss)?.issuer;
    if (typeof name !== 'string') return;
    if (seenIssuers.has(name)) problems.push({ path: ['issuers', i, 'issuer'], message: 'duplicate issuer; list each issuer once with all its audiences' });
    seenIssuers.add(name);
  });

  rawIssuers.forEach((iss: unknown, i) => {
    const entry = asRecord(iss);
    if (!entry) return;
    const rules = entry.rules;
    if (entry.kind === 'workload' && (rules === undefined || rules === null)) {
      problems.push({ path: ['issuers', i, 'rules'], at: ['issuers', i, 'kind'], message: 'is missing: a workload issuer needs rules that map its claims to identities (rules: [{ claims: {...}, groups: [...] }])' });
    } else if (entry.kind === 'workload' && Array.isArray(rules) && rules.length === 0) {
      problems.push({ path: ['issuers', i, 'rules'], message: 'must list at least one rule: a workload issuer with no rules admits nobody' });
    } else if (entry.kind !== 'workload' && rules !== undefined) {
      problems.push({ path: ['issuers', i, 'rules'], message: 'only workload issuers have rules; add kind: workload, or remove the rules', atKey: true });
    }
  });

  const login = asRecord(root?.login);
  if (login && typeof login.issuer === 'string') {
    const index = rawIssuers.findIndex((iss: unknown) => asRecord(iss)?.issuer === login.issuer);
    const target = index >= 0 ? asRecord(rawIssuers[index]) : undefined;
    const names = rawIssuers.map((iss: unknown) => asRecord(iss)?.issuer).filter((n): n is string => typeof n === 'string');
    if (!target) {
      problems.push({ path: ['login', 'issuer'], message: `must be one of the configured issuers${names.length > 0 ? ` (${names.join(', ')})` : ''}` });
    } else if (target.kind === 'workload') {
      problems.push({ path: ['login', 'issuer'], message: `names a workload issuer; login needs an issuer of kind user (issuers.${index})` });
    } else if (target.tokenType === 'id' && typeof login.clientId === 'string') {
      const audience = typeof target.audience === 'string' ? [target.audience] : Array.isArray(target.audience) ? target.audience : [];
      if (!audience.includes(login.clientId)) {
        problems.push({ path: ['login', 'clientId'], message: `issuers.${index} accepts ID tokens, whose audience is the client id: add "${login.clientId}" to its audience` });
      }
    }
  }

  if (root?.policy !== undefined && Array.isArray(root?.connections) && root.connections.length > 0) {
    problems.push({
      path: ['connections'],
      atKey: true,
      message: 'cannot be given together with policy: with a policy repo the connections come from its bundle (move them to hoop.yaml there, or remove policy)',
    });
  }
  const rawPolicy = asRecord(root?.policy);
  if (typeof rawPolicy?.allowedSigners === 'string' && rawPolicy.allowedSigners.trim() !== '') {
    const signers = resolve(baseDir, rawPolicy.allowedSigners.trim());
    pending.push(
      readFile(signers).then(
        () => undefined,
        (err: unknown) => {
          problems.push({ path: ['policy', 'allowedSigners'], message: `cannot read ${signers}: ${readErrorMessage(err)}` });
        },
      ),
    );
  }

  await Promise.all(pending);

  if (problems.length > 0 || !parsed.success) {
    const located = problems.map((p) => ({ p, pos: locator.position(p.at ?? p.path, p.atKey) }));
    located.sort((a, b) => a.pos.line - b.pos.line || a.pos.col - b.pos.col);
    throw configError(
      located.map(({ p, pos }) => `${abs}:${pos.line}:${pos.col}: ${dotted(p.path)}: ${p.message}`),
    );
  }

  const data = parsed.data;
  const dataDir = resolve(baseDir, data.dataDir ?? 'hoop-data');
  const cert = files.get('tls.cert');
  const key = files.get('tls.key');
  return {
    file: abs,
    listen: data.listen,
    ...(cert && key ? { tls: { cert: cert.data, key: key.data, certFile: cert.file, keyFile: key.file } } : {}),
    issuers: data.issuers.map((i) => ({
      ...i,
      algorithms: [...i.algorithms],
      rules: (i.rules ?? []).map((r) => ({ claims: { ...r.claims }, groups: [...r.groups], ...(r.subject !== undefined ? { subject: r.subject } : {}) })),
    })),
    connections: data.connections.map((c, i) => normaliseConnection(c, baseDir, files.get(`connections.${i}.tls.ca`))),
    log: data.log,
    dataDir,
    postgres: {
      ...(data.postgres.maxStatementBytes !== undefined ? { maxStatementBytes: data.postgres.maxStatementBytes } : {}),
      ...(data.postgres.maxMaskedMessageBytes !== undefined ? { maxMaskedMessageBytes: data.postgres.maxMaskedMessageBytes } : {}),
      ...(data.postgres.startupSettings !== undefined ? { startupSettings: data.postgres.startupSettings } : {}),
    },
    ...(data.policy
      ? {
          policy: {
            repo: isGitUrl(data.policy.repo) ? data.policy.repo : resolve(baseDir, data.policy.repo),
            ref: data.policy.ref,
            ...(data.policy.allowedSigners !== undefined ? { allowedSignersFile: resolve(baseDir, data.policy.allowedSigners) } : {}),
            allowedSecrets: data.policy.allowedSecrets.map((t) => t.trim()),
            pullIntervalSeconds: data.policy.pullIntervalSeconds,
            workDir: data.policy.workDir !== undefined ? resolve(baseDir, data.policy.workDir) : join(dataDir, 'policy'),
          },
        }
      : {}),
    ...(data.login
      ? {
          login: {
            issuer: data.login.issuer,
            clientId: data.login.clientId,
            scopes: [...data.login.scopes],
            ...(data.login.resource !== undefined ? { resource: data.login.resource } : {}),
          },
        }
      : {}),
  };
}

/**
 * Reads and validates the gateway configuration file.
 *
 * @throws HoopError CONFIG_INVALID when the file is unreadable or invalid (every problem listed).
 */
export async function loadGatewayConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<GatewayConfig> {
  const abs = resolve(file);
  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (err) {
    throw new HoopError(ErrorCode.CONFIG_INVALID, `cannot read gateway configuration ${abs}: ${readErrorMessage(err)}`, {
      hint: 'check the path given to the gateway',
      cause: err,
    });
  }
  return parseGatewayConfig(text, abs, env);
}
