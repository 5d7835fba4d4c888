/**
 * The gateway's identity features against real parts: an OpenID provider (oidc-provider) for
 * people, a second one whose key signs workload (CI) tokens, the gateway over HTTP and over TLS
 * with a PostgreSQL cluster behind it.
 *
 * - `GET /v1/auth/config`, `GET /v1/whoami`, `POST/GET /v1/devices` (validation, isolation between
 *   identities, concurrency, persistence across a restart);
 * - sessions live as long as their token: one whose token expires is ended with SQLSTATE 28000
 *   while another goes on; a `token` control message renews it past the old expiry; a renewal
 *   with another identity's token ends it; the error always comes after a whole server message.
 */
import { signDeviceProof } from '../../src/device-proof.js';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadGatewayConfig } from '../../src/gateway/config/config.js';
import { startGateway, type Gateway } from '../../src/gateway/server.js';
import { silentLogger } from '../../src/log.js';
import type { TunnelChannel } from '../../src/tunnel/channel.js';
import type { ControlMessage } from '../../src/tunnel/frames.js';
import { query, terminate } from '../../src/postgres/wire/messages.js';
import { openTunnel, type TunnelRefusedError } from '../../src/tunnel/transport.js';
import { startOidc, type TestOidc } from '../harness/oidc.js';
import { RawFrontend } from '../harness/raw-pg.js';
import { startStack, type HoopStack } from '../harness/stack.js';
import { HeldClock } from '../harness/held-clock.js';
import { eventually, poll } from '../harness/wait.js';
import { newKeyPair } from '../../src/key-pair.js';

