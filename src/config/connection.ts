/**
 * The connection entry shared by the gateway's configuration file and a policy bundle (which
 * leaves out `allow`): an upstream PostgreSQL server (the role the gateway signs in as, its
 * password as a secret reference, TLS as libpq's `sslmode`) or an SSH server (the user, a private
 * key or password as a secret reference, and the server's host keys, pinned).
 *
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNECT-SSLMODE
 * @see https://man.openbsd.org/sshd.8#SSH_KNOWN_HOSTS_FILE_FORMAT
 */
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import * as z from 'zod';
import { isLoopbackHost } from '../loopback.js';
import { parseSecretRef, secretSchema, type SecretRef } from './secrets.js';
import { asRecord, nonEmpty, stringList, type Path, type Problem } from './yaml.js';

/** Who may use a connection. `*` in `subjects` admits any authenticated identity; all empty admits nobody. */
export interface ConnectionAllow {
  subjects: string[];
  emails: string[];
  groups: string[];
  /** Sessions one identity may have open at once on the gateway (default 32; a policy's access rules say it instead). */
  maxSessions?: number;
}

/**
 * One upstream PostgreSQL server the gateway can open sessions to.
 *
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS
 */
export interface PostgresConnection {
  name: string;
  type: 'postgres';
  host: string;
  port: number;
  database: string;
  user: string;
  password: SecretRef;
  /**
   * More database roles the gateway may sign in as on this server, each with its own credential
   * (`roles: [{ user: app_ro, password: ... }]`): an access rule's `roles` names which a person may
   * pick with the startup's `user` (src/postgres/gateway/database-access.ts). Absent: `user` alone.
   */
  roles?: Array<{ user: string; password: SecretRef }>;
  /** More databases of this server a session may name (an access rule's `databases` says whose); absent: `database` alone. */
  databases?: string[];
  /** `mode` follows libpq's `sslmode` (default `prefer`, as in libpq). */
  tls: { mode: 'disable' | 'prefer' | 'require' | 'verify-full'; ca?: Buffer; caFile?: string; serverName?: string };
  /** Whether a cleartext password may be sent when the upstream link is not encrypted. */
  allowCleartextWithoutTls: boolean;
  /**
   * Server connections kept warm between sessions (src/postgres/gateway/upstream-pool.ts): at most
   * `idle` per person and startup settings, each kept `idleSeconds` unused, reset with DISCARD ALL
   * before the next session. Absent: each session signs in anew.
   */
  pool?: { idle: number; idleSeconds: number };
  /** Sessions this gateway holds on it at once, whoever's; absent: no ceiling but each identity's. */
  maxSessions?: number;
  allow: ConnectionAllow;
  /** What the gateway lacks to open it (a secret that does not resolve, an unreadable CA file), as `file:line:col: field: what`; absent when it can. */
  unavailable?: string[];
}

/**
 * One upstream SSH server: the gateway signs in as `user` with a private key (OpenSSH or PEM
 * format, optionally with a passphrase) or a password, and only to a server showing one of
 * `hostKeys` (their SHA-256 fingerprints, as `ssh-keygen -lf` prints them).
 *
 * @see https://www.rfc-editor.org/rfc/rfc4252 (authentication)
 * @see https://man.openbsd.org/ssh-keygen.1 (fingerprints)
 */
export interface SshConnection {
  name: string;
  type: 'ssh';
  host: string;
  port: number;
  user: string;
  privateKey?: SecretRef;
  passphrase?: SecretRef;
  password?: SecretRef;
  /** `SHA256:…` fingerprints of the keys the server may show. */
  hostKeys: string[];
  /** The user's login shell, which reads each command line; learned from the target at sign-in when not given. */
  shell?: string;
  allow: ConnectionAllow;
  /** As for {@link PostgresConnection.unavailable}. */
  unavailable?: string[];
}

/**
 * One upstream MySQL or MariaDB server: the gateway signs in as `user` with `password`
 * (`mysql_native_password` or `caching_sha2_password`, whichever the server asks for), TLS as
 * `tls.mode` says (as the mysql client's `--ssl-mode`: `prefer` by default; `caching_sha2_password`
 * sends a whole password only over TLS).
 *
 * @see https://dev.mysql.com/doc/refman/8.0/en/connection-options.html#option_general_ssl-mode
 */
