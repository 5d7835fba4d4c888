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
 * store:                              # where the state goes (devices, sessions, recordings, reviews); default: files in dataDir
 *   kind: postgres                    # file (default) | postgres (several replicas share it; docs/deployment.md)
 *   url: ${env:HOOP_STORE_URL}        # a secret reference to postgres://user:password@host:5432/db?sslmode=verify-full
 *   heartbeatSeconds: 2               # how often a replica says it is there
 *   deadAfterSeconds: 15              # a replica not seen this long is taken over (its sessions truncated, its held statements expired)
 *   recordings:                       # optional: recording files' bytes in an S3-compatible bucket, their index in PostgreSQL; default: bytes in PostgreSQL
 *     bucket: hoop-recordings         # the bucket's name (3..63 of a-z 0-9 . -)
 *     endpoint: https://s3.example.com   # optional, for an S3-compatible service; https unless loopback; default AWS S3
 *     region: us-east-1               # default: AWS_REGION, else us-east-1
 *     prefix: recordings/             # keys are <prefix><session>/<file>; default none; ends with /
 *     forcePathStyle: true            # <endpoint>/<bucket>/<key> rather than <bucket>.<endpoint> (MinIO, Ceph…); default false
 *     accessKeyId: ${env:S3_KEY_ID}   # both secret references, or neither (then the SDK's default chain: env, profile, instance role)
 *     secretAccessKey: ${env:S3_SECRET}
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
 * audit:                              # the audit stream for SIEMs (docs/audit.md); optional
 *   file: ./audit.jsonl               # append JSON lines here, and/or
 *   url: https://siem.example.com/in  # POST them in batches (application/x-ndjson); https unless loopback
 *   headers: { Authorization: "${env:SIEM_TOKEN}" }   # values may be secret references
 *   batchSize: 500                    # events per batch; flushSeconds: 1; maxQueue: 100000 (oldest dropped, counted)
 * recording:                          # the gateway's recordings of sessions, in dataDir
 *   enabled: true                     # default true
 *   minFreeBytes: 1GiB                # refuse new sessions below this much free disk; default 1GiB
 *   checkpointSeconds: 10             # sign a checkpoint at least this often during a session (1..60)
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
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { LineCounter, parseDocument, visit } from 'yaml';
import { z } from 'zod';
import { connectionSchema, connectionSecrets, disabledTlsProblems, normaliseConnection, type ConnectionConfig } from '../config/connection.js';
import { readPem, type PemKind } from '../config/pem.js';
import { parseSecretPattern, parseSecretRef, secretSchema, unresolvedSecret, type SecretRef } from '../config/secrets.js';
import { Locator, asRecord, dotted, nonEmpty, parseWithSchema, readErrorMessage, stringList, yamlMessage, zodProblems, type Path, type Problem } from '../config/yaml.js';
import { HoopError, ErrorCode } from '../errors.js';
import { isLoopbackHost } from '../loopback.js';
import type { AuditConfig } from './audit.js';
import { parseSubjectTemplate, type WorkloadRule } from './workload-rules.js';

export type { WorkloadRule };

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
  /** Where the shared state is kept: files in `dataDir`, or a PostgreSQL database (its URL a secret reference, resolved at start). */
  store: { kind: 'file' } | { kind: 'postgres'; url: SecretRef; heartbeatSeconds: number; deadAfterSeconds: number; recordings?: RecordingBucketConfig };
  /** What the CLI needs to log in, served at `GET /v1/auth/config`; absent when not configured. */
  login?: LoginConfig;
  /** The config repo the policy (connections, access, rules) comes from; then `connections` is empty. */
  policy?: PolicySourceConfig;
  /** Limits of the PostgreSQL engine. */
  postgres: PostgresLimitsConfig;
  /** The gateway's recordings of sessions (in `dataDir`). */
  recording: GatewayRecordingConfig;
  /** The audit stream (src/gateway/audit.ts); absent: none. Header values may be secret references, resolved at start. */
  audit?: Omit<AuditConfig, 'headers'> & { headers?: Record<string, string> };
}

