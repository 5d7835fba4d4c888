/**
 * Device keys, which token is presented to the gateway, when it is renewed, workload source
 * detection, and the providers' renewal loop (with real files as the workload source).
 */
import { createHash, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createDeviceKey, deviceFingerprint, isValidDeviceKey, rawPublicKey } from '../../src/auth/device-key.js';
import { issuerUrl, jwtExpiry, presentedToken, secretsFromTokenResponse } from '../../src/auth/oidc.js';
import { renewalTime, resolveTokenProvider, RENEW_LEAD_MS } from '../../src/auth/token-provider.js';
import { detectWorkload } from '../../src/auth/workload.js';
import { ErrorCode, HoopError } from '../../src/errors.js';
import { eventually } from '../harness/wait.js';
import { HeldClock } from '../harness/held-clock.js';

const { privateKey: jwtKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });

async function jwt(claims: Record<string, unknown>, expiresInSeconds: number, typ = 'JWT'): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', typ })
    .setIssuedAt(now)
    .setExpirationTime(now + expiresInSeconds)
    .sign(jwtKey);
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hoop-auth-tokens-'));
});
afterEach(async () => {
  vi.useRealTimers();
  await rm(dir, { recursive: true, force: true });
});

describe('device key', () => {
  it('is an Ed25519 pair whose fingerprint is SHA256 of the raw key, unpadded base64', () => {
    const pair = createDeviceKey();
    expect(isValidDeviceKey(pair)).toBe(true);
    const raw = rawPublicKey(pair.publicKey);
    expect(raw).toHaveLength(32);
    expect(createPublicKey(pair.publicKey).export({ format: 'der', type: 'spki' }).subarray(-32)).toEqual(raw);
    const expected = `SHA256:${createHash('sha256').update(raw).digest('base64').replace(/=+$/, '')}`;
    expect(deviceFingerprint(pair.publicKey)).toBe(expected);
    expect(deviceFingerprint(pair.publicKey)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    const signature = sign(null, Buffer.from('chunk'), pair.privateKey);
    expect(verify(null, Buffer.from('chunk'), pair.publicKey, signature)).toBe(true);
  });

  it('refuses halves that do not belong together', () => {
    const a = createDeviceKey();
    const b = createDeviceKey();
    expect(isValidDeviceKey({ privateKey: a.privateKey, publicKey: b.publicKey })).toBe(false);
    expect(isValidDeviceKey({ privateKey: 'junk', publicKey: a.publicKey })).toBe(false);
    expect(isValidDeviceKey(undefined)).toBe(false);
  });
});

describe('tokens', () => {
  it('allows plain http only to a loopback issuer', () => {
    expect(issuerUrl('http://127.0.0.1:4000').insecure).toBe(true);
    expect(issuerUrl('https://idp.example.com').insecure).toBe(false);
    expect(() => issuerUrl('http://idp.example.com')).toThrow(/must use https/);
    expect(() => issuerUrl('ftp://idp')).toThrow(HoopError);
  });

  it('keeps the refresh token when the provider does not rotate it, takes the new one when it does', () => {
    const now = new Date('2030-01-01T00:00:00Z');
    const first = secretsFromTokenResponse({ access_token: 'a1', refresh_token: 'r1', token_type: 'bearer', expires_in: 60 }, now, { deviceKey: { privateKey: 'p', publicKey: 'q' } });
    expect(first).toMatchObject({ accessToken: 'a1', refreshToken: 'r1', accessTokenExpiresAt: '2030-01-01T00:01:00.000Z', deviceKey: { privateKey: 'p' } });
    const kept = secretsFromTokenResponse({ access_token: 'a2', token_type: 'bearer' }, now, first);
    expect(kept.refreshToken).toBe('r1');
    expect(kept.accessTokenExpiresAt).toBeUndefined();
    const rotated = secretsFromTokenResponse({ access_token: 'a3', refresh_token: 'r2', token_type: 'bearer' }, now, first);
    expect(rotated.refreshToken).toBe('r2');
  });

  it('presents the token the gateway wants', async () => {
    const access = await jwt({ sub: 'a' }, 300, 'at+jwt');
    const id = await jwt({ sub: 'a' }, 600);
    const both = { accessToken: access, idToken: id };
    expect(presentedToken(both, 'access')?.token).toBe(access);
    expect(presentedToken(both, 'id')?.token).toBe(id);
    expect(presentedToken(both, 'any')?.token).toBe(access);
    expect(presentedToken({ accessToken: 'opaque-token', idToken: id }, 'any')?.token).toBe(id);
    expect(presentedToken({ idToken: id }, 'access')).toBeUndefined();
    expect(presentedToken(both, 'id')?.expiresAt?.getTime()).toBe(jwtExpiry(id)?.getTime());
    expect(presentedToken({ accessToken: 'opaque', accessTokenExpiresAt: '2030-01-01T00:00:00Z' }, 'access')?.expiresAt?.toISOString()).toBe('2030-01-01T00:00:00.000Z');
  });

  it('renews 60 s ahead, or at half-life for short tokens', () => {
    const exp = new Date('2030-01-01T01:00:00Z');
    expect(renewalTime(exp, new Date('2030-01-01T00:00:00Z')).getTime()).toBe(exp.getTime() - RENEW_LEAD_MS);
    expect(renewalTime(exp, new Date(exp.getTime() - 20_000)).getTime()).toBe(exp.getTime() - 10_000);
    expect(renewalTime(exp, undefined).getTime()).toBe(exp.getTime() - RENEW_LEAD_MS);
  });
});

describe('workload detection', () => {
  const none = (): boolean => false;
  it('follows the documented order', () => {
    const github = { ACTIONS_ID_TOKEN_REQUEST_URL: 'https://x/?a=1', ACTIONS_ID_TOKEN_REQUEST_TOKEN: 't' };
    expect(detectWorkload({ env: { HOOP_ID_TOKEN: 'x', ...github }, cwd: '/w', idTokenFile: 'tok' })).toEqual({ kind: 'file', path: '/w/tok' });
    expect(detectWorkload({ env: { HOOP_ID_TOKEN: 'x', HOOP_ID_TOKEN_FILE: 'f', ...github }, cwd: '/w' })).toEqual({ kind: 'env', variable: 'HOOP_ID_TOKEN' });
    expect(detectWorkload({ env: { HOOP_ID_TOKEN_FILE: 'f', ...github }, cwd: '/w' })).toEqual({ kind: 'file', path: '/w/f' });
    expect(detectWorkload({ env: { ...github, HOOP_K8S_TOKEN_FILE: '/k' }, cwd: '/w' })).toEqual({ kind: 'github' });
    expect(detectWorkload({ env: { ACTIONS_ID_TOKEN_REQUEST_URL: 'https://x' }, cwd: '/w', exists: none })).toBeUndefined();
    expect(detectWorkload({ env: { HOOP_K8S_TOKEN_FILE: '/k' }, cwd: '/w' })).toEqual({ kind: 'kubernetes', path: '/k' });
    expect(detectWorkload({ env: {}, cwd: '/w', exists: (p) => p === '/var/run/secrets/kubernetes.io/serviceaccount/token' })).toEqual({
      kind: 'kubernetes',
      path: '/var/run/secrets/kubernetes.io/serviceaccount/token',
    });
    expect(detectWorkload({ env: {}, cwd: '/w', exists: none })).toBeUndefined();
  });
});

describe('resolveTokenProvider', () => {
  const base = (): { env: NodeJS.ProcessEnv; cwd: string } => ({ env: { HOOP_CONFIG_DIR: join(dir, 'conf') }, cwd: dir });

  it('uses HOOP_TOKEN as is, without renewal, and --token-file before it', async () => {
    const clock = new HeldClock();
    const token = await jwt({ sub: 'x' }, 2);
    await writeFile(join(dir, 'tok'), `${token}\n`);
    const fromEnv = await resolveTokenProvider({ ...base(), env: { ...base().env, HOOP_TOKEN: 'env-token' }, gateway: 'https://gw.example' });
    expect(fromEnv.source).toBe('env');
    expect((await fromEnv.current()).token).toBe('env-token');
    const fromFile = await resolveTokenProvider({ ...base(), env: { ...base().env, HOOP_TOKEN: 'env-token' }, gateway: 'https://gw.example', tokenFile: 'tok', clock });
    expect(fromFile.source).toBe('file');
    expect((await fromFile.current()).token).toBe(token);
    let renewed = 0;
    fromFile.onRenewed(() => renewed++);
    // Nothing renews a token given as is: no timer is armed for it, however long one waits.
    expect(clock.pending).toBe(0);
    expect(renewed).toBe(0);
    expect((await fromFile.current()).token).toBe(token);
    fromFile.close();
  });

  it('says what is missing: no gateway, or no login for the gateway', async () => {
    const noGateway = await resolveTokenProvider({ ...base(), env: { ...base().env, HOOP_TOKEN: 't' } }).catch((e: unknown) => e);
    expect((noGateway as HoopError).code).toBe(ErrorCode.USAGE);
    expect((noGateway as HoopError).hint).toContain('--gateway');
    const nothing = await resolveTokenProvider({ ...base() }).catch((e: unknown) => e);
    expect((nothing as HoopError).code).toBe(ErrorCode.NOT_LOGGED_IN);
    expect((nothing as HoopError).hint).toContain('hoop login --gateway');
    const notLoggedIn = await resolveTokenProvider({ ...base(), gateway: 'https://gw.example' }).catch((e: unknown) => e);
    expect((notLoggedIn as HoopError).code).toBe(ErrorCode.NOT_LOGGED_IN);
    expect((notLoggedIn as HoopError).exitCode).toBe(77);
    expect((notLoggedIn as HoopError).hint).toContain('hoop login --gateway https://gw.example');
  });

  it('re-reads a workload token file ahead of expiry and reports a renewal that cannot happen once', async () => {
    // The provider's clock is the test's: renewals run when the test moves its time; file reads are real.
    const clock = new HeldClock();
    const file = join(dir, 'id-token');
    const first = await jwt({ sub: 'ci' }, 4);
    await writeFile(file, first);
    const provider = await resolveTokenProvider({ ...base(), env: { ...base().env, HOOP_ID_TOKEN_FILE: file }, gateway: 'https://gw.example', clock });
    expect(provider.source).toBe('workload');
    expect((await provider.current()).token).toBe(first);
    const renewed: string[] = [];
    const failures: HoopError[] = [];
    provider.onRenewed((g) => renewed.push(g.token));
    provider.onRenewFailed((e) => failures.push(e));
    expect(clock.pending).toBe(1); // the renewal, armed (a token given as is has none: above)
    const second = await jwt({ sub: 'ci', n: 2 }, 4);
    const secondExpires = jwtExpiry(second)!.getTime();
    await writeFile(file, second);
    // Half-life of a 4 s token: renewed 2 s in.
    clock.advance(2_000);
    await eventually(() => expect(renewed).toEqual([second]), { timeout: 60_000 });
    // The file is never rotated again: one failure message (at the second token's half-life, its file read real I/O) ...
    await eventually(
      () => {
        clock.advance(100);
        expect(failures).toHaveLength(1);
      },
      { timeout: 60_000 },
    );
    // ... however many retries, until the second token expires and the retries stop.
    while (!(clock.now() > secondExpires && clock.pending === 0)) {
      clock.advance(250);
      await new Promise((r) => setImmediate(r)); // a retry's file read is real I/O
    }
    expect(failures).toHaveLength(1);
    expect(failures[0]!.message).toContain('no fresher token');
    provider.close();
  });
});