export interface MysqlConnection {
  name: string;
  type: 'mysql';
  host: string;
  port: number;
  database: string;
  user: string;
  password: SecretRef;
  tls: { mode: 'disable' | 'prefer' | 'require' | 'verify-full'; ca?: Buffer; caFile?: string; serverName?: string };
  /** As for {@link PostgresConnection.maxSessions}. */
  maxSessions?: number;
  allow: ConnectionAllow;
  /** As for {@link PostgresConnection.unavailable}. */
  unavailable?: string[];
}

/** A value an MCP server is given (an environment variable, an HTTP header): as written, or a secret the gateway resolves. */
export type McpValue = { text: string } | { secret: SecretRef };

/**
 * One upstream MCP server: a program the gateway runs for each session and speaks to on its
 * stdio (`command`, with `env`: the server's only environment besides PATH, HOME and the locale,
 * its secrets resolved by the gateway), or a Streamable HTTP endpoint (`url`, with `headers` the
 * gateway adds to every request, its credential among them). Exactly one of the two.
 *
 * @see https://modelcontextprotocol.io/specification/2025-06-18/basic/transports
 */
export interface McpConnection {
  name: string;
  type: 'mcp';
  command?: string[];
  env?: Record<string, McpValue>;
  /** The working directory of `command` (default: the gateway's data directory). */
  cwd?: string;
  url?: string;
  headers?: Record<string, McpValue>;
  /** As for {@link PostgresConnection.maxSessions}. */
  maxSessions?: number;
  allow: ConnectionAllow;
  /** As for {@link PostgresConnection.unavailable}. */
  unavailable?: string[];
}

/** Where an HTTP connection's credential goes, its secret a reference the gateway resolves. */
export type HttpCredentialRef =
  | { kind: 'bearer'; token: SecretRef }
  | { kind: 'basic'; user: string; password: SecretRef }
  | { kind: 'header'; name: string; value: SecretRef }
  | { kind: 'query'; name: string; value: SecretRef };

/**
 * One upstream HTTP API: requests go to `url` (its origin, and its path as the base every request's
 * path goes under) with the credential only the gateway holds; https, verified against `tls.ca` (or
 * the system's CAs), or plain http to a loopback host when `plainHttp` says so.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9110
 */
export interface HttpConnection {
  name: string;
  type: 'http';
  /** The base URL, without a trailing `/`. */
  url: string;
  tls: { ca?: Buffer; caFile?: string; serverName?: string };
  credential?: HttpCredentialRef;
  /** As for {@link PostgresConnection.maxSessions}. */
  maxSessions?: number;
  allow: ConnectionAllow;
  /** As for {@link PostgresConnection.unavailable}. */
  unavailable?: string[];
}

/** A connection of any type. */
export type ConnectionConfig = PostgresConnection | SshConnection | MysqlConnection | McpConnection | HttpConnection;

/** A connection that speaks SQL. */
export type SqlConnection = PostgresConnection | MysqlConnection;

/** Whether a value is written as a secret reference (`${env:…}` or `${file:…}`), whole. */
function isSecretRef(text: string): boolean {
  return /^\$\{(env|file):[^}]*\}$/.test(text.trim());
}

export const CONNECTION_NAME = /^[a-z0-9][a-z0-9-_.]{0,62}$/;

/** A whole number of `what` from `min` to `max`, every check saying the same. */
export const wholeNumber = (what: string, min: number, max: number) => {
  const error = `must be a number of ${what} from ${min} to ${max}`;
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error });
};

export const port = (min: number) =>
  z
    .number({ error: 'must be a port number' })
    .int({ error: 'must be a whole number' })
    .min(min, { error: `must be from ${min} to 65535` })
    .max(65535, { error: `must be from ${min} to 65535` });