/**
 * `store.recordings:`: an S3-compatible bucket for the bytes of recording files (the PostgreSQL
 * store keeps their index). See ./recordings-bucket.ts.
 *
 * @see https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
 */
export interface RecordingBucketConfig {
  bucket: string;
  /** An S3-compatible service's URL; absent: AWS S3 of `region`. */
  endpoint?: string;
  /** Absent: AWS_REGION (or AWS_DEFAULT_REGION) of the gateway's environment, else us-east-1. */
  region?: string;
  /** Put before `<session>/<file>` in every key ('' or ending in /). */
  prefix: string;
  forcePathStyle: boolean;
  /** Secret references, resolved at start (and again every few minutes); absent: the SDK's default credential chain. */
  credentials?: { accessKeyId: SecretRef; secretAccessKey: SecretRef };
}

/** `recording:` in the gateway file. */
export interface GatewayRecordingConfig {
  /** Record every session (default true). */
  enabled: boolean;
  /** New sessions are refused while the data directory's disk has less free space than this (bytes; default 1 GiB). */
  minFreeBytes: number;
  /** A signed checkpoint at least this often while a session runs (default 10). */
  checkpointSeconds: number;
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

/** Algorithms accepted by default. */
export const DEFAULT_ALGORITHMS: readonly string[] = ['RS256', 'PS256', 'ES256', 'EdDSA'];

/** Scopes `hoop login` asks for unless the configuration says otherwise. @see https://openid.net/specs/openid-connect-core-1_0.html#ScopeClaims */
export const DEFAULT_LOGIN_SCOPES: readonly string[] = ['openid', 'profile', 'email', 'offline_access'];

/** Asymmetric JWS algorithms an issuer may be configured with (no `none`, no HMAC). @see https://www.rfc-editor.org/rfc/rfc7518#section-3.1 */
export const ALLOWED_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;

const HINT = 'fix the file and start the gateway again';
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

/** An http(s) URL without credentials, query or fragment; plain http only to a loopback address. */
function endpointProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'must be an absolute URL such as https://s3.example.com';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'must be an https URL';
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname.replace(/^\[|\]$/g, ''))) return 'must use https (plain http is only allowed to a loopback address)';
  if (url.username || url.password) return 'must not contain credentials (use accessKeyId and secretAccessKey)';
  if (url.search || url.hash) return 'must not have a query or fragment';
  return undefined;
}

const recordingBucketSchema = z
  .strictObject({
    bucket: z.string({ error: 'must be a bucket name' }).refine((v) => /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(v) && !v.includes('..') && !/^\d+\.\d+\.\d+\.\d+$/.test(v), {
      error: 'must be a bucket name: 3 to 63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit',
    }),
    endpoint: z
      .string({ error: 'must be an https URL such as https://s3.example.com' })
      .check((ctx) => {
        const problem = endpointProblem(ctx.value);
        if (problem) ctx.issues.push({ code: 'custom', input: ctx.value, message: problem });
      })
      .optional(),
    region: z
      .string({ error: 'must be a region name such as us-east-1' })
      .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, { error: 'must be a region name such as us-east-1' })
      .optional(),
    prefix: z
      .string({ error: 'must be a key prefix such as recordings/' })
      .refine(
        (v) =>
          v === '' ||
          (/^[A-Za-z0-9!_.*'()/-]+\/$/.test(v) &&
            !v.startsWith('/') &&
            !v
              .split('/')
              .slice(0, -1)
              .some((seg) => seg === '' || seg === '.' || seg === '..')),
        {
          error: "must be a key prefix ending in /, such as recordings/ (letters, digits and !_.*'()- in segments; no leading /, no empty, . or .. segments)",
        },
      )
      .default(''),
    forcePathStyle: z.boolean({ error: 'must be true or false' }).default(false),
    accessKeyId: secretSchema.optional(),
    secretAccessKey: secretSchema.optional(),
  })
  .refine((r) => (r.accessKeyId === undefined) === (r.secretAccessKey === undefined), {
    error: "needs both accessKeyId and secretAccessKey, or neither (then the SDK's default credential chain)",
  });

