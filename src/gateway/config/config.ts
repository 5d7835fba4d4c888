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
 * mysqlListen: 0.0.0.0:3307          # optional: a port where MySQL clients sign in with direct credentials (TLS required; needs tls)
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
 *     accessTokenTypes: [at+jwt, JWT] # the typ its access tokens carry; JWT for Keycloak, Entra ID (default [at+jwt])
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
 *   clientSecret: GOCSPX-…            # only where the provider requires one of an installed app (Google); not a secret
 *   scopes: [openid, profile, email, offline_access]   # the default; must include openid
 *   resource: https://hoop.example.com                 # optional RFC 8707 resource indicator
 * dataDir: ./hoop-data                # the gateway's state (device keys); default <dir of this file>/hoop-data
 * workers: auto                       # processes serving the port: auto (one per core with store: postgres, else 1) or a number
 * connectionsPerAddress: 256          # connections one source address may hold before a token is accepted on them (a NAT or balancer is one address for many)
 * proxyProtocol:                      # optional: load balancers in TCP mode that send a PROXY protocol v2 header (HAProxy: send-proxy-v2)
 *   from: [10.0.0.5, 10.1.0.0/16, "fd00::/8"]   # their addresses or CIDR blocks: a connection from them must begin with the header, whose client address is then the connection's
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
 *   statements: refused               # statement events: none | refused (default) | writes | all (with rows read and changed)
 * recording:                          # the gateway's recordings of sessions, in dataDir
 *   enabled: true                     # default true
 *   minFreeBytes: 1GiB                # refuse new sessions below this much free disk, recorded statements below a quarter; default 1GiB
 *   checkpointSeconds: 1              # sign a checkpoint at least this often while events come (1..60): what a killed gateway can lose
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
 *   allowedCommands:                  # the MCP server programs the bundle may make the gateway run; none by default
 *     - "npx -y @modelcontextprotocol/server-filesystem /srv/**"   # words; * within one, ** any number
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
import { dirname, join, resolve } from 'node:path';
import type * as z from 'zod';
import { connectionSecrets, disabledTlsProblems, normaliseConnection, type ConnectionConfig } from '../../config/connection.js';
import { readPem, type PemKind } from '../../config/pem.js';
import { parseSecretPattern, parseSecretRef, unresolvedSecret, type SecretRef } from '../../config/secrets.js';
import { readTrustedFile } from '../../config/trusted-paths.js';
import { type Locator, asRecord, locatedProblems, parseWithSchema, readErrorMessage, readYaml, syntaxProblems, unreadable, zodProblems, type Path, type Problem } from '../../config/yaml.js';
import { HoopError, ErrorCode } from '../../errors.js';
import { isLoopbackHost } from '../../loopback.js';
import type { AuditConfig } from '../audit/audit.js';
import { fileSchema, isGitUrl, parseListen, type recordingBucketSchema } from './config-schema.js';
import type { WorkloadRule } from './workload-rules.js';

export type { WorkloadRule };
export { ALLOWED_ALGORITHMS, DEFAULT_ALGORITHMS, DEFAULT_LOGIN_SCOPES } from './config-schema.js';

/** The loaded gateway configuration. */
export interface GatewayConfig {
  /** Absolute path of the file it was loaded from. */
  file: string;
  listen: { host: string; port: number };
  /** The gateway's MySQL port, for direct MySQL clients (src/gateway/front/mysql-door.ts). */
  mysqlListen?: { host: string; port: number };
  /** Absent only when `listen` is a loopback address. */
  tls?: { cert: Buffer; key: Buffer; certFile: string; keyFile: string };
  issuers: IssuerConfig[];
  connections: ConnectionConfig[];
  log: { level: 'debug' | 'info' | 'warn' | 'error' };
  /** Absolute path of the directory that holds the gateway's state. */
  dataDir: string;
  /** Processes serving the port (src/gateway/workers.ts): `auto` is one per core with a shared store, one with the file store. */
  workers: 'auto' | number;
  /** Connections one source address may hold that no accepted token came on. */
  connectionsPerAddress: number;
  /** The load balancers (addresses, CIDR blocks) whose PROXY protocol v2 header says a connection's client; absent: none. */
  proxyProtocol?: { from: string[] };
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
  /** The audit stream (src/gateway/audit/audit.ts); absent: none. Header values may be secret references, resolved at start. */
  audit?: Omit<AuditConfig, 'headers'> & { headers?: Record<string, string> };
}

