/**
 * The gateway configuration file: a good file loads with defaults filled in, and every kind of
 * problem is reported with its file, line, column and field, all at once.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, HoopError } from '../../src/errors.js';
import * as z from 'zod';
import { parseSecretRef, resolveSecret } from '../../src/config/secrets.js';
import { parseWithSchema, zodProblems } from '../../src/config/yaml.js';
import { loadGatewayConfig, parseGatewayConfig } from '../../src/gateway/config/config.js';
import { isLoopbackHost } from '../../src/loopback.js';
import type { PostgresConnection } from '../../src/config/connection.js';

let dir: string;
const env = { PROD_DB_PASSWORD: 's3cr3t-from-env' };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hoop-config-'));
  mkdirSync(join(dir, 'certs'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=gateway.test',
      '-keyout',
      join(dir, 'certs', 'gateway.key'),
      '-out',
      join(dir, 'certs', 'gateway.crt'),
    ],
    { stdio: 'ignore' },
  );
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=db-ca', '-keyout', join(dir, 'db-ca.key'), '-out', join(dir, 'db-ca.pem')],
    { stdio: 'ignore' },
  );
  writeFileSync(join(dir, 'replica.pass'), 'from-a-file\n', { mode: 0o600 });
  writeFileSync(join(dir, 'not-a-cert.pem'), 'hello\n');
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const good = `# hoop gateway
listen: 0.0.0.0:8443
tls: { cert: ./certs/gateway.crt, key: certs/gateway.key }
issuers:
  - issuer: https://idp.example.com
    audience: hoop
  - issuer: http://127.0.0.1:9000/realms/dev
    audience: [hoop, hoop-ci]
    algorithms: [ES256]
    groupsClaim: realm_access.roles
    clockToleranceSeconds: 5
connections:
  - name: prod-db
    type: postgres
    host: db.internal
    database: app
    user: app_rw
    password: \${env:PROD_DB_PASSWORD}
    tls: { mode: verify-full, ca: ./db-ca.pem }
    allow: { groups: [dba] }
  - name: replica_1.eu
    type: postgres
    host: 10.0.0.7
    port: 6432
    database: app
    user: app_ro
    password: \${file:replica.pass}
    allowCleartextWithoutTls: true
    allow: { subjects: ['*'] }
log:
  level: debug
`;

/** 1-based line and column of `needle` in `text` (first occurrence after `after`). */
function at(text: string, needle: string, after = ''): string {
  const start = after ? text.indexOf(after) : 0;
  const i = text.indexOf(needle, start);
  if (i < 0) throw new Error(`no ${needle}`);
  const before = text.slice(0, i).split('\n');
  return `${before.length}:${before[before.length - 1]!.length + 1}`;
}

async function problems(text: string, environment: NodeJS.ProcessEnv = env): Promise<{ err: HoopError; lines: string[] }> {
  const file = join(dir, 'gateway.yaml');
  const err = await Promise.resolve()
    .then(() => parseGatewayConfig(text, file, environment))
    .then(
      () => {
        throw new Error('expected the configuration to be refused');
      },
      (e: unknown) => e,
    );
  expect(err).toBeInstanceOf(HoopError);
  const hoop = err as HoopError;
  expect(hoop.code).toBe(ErrorCode.CONFIG_INVALID);
  expect(hoop.hint).toMatch(/fix the file/);
  const lines = hoop.message
    .split('\n')
    .slice(1)
    .map((l) => l.trim().slice(file.length + 1));
  return { err: hoop, lines };
}

