/**
 * Proves the identity test harnesses with a real relying party, openid-client v6: the
 * oidc-provider harness (authorization code + PKCE through the headless browser to a loopback
 * listener, refresh, revocation, the device grant with `slow_down`), and the workload issuer
 * with its fake GitHub Actions token endpoint.
 */
import { listenOnLoopback } from '../harness/listen.js';
import { createServer, type Server } from 'node:http';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import * as client from 'openid-client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { approveDevice, authorize, TestBrowser } from '../harness/browser.js';
import { startOidc, type TestOidc } from '../harness/oidc.js';
import { eventually, pace } from '../harness/wait.js';
import { startWorkloadIssuer, type WorkloadIssuer } from '../harness/workload-issuer.js';

const insecure = { execute: [client.allowInsecureRequests] };

/** A one-shot-ish loopback redirect listener like the CLI's: remembers every URL it was called with. */
async function loopback(): Promise<{ server: Server; port: number; redirectUri: string; calls: string[]; close(): Promise<void> }> {
  const calls: string[] = [];
  const server = createServer((req, res) => {
    calls.push(req.url ?? '');
    const body = '<!DOCTYPE html><title>hoop</title><p>Signed in. You can close this tab.</p>';
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  const port = await listenOnLoopback(server);
  return {
    server,
    port,
    calls,
    redirectUri: `http://127.0.0.1:${port}/callback`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function authRequest(config: client.Configuration, redirectUri: string, scope: string, extra: Record<string, string> = {}) {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...extra,
  });
  return { url, verifier, state, nonce };
}

describe('oidc-provider harness: the CLI flows', () => {
  let op: TestOidc;
  let config: client.Configuration;
  let cb: Awaited<ReturnType<typeof loopback>>;
  const resource = 'https://hoop.example.com';

  beforeAll(async () => {
    op = await startOidc({
      audience: 'hoop',
      accounts: { alice: { groups: ['dba', 'dev'], email: 'alice@example.com', name: 'Alice' } },
    });
    config = await client.discovery(new URL(op.issuer), op.clientId, undefined, client.None(), insecure);
    cb = await loopback();
  });
  afterAll(async () => {
    await Promise.all([op?.close(), cb?.close()]);
  });

  it('advertises the endpoints and methods the CLI needs', () => {
    const meta = config.serverMetadata();
    expect(op.clientId).toBe('hoop-cli');
    expect(meta.issuer).toBe(op.issuer);
    expect(meta.code_challenge_methods_supported).toEqual(['S256']);
    expect(meta.device_authorization_endpoint).toBe(`${op.issuer}/device/auth`);
    expect(meta.revocation_endpoint).toBe(`${op.issuer}/token/revocation`);
    expect(meta.grant_types_supported).toEqual(expect.arrayContaining(['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code']));
    expect(meta.scopes_supported).toEqual(expect.arrayContaining(op.scopes));
  });

  it('authorization code + PKCE through the browser to a loopback listener on any port', async () => {
    const req = await authRequest(config, cb.redirectUri, op.scopes.join(' '), { resource });
    const result = await authorize(req.url.href, 'alice');
    expect(result.status).toBe(200);
    expect(result.body).toContain('Signed in');
    const callback = new URL(result.finalUrl);
    expect(`${callback.origin}${callback.pathname}`).toBe(cb.redirectUri);
    expect(callback.searchParams.get('state')).toBe(req.state);
    expect(cb.calls.at(-1)).toBe(`${callback.pathname}${callback.search}`);

    // A state that does not match is refused by the relying party.
    await expect(client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: req.verifier, expectedState: 'other', expectedNonce: req.nonce })).rejects.toMatchObject({
      cause: { message: expect.stringMatching(/state/) },
    });

    const tokens = await client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: req.verifier, expectedState: req.state, expectedNonce: req.nonce });
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    expect(tokens.expires_in).toBe(600);
    expect(typeof tokens.refresh_token).toBe('string');

    expect(decodeProtectedHeader(tokens.access_token)).toMatchObject({ alg: 'RS256', typ: 'at+jwt' });
    const jwks = createRemoteJWKSet(new URL(`${op.issuer}/jwks`));
    const { payload: at } = await jwtVerify(tokens.access_token, jwks, { issuer: op.issuer, audience: 'hoop', typ: 'at+jwt' });
    expect(at).toMatchObject({ sub: 'alice', client_id: 'hoop-cli', groups: ['dba', 'dev'], email: 'alice@example.com' });

    const id = tokens.claims();
    expect(id).toMatchObject({ iss: op.issuer, sub: 'alice', aud: 'hoop-cli', nonce: req.nonce, groups: ['dba', 'dev'], email: 'alice@example.com', name: 'Alice' });
    expect(decodeProtectedHeader(tokens.id_token ?? '').typ).not.toBe('at+jwt');

    // The code is single use.
    await expect(client.authorizationCodeGrant(config, callback, { pkceCodeVerifier: req.verifier, expectedState: req.state, expectedNonce: req.nonce })).rejects.toThrow();
  });

  it('gives a user it does not know no groups, and issues tokens for the default resource', async () => {
    const req = await authRequest(config, cb.redirectUri, 'openid offline_access');
    const result = await authorize(req.url.href, 'mallory');
    const tokens = await client.authorizationCodeGrant(config, new URL(result.finalUrl), { pkceCodeVerifier: req.verifier, expectedState: req.state, expectedNonce: req.nonce });
    const at = decodeJwt(tokens.access_token);
    expect(at.sub).toBe('mallory');
    expect(at.aud).toBe('hoop');
    expect(at.groups).toBeUndefined();
    expect(tokens.claims()?.groups).toBeUndefined();
  });

  it('refuses a request without PKCE, and redirect URIs other than the registered loopback one', async () => {
    const noPkce = client.buildAuthorizationUrl(config, { redirect_uri: cb.redirectUri, scope: 'openid', state: client.randomState() });
    const refused = new URL((await authorize(noPkce.href, 'alice')).finalUrl);
    expect(refused.searchParams.get('error')).toBe('invalid_request');
    expect(refused.searchParams.get('error_description')).toMatch(/PKCE/);
    // Redirect URIs the client did not register are never redirected to: the provider shows an error page.
    const otherPath = await authRequest(config, `http://127.0.0.1:${cb.port}/elsewhere`, 'openid');
    await expect(authorize(otherPath.url.href, 'alice')).rejects.toThrow(/redirect_uri/);
    const localhost = await authRequest(config, `http://localhost:${cb.port}/callback`, 'openid');
    await expect(authorize(localhost.url.href, 'alice')).rejects.toThrow(/redirect_uri/);
  });

  it('sends access_denied to the callback when the user denies, and nothing when they walk away', async () => {
    const denied = await authRequest(config, cb.redirectUri, 'openid');
    const result = await authorize(denied.url.href, 'alice', { deny: true });
    const url = new URL(result.finalUrl);
    expect(url.searchParams.get('error')).toBe('access_denied');
    expect(url.searchParams.get('state')).toBe(denied.state);

    const before = cb.calls.length;
    const abandoned = await authRequest(config, cb.redirectUri, 'openid');
    const page = await authorize(abandoned.url.href, 'alice', { consent: false });
    expect(new URL(page.finalUrl).origin).toBe(op.issuer);
    expect(page.body).toContain('id="consent"');
    expect(cb.calls.length).toBe(before);
  });

  it('keeps a session in one browser: the second sign-in skips the login page', async () => {
    const browser = new TestBrowser();
    const first = await authRequest(config, cb.redirectUri, 'openid');
    await browser.authorize(first.url.href, 'alice');
    expect(browser.cookieNames(op.issuer)).toContain('_session');
    const second = await authRequest(config, cb.redirectUri, 'openid');
    const result = await browser.authorize(second.url.href, 'someone-else');
    const tokens = await client.authorizationCodeGrant(config, new URL(result.finalUrl), { pkceCodeVerifier: second.verifier, expectedState: second.state, expectedNonce: second.nonce });
    expect(tokens.claims()?.sub).toBe('alice');
  });

  it('refreshes with rotation and revokes', async () => {
    const req = await authRequest(config, cb.redirectUri, op.scopes.join(' '), { resource });
    const result = await authorize(req.url.href, 'alice');
    const tokens = await client.authorizationCodeGrant(config, new URL(result.finalUrl), { pkceCodeVerifier: req.verifier, expectedState: req.state, expectedNonce: req.nonce });
    const rt1 = tokens.refresh_token ?? '';

    const refreshed = await client.refreshTokenGrant(config, rt1, { resource });
    const rt2 = refreshed.refresh_token ?? '';
    expect(rt2).not.toBe('');
    expect(rt2).not.toBe(rt1);
    expect(decodeJwt(refreshed.access_token)).toMatchObject({ sub: 'alice', aud: 'hoop', groups: ['dba', 'dev'] });
    expect(refreshed.claims()?.sub).toBe('alice');

    // JWT access tokens cannot be revoked (RFC 7009 §2.2.1 lets the server say so).
    await expect(client.tokenRevocation(config, refreshed.access_token, { token_type_hint: 'access_token' })).rejects.toMatchObject({ error: 'unsupported_token_type' });

    await client.tokenRevocation(config, rt2, { token_type_hint: 'refresh_token' });
    expect(op.revocations.at(-1)).toEqual({ kind: 'RefreshToken', accountId: 'alice', clientId: 'hoop-cli' });
    await expect(client.refreshTokenGrant(config, rt2)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it("revokes a user behind the client's back", async () => {
    const req = await authRequest(config, cb.redirectUri, op.scopes.join(' '));
    const result = await authorize(req.url.href, 'erin');
    const tokens = await client.authorizationCodeGrant(config, new URL(result.finalUrl), { pkceCodeVerifier: req.verifier, expectedState: req.state, expectedNonce: req.nonce });
    expect(op.revokeTokens('erin')).toBeGreaterThan(0);
    await expect(client.refreshTokenGrant(config, tokens.refresh_token ?? '')).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  it('device grant: pending, slow_down when polled too fast, then tokens once the user approves', async () => {
    const da = await client.initiateDeviceAuthorization(config, { scope: op.scopes.join(' '), resource });
    expect(da.interval).toBe(1);
    expect(da.verification_uri).toBe(`${op.issuer}/device`);
    expect(da.user_code).toMatch(/^[A-Z]{4}-[A-Z]{4}$/);

    const poll = async (): Promise<string | undefined> => {
      const res = await fetch(config.serverMetadata().token_endpoint ?? '', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: da.device_code, client_id: op.clientId }),
      });
      return ((await res.json()) as { error?: string }).error;
    };
    expect(await poll()).toBe('authorization_pending');
    expect(await poll()).toBe('slow_down');

    await expect(approveDevice(da.verification_uri, 'BCDF-GHJK', 'bob')).rejects.toThrow(/incorrect/);

    // The device grant's interval (1 s) before the next poll, as a well-behaved client waits.
    await pace(1000);
    const polling = client.pollDeviceAuthorizationGrant(config, da);
    await approveDevice(da.verification_uri, da.user_code, 'alice');
    const tokens = await polling;
    expect(decodeJwt(tokens.access_token)).toMatchObject({ sub: 'alice', aud: 'hoop', groups: ['dba', 'dev'] });
    expect(tokens.claims()).toMatchObject({ sub: 'alice', aud: 'hoop-cli', email: 'alice@example.com' });
    expect(typeof tokens.refresh_token).toBe('string');

    // A used user code cannot be approved again.
    await expect(approveDevice(da.verification_uri, da.user_code, 'bob')).rejects.toThrow();
  });

  it('device grant: openid-client backs off on slow_down and still succeeds', async () => {
    const da = await client.initiateDeviceAuthorization(config, { scope: 'openid' });
    // Pretend the provider asked for 0.2 s: the second poll is too fast for its 1 s, gets
    // slow_down, and openid-client adds 5 s before the next one.
    const started = Date.now();
    const slowDowns = op.slowDowns;
    const polling = client.pollDeviceAuthorizationGrant(config, { ...da, interval: 0.2 });
    const approved = (async () => {
      // Approves only once openid-client has polled too fast (at 0.2 s and 0.4 s) and been told slow_down.
      await eventually(() => expect(op.slowDowns).toBeGreaterThan(slowDowns), { timeout: 60_000, interval: 20 });
      await approveDevice(da.verification_uri, da.user_code, 'carol');
    })();
    const [tokens] = await Promise.all([polling, approved]);
    expect(decodeJwt(tokens.access_token).sub).toBe('carol');
    expect(Date.now() - started).toBeGreaterThanOrEqual(5000);
  });

  it('honours short lifetimes', async () => {
    const short = await startOidc({ audience: 'hoop', accessTokenTTL: 2, refreshTokenTTL: 4, idTokenTTL: 3 });
    try {
      const cfg = await client.discovery(new URL(short.issuer), short.clientId, undefined, client.None(), insecure);
      const req = await authRequest(cfg, cb.redirectUri, short.scopes.join(' '));
      const result = await authorize(req.url.href, 'dana');
      const tokens = await client.authorizationCodeGrant(cfg, new URL(result.finalUrl), { pkceCodeVerifier: req.verifier, expectedState: req.state, expectedNonce: req.nonce });
      expect(tokens.expires_in).toBe(2);
      const at = decodeJwt(tokens.access_token);
      expect((at.exp ?? 0) - (at.iat ?? 0)).toBe(2);
      const id = tokens.claims();
      expect((id?.exp ?? 0) - (id?.iat ?? 0)).toBe(3);

      short.lifetimes.accessToken = 7;
      const refreshed = await client.refreshTokenGrant(cfg, tokens.refresh_token ?? '');
      expect(refreshed.expires_in).toBe(7);

      // Past the refresh token's lifetime (4 s), on the test's clock (the provider runs in this process and reads Date; timers and sockets are real).
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(Date.now() + 4100);
      await expect(client.refreshTokenGrant(cfg, refreshed.refresh_token ?? '')).rejects.toMatchObject({ error: 'invalid_grant' });
    } finally {
      vi.useRealTimers();
      await short.close();
    }
  });

  it('still issues client_credentials tokens for a named subject', async () => {
    const token = await op.token({ subject: 'svc', groups: ['ops'], expiresInSeconds: 60 });
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({ sub: 'svc', aud: 'hoop', groups: ['ops'] });
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(60);
  });
});