const fileSchema = z.strictObject(
  {
    listen: listenSchema.default({ host: '127.0.0.1', port: 8443 }),
    tls: z.strictObject({ cert: nonEmpty('a path to a PEM certificate'), key: nonEmpty('a path to a PEM private key') }).optional(),
    issuers: z.array(issuerSchema, { error: 'must be a list of issuers' }).min(1, { error: 'must list at least one issuer' }),
    connections: z.array(connectionSchema, { error: 'must be a list of connections' }).default([]),
    log: z.strictObject({ level: z.enum(['debug', 'info', 'warn', 'error'], { error: 'must be one of debug, info, warn, error' }).default('info') }).default({ level: 'info' }),
    dataDir: nonEmpty('a directory path').optional(),
    store: z
      .discriminatedUnion(
        'kind',
        [
          z.strictObject({
            kind: z.literal('file'),
            recordings: z.undefined({ error: 'a bucket for recordings needs the PostgreSQL store (kind: postgres), which keeps their index' }).optional(),
          }),
          z
            .strictObject({
              kind: z.literal('postgres'),
              url: secretSchema,
              heartbeatSeconds: z.number({ error: 'must be a number of seconds' }).min(0.1).max(60).default(2),
              deadAfterSeconds: z.number({ error: 'must be a number of seconds' }).min(1).max(3600).default(15),
              recordings: recordingBucketSchema.optional(),
            })
            .refine((s) => s.deadAfterSeconds >= 3 * s.heartbeatSeconds, {
              error: 'deadAfterSeconds must be at least 3 heartbeats, or a slow heartbeat takes over a live replica',
              path: ['deadAfterSeconds'],
            }),
        ],
        { error: 'must have a kind: file or postgres' },
      )
      .default({ kind: 'file' }),
    login: loginSchema.optional(),
    policy: policySourceSchema.optional(),
    postgres: postgresLimitsSchema.default({}),
    audit: z
      .strictObject({
        file: nonEmpty('a file path').optional(),
        url: z
          .string({ error: 'must be an https URL (http only to a loopback address)' })
          .refine(
            (v) => {
              try {
                const u = new URL(v);
                return u.protocol === 'https:' || (u.protocol === 'http:' && isLoopbackHost(u.hostname.replace(/^\[|\]$/g, '')));
              } catch {
                return false;
              }
            },
            { error: 'must be an https URL (http only to a loopback address)' },
          )
          .optional(),
        headers: z.record(z.string(), z.string({ error: 'must be a text or a secret reference like ${env:SIEM_TOKEN}' }), { error: 'must map header names to values' }).optional(),
        ca: nonEmpty('a path to a PEM certificate').optional(),
        batchSize: z
          .number({ error: 'must be a number of events' })
          .int({ error: 'must be a whole number' })
          .min(1, { error: 'must be from 1 to 10000' })
          .max(10_000, { error: 'must be from 1 to 10000' })
          .default(500),
        flushSeconds: z.number({ error: 'must be a number of seconds' }).min(0.1, { error: 'must be from 0.1 to 60' }).max(60, { error: 'must be from 0.1 to 60' }).default(1),
        maxQueue: z
          .number({ error: 'must be a number of events' })
          .int({ error: 'must be a whole number' })
          .min(100, { error: 'must be at least 100' })
          .max(10_000_000, { error: 'must be at most 10000000' })
          .default(100_000),
      })
      .refine((a) => a.file !== undefined || a.url !== undefined, { error: 'needs a file or a url (or both)' })
      .optional(),
    recording: z
      .strictObject({
        enabled: z.boolean({ error: 'must be true or false' }).default(true),
        minFreeBytes: bytesSchema(0, 1024 ** 4).default(1024 ** 3),
        checkpointSeconds: z
          .number({ error: 'must be a number of seconds' })
          .int({ error: 'must be a whole number of seconds' })
          .min(1, { error: 'must be from 1 to 60' })
          .max(60, { error: 'must be from 1 to 60' })
          .default(10),
      })
      .default({ enabled: true, minFreeBytes: 1024 ** 3, checkpointSeconds: 10 }),
  },
  { error: (iss) => (iss.code === 'invalid_type' ? 'the file must be a mapping (key: value) at the top level' : undefined) },
);

