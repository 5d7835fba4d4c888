/**
 * The parts of a stack that no test changes, made once per test worker and shared by every stack the
 * worker starts: the test CA with the gateway's certificate, and the OpenID provider that signs access
 * tokens. (The integration project runs a worker's files on one module graph, so module state is the
 * worker's.) What tests do change — a PostgreSQL cluster (tables, roles, halts), a gateway (sessions,
 * recordings, reviews) — stays one per stack.
 *
 * The views handed out are read-only by type: a test that needs to add accounts, change lifetimes or
 * revoke tokens starts a provider of its own ({@link startOidc}).
 */
import { rmSync } from 'node:fs';
import { createTestPki, type IssuedCert, type TestPki } from './certs.js';
import { startOidc, type TestOidc } from './oidc.js';

/** The worker's CA: read its certificate, issue leaves under new names. */
export type SharedPki = Pick<TestPki, 'dir' | 'ca' | 'caFile' | 'issue'>;
/** The worker's OpenID provider: mint tokens, forge them with its key; nothing that changes it. */
export type SharedOidc = Pick<TestOidc, 'issuer' | 'audience' | 'token' | 'signingKey'>;

/** The `aud` of every token the shared provider issues. */
export const SHARED_AUDIENCE = 'hoop-test';

let pki: Promise<{ pki: SharedPki; gateway: IssuedCert }> | undefined;
let oidc: Promise<TestOidc> | undefined;

/** The worker's CA and a gateway certificate for 127.0.0.1 and localhost (made on first use, removed when the worker exits). */
export function workerPki(): Promise<{ pki: SharedPki; gateway: IssuedCert }> {
  pki ??= (async () => {
    const made = await createTestPki();
    process.once('exit', () => rmSync(made.dir, { recursive: true, force: true }));
    return { pki: made, gateway: await made.issue('gateway', ['IP:127.0.0.1', 'DNS:localhost']) };
  })().catch((err: unknown) => {
    pki = undefined;
    throw err;
  });
  return pki;
}

/** The worker's OpenID provider (audience {@link SHARED_AUDIENCE}), made on first use. */
export function workerOidc(): Promise<SharedOidc> {
  oidc ??= startOidc({ audience: SHARED_AUDIENCE }).catch((err: unknown) => {
    oidc = undefined;
    throw err;
  });
  return oidc;
}
