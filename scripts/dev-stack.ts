/**
 * A throwaway stack for trying hoop on one machine: a PostgreSQL cluster, an OpenID provider and a
 * test CA, from the same harnesses the tests use. Writes `.dev/gateway.yaml`, `.dev/ca.pem` and
 * `.dev/token` (a 12-hour token for the subject `dev`, for headless use), configures the gateway's
 * `login` block so `hoop login` works in the browser, prints what to run next, and stops
 * everything on Ctrl-C. Not for production: the provider signs any token this script asks for.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createTestPki } from '../test/harness/certs.js';
import { startOidc } from '../test/harness/oidc.js';
import { startPgCluster } from '../test/harness/postgres.js';

const dir = resolve(import.meta.dirname, '..', '.dev');
const port = Number(process.env.HOOP_DEV_GATEWAY_PORT ?? 8443);
await mkdir(dir, { recursive: true });

const pki = await createTestPki();
const pg = await startPgCluster();
const oidc = await startOidc({ audience: 'hoop-dev', accounts: { dev: { groups: ['dev'], email: 'dev@example.com' } } });
const cert = await pki.issue('gateway', ['IP:127.0.0.1', 'DNS:localhost']);
await writeFile(join(dir, 'ca.pem'), pki.ca);
await writeFile(join(dir, 'app.password'), `${pg.users.scram.password}\n`, { mode: 0o600 });
await writeFile(join(dir, 'token'), `${await oidc.token({ subject: 'dev', groups: ['dev'], expiresInSeconds: 12 * 3600 })}\n`, { mode: 0o600 });
await writeFile(
  join(dir, 'gateway.yaml'),
  `# written by npm run dev-stack
listen: 127.0.0.1:${port}
tls: { cert: ${cert.certFile}, key: ${cert.keyFile} }
dataDir: ${join(dir, 'gateway-data')}
login:
  issuer: ${oidc.issuer}
  clientId: ${oidc.clientId}
  resource: ${oidc.resource}
issuers:
  - issuer: ${oidc.issuer}
    audience: hoop-dev
connections:
  - name: app
    type: postgres
    host: 127.0.0.1
    port: ${pg.port}
    database: app
    user: ${pg.users.scram.user}
    password: \${file:app.password}
    tls: { mode: prefer }
    allow: { groups: [dev] }
`,
);

process.stdout.write(`dev stack ready (PostgreSQL on 127.0.0.1:${pg.port}, OpenID provider at ${oidc.issuer})

  node bin/hoop.js gateway --config .dev/gateway.yaml
  node bin/hoop.js login --gateway https://127.0.0.1:${port} --ca-file .dev/ca.pem   # sign in as "dev" (any password-less name)
  node bin/hoop.js connect app

  or, without a browser: HOOP_TOKEN=$(cat .dev/token) node bin/hoop.js connect app --gateway https://127.0.0.1:${port} --ca-file .dev/ca.pem

Press Ctrl-C to stop.
`);

const stop = async (): Promise<void> => {
  await Promise.allSettled([oidc.close(), pg.stop()]);
  await pki.cleanup();
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