describe('a good file', () => {
  it('loads with defaults, files read and paths resolved against the file', async () => {
    const file = join(dir, 'gateway.yaml');
    writeFileSync(file, good);
    const config = await loadGatewayConfig(file, env);
    expect(config.file).toBe(file);
    expect(config.listen).toEqual({ host: '0.0.0.0', port: 8443 });
    expect(config.tls?.certFile).toBe(join(dir, 'certs', 'gateway.crt'));
    expect(config.tls?.keyFile).toBe(join(dir, 'certs', 'gateway.key'));
    expect(config.tls?.cert.toString()).toContain('BEGIN CERTIFICATE');
    expect(config.tls?.key.toString()).toContain('PRIVATE KEY');
    expect(config.issuers).toEqual([
      {
        issuer: 'https://idp.example.com',
        audience: ['hoop'],
        algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
        subjectClaim: 'sub',
        groupsClaim: 'groups',
        emailClaim: 'email',
        clockToleranceSeconds: 30,
        kind: 'user',
        tokenType: 'any',
        accessTokenTypes: ['at+jwt'],
        rules: [],
      },
      {
        issuer: 'http://127.0.0.1:9000/realms/dev',
        audience: ['hoop', 'hoop-ci'],
        algorithms: ['ES256'],
        subjectClaim: 'sub',
        groupsClaim: 'realm_access.roles',
        emailClaim: 'email',
        clockToleranceSeconds: 5,
        kind: 'user',
        tokenType: 'any',
        accessTokenTypes: ['at+jwt'],
        rules: [],
      },
    ]);
    const [prod, replica] = config.connections;
    expect(prod).toMatchObject({
      name: 'prod-db',
      type: 'postgres',
      host: 'db.internal',
      port: 5432,
      database: 'app',
      user: 'app_rw',
      password: { kind: 'env', name: 'PROD_DB_PASSWORD' },
      allowCleartextWithoutTls: false,
      allow: { subjects: [], emails: [], groups: ['dba'] },
    });
    expect((prod as PostgresConnection).tls.mode).toBe('verify-full');
    expect((prod as PostgresConnection).tls.caFile).toBe(join(dir, 'db-ca.pem'));
    expect((prod as PostgresConnection).tls.ca?.toString()).toContain('BEGIN CERTIFICATE');
    expect(replica).toMatchObject({
      name: 'replica_1.eu',
      port: 6432,
      password: { kind: 'file', path: join(dir, 'replica.pass') },
      tls: { mode: 'prefer' },
      allowCleartextWithoutTls: true,
      allow: { subjects: ['*'], emails: [], groups: [] },
    });
    expect(config.log).toEqual({ level: 'debug' });
    expect(config.dataDir).toBe(join(dir, 'hoop-data'));
    expect(config).not.toHaveProperty('login');
  });

  it('does not keep secret values in the config', async () => {
    const config = await parseGatewayConfig(good, join(dir, 'gateway.yaml'), env);
    const dump = JSON.stringify(config);
    expect(dump).not.toContain('s3cr3t-from-env');
    expect(dump).not.toContain('from-a-file');
  });

  it('keeps state in files by default, or in PostgreSQL named by a secret reference that resolves', async () => {
    const base = 'listen: 127.0.0.1:0\nissuers: [{ issuer: "https://idp", audience: a }]\n';
    expect((await parseGatewayConfig(base, join(dir, 's.yaml'), {})).store).toEqual({ kind: 'file' });
    const pgStore = await parseGatewayConfig(`${base}store: { kind: postgres, url: "\${env:STORE_URL}" }\n`, join(dir, 's.yaml'), { STORE_URL: 'postgres://h/db' });
    expect(pgStore.store).toEqual({ kind: 'postgres', url: { kind: 'env', name: 'STORE_URL' }, heartbeatSeconds: 2, deadAfterSeconds: 15 });
    expect((await problems(`${base}store: { kind: postgres, url: "\${env:NOT_SET}" }\n`, {})).err.message).toMatch(/store\.url: .*NOT_SET/);
    expect((await problems(`${base}store: { kind: postgres, url: "postgres://u:pw@h/db" }\n`)).err.message).toContain('store.url: must be a secret reference');
    expect((await problems(`${base}store: { kind: redis }\n`)).err.message).toContain('store.kind: must have a kind: file or postgres');
  });

  it('puts recording files in an S3-compatible bucket when store.recordings names one, and says what is wrong with a bad one', async () => {
    const base = 'listen: 127.0.0.1:0\nissuers: [{ issuer: "https://idp", audience: a }]\nstore:\n  kind: postgres\n  url: "${env:STORE_URL}"\n  recordings:\n';
    const storeEnv = { STORE_URL: 'postgres://h/db', S3_ID: 'id', S3_SECRET: 'secret-value' };
    const full = await parseGatewayConfig(
      `${base}    bucket: hoop-recordings\n    endpoint: https://s3.example.com\n    region: eu-west-3\n    prefix: hoop/recordings/\n    forcePathStyle: true\n    accessKeyId: \${env:S3_ID}\n    secretAccessKey: \${file:./s3.secret}\n`,
      join(dir, 's.yaml'),
      storeEnv,
    ).catch((e: unknown) => e);
    // ${file:} must resolve at load: the file is missing.
    expect(String(full)).toMatch(/store\.recordings\.secretAccessKey: .*s3\.secret/);
    writeFileSync(join(dir, 's3.secret'), 'from-a-file\n', { mode: 0o600 });
    const ok = await parseGatewayConfig(
      `${base}    bucket: hoop-recordings\n    endpoint: https://s3.example.com\n    region: eu-west-3\n    prefix: hoop/recordings/\n    forcePathStyle: true\n    accessKeyId: \${env:S3_ID}\n    secretAccessKey: \${file:./s3.secret}\n`,
      join(dir, 's.yaml'),
      storeEnv,
    );
    expect(ok.store).toEqual({
      kind: 'postgres',
      url: { kind: 'env', name: 'STORE_URL' },
      heartbeatSeconds: 2,
      deadAfterSeconds: 15,
      recordings: {
        bucket: 'hoop-recordings',
        endpoint: 'https://s3.example.com',
        region: 'eu-west-3',
        prefix: 'hoop/recordings/',
        forcePathStyle: true,
        credentials: { accessKeyId: { kind: 'env', name: 'S3_ID' }, secretAccessKey: { kind: 'file', path: join(dir, 's3.secret') } },
      },
    });
    expect(JSON.stringify(ok)).not.toContain('from-a-file');
    // Only the bucket is needed: AWS S3, no prefix, the SDK's default credentials.
    const minimal = await parseGatewayConfig(`${base}    bucket: hoop-recordings\n`, join(dir, 's.yaml'), storeEnv);
    expect(minimal.store).toMatchObject({ recordings: { bucket: 'hoop-recordings', prefix: '', forcePathStyle: false } });
    expect(minimal.store.kind === 'postgres' && minimal.store.recordings).not.toHaveProperty('credentials');
    // Loopback http is fine (a local S3-compatible server).
    expect((await parseGatewayConfig(`${base}    bucket: b12\n    endpoint: http://127.0.0.1:9000\n`, join(dir, 's.yaml'), storeEnv)).store).toMatchObject({
      recordings: { endpoint: 'http://127.0.0.1:9000' },
    });

    const bad = await problems(
      `${base}    bucket: Hoop_Recordings\n    endpoint: http://s3.example.com\n    region: 5\n    prefix: /recordings\n    forcePathStyle: yes please\n    accessKeyId: AKIAEXAMPLE\n    secretAccessKey: \${env:NOT_SET}\n    acl: private\n`,
      storeEnv,
    );
    const text = bad.lines.join('\n');
    expect(text).toContain('store.recordings.bucket: must be a bucket name: 3 to 63 lower-case letters');
    expect(text).toContain('store.recordings.endpoint: must use https (plain http is only allowed to a loopback address)');
    expect(text).toContain('store.recordings.region: must be a region name such as us-east-1');
    expect(text).toContain('store.recordings.prefix: must be a key prefix ending in /');
    expect(text).toContain('store.recordings.forcePathStyle: must be true or false');
    expect(text).toContain('store.recordings.accessKeyId: must be a secret reference like ${env:NAME} or ${file:path}, not a literal password');
    expect(text).toMatch(/store\.recordings\.secretAccessKey: .*NOT_SET/);
    expect(text).toMatch(/store\.recordings.*acl/);
    expect(bad.lines[0]).toMatch(/^\d+:\d+: store\.recordings\.bucket: /);
    expect(text).not.toContain('AKIAEXAMPLE');

    const half = await problems(`${base}    bucket: hoop-recordings\n    accessKeyId: \${env:S3_ID}\n`, storeEnv);
    expect(half.lines.join('\n')).toContain('store.recordings: needs both accessKeyId and secretAccessKey, or neither');
    // A bucket belongs to the PostgreSQL store: files in dataDir have no index for it.
    const onFiles = await problems('listen: 127.0.0.1:0\nissuers: [{ issuer: "https://idp", audience: a }]\nstore: { kind: file, recordings: { bucket: hoop-recordings } }\n', storeEnv);
    expect(onFiles.lines.join('\n')).toContain('store.recordings: a bucket for recordings needs the PostgreSQL store (kind: postgres)');
  });

  it('needs no tls on loopback, takes IPv6 and port 0, and fills the defaults', async () => {
    const minimal = 'listen: "[::1]:0"\nissuers:\n  - { issuer: "http://localhost:8080", audience: hoop }\n';
    const config = await parseGatewayConfig(minimal, join(dir, 'min.yaml'), {});
    expect(config.listen).toEqual({ host: '::1', port: 0 });
    expect(config.tls).toBeUndefined();
    expect(config.connections).toEqual([]);
    expect(config.log).toEqual({ level: 'info' });
    for (const listen of ['127.0.0.1:1', '127.9.9.9:65535', 'localhost:8443']) {
      const c = await parseGatewayConfig(`listen: ${listen}\nissuers: [{ issuer: "https://idp", audience: a }]\n`, join(dir, 'x.yaml'), {});
      expect(c.tls).toBeUndefined();
    }
  });
});

