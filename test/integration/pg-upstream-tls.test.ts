/**
 * The gateway's own connection to PostgreSQL, per TLS mode, end to end through `hoop connect`: a
 * TLS-only role behind `verify-full` works; the wrong CA or a server without TLS fails with a message
 * psql prints.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { loadGatewayConfig } from '../../src/gateway/config/config.js';
import { startGateway, type Gateway } from '../../src/gateway/server.js';
import { silentLogger } from '../../src/log.js';
import { createTestPki, type TestPki } from '../harness/certs.js';
import { psql } from '../harness/clients.js';
import { startOidc, type TestOidc } from '../harness/oidc.js';
import { startPgCluster, type PgCluster } from '../harness/postgres.js';
import type { ConnectInfo } from '../harness/stack.js';

let dir: string;
let pki: TestPki;
let otherPki: TestPki;
let tlsPg: PgCluster;
let plainPg: PgCluster;
let oidc: TestOidc;
let gateway: Gateway;
let token: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hoop-upstream-tls-'));
  [pki, otherPki] = await Promise.all([createTestPki(), createTestPki()]);
  const dbCert = await pki.issue('db', ['DNS:db.test', 'IP:127.0.0.1']);
  [tlsPg, plainPg, oidc] = await Promise.all([startPgCluster({ ssl: { certFile: dbCert.certFile, keyFile: dbCert.keyFile } }), startPgCluster(), startOidc({ audience: 'hoop-tls' })]);
  const gw = await pki.issue('gateway', ['IP:127.0.0.1']);
  const conn = (name: string, pg: PgCluster, tls: string): string => `  - name: ${name}
    type: postgres
    host: 127.0.0.1
    port: ${pg.port}
    database: app
    user: ${pg.users.tlsOnly.user}
    password: \${env:${name === 'plain-require' ? 'PLAIN' : 'TLS'}_PW}
    tls: ${tls}
    allow: { subjects: ["*"] }
`;
  await writeFile(
    join(dir, 'gateway.yaml'),
    `listen: 127.0.0.1:0
tls: { cert: ${gw.certFile}, key: ${gw.keyFile} }
issuers: [{ issuer: ${oidc.issuer}, audience: hoop-tls }]
connections:
${conn('verify-full', tlsPg, `{ mode: verify-full, ca: ${pki.caFile}, serverName: db.test }`)}${conn('wrong-ca', tlsPg, `{ mode: verify-full, ca: ${otherPki.caFile}, serverName: db.test }`)}${conn('wrong-name', tlsPg, `{ mode: verify-full, ca: ${pki.caFile}, serverName: other.test }`)}${conn('plain-require', plainPg, '{ mode: require }')}`,
  );
  const env = { ...process.env, TLS_PW: tlsPg.users.tlsOnly.password, PLAIN_PW: plainPg.users.tlsOnly.password };
  gateway = await startGateway({ config: await loadGatewayConfig(join(dir, 'gateway.yaml'), env), log: silentLogger, env });
  token = await oidc.token({ subject: 'erin' });
});

afterAll(async () => {
  await gateway?.close();
  await Promise.allSettled([tlsPg?.stop(), plainPg?.stop(), oidc?.close()]);
  await Promise.allSettled([pki?.cleanup(), otherPki?.cleanup()]);
  await rm(dir, { recursive: true, force: true });
});

async function withConnect(name: string, fn: (info: ConnectInfo, stderr: () => string) => Promise<void>): Promise<void> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let err = '';
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  const controller = new AbortController();
  const line = new Promise<string>((resolve) => stdout.once('data', (d: Buffer) => resolve(d.toString())));
  const done = main(['connect', name, '--json', '--gateway', gateway.url, '--ca-file', pki.caFile], {
    stdout,
    stderr,
    env: { HOOP_TOKEN: token, XDG_RUNTIME_DIR: dir },
    cwd: dir,
    signal: controller.signal,
  });
  try {
    await fn(JSON.parse(await line) as ConnectInfo, () => err);
  } finally {
    controller.abort();
    await done;
  }
}

describe('upstream TLS through the gateway', () => {
  it('verify-full with the right CA and server name reaches a TLS-only role', async () => {
    await withConnect('verify-full', async (info) => {
      const r = await psql(info, ['-At', '-c', 'select ssl from pg_stat_ssl where pid = pg_backend_pid()']);
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe('t');
    });
  });

  it.each([
    ['wrong-ca', /certificate|verify/i],
    ['wrong-name', /db\.test|other\.test|altname|host ?name/i],
    ['plain-require', /TLS|SSL/],
  ])('%s fails with a message psql prints', async (name, pattern) => {
    await withConnect(name, async (info, stderr) => {
      const r = await psql(info, ['-c', 'select 1']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(`could not reach "${name}"`);
      expect(r.stderr).toMatch(pattern);
      expect(stderr()).toContain(`could not reach "${name}"`);
    });
  });
});