const connectionName = z.string({ error: 'must be a name' }).regex(CONNECTION_NAME, {
  error: 'must be 1-63 characters of a-z, 0-9, "-", "_", "." starting with a letter or digit',
});
const hostName = nonEmpty('a host name or address').refine((v) => !/\s/.test(v), { error: 'must not contain spaces' });
const allowSchema = z
  .strictObject({
    subjects: stringList,
    emails: stringList,
    groups: stringList,
    maxSessions: z.number({ error: 'must be a whole number of sessions from 1 to 100000' }).int().min(1).max(100_000).optional(),
  })
  .default({ subjects: [], emails: [], groups: [] });

/** The `tls` of a SQL connection entry: a mode as libpq's `sslmode` and the mysql client's `--ssl-mode` name it. */
const sqlTlsSchema = z
  .strictObject({
    mode: z.enum(['disable', 'prefer', 'require', 'verify-full'], { error: 'must be one of disable, prefer, require, verify-full' }).default('prefer'),
    ca: nonEmpty('a path to a PEM file').optional(),
    serverName: nonEmpty('a host name').optional(),
  })
  .default({ mode: 'prefer' });

/**
 * A PostgreSQL connection entry.
 *
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS
 */
export const postgresConnectionSchema = z.strictObject({
  name: connectionName,
  type: z.literal('postgres'),
  host: hostName,
  port: port(1).default(5432),
  database: nonEmpty('a database name'),
  user: nonEmpty('a user name'),
  password: secretSchema,
  roles: z.array(z.strictObject({ user: nonEmpty('a database role'), password: secretSchema }), { error: 'must be a list of { user, password }' }).optional(),
  databases: z.array(nonEmpty('a database name'), { error: 'must be a list of database names' }).optional(),
  tls: sqlTlsSchema,
  allowCleartextWithoutTls: z.boolean({ error: 'must be true or false' }).default(false),
  pool: z
    .strictObject({
      idle: z.number({ error: 'must be a number of connections' }).int({ error: 'must be a whole number' }).min(1, { error: 'must be at least 1' }).max(64, { error: 'must be at most 64' }),
      idleSeconds: z
        .number({ error: 'must be a number of seconds' })
        .int({ error: 'must be a whole number' })
        .min(1, { error: 'must be at least 1' })
        .max(3600, { error: 'must be at most 3600' })
        .default(60),
    })
    .optional(),
  /** Sessions this gateway holds on the connection at once, whoever's: the server's other slots stay for others. */
  maxSessions: wholeNumber('sessions', 1, 100_000).optional(),
  allow: allowSchema,
});

/**
 * A MySQL or MariaDB connection entry.
 *
 * @see https://dev.mysql.com/doc/refman/8.0/en/connection-options.html
 */
export const mysqlConnectionSchema = z.strictObject({
  name: connectionName,
  type: z.literal('mysql'),
  host: hostName,
  port: port(1).default(3306),
  database: nonEmpty('a database name'),
  user: nonEmpty('a user name'),
  password: secretSchema,
  tls: sqlTlsSchema,
  maxSessions: wholeNumber('sessions', 1, 100_000).optional(),
  allow: allowSchema,
});

/**
 * An SSH connection entry: exactly one of `privateKey` and `password`, and at least one pinned
 * host key (a known_hosts line, a `type base64` public key, or a `SHA256:` fingerprint).
 *
 * @see https://man.openbsd.org/sshd.8#SSH_KNOWN_HOSTS_FILE_FORMAT
 */