/**
 * `store.recordings:`: an S3-compatible bucket for the bytes of recording files (the PostgreSQL
 * store keeps their index). See ../records/recordings-bucket.ts.
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
  /** New sessions are refused while the data directory's disk has less free space than this, recorded statements below a quarter of it (bytes; default 1 GiB). */
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
  /** The MCP server commands the bundle may make the gateway run (patterns over their words); empty: none. */
  allowedCommands: string[];
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
  /**
   * For providers that give an installed app's client a secret and require it (Google's desktop
   * clients): not a secret (anyone with the app has it), served to every CLI and sent with the
   * code and refresh grants; PKCE still protects the code.
   * @see https://developers.google.com/identity/protocols/oauth2/native-app
   */
  clientSecret?: string;
  /** The login redirect's port, for providers that compare it (Okta); absent: any port (RFC 8252). */
  redirectPort?: number;
  /**
   * More parameters of the authorization request (Google: `access_type: offline` and `prompt:
   * consent` in place of the `offline_access` scope it refuses). hoop's own (state, PKCE, nonce,
   * redirect, scope) cannot be set.
   */
  authorizationParams?: Record<string, string>;
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
  /** Which tokens are accepted: access tokens (a `typ` of {@link IssuerConfig.accessTokenTypes}), ID tokens (anything else), or both. */
  tokenType: 'access' | 'id' | 'any';
  /**
   * The JOSE `typ` values this issuer's access tokens carry: `at+jwt` (RFC 9068), `JWT` for
   * providers that mark their access tokens so (Keycloak, Microsoft Entra ID), `none` for those
   * that give none (Okta). Such a token counts as an access token only with a `scope`, `scp` or
   * `client_id` claim and without an ID token's marks (a `nonce`, a `typ: ID` claim).
   */
  accessTokenTypes: Array<'at+jwt' | 'JWT' | 'none'>;
  /** Empty for user issuers; at least one for workload issuers. */
  rules: WorkloadRule[];
}

const HINT = 'fix the file and start the gateway again';

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
  const { locator, raw } = parseYaml(text, abs);
  const checks = new PendingChecks(baseDir, env);
  const { problems } = checks;
  const parsed = parseWithSchema(fileSchema, raw);
  if (!parsed.success) problems.push(...zodProblems(parsed.error, raw, fileSchema));

  const root = asRecord(raw);
  checkListenTls(root, problems);
  const tls = asRecord(root?.tls);
  checks.wantFile(['tls', 'cert'], tls?.cert, 'certificate');
  checks.wantFile(['tls', 'key'], tls?.key, 'key');
  checks.wantFile(['audit', 'ca'], asRecord(root?.audit)?.ca, 'certificate');
  checkConnections(root, locator, checks);
  checkStoreSecrets(root, checks);
  const rawIssuers = Array.isArray(root?.issuers) ? root.issuers : [];
  checkIssuers(rawIssuers, problems);
  checkLogin(asRecord(root?.login), rawIssuers, problems);
  checkPolicy(root, checks);
  checkWorkers(root, checks.problems);
  await Promise.all(checks.pending);

  if (problems.length > 0 || !parsed.success) {
    throw configError(locatedProblems(abs, problems, locator));
  }
  return gatewayConfigOf(parsed.data, abs, baseDir, checks.files);
}

/**
 * The YAML document in `text` (`abs`: its file, for the problems), with a locator of its nodes
 * and its value.
 *
 * @throws HoopError CONFIG_INVALID on a YAML syntax error, or an alias that cannot be expanded.
 */
function parseYaml(text: string, abs: string): { locator: Locator; raw: unknown } {
  const read = readYaml(text);
  if ('problems' in read) throw configError(syntaxProblems(abs, read.problems));
  return read;
}

/** The problems found so far, the checks still running (file reads, secret lookups), and the PEM files read. */
class PendingChecks {
  readonly problems: Problem[] = [];
  readonly pending: Promise<void>[] = [];
  /** PEM files read, by the dotted path of the setting that names them. */
  readonly files = new Map<string, { file: string; data: Buffer }>();
  readonly #baseDir: string;
  readonly #env: NodeJS.ProcessEnv;

