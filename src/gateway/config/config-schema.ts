/**
 * The format of the gateway's configuration file, as zod schemas: each setting's type, range and
 * default, and the message a wrong value gets. The checks across settings, the files the settings
 * name and the configuration built from a valid file are in ./config.ts, which documents the
 * format with an example.
 *
 * @see https://zod.dev/api
 */
import { isIP } from 'node:net';
import * as z from 'zod';
import { connectionSchema, wholeNumber } from '../../config/connection.js';
import { parseSecretPattern, secretSchema } from '../../config/secrets.js';
import { nonEmpty, stringList } from '../../config/yaml.js';
import { isLoopbackHost } from '../../loopback.js';
import { parseBalancer } from '../front/balancers.js';
import { parseSubjectTemplate } from './workload-rules.js';
import { STATEMENT_VOLUMES } from '../audit/audit.js';

/** Algorithms accepted by default. */
export const DEFAULT_ALGORITHMS: readonly string[] = ['RS256', 'PS256', 'ES256', 'EdDSA'];

/** Scopes `hoop login` asks for unless the configuration says otherwise. @see https://openid.net/specs/openid-connect-core-1_0.html#ScopeClaims */
export const DEFAULT_LOGIN_SCOPES: readonly string[] = ['openid', 'profile', 'email', 'offline_access'];

/** Asymmetric JWS algorithms an issuer may be configured with (no `none`, no HMAC). @see https://www.rfc-editor.org/rfc/rfc7518#section-3.1 */
export const ALLOWED_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;

/** Parses `host:port` or `[v6]:port`; undefined when malformed. */
export function parseListen(text: string): { host: string; port: number } | undefined {
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
  accessTokenTypes: z
    .array(z.enum(['at+jwt', 'JWT', 'none'], { error: 'must be at+jwt (RFC 9068), JWT (Keycloak, Microsoft Entra ID) or none (no typ: Okta)' }), {
      error: 'must be a list: [at+jwt], or [at+jwt, JWT]',
    })
    .min(1, { error: 'must list at least one' })
    .default(['at+jwt']),
  rules: z.array(ruleSchema, { error: 'must be a list of rules' }).optional(),
});

const loginSchema = z.strictObject({
  issuer: nonEmpty('the URL of a configured issuer of kind user'),
  clientId: nonEmpty('the client id registered for hoop at the identity provider'),
  clientSecret: nonEmpty("the client secret a provider gives a desktop app's client (Google), which is not kept secret").optional(),
  redirectPort: z
    .number({ error: 'must be a port number (1024 to 65535)' })
    .int({ error: 'must be a port number (1024 to 65535)' })
    .min(1024, { error: 'must be a port number (1024 to 65535)' })
    .max(65535, { error: 'must be a port number (1024 to 65535)' })
    .optional(),
  authorizationParams: z
    .record(z.string(), z.string({ error: 'must be a text' }), { error: 'must be a mapping of parameter names to values' })
    .check((ctx) => {
      const own = Object.keys(ctx.value).filter((k) => ['state', 'nonce', 'code_challenge', 'code_challenge_method', 'redirect_uri', 'scope', 'client_id', 'response_type'].includes(k));
      if (own.length > 0) ctx.issues.push({ code: 'custom', input: ctx.value, message: `${own.join(', ')} ${own.length === 1 ? 'is' : 'are'} hoop's own to set` });
    })
    .optional(),
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
export function isGitUrl(text: string): boolean {
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
  allowedCommands: z
    .array(nonEmpty('a command pattern'), { error: 'must be a list of the MCP server commands the bundle may make the gateway run, like ["npx -y @modelcontextprotocol/server-filesystem /srv/**"]' })
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

export const recordingBucketSchema = z
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

const proxyProtocolSchema = z.strictObject({
  from: z
    .array(
      z.string({ error: 'must be an address or CIDR block, e.g. 10.0.0.5, 10.1.0.0/16 or "fd00::/8"' }).refine((v) => parseBalancer(v) !== undefined, {
        error: 'must be an IPv4 or IPv6 address or CIDR block, e.g. 10.0.0.5, 10.1.0.0/16 or "fd00::/8"',
      }),
      { error: 'must list the load balancers that send the header, e.g. [10.0.0.5, 10.1.0.0/16]' },
    )
    .min(1, { error: 'must list at least one load balancer (leave proxyProtocol out when none sends the header)' }),
});

export const fileSchema = z.strictObject(
  {
    listen: listenSchema.default({ host: '127.0.0.1', port: 8443 }),
    mysqlListen: listenSchema.optional(),
    tls: z.strictObject({ cert: nonEmpty('a path to a PEM certificate'), key: nonEmpty('a path to a PEM private key') }).optional(),
    issuers: z.array(issuerSchema, { error: 'must be a list of issuers' }).min(1, { error: 'must list at least one issuer' }),
    connections: z.array(connectionSchema, { error: 'must be a list of connections' }).default([]),
    log: z.strictObject({ level: z.enum(['debug', 'info', 'warn', 'error'], { error: 'must be one of debug, info, warn, error' }).default('info') }).default({ level: 'info' }),
    dataDir: nonEmpty('a directory path').optional(),
    workers: z.union([z.literal('auto'), z.number().int().min(1).max(256)], { error: 'must be auto or a number of processes from 1 to 256' }).default('auto'),
    connectionsPerAddress: wholeNumber('connections', 1, 100_000).default(256),
    proxyProtocol: proxyProtocolSchema.optional(),
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
        statements: z.enum(STATEMENT_VOLUMES, { error: `must be one of ${STATEMENT_VOLUMES.join(', ')}` }).default('refused'),
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
          .default(1),
      })
      .default({ enabled: true, minFreeBytes: 1024 ** 3, checkpointSeconds: 1 }),
  },
  { error: (iss) => (iss.code === 'invalid_type' ? 'the file must be a mapping (key: value) at the top level' : undefined) },
);