describe('problems are reported with file:line:col and the field', () => {
  it('names the file in every line', async () => {
    const { err } = await problems('issuers: []\n');
    expect(err.message).toContain(`${join(dir, 'gateway.yaml')}:1:10: issuers: must list at least one issuer`);
  });

  it('refuses unknown keys, at the key, suggesting the near one', async () => {
    const text = good.replace('    audience: hoop\n', '    audince: hoop\n    audience: hoop\n').replace('log:\n  level: debug', 'log:\n  level: debug\n  format: json');
    const { lines } = await problems(text);
    expect(lines).toEqual([`${at(text, 'audince')}: issuers.0.audince: unknown key (did you mean "audience"?)`, `${at(text, 'format')}: log.format: unknown key`]);
  });

  it('suggests only keys valid where the key was written, never the key itself', async () => {
    const text = good
      .replace('    audience: hoop\n', '    audience: hoop\n    groups: [dba]\n')
      .replace('    tls: { mode: verify-full, ca: ./db-ca.pem }\n', '    mode: verify-full\n')
      .replace('log:\n  level: debug', 'log:\n  levl: debug');
    const { lines } = await problems(text);
    expect(lines).toEqual([
      `${at(text, 'groups: [dba]')}: issuers.0.groups: unknown key`,
      `${at(text, 'mode: verify-full')}: connections.0.mode: unknown key`,
      `${at(text, 'levl')}: log.levl: unknown key (did you mean "level"?)`,
    ]);
  });

  it('says in words what a field of the wrong type expects', async () => {
    const text = good
      .replace('algorithms: [ES256]', 'algorithms: ES256')
      .replace('allow: { groups: [dba] }', 'allow: { groups: dba }')
      .replace('port: 6432', 'port: "6432"')
      .replace('log:\n  level: debug', 'log: debug');
    const { lines } = await problems(text);
    expect(lines).toEqual([
      `${at(text, 'ES256')}: issuers.1.algorithms: expected a list like [ES256]`,
      `${at(text, 'dba }')}: connections.0.allow.groups: expected a list like [dba]`,
      `${at(text, '"6432"')}: connections.1.port: must be a port number (write 6432 without quotes)`,
      `${at(text, 'debug')}: log: expected an object like { level: debug }`,
    ]);
  });

  it('words the common type mistakes of any schema: object, list, string, number, true/false', () => {
    const schema = z.strictObject({
      name: z.string(),
      port: z.number(),
      on: z.boolean(),
      tags: z.array(z.string()),
      as: z.strictObject({ subject: z.string(), email: z.string().optional(), groups: z.array(z.string()).default([]) }),
    });
    const worded = (raw: unknown): string[] => {
      const parsed = parseWithSchema(schema, raw);
      expect(parsed.success).toBe(false);
      return zodProblems(parsed.error!, raw, schema).map((p) => `${p.path.join('.')}: ${p.message}`);
    };
    expect(worded({ name: ['a'], port: '5432', on: 'yes', tags: 'x', as: 'alice' })).toEqual([
      'name: expected a string, not a list',
      'port: expected a number, not a string (write 5432 without quotes)',
      'on: expected true or false, not a string',
      'tags: expected a list like [x]',
      'as: expected an object like { subject: alice, groups: [...] }',
    ]);
    expect(worded({ name: 1, port: 'many', on: null, tags: { a: 1 }, as: ['alice'] })).toEqual([
      'name: expected a string, not a number',
      'port: expected a number, not a string',
      'on: expected true or false, not an empty value',
      'tags: expected a list like [...]',
      'as: expected an object like { subject: ..., groups: [...] }',
    ]);
    expect(worded({})).toEqual([
      'name: is missing (expected a string)',
      'port: is missing (expected a number)',
      'on: is missing (expected true or false)',
      'tags: is missing (expected a list like [...])',
      'as: is missing (expected an object like { subject: ..., groups: [...] })',
    ]);
  });

  it('refuses a literal password without echoing it', async () => {
    const text = good.replace('${env:PROD_DB_PASSWORD}', 'hunter2-literal');
    const { err, lines } = await problems(text);
    expect(lines).toEqual([`${at(text, 'hunter2-literal')}: connections.0.password: must be a secret reference like \${env:NAME} or \${file:path}, not a literal password`]);
    expect(err.message).not.toContain('hunter2');
  });

  it('refuses malformed references', async () => {
    const text = good.replace('${env:PROD_DB_PASSWORD}', '${env:NOT-A-NAME}').replace('${file:replica.pass}', '${vault:x}');
    const { lines } = await problems(text);
    expect(lines).toEqual([
      `${at(text, '${env:NOT')}: connections.0.password: malformed secret reference: \${env:NAME} needs a variable name of letters, digits and _, \${file:path} a path`,
      `${at(text, '${vault')}: connections.1.password: must be a secret reference like \${env:NAME} or \${file:path}, not a literal password`,
    ]);
  });

  it('requires every secret reference to resolve, naming the variable or file, never a value', async () => {
    const text = good.replace('${file:replica.pass}', '${file:./missing.pass}');
    const { err, lines } = await problems(text, {});
    expect(lines).toEqual([
      `${at(text, '${env:PROD')}: connections.0.password: secret reference does not resolve: environment variable PROD_DB_PASSWORD is not set`,
      `${at(text, '${file:./missing')}: connections.1.password: secret reference does not resolve: cannot read secret file ${join(dir, 'missing.pass')} (ENOENT)`,
    ]);
    expect(err.message).not.toContain('from-a-file');
  });

  it('points at the parent when a required field is missing', async () => {
    const text = good.replace('    user: app_rw\n', '');
    const { lines } = await problems(text);
    expect(lines).toEqual([`${at(text, 'name: prod-db')}: connections.0.user: is missing (must be a user name)`]);
  });

  it('checks types, ranges and enumerations', async () => {
    const text = good
      .replace('port: 6432', 'port: 70000')
      .replace('clockToleranceSeconds: 5', 'clockToleranceSeconds: 61')
      .replace('algorithms: [ES256]', 'algorithms: [ES256, HS256, none]')
      .replace('mode: verify-full', 'mode: verify-ca')
      .replace('allowCleartextWithoutTls: true', 'allowCleartextWithoutTls: "yes"')
      .replace('level: debug', 'level: loud');
    const { lines } = await problems(text);
    expect(lines).toEqual([
      `${at(text, 'HS256')}: issuers.1.algorithms.1: must be one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, Ed25519 (symmetric and "none" are refused)`,
      `${at(text, 'none]')}: issuers.1.algorithms.2: must be one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, Ed25519 (symmetric and "none" are refused)`,
      `${at(text, '61')}: issuers.1.clockToleranceSeconds: must be at most 60 seconds`,
      `${at(text, 'verify-ca')}: connections.0.tls.mode: must be one of disable, prefer, require, verify-full`,
      `${at(text, '70000')}: connections.1.port: must be from 1 to 65535`,
      `${at(text, '"yes"')}: connections.1.allowCleartextWithoutTls: must be true or false`,
      `${at(text, 'loud')}: log.level: must be one of debug, info, warn, error`,
    ]);
  });

  it('reads proxyProtocol.from (addresses and CIDR blocks, IPv4 and IPv6) and refuses what is neither, or an empty list', async () => {
    const ok = await parseGatewayConfig(good.replace('log:\n', 'proxyProtocol: { from: [10.0.0.5, 10.1.0.0/16, "::1", "fd00::/8"] }\nlog:\n'), join(dir, 'gateway.yaml'), env);
    expect(ok.proxyProtocol).toEqual({ from: ['10.0.0.5', '10.1.0.0/16', '::1', 'fd00::/8'] });
    expect((await parseGatewayConfig(good, join(dir, 'gateway.yaml'), env)).proxyProtocol).toBeUndefined();
    // docs/deployment.md's example, as written there (inside a list item, indented by two).
    const doc = readFileSync(join(import.meta.dirname, '../../docs/deployment.md'), 'utf8');
    const block = /\n {2}```yaml\n( {2}proxyProtocol:\n(?: {2}.*\n)*?) {2}```/.exec(doc)?.[1]?.replace(/^ {2}/gm, '');
    expect(block).toMatch(/^proxyProtocol:\n/);
    expect((await parseGatewayConfig(`${good}${block}`, join(dir, 'gateway.yaml'), env)).proxyProtocol).toEqual({ from: ['10.0.0.5', '10.1.0.0/16', 'fd00:1::/64'] });
    const text = good.replace('log:\n', 'proxyProtocol: { from: [lb.internal, 10.0.0.0/33] }\nlog:\n');
    expect((await problems(text)).lines).toEqual([
      `${at(text, 'lb.internal')}: proxyProtocol.from.0: must be an IPv4 or IPv6 address or CIDR block, e.g. 10.0.0.5, 10.1.0.0/16 or "fd00::/8"`,
      `${at(text, '10.0.0.0/33')}: proxyProtocol.from.1: must be an IPv4 or IPv6 address or CIDR block, e.g. 10.0.0.5, 10.1.0.0/16 or "fd00::/8"`,
    ]);
    const empty = good.replace('log:\n', 'proxyProtocol: { from: [] }\nlog:\n');
    expect((await problems(empty)).lines).toEqual([`${at(empty, '[] }')}: proxyProtocol.from: must list at least one load balancer (leave proxyProtocol out when none sends the header)`]);
  });

  it('names the connection types it knows', async () => {
    const text = good.replace('type: postgres\n    host: 10', 'type: mongodb\n    host: 10');
    expect((await problems(text)).lines).toEqual([`${at(text, 'mongodb')}: connections.1.type: must have a type: postgres, mysql, ssh, mcp or http`]);
  });

  it('checks listen, and requires tls off loopback', async () => {
    const bad = await problems(good.replace('0.0.0.0:8443', '0.0.0.0:65536'));
    expect(bad.lines).toEqual([`2:9: listen: must be host:port with a port from 0 to 65535, e.g. 127.0.0.1:8443 or [::1]:8443`]);
    const noTls = good.replace(/^tls: .*\n/m, '');
    const { lines } = await problems(noTls);
    expect(lines).toEqual([`2:9: tls: is required because 0.0.0.0 is not a loopback address (add tls: { cert: ..., key: ... })`]);
    const v6 = await problems(noTls.replace('0.0.0.0:8443', '"[2001:db8::1]:8443"'));
    expect(v6.lines[0]).toMatch(/^2:9: tls: is required because 2001:db8::1 is not a loopback/);
  });

  it('requires https issuers unless loopback, without query', async () => {
    const text = good.replace('https://idp.example.com', 'http://idp.example.com').replace('http://127.0.0.1:9000/realms/dev', 'https://idp?x=1');
    const { lines } = await problems(text);
    expect(lines).toEqual([
      `${at(text, 'http://idp.example')}: issuers.0.issuer: must use https (plain http is only allowed for a loopback issuer)`,
      `${at(text, 'https://idp?')}: issuers.1.issuer: must not have a query or fragment`,
    ]);
  });

  it('refuses duplicate connection names and issuers', async () => {
    const text = good.replace('name: replica_1.eu', 'name: prod-db').replace('http://127.0.0.1:9000/realms/dev', 'https://idp.example.com');
    const { lines } = await problems(text);
    expect(lines).toEqual([
      `${at(text, 'https://idp.example.com', 'audience: hoop')}: issuers.1.issuer: duplicate issuer; list each issuer once with all its audiences`,
      `${at(text, 'prod-db', 'allow: { groups')}: connections.1.name: duplicate connection name "prod-db" (first defined at line 13)`,
    ]);
  });

  it('resolves file paths against the file and checks their content', async () => {
    const text = good.replace('./db-ca.pem', './nope/ca.pem').replace('key: certs/gateway.key', 'key: not-a-cert.pem');
    const { lines } = await problems(text);
    expect(lines).toEqual([
      `${at(text, 'not-a-cert.pem')}: tls.key: ${join(dir, 'not-a-cert.pem')} does not hold a PEM private key (unencrypted)`,
      `${at(text, './nope')}: connections.0.tls.ca: cannot read ${join(dir, 'nope', 'ca.pem')}: no such file`,
    ]);
  });

  it("refuses a CA file another user could replace, naming it (sshd's StrictModes: a swapped CA chooses whom the gateway trusts)", async () => {
    const open = join(dir, 'open-ca.pem');
    writeFileSync(open, readFileSync(join(dir, 'db-ca.pem')));
    chmodSync(open, 0o666);
    const text = good.replace('./db-ca.pem', './open-ca.pem');
    const { lines } = await problems(text);
    expect(lines).toEqual([`${at(text, './open-ca')}: connections.0.tls.ca: the gateway will not trust ${open}: other users may write to it (mode 666) (chmod go-w ${open})`]);
  });

  it('refuses TLS settings that mode: disable would ignore', async () => {
    const text = good.replace('mode: verify-full, ca: ./db-ca.pem', 'mode: disable, ca: ./db-ca.pem');
    const { lines } = await problems(text);
    expect(lines).toEqual([`${at(text, 'ca: ./db-ca')}: connections.0.tls.ca: has no effect with mode: disable; remove it or choose another mode`]);
  });

  it('reports every problem at once, in file order', async () => {
    const text = good.replace('audience: hoop\n', 'audence: hoop\n').replace('user: app_ro', 'user: ""').replace('${env:PROD_DB_PASSWORD}', 'pw');
    const { err, lines } = await problems(text);
    expect(lines.map((l) => l.replace(/^\d+:\d+: /, '').split(':')[0])).toEqual(['issuers.0.audience', 'issuers.0.audence', 'connections.0.password', 'connections.1.user']);
    expect(err.message.split('\n')[0]).toBe('invalid gateway configuration (4 problems):');
  });

  it('reports YAML syntax errors with their position and without quoting the source', async () => {
    const text = 'listen: 127.0.0.1:8443\nissuers:\n  - issuer: "https://idp\n    password: hunter2\n';
    const { err, lines } = await problems(text);
    expect(lines.length).toBeGreaterThan(0);
    expect(lines[0]).toMatch(/^\d+:\d+: /);
    expect(err.message).not.toContain('hunter2');
    const dup = await problems('listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n');
    expect(dup.lines[0]).toMatch(/^2:1: Map keys must be unique/);
    const alias = await problems('listen: &l 127.0.0.1:1\nlog: *nope\n');
    expect(alias.lines).toEqual(['2:6: Unresolved alias (the anchor must be set before the alias): nope']);
  });

  it('refuses an empty file and a file that is not a mapping', async () => {
    expect((await problems('')).lines).toEqual(['1:1: issuers: is missing (must be a list of issuers)']);
    expect((await problems('- a\n- b\n')).lines).toEqual(['1:1: (top level): the file must be a mapping (key: value) at the top level']);
  });

  it('says so when the file cannot be read', async () => {
    await expect(loadGatewayConfig(join(dir, 'absent.yaml'))).rejects.toMatchObject({
      code: ErrorCode.CONFIG_INVALID,
      message: `cannot read gateway configuration ${join(dir, 'absent.yaml')}: no such file`,
    });
  });
});