const sshFields = {
  name: connectionName,
  type: z.literal('ssh'),
  host: hostName,
  port: port(1).default(22),
  user: nonEmpty('a user name'),
  privateKey: secretSchema.optional(),
  passphrase: secretSchema.optional(),
  password: secretSchema.optional(),
  hostKeys: z
    .array(
      z.string({ error: 'must be a known_hosts line, a public key or a SHA256: fingerprint' }).check((ctx) => {
        if (hostKeyFingerprint(ctx.value) === undefined) {
          ctx.issues.push({
            code: 'custom',
            input: ctx.value,
            message: 'must be a known_hosts line ("host ssh-ed25519 AAAA…"), a public key ("ssh-ed25519 AAAA…") or a fingerprint ("SHA256:…", as ssh-keygen -lf prints it)',
          });
        }
      }),
      { error: 'must be a list of host keys' },
    )
    .min(1, { error: 'must pin at least one host key of the server (ssh-keyscan -p PORT HOST prints them)' }),
  shell: z
    .string({ error: 'must be the login shell of the user, as a name or a path (bash, /bin/dash)' })
    .regex(/^[A-Za-z0-9_./+-]{1,255}$/, { error: 'must be the login shell of the user, as a name or a path (bash, /bin/dash)' })
    .optional(),
};
/** Exactly one credential; a passphrase only with a key. */
const sshCheck = (ctx: { value: { privateKey?: string | undefined; password?: string | undefined; passphrase?: string | undefined }; issues: Array<Record<string, unknown>> }): void => {
  const { privateKey, password, passphrase } = ctx.value;
  if ((privateKey === undefined) === (password === undefined)) {
    ctx.issues.push({ code: 'custom', input: ctx.value, path: ['privateKey'], message: 'must name the credential: a privateKey or a password (one of them) as a secret reference' });
  }
  if (passphrase !== undefined && privateKey === undefined) {
    ctx.issues.push({ code: 'custom', input: ctx.value, path: ['passphrase'], message: 'is the passphrase of a privateKey: add one, or remove it' });
  }
};
/** An environment variable's or header's value: text, or a whole secret reference (`${env:NAME}`, `${file:path}`). */
const mcpValues = (what: string, key: RegExp, keyError: string) =>
  z.record(z.string().regex(key, { error: keyError }), z.string({ error: `must be ${what}: text or a secret reference` }), { error: `must be a mapping of ${what}s` });

/** The fields of an MCP connection entry; exactly one of `command` and `url`. */
const mcpFields = {
  name: connectionName,
  type: z.literal('mcp'),
  command: z.array(nonEmpty('a word of the command'), { error: 'must be the program and its arguments, as a list' }).min(1, { error: 'must name the program' }).optional(),
  env: mcpValues('an environment value', /^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name').optional(),
  cwd: nonEmpty('a directory').optional(),
  url: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL of a Streamable HTTP MCP endpoint' }).optional(),
  headers: mcpValues('a header value', /^[A-Za-z0-9-]+$/, 'must be an HTTP header name').optional(),
  maxSessions: wholeNumber('sessions', 1, 100_000).optional(),
};
const mcpCheck = (ctx: { value: { command?: string[] | undefined; url?: string | undefined; env?: unknown; cwd?: unknown; headers?: unknown }; issues: Array<Record<string, unknown>> }): void => {
  const { command, url } = ctx.value;
  if ((command === undefined) === (url === undefined))
    ctx.issues.push({ code: 'custom', input: ctx.value, path: ['command'], message: 'must name the server: a command the gateway runs (stdio) or a url (Streamable HTTP), one of them' });
  if (command === undefined && (ctx.value.env !== undefined || ctx.value.cwd !== undefined))
    ctx.issues.push({ code: 'custom', input: ctx.value, path: [ctx.value.env !== undefined ? 'env' : 'cwd'], message: 'is for a server the gateway runs (command)' });
  if (url === undefined && ctx.value.headers !== undefined) ctx.issues.push({ code: 'custom', input: ctx.value, path: ['headers'], message: 'is for a Streamable HTTP server (url)' });
};
/** An MCP connection entry of the gateway configuration. */
export const mcpConnectionSchema = z.strictObject({ ...mcpFields, allow: allowSchema }).check(mcpCheck);
/** A policy bundle's MCP connection; its `command` must be one the gateway's `policy.allowedCommands` admits (src/policy/load.ts). */
const policyMcpConnectionSchema = z.strictObject(mcpFields).check(mcpCheck);

/** A header name (RFC 9110 §5.1, a token). */
const headerName = z.string({ error: 'must be a header name' }).regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, { error: 'must be a header name (letters, digits and -)' });
const CREDENTIAL_FORMS = 'must be one of { bearer: SECRET }, { basic: { user, password: SECRET } }, { header: { name, value: SECRET } }, { query: { name, value: SECRET } }';