function recordingBucket(r: z.infer<typeof recordingBucketSchema>, baseDir: string): RecordingBucketConfig {
  return {
    bucket: r.bucket,
    ...(r.endpoint !== undefined ? { endpoint: r.endpoint } : {}),
    ...(r.region !== undefined ? { region: r.region } : {}),
    prefix: r.prefix,
    forcePathStyle: r.forcePathStyle,
    ...(r.accessKeyId !== undefined && r.secretAccessKey !== undefined
      ? { credentials: { accessKeyId: parseSecretRef(r.accessKeyId, baseDir)!, secretAccessKey: parseSecretRef(r.secretAccessKey, baseDir)! } }
      : {}),
  };
}

function configError(lines: string[]): HoopError {
  const n = lines.length;
  return new HoopError(ErrorCode.CONFIG_INVALID, `invalid gateway configuration (${n} problem${n === 1 ? '' : 's'}):\n${lines.map((l) => `  ${l}`).join('\n')}`, { hint: HINT });
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
  wantFile(['audit', 'ca'], asRecord(root?.audit)?.ca, 'certificate');

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
    for (const [key, text] of connectionSecrets(conn)) {
      const ref = parseSecretRef(text, baseDir);
      if (!ref) continue;
      pending.push(
        unresolvedSecret(ref, env).then((message) => {
          if (message) problems.push({ path: ['connections', i, key], message });
        }),
      );
    }
  });

  const rawIssuers = Array.isArray(root?.issuers) ? root.issuers : [];
  const seenIssuers = new Set<string>();
  const storeUrl = asRecord(root?.store)?.url;
  const storeRef = typeof storeUrl === 'string' ? parseSecretRef(storeUrl, baseDir) : undefined;
  if (storeRef) pending.push(unresolvedSecret(storeRef, env).then((message) => void (message && problems.push({ path: ['store', 'url'], message }))));
  const bucketConfig = asRecord(asRecord(root?.store)?.recordings);
  for (const key of ['accessKeyId', 'secretAccessKey'] as const) {
    const text = bucketConfig?.[key];
    const ref = typeof text === 'string' ? parseSecretRef(text, baseDir) : undefined;
    if (ref) pending.push(unresolvedSecret(ref, env).then((message) => void (message && problems.push({ path: ['store', 'recordings', key], message }))));
  }

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
      problems.push({
        path: ['issuers', i, 'rules'],
        at: ['issuers', i, 'kind'],
        message: 'is missing: a workload issuer needs rules that map its claims to identities (rules: [{ claims: {...}, groups: [...] }])',
      });
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
    throw configError(located.map(({ p, pos }) => `${abs}:${pos.line}:${pos.col}: ${dotted(p.path)}: ${p.message}`));
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
    store:
      data.store.kind === 'postgres'
        ? {
            kind: 'postgres',
            url: parseSecretRef(data.store.url, baseDir)!,
            heartbeatSeconds: data.store.heartbeatSeconds,
            deadAfterSeconds: data.store.deadAfterSeconds,
            ...(data.store.recordings ? { recordings: recordingBucket(data.store.recordings, baseDir) } : {}),
          }
        : { kind: 'file' },
    recording: data.recording,
    ...(data.audit
      ? {
          audit: {
            ...(data.audit.file !== undefined ? { file: resolve(baseDir, data.audit.file) } : {}),
            ...(data.audit.url !== undefined ? { url: data.audit.url } : {}),
            ...(data.audit.headers ? { headers: data.audit.headers } : {}),
            ...(files.get('audit.ca') ? { ca: files.get('audit.ca')!.data } : {}),
            batchSize: data.audit.batchSize,
            flushMs: Math.round(data.audit.flushSeconds * 1000),
            maxQueue: data.audit.maxQueue,
          },
        }
      : {}),
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