describe('identity: login, issuer kinds, token types, workload rules, dataDir', () => {
  const identity = `listen: 127.0.0.1:0
dataDir: ./state
login:
  issuer: https://idp.example.com
  clientId: hoop-cli
  resource: https://hoop.example.com
issuers:
  - issuer: https://idp.example.com
    audience: hoop
    tokenType: access
  - issuer: https://token.actions.githubusercontent.com
    audience: [hoop-ci]
    kind: workload
    tokenType: id
    rules:
      - claims: { repository: acme/api, ref: "refs/heads/*" }
        groups: [deployers]
        subject: "ci:{repository}"
      - claims: { repository_owner: acme, run_attempt: 1, fork: false }
`;

  it('loads, filling the defaults', async () => {
    const config = await parseGatewayConfig(identity, join(dir, 'id.yaml'), {});
    expect(config.dataDir).toBe(join(dir, 'state'));
    expect(config.login).toEqual({
      issuer: 'https://idp.example.com',
      clientId: 'hoop-cli',
      scopes: ['openid', 'profile', 'email', 'offline_access'],
      resource: 'https://hoop.example.com',
    });
    expect(config.issuers[0]).toMatchObject({ kind: 'user', tokenType: 'access', rules: [] });
    expect(config.issuers[1]).toMatchObject({
      kind: 'workload',
      tokenType: 'id',
      audience: ['hoop-ci'],
      rules: [
        { claims: { repository: 'acme/api', ref: 'refs/heads/*' }, groups: ['deployers'], subject: 'ci:{repository}' },
        { claims: { repository_owner: 'acme', run_attempt: '1', fork: 'false' }, groups: [] },
      ],
    });
    expect(config.issuers[1]!.rules[1]).not.toHaveProperty('subject');
    const absolute = await parseGatewayConfig(identity.replace('./state', '/var/lib/hoop'), join(dir, 'id.yaml'), {});
    expect(absolute.dataDir).toBe('/var/lib/hoop');
    const scoped = await parseGatewayConfig(identity.replace('  clientId: hoop-cli\n', '  clientId: hoop-cli\n  scopes: [openid, groups]\n'), join(dir, 'id.yaml'), {});
    expect(scoped.login?.scopes).toEqual(['openid', 'groups']);
  });

  it('login must name a configured issuer of kind user', async () => {
    const unknown = identity.replace('  issuer: https://idp.example.com\n  clientId', '  issuer: https://other.example.com\n  clientId');
    expect((await problems(unknown, {})).lines).toEqual([
      `${at(unknown, 'https://other')}: login.issuer: must be one of the configured issuers (https://idp.example.com, https://token.actions.githubusercontent.com)`,
    ]);
    const workload = identity.replace('  issuer: https://idp.example.com\n  clientId', '  issuer: https://token.actions.githubusercontent.com\n  clientId');
    expect((await problems(workload, {})).lines).toEqual([`${at(workload, 'https://token')}: login.issuer: names a workload issuer; login needs an issuer of kind user (issuers.1)`]);
  });

  it('checks the login block itself', async () => {
    const text = identity.replace('  clientId: hoop-cli\n', '  scopes: [openid, "has space"]\n  client: x\n').replace('https://hoop.example.com', 'not a url');
    expect((await problems(text, {})).lines).toEqual([
      `${at(text, 'issuer: https://idp')}: login.clientId: is missing (must be the client id registered for hoop at the identity provider)`,
      `${at(text, '"has space"')}: login.scopes.1: must be a scope name (no spaces or quotes)`,
      `${at(text, 'client: x')}: login.client: unknown key (did you mean "clientId"?)`,
      `${at(text, 'not a url')}: login.resource: must be an absolute URL without a fragment (RFC 8707)`,
    ]);
    const noOpenid = identity.replace('  clientId: hoop-cli\n', '  clientId: hoop-cli\n  scopes: [profile]\n');
    expect((await problems(noOpenid, {})).lines).toEqual([`${at(noOpenid, '[profile]')}: login.scopes: must include openid (hoop login uses OpenID Connect)`]);
  });

  it('an ID-token login issuer must list the client id as an audience', async () => {
    const text = identity.replace('    tokenType: access\n', '    tokenType: id\n');
    expect((await problems(text, {})).lines).toEqual([`${at(text, 'hoop-cli')}: login.clientId: issuers.0 accepts ID tokens, whose audience is the client id: add "hoop-cli" to its audience`]);
    await expect(parseGatewayConfig(text.replace('    audience: hoop\n    tokenType: id', '    audience: [hoop, hoop-cli]\n    tokenType: id'), join(dir, 'id.yaml'), {})).resolves.toBeTruthy();
  });

  it('a workload issuer needs rules; a user issuer has none', async () => {
    const none = identity.replace(/ {4}rules:\n[\s\S]*$/, '');
    expect((await problems(none, {})).lines).toEqual([
      `${at(none, 'workload')}: issuers.1.rules: is missing: a workload issuer needs rules that map its claims to identities (rules: [{ claims: {...}, groups: [...] }])`,
    ]);
    const empty = identity.replace(/ {4}rules:\n[\s\S]*$/, '    rules: []\n');
    expect((await problems(empty, {})).lines).toEqual([`${at(empty, '[]')}: issuers.1.rules: must list at least one rule: a workload issuer with no rules admits nobody`]);
    const userRules = identity.replace('    tokenType: access\n', '    tokenType: access\n    rules: [{ claims: { sub: "*" } }]\n');
    expect((await problems(userRules, {})).lines).toEqual([`${at(userRules, 'rules: [{')}: issuers.0.rules: only workload issuers have rules; add kind: workload, or remove the rules`]);
  });

  it('checks kinds, token types, rules and subject templates', async () => {
    const text = identity
      .replace('    tokenType: access\n', '    tokenType: jwt\n    kind: robot\n')
      .replace('{ repository: acme/api, ref: "refs/heads/*" }', '{ repository: "", ref: [a, b] }')
      .replace('subject: "ci:{repository}"', 'subject: "ci:{repository"')
      .replace('{ repository_owner: acme, run_attempt: 1, fork: false }', '{}\n        group: [x]\n      - claims: { sub: "*" }\n        subject: ci');
    expect((await problems(text, {})).lines).toEqual([
      `${at(text, 'jwt')}: issuers.0.tokenType: must be access, id or any`,
      `${at(text, 'robot')}: issuers.0.kind: must be user or workload`,
      `${at(text, '""')}: issuers.1.rules.0.claims.repository: must not be empty (write "*" to require only that the claim exists)`,
      `${at(text, '[a, b]')}: issuers.1.rules.0.claims.ref: must be a value or a pattern with * (a string, number or boolean)`,
      `${at(text, '"ci:{repository"')}: issuers.1.rules.0.subject: has a "{" without its "}" at position 4`,
      `${at(text, '{}')}: issuers.1.rules.1.claims: must list at least one claim (write sub: "*" to match every token of the issuer)`,
      `${at(text, 'group: [x]')}: issuers.1.rules.1.group: unknown key (did you mean "groups"?)`,
      `${at(text, 'ci', 'subject: ci')}: issuers.1.rules.2.subject: names no claim; write the claims to insert in braces, e.g. "ci:{repository}"`,
    ]);
  });

  it('refuses an empty dataDir', async () => {
    const text = identity.replace('dataDir: ./state', 'dataDir: ""');
    expect((await problems(text, {})).lines).toEqual([`${at(text, '""')}: dataDir: must be a directory path`]);
  });
});