/** The fields of an HTTP connection entry. */
const httpFields = {
  name: connectionName,
  type: z.literal('http'),
  url: z.url({ protocol: /^https?$/, error: "must be the API's base URL, https:// (or http:// to a loopback host, with plainHttp: true)" }).check((ctx) => {
    const u = new URL(ctx.value);
    if (u.username || u.password || u.search || u.hash || ctx.value.includes('#'))
      ctx.issues.push({ code: 'custom', input: ctx.value, message: 'must be a base URL alone: no user, password, query or fragment (the credential goes in credential:)' });
  }),
  plainHttp: z.boolean({ error: 'must be true or false' }).default(false),
  tls: z.strictObject({ ca: nonEmpty('a path to a PEM file').optional(), serverName: nonEmpty('a host name').optional() }).default({}),
  credential: z
    .union(
      [
        z.strictObject({ bearer: secretSchema }),
        z.strictObject({ basic: z.strictObject({ user: nonEmpty('a user name'), password: secretSchema }) }),
        z.strictObject({ header: z.strictObject({ name: headerName, value: secretSchema }) }),
        z.strictObject({ query: z.strictObject({ name: nonEmpty('a parameter name'), value: secretSchema }) }),
      ],
      { error: CREDENTIAL_FORMS },
    )
    .optional(),
  maxSessions: wholeNumber('sessions', 1, 100_000).optional(),
};
/** http:// only to a loopback host, and only when the entry says so; https never with plainHttp. */
const httpCheck = (ctx: { value: { url: string; plainHttp: boolean; tls: { ca?: string | undefined; serverName?: string | undefined } }; issues: Array<Record<string, unknown>> }): void => {
  const u = new URL(ctx.value.url);
  const plain = u.protocol === 'http:';
  if (plain && !ctx.value.plainHttp)
    ctx.issues.push({
      code: 'custom',
      input: ctx.value,
      path: ['url'],
      message: 'is plain http: the credential and every answer would cross unencrypted; use https, or plainHttp: true for a server on this host',
    });
  else if (plain && !isLoopbackHost(u.hostname.replace(/^\[|\]$/g, '')))
    ctx.issues.push({
      code: 'custom',
      input: ctx.value,
      path: ['url'],
      message: 'is plain http to a host other than this one: only a loopback host (127.0.0.1, ::1, localhost) may be reached without TLS',
    });
  else if (!plain && ctx.value.plainHttp) ctx.issues.push({ code: 'custom', input: ctx.value, path: ['plainHttp'], message: 'is for an http:// URL; remove it' });
  if (plain && (ctx.value.tls.ca !== undefined || ctx.value.tls.serverName !== undefined))
    ctx.issues.push({ code: 'custom', input: ctx.value, path: ['tls'], message: 'has no effect on a plain http URL; remove it' });
};
/** An HTTP connection entry of the gateway configuration. */
export const httpConnectionSchema = z.strictObject({ ...httpFields, allow: allowSchema }).check(httpCheck);
const policyHttpConnectionSchema = z.strictObject(httpFields).check(httpCheck);

/** An SSH connection entry of the gateway configuration. */
export const sshConnectionSchema = z.strictObject({ ...sshFields, allow: allowSchema }).check(sshCheck);
const policySshConnectionSchema = z.strictObject(sshFields).check(sshCheck);

/**
 * The schema of one connection entry (shared with the policy bundle, which omits `allow`).
 *
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS
 */
export const connectionSchema = z.discriminatedUnion('type', [postgresConnectionSchema, sshConnectionSchema, mysqlConnectionSchema, mcpConnectionSchema, httpConnectionSchema], {
  error: 'must have a type: postgres, mysql, ssh, mcp or http',
});

/** The schema of a policy bundle's connection entry: as {@link connectionSchema}, without `allow`. */
export const policyConnectionSchema = z.discriminatedUnion(
  'type',
  [postgresConnectionSchema.omit({ allow: true }), policySshConnectionSchema, mysqlConnectionSchema.omit({ allow: true }), policyMcpConnectionSchema, policyHttpConnectionSchema],
  { error: 'must have a type: postgres, mysql, ssh, mcp or http' },
);

/**
 * The SHA-256 fingerprint (`SHA256:` and unpadded base64, as `ssh-keygen -l` prints it) of a
 * pinned host key written as a fingerprint, a public key (`type base64 [comment]`) or a
 * known_hosts line (`hosts type base64 [comment]`, optionally behind `@cert-authority`, which is
 * refused: only plain keys are pinned); undefined when it is none of these.
 *
 * @see https://man.openbsd.org/sshd.8#SSH_KNOWN_HOSTS_FILE_FORMAT
 */