describe('HTTP API: auth config, whoami, devices', () => {
  let op: TestOidc;
  let ci: TestOidc;
  let dir: string;
  let configFile: string;
  let gateway: Gateway;

  const yaml = (login: boolean): string => `listen: 127.0.0.1:0
dataDir: ./state
${login ? `login:\n  issuer: ${op.issuer}\n  clientId: hoop-cli\n  resource: urn:hoop-test:gateway\n` : ''}issuers:
  - issuer: ${op.issuer}
    audience: hoop-test
    tokenType: access
  - issuer: ${ci.issuer}
    audience: [hoop-ci, other]
    kind: workload
    tokenType: id
    rules:
      - claims: { repository: acme/api, ref: "refs/heads/*" }
        groups: [deployers]
        subject: "ci:{repository}"
      - claims: { repository_owner: acme }
        groups: [acme-ci]
`;

  async function start(text: string): Promise<Gateway> {
    await writeFile(configFile, text);
    return startGateway({ config: await loadGatewayConfig(configFile, {}), log: silentLogger, insecureDevHttp: true, env: {} });
  }

  async function api(path: string, init: { token?: string; method?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {}) {
    const headers: Record<string, string> = { ...(init.token ? { authorization: `Bearer ${init.token}` } : {}), ...init.headers };
    let body: string | undefined = init.raw;
    if (init.body !== undefined) {
      body = JSON.stringify(init.body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await fetch(`${gateway.url}${path}`, { method: init.method ?? (body === undefined ? 'GET' : 'POST'), headers, ...(body !== undefined ? { body } : {}) });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : undefined) as Record<string, any> };
  }

  function workloadToken(claims: JWTPayload): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ iss: ci.issuer, aud: 'hoop-ci', iat: now, exp: now + 300, sub: 'repo:acme/api:ref:refs/heads/main', ...claims })
      .setProtectedHeader({ alg: 'RS256', kid: ci.signingKey.kid, typ: 'JWT' })
      .sign(ci.signingKey.privateKey);
  }

  /** A registration body for `key`, with its proof of possession for `token`. */
  function device(token: string, key: { pem: string; privatePem: string }, name: string, publicKey = key.pem): Record<string, unknown> {
    return { publicKey, name, proof: signDeviceProof(key.privatePem, key.pem, token) };
  }

  function ed25519(): { pem: string; fingerprint: string; privatePem: string } {
    const { publicKey, privateKey } = newKeyPair('ed25519');
    const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url');
    return {
      pem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      fingerprint: `SHA256:${createHash('sha256').update(raw).digest('base64').replace(/=+$/, '')}`,
      privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    };
  }

  beforeAll(async () => {
    [op, ci] = await Promise.all([startOidc({ audience: 'hoop-test' }), startOidc({ audience: 'hoop-ci' })]);
    dir = await mkdtemp(join(tmpdir(), 'hoop-identity-'));
    configFile = join(dir, 'gateway.yaml');
    gateway = await start(yaml(true));
  });

  afterAll(async () => {
    await gateway?.close();
    await Promise.all([op?.close(), ci?.close()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('GET /v1/auth/config tells the CLI how to log in, without a token', async () => {
    const r = await api('/v1/auth/config');
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      issuer: op.issuer,
      clientId: 'hoop-cli',
      scopes: ['openid', 'profile', 'email', 'offline_access'],
      resource: 'urn:hoop-test:gateway',
      tokenType: 'access',
      workloadAudience: 'hoop-ci',
    });
    expect(r.headers.get('cache-control')).toBe('no-store');
    expect((await api('/v1/auth/config', { method: 'POST', body: {} })).status).toBe(405);
  });

  it('GET /v1/auth/config is 404 with HOOP_USAGE when no login is configured', async () => {
    const other = await start(yaml(false).replace('./state', './state-nologin'));
    try {
      const res = await fetch(`${other.url}/v1/auth/config`);
      expect(res.status).toBe(404);
      const body = (await res.json()) as { error: { code: string; message: string; hint: string } };
      expect(body.error).toMatchObject({ code: 'HOOP_USAGE', message: 'this gateway has no login configured' });
      expect(body.error.hint).toBeTruthy();
    } finally {
      await other.close();
    }
  });

  it('GET /v1/whoami: a person', async () => {
    const token = await op.token({ subject: 'alice', groups: ['dba'], email: 'alice@example.com', expiresInSeconds: 300 });
    const before = Date.now();
    const r = await api('/v1/whoami', { token });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ subject: 'alice', issuer: op.issuer, kind: 'user', email: 'alice@example.com', groups: ['dba'] });
    expect(Object.keys(r.body).sort()).toEqual(['email', 'expiresAt', 'groups', 'issuer', 'kind', 'subject']);
    const expires = Date.parse(r.body.expiresAt as string);
    expect(expires).toBeGreaterThan(before + 290_000);
    expect(expires).toBeLessThan(before + 310_000);
  });

  it('GET /v1/whoami: a workload, mapped by the rules (subject template, union of groups)', async () => {
    const r = await api('/v1/whoami', { token: await workloadToken({ repository: 'acme/api', repository_owner: 'acme', ref: 'refs/heads/main' }) });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ subject: 'ci:acme/api', issuer: ci.issuer, kind: 'workload', groups: ['deployers', 'acme-ci'] });
    expect(r.body).not.toHaveProperty('email');
    const other = await api('/v1/whoami', { token: await workloadToken({ repository: 'acme/web', repository_owner: 'acme', ref: 'refs/heads/main' }) });
    expect(other.body).toMatchObject({ subject: 'repo:acme/api:ref:refs/heads/main', groups: ['acme-ci'] });
  });

  it('GET /v1/whoami: 401 with the reason for no token, a wrong token type, a workload no rule admits', async () => {
    const cases: Array<[string | undefined, string]> = [
      [undefined, 'missing'],
      [await workloadToken({ repository: 'evil/api', repository_owner: 'evil', ref: 'refs/heads/main' }), 'no-matching-rule'],
      [
        await new SignJWT({ iss: op.issuer, aud: 'hoop-test', sub: 'alice', iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 60 })
          .setProtectedHeader({ alg: 'RS256', kid: op.signingKey.kid, typ: 'JWT' })
          .sign(op.signingKey.privateKey),
        'wrong-token-type',
      ],
    ];
    for (const [token, reason] of cases) {
      const r = await api('/v1/whoami', token ? { token } : {});
      expect(r.status, reason).toBe(401);
      expect(r.body.error).toMatchObject({ code: 'HOOP_TOKEN_REJECTED', reason });
      expect(r.headers.get('www-authenticate')).toContain(`error_description="${reason}"`);
      if (token) expect(JSON.stringify(r.body)).not.toContain(token);
    }
  });

  describe('devices', () => {
    let alice: string;
    let bob: string;

    beforeAll(async () => {
      [alice, bob] = await Promise.all([op.token({ subject: 'alice' }), op.token({ subject: 'bob' })]);
    });

    it('registers an Ed25519 public key: 201 with its id and OpenSSH-style fingerprint; idempotent', async () => {
      const key = ed25519();
      const first = await api('/v1/devices', { token: alice, body: device(alice, key, 'alice-laptop') });
      expect(first.status).toBe(201);
      expect(first.body).toEqual({ deviceId: expect.any(String), fingerprint: key.fingerprint });
      expect(key.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
      const again = await api('/v1/devices', { token: alice, body: device(alice, key, 'renamed', key.pem.replace(/\n/g, '\r\n')) });
      expect(again.status).toBe(200);
      expect(again.body).toEqual(first.body);
      const list = await api('/v1/devices', { token: alice });
      expect(list.status).toBe(200);
      const mine = (list.body.devices as Array<Record<string, string>>).find((d) => d.deviceId === first.body.deviceId);
      expect(mine).toEqual({ deviceId: first.body.deviceId, name: 'alice-laptop', fingerprint: key.fingerprint, publicKey: key.pem, createdAt: expect.any(String) });
      expect(Number.isNaN(Date.parse(mine!.createdAt!))).toBe(false);
    });

    it("lists only the caller's devices", async () => {
      const key = ed25519();
      const bobs = await api('/v1/devices', { token: bob, body: device(bob, key, 'bob-desktop') });
      expect(bobs.status).toBe(201);
      const aliceList = (await api('/v1/devices', { token: alice })).body.devices as Array<{ deviceId: string; name: string }>;
      expect(aliceList.length).toBeGreaterThan(0);
      expect(aliceList.map((d) => d.deviceId)).not.toContain(bobs.body.deviceId);
      expect(aliceList.map((d) => d.name)).not.toContain('bob-desktop');
      const bobList = (await api('/v1/devices', { token: bob })).body.devices as Array<{ deviceId: string }>;
      expect(bobList.map((d) => d.deviceId)).toEqual([bobs.body.deviceId]);
      // The same public key under another identity is that identity's own device.
      const shared = await api('/v1/devices', { token: alice, body: device(alice, key, 'shared') });
      expect(shared.status).toBe(201);
      expect(shared.body.deviceId).not.toBe(bobs.body.deviceId);
    });

    it('refuses what is not an Ed25519 public key, with a clear 400', async () => {
      const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
      const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
      const key = ed25519();
      const cases: Array<[unknown, RegExp]> = [
        [rsa, /is a rsa key; device keys must be Ed25519/],
        [ec, /is an ec key; device keys must be Ed25519/],
        [key.privatePem, /holds a private key/],
        [`${key.pem}${key.pem}`, /exactly one PEM block/],
        ['-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----', /not a valid PEM public key/],
        ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFFE alice@host', /exactly one PEM block/],
        [42, /must be a PEM string/],
        [undefined, /must be a PEM string/],
        ['x'.repeat(2000), /longer than 1024/],
      ];
      for (const [publicKey, message] of cases) {
        const r = await api('/v1/devices', { token: alice, body: { publicKey, name: 'n' } });
        expect(r.status, String(message)).toBe(400);
        expect(r.body.error.code).toBe('HOOP_USAGE');
        expect(r.body.error.message).toMatch(message);
        expect(r.body.error.hint).toContain('Ed25519');
      }
      expect(JSON.stringify(await api('/v1/devices', { token: alice, body: { publicKey: key.privatePem, name: 'n' } }))).not.toContain('PRIVATE KEY-----\nMC');
      for (const name of [undefined, '', ' ', 'x'.repeat(129), 'a\u0007b', 'a\u202eb']) {
        const r = await api('/v1/devices', { token: alice, body: { publicKey: key.pem, name } });
        expect(r.status, JSON.stringify(name)).toBe(400);
        expect(r.body.error.message).toMatch(/^name /);
      }
    });

    it('registers a key only with proof of possession of its private half, for this token, now', async () => {
      const key = ed25519();
      const other = ed25519();
      const missing = await api('/v1/devices', { token: alice, body: { publicKey: key.pem, name: 'n' } });
      expect(missing.status).toBe(400);
      expect(missing.body.error.message).toMatch(/proof of possession was refused: the request must carry proof/);
      const cases: Array<[unknown, RegExp]> = [
        [signDeviceProof(other.privatePem, key.pem, alice), /does not verify/],
        [signDeviceProof(key.privatePem, key.pem, bob), /does not verify/],
        [signDeviceProof(key.privatePem, key.pem, alice, new Date(Date.now() - 10 * 60_000)), /more than 5 minutes/],
        [{ signedAt: 'yesterday', signature: 'AAAA' }, /ISO 8601/],
        [{ signedAt: new Date().toISOString() }, /must be strings/],
      ];
      for (const [proof, message] of cases) {
        const r = await api('/v1/devices', { token: alice, body: { publicKey: key.pem, name: 'n', proof } });
        expect(r.status, String(message)).toBe(400);
        expect(r.body.error.message).toMatch(message);
      }
      expect((await api('/v1/devices', { token: alice })).body.devices).not.toContainEqual(expect.objectContaining({ publicKey: key.pem }));
      expect((await api('/v1/devices', { token: alice, body: device(alice, key, 'n') })).status).toBe(201);
    });

    it('refuses bodies that are too large, not JSON, or not an object; other methods; no token', async () => {
      const huge = await api('/v1/devices', { token: alice, raw: JSON.stringify({ publicKey: 'x'.repeat(20_000), name: 'n' }), headers: { 'content-type': 'application/json' } });
      expect(huge.status).toBe(413);
      expect(huge.body.error.message).toContain('16384 bytes');
      expect((await api('/v1/devices', { token: alice, raw: '{"publicKey":', headers: { 'content-type': 'application/json' } })).status).toBe(400);
      expect((await api('/v1/devices', { token: alice, body: ['a'] })).status).toBe(400);
      expect((await api('/v1/devices', { token: alice, raw: 'publicKey=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } })).status).toBe(415);
      const put = await api('/v1/devices', { token: alice, method: 'PUT', body: {} });
      expect(put.status).toBe(405);
      expect(put.headers.get('allow')).toBe('GET, POST');
      const anonymous = await api('/v1/devices', { body: { publicKey: ed25519().pem, name: 'n' } });
      expect(anonymous.status).toBe(401);
      expect((await api('/v1/devices')).status).toBe(401);
    });

    it('concurrent registrations all persist, in a 0600 file in a 0700 directory, across a restart', async () => {
      const carol = await op.token({ subject: 'carol' });
      const keys = Array.from({ length: 25 }, () => ed25519());
      const results = await Promise.all(keys.map((k, i) => api('/v1/devices', { token: carol, body: device(carol, k, `runner-${i}`) })));
      expect(results.map((r) => r.status)).toEqual(keys.map(() => 201));
      const listed = (await api('/v1/devices', { token: carol })).body.devices as Array<{ fingerprint: string }>;
      expect(listed.map((d) => d.fingerprint).sort()).toEqual(keys.map((k) => k.fingerprint).sort());

      const state = join(dir, 'state');
      expect((await stat(state)).mode & 0o777).toBe(0o700);
      expect((await stat(join(state, 'devices.json'))).mode & 0o777).toBe(0o600);
      const onDisk = JSON.parse(await readFile(join(state, 'devices.json'), 'utf8')) as { devices: Array<{ subject: string }> };
      expect(onDisk.devices.filter((d) => d.subject === 'carol')).toHaveLength(25);

      await gateway.close();
      gateway = await start(yaml(true));
      const after = (await api('/v1/devices', { token: carol })).body.devices as Array<{ fingerprint: string; name: string }>;
      expect(after.map((d) => d.fingerprint).sort()).toEqual(keys.map((k) => k.fingerprint).sort());
      expect(after.map((d) => d.name)).toContain('runner-7');
    });
  });
});

describe('sessions live as long as their token', () => {
  let stack: HoopStack;
  // The gateway's clock is held: a token expires when a test moves the clock past it, however busy the machine.
  const clock = new HeldClock();
  /** A token of `subject` that lives `seconds` on the gateway's clock (ahead of real time by what the tests moved it). */
  const tokenFor = (subject: string, seconds: number, groups?: string[]): Promise<string> =>
    stack.oidc.token({ subject, ...(groups ? { groups } : {}), expiresInSeconds: Math.ceil((clock.now() - Date.now()) / 1000) + seconds });
  /** The expiry a token says, in milliseconds. */
  const expOf = (token: string): number => (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp * 1000;

  beforeAll(async () => {
    stack = await startStack({ issuer: { clockToleranceSeconds: 0, tokenType: 'access' }, gateway: { clock } });
  });

  afterAll(async () => {
    await stack?.close();
  });

  interface Session {
    raw: RawFrontend;
    channel: TunnelChannel;
    controls: ControlMessage[];
    /** Resolves with the first control message of `type`. */
    control(type: string, timeoutMs?: number): Promise<ControlMessage>;
  }

  async function session(token: string, id = `s-${randomBytes(6).toString('hex')}`): Promise<Session> {
    const { channel } = await openTunnel({ gateway: stack.gateway.url, connection: 'app', token, sessionId: id, clientVersion: 'test', ca: stack.pki.ca });
    const controls: ControlMessage[] = [];
    channel.on('control', (m: ControlMessage) => controls.push(m));
    const raw = new RawFrontend(channel);
    await raw.startup('');
    return {
      raw,
      channel,
      controls,
      async control(type, timeoutMs = 30_000) {
        const found = await poll(() => controls.find((m) => m.type === type), { timeout: timeoutMs });
        if (!found) throw new Error(`no ${type} control message; got ${JSON.stringify(controls)}`);
        return found;
      },
    };
  }

  async function selectOne(s: Session): Promise<string> {
    s.raw.write(query('select 1 as one'));
    const row = await s.raw.waitFor('D');
    await s.raw.waitFor('Z');
    return row ? row.body.subarray(6).toString() : 'no row';
  }

  function logsOf(sessionId: string): Array<Record<string, unknown>> {
    return stack.logs().filter((l) => l.session === sessionId);
  }

  it('an expired token ends its session with 28000 and a message saying so, while another session goes on', async () => {
    const shortToken = await tokenFor('alice', 60);
    const exp = new Date(expOf(shortToken));
    const [short, long] = await Promise.all([session(shortToken, 'expiring-1'), session(await tokenFor('bob', 3600), 'lasting-1')]);
    expect(await selectOne(short)).toBe('1');

    clock.advance(exp.getTime() - clock.now() - 1_000);
    expect(await selectOne(short)).toBe('1');
    clock.advancePast(exp.getTime());
    const error = await short.raw.error(30_000);
    expect(error).toMatchObject({ severity: 'FATAL', code: '28000', message: `hoop: your token expired at ${exp.toISOString()}; the session is closed` });
    expect(error?.hint).toBe('run `hoop login` and connect again');
    expect(clock.now()).toBeGreaterThanOrEqual(exp.getTime());
    expect(await short.control('close')).toMatchObject({ type: 'close', reason: 'token-expired', message: error?.message, hint: error?.hint });
    expect(await short.raw.closed()).toBe(true);

    expect(await selectOne(long)).toBe('1');
    long.raw.write(terminate());

    await eventually(() => expect(logsOf('expiring-1').find((l) => l.event === 'tunnel.close')).toMatchObject({ reason: 'token-expired', subject: 'alice' }));
    expect(JSON.stringify(stack.logs())).not.toContain(shortToken.split('.')[2]);
  });

  it('a token control message renews the session past the old expiry', async () => {
    const shortToken = await tokenFor('alice', 60);
    const s = await session(shortToken, 'renewed-1');
    const fresh = await tokenFor('alice', 600, ['dba']);
    s.channel.sendControl({ type: 'token', token: fresh });
    const accepted = await s.control('token-accepted');
    expect(Date.parse(accepted.expiresAt as string)).toBeGreaterThan(clock.now() + 590_000);

    // A token that does not verify is refused; the session keeps the expiry it has.
    s.channel.sendControl({ type: 'token', token: 'not-a-token' });
    expect(await s.control('token-rejected')).toMatchObject({ reason: 'malformed' });

    // Past the first token's expiry: the session lives on the renewed one.
    clock.advancePast(expOf(shortToken));
    expect(await selectOne(s)).toBe('1');
    expect(s.controls.some((m) => m.type === 'close')).toBe(false);
    s.raw.write(terminate());
    expect(await s.raw.closed()).toBe(true);

    const logs = logsOf('renewed-1');
    expect(logs.find((l) => l.event === 'tunnel.token-renewed')).toMatchObject({ subject: 'alice', expiresAt: accepted.expiresAt });
    expect(logs.find((l) => l.event === 'tunnel.token-rejected')).toMatchObject({ reason: 'malformed' });
    expect(logs.find((l) => l.event === 'tunnel.close')).toMatchObject({ reason: 'client-terminated' });
    const text = JSON.stringify(stack.logs());
    expect(text).not.toContain(fresh.split('.')[2]);
    expect(text).not.toContain('not-a-token');
  });

  it('refuses tokens that are not JWT access tokens (typ at+jwt) when the issuer says tokenType: access, at the tunnel and in a renewal', async () => {
    const now = Math.floor(Date.now() / 1000);
    const signed = (typ: string | undefined): Promise<string> =>
      new SignJWT({ iss: stack.oidc.issuer, aud: 'hoop-test', sub: 'alice', iat: now, exp: now + 600 })
        .setProtectedHeader({ alg: 'RS256', kid: stack.oidc.signingKey.kid, ...(typ !== undefined ? { typ } : {}) })
        .sign(stack.oidc.signingKey.privateKey);
    for (const typ of ['JWT', undefined, ' at+jwt', 'at+jwt; x=1', 'application/jwt']) {
      const err = await openTunnel({
        gateway: stack.gateway.url,
        connection: 'app',
        token: await signed(typ),
        sessionId: `typ-${randomBytes(4).toString('hex')}`,
        clientVersion: 'test',
        ca: stack.pki.ca,
      }).then(
        () => undefined,
        (e: TunnelRefusedError) => e,
      );
      expect(err?.status, String(typ)).toBe(401);
      expect(err?.reason, String(typ)).toBe('wrong-token-type');
    }
    // A session opened with an access token cannot be renewed with an ID token: it ends at its own expiry.
    const short = await tokenFor('alice', 60);
    const s = await session(short, 'typ-renewal');
    s.channel.sendControl({ type: 'token', token: await signed('JWT') });
    expect(await s.control('token-rejected')).toMatchObject({ reason: 'wrong-token-type' });
    clock.advancePast(expOf(short));
    expect(await s.raw.error(30_000)).toMatchObject({ severity: 'FATAL', code: '28000' });
    expect(await s.control('close')).toMatchObject({ reason: 'token-expired' });
  });

  it("a renewal with another identity's token ends the session", async () => {
    const s = await session(await stack.oidc.token({ subject: 'alice' }), 'hijack-1');
    s.channel.sendControl({ type: 'token', token: await stack.oidc.token({ subject: 'bob' }) });
    const error = await s.raw.error(30_000);
    expect(error).toMatchObject({ severity: 'FATAL', code: '28000' });
    expect(error?.message).toContain('"bob"');
    expect(await s.control('close')).toMatchObject({ reason: 'identity-changed' });
    expect(await s.raw.closed()).toBe(true);
    await eventually(() => expect(logsOf('hijack-1').find((l) => l.event === 'tunnel.close')).toMatchObject({ reason: 'identity-changed', subject: 'alice' }));
  });

  it('a session whose token expires in the middle of a result gets whole messages, then the error', async () => {
    const token = await tokenFor('alice', 60);
    const s = await session(token, 'mid-result-1');
    // Rows of 1 MB, and a client that stops reading once the first has begun: the expiry finds the relay inside a row.
    s.raw.write(query("select repeat('x', 1000000) as big from generate_series(1, 100)"));
    await s.raw.waitFor('T');
    await poll(() => s.raw.raw.includes(Buffer.from([0x44, 0x00, 0x0f, 0x42])));
    s.channel.pause();
    clock.advancePast(expOf(token));
    s.channel.resume();
    const error = await s.raw.error(30_000);
    expect(error).toMatchObject({ severity: 'FATAL', code: '28000' });
    expect(error?.message).toContain('token expired');
    expect(await s.raw.closed()).toBe(true);
    // Everything the client got is whole messages, the error last.
    const types: string[] = [];
    const bytes = s.raw.raw;
    let at = 0;
    while (at + 5 <= bytes.length) {
      types.push(String.fromCharCode(bytes[at]!));
      at += 1 + bytes.readInt32BE(at + 1);
    }
    expect(at).toBe(bytes.length);
    expect(types.at(-1)).toBe('E');
    expect(new Set(types)).toEqual(new Set(['R', 'S', 'K', 'Z', 'T', 'D', 'E']));
    expect(types.filter((t) => t === 'D').length).toBeGreaterThan(0);
    await eventually(() => {
      expect(logsOf('mid-result-1').find((l) => l.event === 'tunnel.ending')).toMatchObject({ reason: 'token-expired', betweenMessages: false });
      expect(logsOf('mid-result-1').find((l) => l.event === 'tunnel.close')).toMatchObject({ reason: 'token-expired' });
    });
  });
});