describe('secret references', () => {
  it('parses env and file references, resolving relative paths', () => {
    expect(parseSecretRef('${env:A_1}', '/etc/hoop')).toEqual({ kind: 'env', name: 'A_1' });
    expect(parseSecretRef('${file:db.pass}', '/etc/hoop')).toEqual({ kind: 'file', path: '/etc/hoop/db.pass' });
    expect(parseSecretRef('${file:/run/secrets/pw}', '/etc/hoop')).toEqual({ kind: 'file', path: '/run/secrets/pw' });
    for (const bad of ['plain', '${env:}', '${env:1A}', '${file:}', '$env:A', '${env:A}x']) expect(parseSecretRef(bad, '/')).toBeUndefined();
  });

  it('resolves env vars and files, trimming exactly one trailing newline', async () => {
    expect(await resolveSecret({ kind: 'env', name: 'X' }, { X: 'v' })).toBe('v');
    const f = join(dir, 's.pass');
    writeFileSync(f, 'pw\n\n', { mode: 0o600 });
    expect(await resolveSecret({ kind: 'file', path: f })).toBe('pw\n');
    writeFileSync(f, 'pw\r\n');
    expect(await resolveSecret({ kind: 'file', path: f })).toBe('pw');
    writeFileSync(f, ' pw ');
    expect(await resolveSecret({ kind: 'file', path: f })).toBe(' pw ');
  });

  it('re-reads the file each time, so rotation needs no reload', async () => {
    const f = join(dir, 'rotating.pass');
    writeFileSync(f, 'one\n', { mode: 0o600 });
    const ref = { kind: 'file', path: f } as const;
    expect(await resolveSecret(ref)).toBe('one');
    writeFileSync(f, 'two\n');
    expect(await resolveSecret(ref)).toBe('two');
  });

  it('fails with SECRET_UNRESOLVED naming the variable or file', async () => {
    await expect(resolveSecret({ kind: 'env', name: 'NOPE' }, {})).rejects.toMatchObject({ code: ErrorCode.SECRET_UNRESOLVED, message: 'environment variable NOPE is not set' });
    await expect(resolveSecret({ kind: 'env', name: 'E' }, { E: '' })).rejects.toMatchObject({ message: 'environment variable E is empty' });
    await expect(resolveSecret({ kind: 'file', path: join(dir, 'none') })).rejects.toMatchObject({
      code: ErrorCode.SECRET_UNRESOLVED,
      message: `cannot read secret file ${join(dir, 'none')} (ENOENT)`,
    });
    const empty = join(dir, 'empty.pass');
    writeFileSync(empty, '\n', { mode: 0o600 });
    await expect(resolveSecret({ kind: 'file', path: empty })).rejects.toMatchObject({ message: `secret file ${empty} is empty` });
  });
});

describe('isLoopbackHost', () => {
  it('knows 127.0.0.0/8, ::1 and localhost', () => {
    for (const h of ['127.0.0.1', '127.255.0.3', '::1', '[::1]', 'localhost', 'LOCALHOST', '::ffff:127.0.0.1']) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['0.0.0.0', '10.0.0.1', '::', '128.0.0.1', 'localhost.example.com', '::ffff:10.0.0.1', '1127.0.0.1']) expect(isLoopbackHost(h), h).toBe(false);
  });
});