export function hostKeyFingerprint(text: string): string | undefined {
  const t = text.trim();
  const fp = /^SHA256:([A-Za-z0-9+/]{43})=?$/.exec(t);
  if (fp) return `SHA256:${fp[1]}`;
  const words = t.split(/\s+/);
  if (words[0]?.startsWith('@')) return undefined;
  for (const at of [0, 1]) {
    const type = words[at];
    const blob = words[at + 1];
    if (!type || !blob || !/^(ssh-|ecdsa-sha2-|sk-)/.test(type) || !/^[A-Za-z0-9+/]+={0,2}$/.test(blob)) continue;
    const key = Buffer.from(blob, 'base64');
    // The blob starts with its own type name (RFC 4253 section 6.6).
    if (key.length < 4 || key.readUInt32BE(0) + 4 > key.length || key.subarray(4, 4 + key.readUInt32BE(0)).toString('latin1') !== type) continue;
    return sshFingerprint(key);
  }
  return undefined;
}

/** `SHA256:…` of a public key blob, as `ssh-keygen -l` prints it. @see https://man.openbsd.org/ssh-keygen.1 */
export function sshFingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/**
 * A connection entry as {@link connectionSchema} parses it; a policy bundle's entries have no `allow`.
 *
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS
 */
export type ConnectionEntry =
  | (Omit<z.output<typeof postgresConnectionSchema>, 'allow'> & { allow?: ConnectionAllow })
  | (Omit<z.output<typeof sshConnectionSchema>, 'allow'> & { allow?: ConnectionAllow })
  | (Omit<z.output<typeof mysqlConnectionSchema>, 'allow'> & { allow?: ConnectionAllow })
  | (Omit<z.output<typeof mcpConnectionSchema>, 'allow'> & { allow?: ConnectionAllow })
  | (Omit<z.output<typeof httpConnectionSchema>, 'allow'> & { allow?: ConnectionAllow });

/**
 * The {@link ConnectionConfig} of a validated entry, for the gateway configuration and a policy
 * bundle alike: secret references parsed (a relative `${file:}` path against `baseDir`), the CA
 * as read (`data` absent when only its path is known), host keys as fingerprints, `allow` empty
 * when the entry has none.
 *
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS
 */