  constructor(baseDir: string, env: NodeJS.ProcessEnv) {
    this.#baseDir = baseDir;
    this.#env = env;
  }

  /** Reads the PEM file the setting at `path` names (relative to the configuration file), if it names one. */
  wantFile(path: Path, value: unknown, kind: PemKind): void {
    if (typeof value !== 'string' || value.trim() === '') return;
    const target = resolve(this.#baseDir, value.trim());
    this.pending.push(
      readPem(target, kind).then(({ data, problem }) => {
        if (problem) this.problems.push({ path, message: problem });
        else this.files.set(path.join('.'), { file: target, data: data! });
      }),
    );
  }

  /** Checks that the secret reference written `text` at `path` resolves, when it is one. */
  wantSecret(path: Path, text: unknown): void {
    const ref = typeof text === 'string' ? parseSecretRef(text, this.#baseDir) : undefined;
    if (ref) this.pending.push(unresolvedSecret(ref, this.#env).then((message) => void (message && this.problems.push({ path, message }))));
  }

  /** A path relative to the configuration file's directory, resolved. */
  resolve(path: string): string {
    return resolve(this.#baseDir, path);
  }
}

/** `tls` is required when the gateway listens on an address other than loopback. */
function checkListenTls(root: Record<string, unknown> | undefined, problems: Problem[]): void {
  const rawListen = typeof root?.listen === 'string' ? parseListen(root.listen) : root?.listen === undefined ? { host: '127.0.0.1', port: 0 } : undefined;
  if (rawListen && root?.tls === undefined && !isLoopbackHost(rawListen.host)) {
    problems.push({
      path: ['tls'],
      at: root?.listen === undefined ? [] : ['listen'],
      message: `is required because ${rawListen.host} is not a loopback address (add tls: { cert: ..., key: ... })`,
    });
  }
}

/** Each connection: its name once, its CA file read, its TLS not disabled unsafely, its secrets resolving. */
function checkConnections(root: Record<string, unknown> | undefined, locator: Locator, checks: PendingChecks): void {
  const { problems } = checks;
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
    checks.wantFile(['connections', i, 'tls', 'ca'], asRecord(conn.tls)?.ca, 'certificate');
    problems.push(...disabledTlsProblems(conn.tls, ['connections', i, 'tls']));
    for (const [path, text] of connectionSecrets(conn)) checks.wantSecret(['connections', i, ...path], text);
  });
}

/** The store's secret references (its URL, the recordings bucket's keys) resolve. */
function checkStoreSecrets(root: Record<string, unknown> | undefined, checks: PendingChecks): void {
  checks.wantSecret(['store', 'url'], asRecord(root?.store)?.url);
  const bucketConfig = asRecord(asRecord(root?.store)?.recordings);
  for (const key of ['accessKeyId', 'secretAccessKey'] as const) checks.wantSecret(['store', 'recordings', key], bucketConfig?.[key]);
}

/** Each issuer listed once; a workload issuer with rules, and only workload issuers with rules. */
function checkIssuers(rawIssuers: unknown[], problems: Problem[]): void {
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
}

/** `login.issuer` names a configured user issuer; one that accepts ID tokens has the client id in its audience. */
function checkLogin(login: Record<string, unknown> | undefined, rawIssuers: unknown[], problems: Problem[]): void {
  if (!login || typeof login.issuer !== 'string') return;
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

/** Several workers share their state as replicas do: through a PostgreSQL store. */
function checkWorkers(root: Record<string, unknown> | undefined, problems: Problem[]): void {
  if (typeof root?.workers === 'number' && root.workers > 1 && asRecord(root.store)?.kind !== 'postgres') {
    problems.push({
      path: ['workers'],
      message: `${root.workers} workers share their state as replicas do, through the PostgreSQL store: add store: { kind: postgres, url: … } (docs/deployment.md), or use workers: 1`,
    });
  }
}

/** A policy repo comes without connections of the file's own, and its allowed signers file can be read. */
function checkPolicy(root: Record<string, unknown> | undefined, checks: PendingChecks): void {
  if (root?.policy !== undefined && Array.isArray(root?.connections) && root.connections.length > 0) {
    checks.problems.push({
      path: ['connections'],
      atKey: true,
      message: 'cannot be given together with policy: with a policy repo the connections come from its bundle (move them to hoop.yaml there, or remove policy)',
    });
  }
  const rawPolicy = asRecord(root?.policy);
  if (typeof rawPolicy?.allowedSigners === 'string' && rawPolicy.allowedSigners.trim() !== '') {
    const signers = checks.resolve(rawPolicy.allowedSigners.trim());
    checks.pending.push(
      readTrustedFile(signers).then(
        () => undefined,
        (err: unknown) => void checks.problems.push({ path: ['policy', 'allowedSigners'], message: unreadable(signers, err) }),
      ),
    );
  }
}

type FileData = z.output<typeof fileSchema>;
type PemFiles = ReadonlyMap<string, { file: string; data: Buffer }>;

/** The configuration of a valid file (`abs`, in `baseDir`), with the PEM files it names read. */
function gatewayConfigOf(data: FileData, abs: string, baseDir: string, files: PemFiles): GatewayConfig {
  const dataDir = resolve(baseDir, data.dataDir ?? 'hoop-data');
  const cert = files.get('tls.cert');
  const key = files.get('tls.key');
  return {
    file: abs,
    listen: data.listen,
    ...(data.mysqlListen ? { mysqlListen: data.mysqlListen } : {}),
    ...(cert && key ? { tls: { cert: cert.data, key: key.data, certFile: cert.file, keyFile: key.file } } : {}),
    issuers: data.issuers.map((i) => ({
      ...i,
      algorithms: [...i.algorithms],
      accessTokenTypes: [...i.accessTokenTypes],
      rules: (i.rules ?? []).map((r) => ({ claims: { ...r.claims }, groups: [...r.groups], ...(r.subject !== undefined ? { subject: r.subject } : {}) })),
    })),
    connections: data.connections.map((c, i) => normaliseConnection(c, baseDir, files.get(`connections.${i}.tls.ca`))),
    log: data.log,
    dataDir,
    workers: data.workers,
    connectionsPerAddress: data.connectionsPerAddress,
    ...(data.proxyProtocol ? { proxyProtocol: { from: [...data.proxyProtocol.from] } } : {}),
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
    ...(data.audit ? { audit: auditConfigOf(data.audit, baseDir, files) } : {}),
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
            allowedCommands: data.policy.allowedCommands,
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
            ...(data.login.clientSecret !== undefined ? { clientSecret: data.login.clientSecret } : {}),
            ...(data.login.redirectPort !== undefined ? { redirectPort: data.login.redirectPort } : {}),
            ...(data.login.authorizationParams !== undefined ? { authorizationParams: { ...data.login.authorizationParams } } : {}),
            scopes: [...data.login.scopes],
            ...(data.login.resource !== undefined ? { resource: data.login.resource } : {}),
          },
        }
      : {}),
  };
}

/** The audit stream's settings: its file resolved, its CA read, its flush interval in ms. */
function auditConfigOf(audit: NonNullable<FileData['audit']>, baseDir: string, files: PemFiles): NonNullable<GatewayConfig['audit']> {
  return {
    ...(audit.file !== undefined ? { file: resolve(baseDir, audit.file) } : {}),
    ...(audit.url !== undefined ? { url: audit.url } : {}),
    ...(audit.headers ? { headers: audit.headers } : {}),
    ...(files.get('audit.ca') ? { ca: files.get('audit.ca')!.data } : {}),
    batchSize: audit.batchSize,
    flushMs: Math.round(audit.flushSeconds * 1000),
    maxQueue: audit.maxQueue,
    statements: audit.statements,
  };
}

/**
 * Reads and validates the gateway configuration file.
 *
 * @throws HoopError CONFIG_INVALID when the file is unreadable or invalid (every problem listed), or another user could replace it.
 */
export async function loadGatewayConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<GatewayConfig> {
  const abs = resolve(file);
  let text: string;
  try {
    // Another user who could rewrite it would choose whom the gateway trusts (sshd's StrictModes): the file read is the file checked.
    text = (await readTrustedFile(abs)).toString('utf8');
  } catch (err) {
    if (err instanceof HoopError) throw err;
    throw new HoopError(ErrorCode.CONFIG_INVALID, `cannot read gateway configuration ${abs}: ${readErrorMessage(err)}`, {
      hint: 'check the path given to the gateway',
      cause: err,
    });
  }
  return parseGatewayConfig(text, abs, env);
}