describe('workload issuer', () => {
  let wl: WorkloadIssuer;

  beforeAll(async () => {
    wl = await startWorkloadIssuer();
  });
  afterAll(async () => {
    await wl?.close();
  });

  it('is OIDC-discoverable and its tokens verify against its JWKS', async () => {
    const cfg = await client.discovery(new URL(wl.issuer), 'unused', undefined, client.None(), insecure);
    const meta = cfg.serverMetadata();
    expect(meta.issuer).toBe(wl.issuer);
    const token = await wl.token({ aud: 'hoop', sub: 'system:serviceaccount:ci:deployer', 'kubernetes.io': { namespace: 'ci' } });
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'RS256', typ: 'JWT', kid: wl.kid });
    const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(meta.jwks_uri ?? '')), { issuer: wl.issuer, audience: 'hoop', typ: 'JWT' });
    expect(payload).toMatchObject({ sub: 'system:serviceaccount:ci:deployer', 'kubernetes.io': { namespace: 'ci' } });
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(300);
  });

  it('makes expired tokens on request', async () => {
    const token = await wl.token({ aud: 'hoop', sub: 'x' }, { expiresInSeconds: -120 });
    const claims = decodeJwt(token);
    expect(claims.exp ?? Infinity).toBeLessThan(Date.now() / 1000 - 100);
    await expect(jwtVerify(token, createRemoteJWKSet(new URL(`${wl.issuer}/.well-known/jwks.json`)))).rejects.toThrow(/exp/);
  });

  it('fakes the GitHub Actions ID token endpoint', async () => {
    const gh = wl.githubActionsEndpoint();
    expect(wl.githubActionsEndpoint()).toEqual(gh);
    const url = new URL(gh.url);
    url.searchParams.set('audience', 'hoop-ci');

    expect((await fetch(url)).status).toBe(401);
    expect((await fetch(url, { headers: { authorization: 'bearer wrong' } })).status).toBe(401);

    const res = await fetch(url, { headers: { authorization: `bearer ${gh.bearer}` } });
    expect(res.status).toBe(200);
    const { value } = (await res.json()) as { value: string };
    const { payload } = await jwtVerify(value, createRemoteJWKSet(new URL(`${wl.issuer}/.well-known/jwks.json`)), { issuer: wl.issuer, audience: 'hoop-ci' });
    expect(payload).toMatchObject({
      sub: 'repo:acme/api:environment:production',
      repository: 'acme/api',
      ref: 'refs/heads/main',
      environment: 'production',
    });

    wl.githubClaims.ref = 'refs/heads/feature';
    delete wl.githubClaims.environment;
    const again = await fetch(url, { headers: { authorization: `Bearer ${gh.bearer}` } });
    const claims = decodeJwt(((await again.json()) as { value: string }).value);
    expect(claims).toMatchObject({ sub: 'repo:acme/api:ref:refs/heads/feature', ref: 'refs/heads/feature' });
    expect(wl.hits.get('/github/token')).toBe(4);
  });
});