export function normaliseConnection(entry: ConnectionEntry, baseDir: string, ca?: { file: string; data?: Buffer }): ConnectionConfig {
  const allow = entry.allow ?? { subjects: [], emails: [], groups: [] };
  if (entry.type === 'ssh') {
    const secret = (text: string | undefined) => (text === undefined ? undefined : parseSecretRef(text, baseDir)!);
    const privateKey = secret(entry.privateKey);
    const passphrase = secret(entry.passphrase);
    const password = secret(entry.password);
    return {
      name: entry.name,
      type: 'ssh',
      host: entry.host,
      port: entry.port,
      user: entry.user,
      ...(privateKey ? { privateKey } : {}),
      ...(passphrase ? { passphrase } : {}),
      ...(password ? { password } : {}),
      hostKeys: [...new Set(entry.hostKeys.map((k) => hostKeyFingerprint(k)!))],
      ...(entry.shell !== undefined ? { shell: entry.shell } : {}),
      allow,
    };
  }
  if (entry.type === 'mcp') {
    const values = (m: Record<string, string> | undefined): Record<string, McpValue> | undefined =>
      m && Object.fromEntries(Object.entries(m).map(([k, v]) => [k, isSecretRef(v) ? { secret: parseSecretRef(v, baseDir)! } : { text: v }]));
    const env = values(entry.env);
    const headers = values(entry.headers);
    return {
      name: entry.name,
      type: 'mcp',
      ...(entry.command ? { command: entry.command } : {}),
      ...(env ? { env } : {}),
      ...(entry.cwd !== undefined ? { cwd: resolve(baseDir, entry.cwd) } : {}),
      ...(entry.url !== undefined ? { url: entry.url } : {}),
      ...(headers ? { headers } : {}),
      ...(entry.maxSessions !== undefined ? { maxSessions: entry.maxSessions } : {}),
      allow,
    };
  }
  if (entry.type === 'http') {
    const secret = (text: string): SecretRef => parseSecretRef(text, baseDir)!;
    const c = entry.credential;
    const credential: HttpCredentialRef | undefined = !c
      ? undefined
      : 'bearer' in c
        ? { kind: 'bearer', token: secret(c.bearer) }
        : 'basic' in c
          ? { kind: 'basic', user: c.basic.user, password: secret(c.basic.password) }
          : 'header' in c
            ? { kind: 'header', name: c.header.name, value: secret(c.header.value) }
            : { kind: 'query', name: c.query.name, value: secret(c.query.value) };
    return {
      name: entry.name,
      type: 'http',
      url: entry.url.replace(/\/+$/, ''),
      tls: { ...(ca?.data ? { ca: ca.data } : {}), ...(ca ? { caFile: ca.file } : {}), ...(entry.tls.serverName !== undefined ? { serverName: entry.tls.serverName } : {}) },
      ...(credential ? { credential } : {}),
      ...(entry.maxSessions !== undefined ? { maxSessions: entry.maxSessions } : {}),
      allow,
    };
  }
  const tls = {
    mode: entry.tls.mode,
    ...(ca?.data ? { ca: ca.data } : {}),
    ...(ca ? { caFile: ca.file } : {}),
    ...(entry.tls.serverName !== undefined ? { serverName: entry.tls.serverName } : {}),
  };
  const maxSessions = entry.maxSessions !== undefined ? { maxSessions: entry.maxSessions } : {};
  if (entry.type === 'mysql') {
    return {
      name: entry.name,
      type: 'mysql',
      host: entry.host,
      port: entry.port,
      database: entry.database,
      user: entry.user,
      password: parseSecretRef(entry.password, baseDir)!,
      tls,
      ...maxSessions,
      allow,
    };
  }
  return {
    name: entry.name,
    type: entry.type,
    host: entry.host,
    port: entry.port,
    database: entry.database,
    user: entry.user,
    password: parseSecretRef(entry.password, baseDir)!,
    ...(entry.roles ? { roles: entry.roles.map((r) => ({ user: r.user, password: parseSecretRef(r.password, baseDir)! })) } : {}),
    ...(entry.databases ? { databases: entry.databases } : {}),
    tls,
    allowCleartextWithoutTls: entry.allowCleartextWithoutTls,
    ...(entry.pool ? { pool: entry.pool } : {}),
    ...maxSessions,
    allow,
  };
}

/** The secret references of a connection entry as written, by path (`password`, `privateKey`, `passphrase`, each role's `password`). */
export function connectionSecrets(entry: Record<string, unknown>): Array<[path: Array<string | number>, text: string]> {
  const mcp = (['env', 'headers'] as const).flatMap((k) =>
    Object.entries(asRecord(entry[k]) ?? {}).flatMap(([name, v]) => (typeof v === 'string' && isSecretRef(v) ? [[[k, name], v] as [Array<string | number>, string]] : [])),
  );
  const credential = asRecord(entry.credential);
  const http: Array<[Array<string | number>, string]> = [];
  if (typeof credential?.bearer === 'string') http.push([['credential', 'bearer'], credential.bearer]);
  for (const [form, key] of [
    ['basic', 'password'],
    ['header', 'value'],
    ['query', 'value'],
  ] as const) {
    const v = asRecord(credential?.[form])?.[key];
    if (typeof v === 'string') http.push([['credential', form, key], v]);
  }
  const own = (['password', 'privateKey', 'passphrase'] as const).flatMap((k) => (typeof entry[k] === 'string' ? [[[k], entry[k]] as [Array<string | number>, string]] : []));
  const roles = Array.isArray(entry.roles) ? entry.roles : [];
  return [
    ...own,
    ...mcp,
    ...http,
    ...roles.flatMap((r: unknown, i: number) =>
      typeof (r as { password?: unknown })?.password === 'string' ? [[['roles', i, 'password'], (r as { password: string }).password] as [Array<string | number>, string]] : [],
    ),
  ];
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
