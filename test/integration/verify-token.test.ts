/**
 * Bearer-token verification against a real OpenID provider (oidc-provider on loopback): tokens
 * it issues are accepted; expired, early, mis-addressed, forged and tampered ones are refused
 * with the exact reason, and never echoed. Access and ID tokens are told apart as configured;
 * workload tokens are mapped by claim rules; keys rotate, are pinned to their algorithm, and an
 * issuer that is down is not asked again on every request.
 */
import { listenOnLoopback } from '../harness/listen.js';
import type { KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, exportSPKI, importJWK, type JWK, type JWTPayload } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ErrorCode } from '../../src/errors.js';
import type { IssuerConfig } from '../../src/gateway/config/config.js';
import { TokenRejectedError, TokenVerifier, type TokenRejection } from '../../src/gateway/identity/verify-token.js';
import { startOidc, type TestOidc } from '../harness/oidc.js';
import { newKeyPair } from '../../src/key-pair.js';

let op: TestOidc;
let other: TestOidc;

beforeAll(async () => {
  [op, other] = await Promise.all([startOidc(), startOidc({ audience: 'elsewhere' })]);
});

afterAll(async () => {
  await Promise.all([op?.close(), other?.close()]);
});

afterEach(() => {
  vi.useRealTimers();
});

function issuer(overrides: Partial<IssuerConfig> = {}): IssuerConfig {
  return {
    issuer: op.issuer,
    audience: ['hoop-test'],
    algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
    subjectClaim: 'sub',
    groupsClaim: 'groups',
    emailClaim: 'email',
    clockToleranceSeconds: 30,
    kind: 'user',
    tokenType: 'any',
    accessTokenTypes: ['at+jwt'],
    rules: [],
    ...overrides,
  };
}

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function claims(extra: JWTPayload = {}): JWTPayload {
  const now = Math.floor(Date.now() / 1000);
  return { iss: op.issuer, sub: 'mallory', aud: 'hoop-test', iat: now, exp: now + 600, groups: ['dba'], ...extra };
}

/** A token signed with the provider's own key, with claims the provider would not issue. */
function signedByProvider(payload: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: op.signingKey.kid, ...header }).sign(op.signingKey.privateKey);
}

async function rejection(verifier: TokenVerifier, token: string | undefined): Promise<TokenRejectedError> {
  const err = await verifier.verify(token).then(
    () => {
      throw new Error('expected the token to be rejected');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TokenRejectedError);
  const rejected = err as TokenRejectedError;
  expect(rejected.code).toBe(ErrorCode.TOKEN_REJECTED);
  expect(rejected.hint).toBeTruthy();
  if (token) {
    expect(rejected.message).not.toContain(token);
    expect(JSON.stringify(rejected.toJSON())).not.toContain(token);
    const signature = token.split('.')[2];
    if (signature && signature.length > 16) expect(JSON.stringify(rejected.toJSON())).not.toContain(signature);
  }
  return rejected;
}

async function reason(verifier: TokenVerifier, token: string | undefined): Promise<TokenRejection> {
  return (await rejection(verifier, token)).reason;
}

describe('tokens the provider issues', () => {
  it('give the identity with groups and email', async () => {
    const token = await op.token({ subject: 'alice', groups: ['dba', 'oncall'], email: 'alice@example.com' });
    const before = Date.now();
    const identity = await new TokenVerifier([issuer()]).verify(token);
    expect(identity).toMatchObject({ subject: 'alice', issuer: op.issuer, kind: 'user', email: 'alice@example.com', groups: ['dba', 'oncall'] });
    expect(identity.expiresAt.getTime()).toBeGreaterThan(before + 590_000);
    expect(identity.expiresAt.getTime()).toBeLessThan(before + 610_000);
    expect(identity.claims.aud).toBe('hoop-test');
  });

  it('give no groups and no email when the token has none', async () => {
    const identity = await new TokenVerifier([issuer()]).verify(await op.token({ subject: 'ci-bot' }));
    expect(identity.subject).toBe('ci-bot');
    expect(identity.groups).toEqual([]);
    expect(identity).not.toHaveProperty('email');
  });

  it('are accepted from any of several issuers, each with its audience', async () => {
    const verifier = new TokenVerifier([issuer(), issuer({ issuer: other.issuer, audience: ['elsewhere'] })]);
    expect((await verifier.verify(await op.token({ subject: 'a' }))).issuer).toBe(op.issuer);
    expect((await verifier.verify(await other.token({ subject: 'b' }))).issuer).toBe(other.issuer);
  });

  it('use the configured claim names, including a nested one', async () => {
    const token = await signedByProvider(claims({ uid: 'u-42', realm_access: { roles: ['admin'] }, mail: 'x@example.com' }));
    const identity = await new TokenVerifier([issuer({ subjectClaim: 'uid', groupsClaim: 'realm_access.roles', emailClaim: 'mail' })]).verify(token);
    expect(identity).toMatchObject({ subject: 'u-42', groups: ['admin'], email: 'x@example.com' });
  });

  it('drop an email the provider says is not verified', async () => {
    const token = await signedByProvider(claims({ email: 'spoof@example.com', email_verified: false }));
    expect(await new TokenVerifier([issuer()]).verify(token)).not.toHaveProperty('email');
  });
});

describe('rejections', () => {
  it('missing and malformed', async () => {
    const verifier = new TokenVerifier([issuer()]);
    expect(await reason(verifier, undefined)).toBe('missing');
    expect(await reason(verifier, '')).toBe('missing');
    expect(await reason(verifier, 'not-a-jwt')).toBe('malformed');
    expect(await reason(verifier, 'a.b.c')).toBe('malformed');
    expect(await reason(verifier, 'x'.repeat(20_000))).toBe('malformed');
    const token = await op.token({ subject: 'alice' });
    expect(await reason(verifier, `${token}.extra`)).toBe('malformed');
  });

  it("expired, by the verifier's clock", async () => {
    const token = await op.token({ subject: 'alice', expiresInSeconds: 60 });
    const later = new TokenVerifier([issuer()], { clock: () => new Date(Date.now() + 95_000) });
    expect(await reason(later, token)).toBe('expired');
    const withinTolerance = new TokenVerifier([issuer()], { clock: () => new Date(Date.now() + 80_000) });
    expect((await withinTolerance.verify(token)).subject).toBe('alice');
  });

  it("not yet valid: issued in the verifier's future, or nbf ahead", async () => {
    const token = await op.token({ subject: 'alice' });
    const earlier = new TokenVerifier([issuer()], { clock: () => new Date(Date.now() - 120_000) });
    expect(await reason(earlier, token)).toBe('not-yet-valid');
    const now = Math.floor(Date.now() / 1000);
    const verifier = new TokenVerifier([issuer()]);
    expect(await reason(verifier, await signedByProvider(claims({ nbf: now + 300 })))).toBe('not-yet-valid');
    expect((await verifier.verify(await signedByProvider(claims({ nbf: now + 20 })))).subject).toBe('mallory');
  });

  it('wrong audience', async () => {
    const verifier = new TokenVerifier([issuer()]);
    const err = await rejection(verifier, await op.token({ subject: 'alice', audience: 'some-other-api' }));
    expect(err.reason).toBe('wrong-audience');
    expect(err.message).toContain('"hoop-test"');
    expect(await reason(verifier, await signedByProvider(claims({ aud: undefined })))).toBe('missing-claim');
  });

  it('wrong issuer: configured, but not written exactly as in the token', async () => {
    const verifier = new TokenVerifier([issuer({ issuer: `${op.issuer}/` })]);
    expect(await reason(verifier, await op.token({ subject: 'alice' }))).toBe('wrong-issuer');
  });

  it('untrusted issuer, without contacting it', async () => {
    let asked = 0;
    const counting: typeof fetch = (input, init) => {
      asked++;
      return fetch(input, init);
    };
    const verifier = new TokenVerifier([issuer()], { fetch: counting });
    const err = await rejection(verifier, await other.token({ subject: 'alice', audience: 'hoop-test' }));
    expect(err.reason).toBe('untrusted-issuer');
    expect(err.message).toContain(other.issuer);
    expect(asked).toBe(0);
    expect(await reason(verifier, await signedByProvider(claims({ iss: undefined })))).toBe('missing-claim');
  });

  it('tampered payload', async () => {
    const [h, p, s] = (await op.token({ subject: 'alice', groups: ['readers'] })).split('.');
    const payload = JSON.parse(Buffer.from(p!, 'base64url').toString()) as JWTPayload;
    const forged = `${h}.${b64({ ...payload, groups: ['dba'] })}.${s}`;
    expect(await reason(new TokenVerifier([issuer()]), forged)).toBe('bad-signature');
    const flipped = `${h}.${p}.${s!.slice(0, 10)}${s![10] === 'A' ? 'B' : 'A'}${s!.slice(11)}`;
    expect(await reason(new TokenVerifier([issuer()]), flipped)).toBe('bad-signature');
  });

  it('alg: none', async () => {
    const verifier = new TokenVerifier([issuer()]);
    const payload = b64(claims());
    expect(await reason(verifier, `${b64({ alg: 'none', typ: 'JWT' })}.${payload}.`)).toBe('algorithm-not-allowed');
    expect(await reason(verifier, `${b64({ alg: 'none', kid: op.signingKey.kid })}.${payload}.`)).toBe('algorithm-not-allowed');
    expect(await reason(verifier, `${b64({ typ: 'JWT' })}.${payload}.`)).toBe('malformed');
  });

  it("HS256 signed with the provider's public key as the HMAC secret", async () => {
    const jwks = (await (await fetch(`${op.issuer}/jwks`)).json()) as { keys: Record<string, unknown>[] };
    const published = jwks.keys.find((k) => k.kid === op.signingKey.kid)!;
    const pem = await exportSPKI((await importJWK(published as never, 'RS256', { extractable: true })) as Parameters<typeof exportSPKI>[0]);
    for (const secret of [pem, JSON.stringify(published)]) {
      const token = await new SignJWT(claims()).setProtectedHeader({ alg: 'HS256', kid: op.signingKey.kid }).sign(new TextEncoder().encode(secret));
      expect(await reason(new TokenVerifier([issuer()]), token)).toBe('algorithm-not-allowed');
      // Even a verifier misconfigured to allow HS256 never uses a published key as an HMAC secret.
      expect(await reason(new TokenVerifier([issuer({ algorithms: ['HS256', 'RS256'] })]), token)).toBe('algorithm-not-allowed');
    }
  });

  describe('keys the token brings itself', () => {
    let attacker: Server;
    let attackerUrl: string;
    let attackerHits = 0;
    const { privateKey, publicKey } = newKeyPair('rsa');

    beforeAll(async () => {
      const jwk = { ...(await exportJWK(publicKey)), kid: 'attacker', alg: 'RS256', use: 'sig' };
      attacker = createServer((_req, res) => {
        attackerHits++;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ keys: [jwk] }));
      });
      await new Promise<void>((resolve) => attacker.listen(0, '127.0.0.1', resolve));
      attackerUrl = `http://127.0.0.1:${(attacker.address() as AddressInfo).port}/jwks`;
    });

    afterAll(() => new Promise<void>((resolve) => attacker.close(() => resolve())));

    it("jku pointing at the attacker's key set", async () => {
      const token = await new SignJWT(claims()).setProtectedHeader({ alg: 'RS256', kid: 'attacker', jku: attackerUrl }).sign(privateKey);
      expect(await reason(new TokenVerifier([issuer()]), token)).toBe('unknown-key');
      expect(attackerHits).toBe(0);
    });

    it("x5u pointing at the attacker's certificate", async () => {
      const token = await new SignJWT(claims()).setProtectedHeader({ alg: 'RS256', kid: op.signingKey.kid, x5u: attackerUrl }).sign(privateKey);
      expect(await reason(new TokenVerifier([issuer()]), token)).toBe('unknown-key');
      expect(attackerHits).toBe(0);
    });

    it("jwk embedding the attacker's public key", async () => {
      const jwk = await exportJWK(publicKey);
      const token = await new SignJWT(claims()).setProtectedHeader({ alg: 'RS256', jwk }).sign(privateKey);
      expect(await reason(new TokenVerifier([issuer()]), token)).toBe('unknown-key');
      const withKid = await new SignJWT(claims()).setProtectedHeader({ alg: 'RS256', kid: op.signingKey.kid, jwk }).sign(privateKey);
      expect(await reason(new TokenVerifier([issuer()]), withKid)).toBe('unknown-key');
    });

    it('an unknown kid, signed by a key the provider never published', async () => {
      const token = await new SignJWT(claims()).setProtectedHeader({ alg: 'RS256', kid: 'never-published' }).sign(privateKey);
      const err = await rejection(new TokenVerifier([issuer()]), token);
      expect(err.reason).toBe('unknown-key');
      expect(err.message).toContain(op.issuer);
    });

    it("the provider's kid, signed by another key", async () => {
      const token = await new SignJWT(claims()).setProtectedHeader({ alg: 'RS256', kid: op.signingKey.kid }).sign(privateKey);
      expect(await reason(new TokenVerifier([issuer()]), token)).toBe('bad-signature');
    });
  });

  it('algorithms the issuer is not configured for', async () => {
    const token = await op.token({ subject: 'alice' });
    expect(await reason(new TokenVerifier([issuer({ algorithms: ['ES256'] })]), token)).toBe('algorithm-not-allowed');
  });

  it('missing claims: subject, expiry', async () => {
    const verifier = new TokenVerifier([issuer()]);
    expect(await reason(verifier, await signedByProvider(claims({ sub: undefined })))).toBe('missing-claim');
    expect(await reason(verifier, await signedByProvider(claims({ sub: '' })))).toBe('missing-claim');
    expect(await reason(verifier, await signedByProvider(claims({ exp: undefined })))).toBe('missing-claim');
    expect(await reason(new TokenVerifier([issuer({ subjectClaim: 'oid' })]), await op.token({ subject: 'alice' }))).toBe('missing-claim');
  });

  it('discovery failures: unreachable issuer, or a document naming another issuer', async () => {
    const gone = await startOidc();
    const token = await gone.token({ subject: 'alice' });
    await gone.close();
    const err = await rejection(new TokenVerifier([issuer({ issuer: gone.issuer })], { timeoutMs: 2000 }), token);
    expect(err.reason).toBe('discovery-failed');

    const port = new URL(op.issuer).port;
    const alias = `http://localhost:${port}`;
    const aliased = await signedByProvider(claims({ iss: alias }));
    const mismatch = await rejection(new TokenVerifier([issuer({ issuer: alias })]), aliased);
    expect(mismatch.reason).toBe('discovery-failed');
    expect(mismatch.message).toContain(`names issuer "${op.issuer}"`);
  });

  it("discovery: a jwks_uri off the issuer's origin is refused", async () => {
    const evil: typeof fetch = async (input, init) => {
      const url = String(input);
      if (url.endsWith('/.well-known/openid-configuration')) {
        return Response.json({ issuer: op.issuer, jwks_uri: 'http://127.0.0.2:1/jwks' });
      }
      return fetch(input, init);
    };
    const err = await rejection(new TokenVerifier([issuer()], { fetch: evil }), await op.token({ subject: 'alice' }));
    expect(err.reason).toBe('discovery-failed');
    expect(err.message).toContain("not on the issuer's origin");
  });

  it('discovers once and reuses the keys', async () => {
    const urls: string[] = [];
    const counting: typeof fetch = (input, init) => {
      urls.push(String(input));
      return fetch(input, init);
    };
    const verifier = new TokenVerifier([issuer()], { fetch: counting });
    const tokens = await Promise.all([1, 2, 3].map((i) => op.token({ subject: `u${i}` })));
    await Promise.all(tokens.map((t) => verifier.verify(t)));
    await verifier.verify(tokens[0]);
    expect(urls.filter((u) => u.endsWith('/.well-known/openid-configuration'))).toHaveLength(1);
    expect(urls.filter((u) => u.endsWith('/jwks')).length).toBeLessThanOrEqual(1);
  });
});

describe('token types: access tokens (RFC 9068 at+jwt) and ID tokens told apart', () => {
  it("access: the provider's at+jwt access tokens pass; ID-token-shaped tokens are refused", async () => {
    const verifier = new TokenVerifier([issuer({ tokenType: 'access' })]);
    expect((await verifier.verify(await op.token({ subject: 'alice' }))).subject).toBe('alice');
    for (const typ of ['at+JWT', 'application/at+jwt']) {
      expect((await verifier.verify(await signedByProvider(claims(), { typ }))).subject, typ).toBe('mallory');
    }
    const jwtTyped = await rejection(verifier, await signedByProvider(claims(), { typ: 'JWT' }));
    expect(jwtTyped.reason).toBe('wrong-token-type');
    expect(jwtTyped.message).toContain('only access tokens');
    expect(jwtTyped.message).toContain('add accessTokenTypes: [at+jwt, JWT] to this issuer'); // what to do, not "an ID token"
    const idTyped = await rejection(verifier, await signedByProvider(claims()));
    expect(idTyped.reason).toBe('wrong-token-type');
    expect(idTyped.message).toContain('an ID token (typ absent)');
  });

  it("access with accessTokenTypes [at+jwt, JWT, none]: Keycloak and Entra ID access tokens (typ JWT) and Okta's (no typ) pass; ID tokens, told by their marks or by what they lack, do not", async () => {
    const verifier = new TokenVerifier([issuer({ tokenType: 'access', accessTokenTypes: ['at+jwt', 'JWT', 'none'] })]);
    expect((await verifier.verify(await op.token({ subject: 'alice' }))).subject).toBe('alice');
    // Keycloak: typ JWT in the header; typ Bearer, scope and realm roles in the claims.
    const keycloak = await verifier.verify(await signedByProvider(claims({ typ: 'Bearer', azp: 'hoop-cli', scope: 'openid email profile', realm_access: { roles: ['dba'] } }), { typ: 'JWT' }));
    expect(keycloak.subject).toBe('mallory');
    // Entra ID v2: typ JWT, scp; Okta: no typ, scp and cid.
    expect((await verifier.verify(await signedByProvider(claims({ ver: '2.0', scp: 'access_as_user' }), { typ: 'JWT' }))).subject).toBe('mallory');
    expect((await verifier.verify(await signedByProvider(claims({ scp: ['openid', 'email'], cid: '0oa1' })))).subject).toBe('mallory');
    // Entra gives its ID tokens typ JWT and, with one registration, the same audience: a nonce, Keycloak's typ ID, or no scope says ID token.
    for (const idToken of [claims({ scope: 'openid', nonce: 'n-0S6_WzA2Mj' }), claims({ scope: 'openid', typ: 'ID' }), claims({ ver: '2.0', name: 'Mallory' })]) {
      const id = await rejection(verifier, await signedByProvider(idToken, { typ: 'JWT' }));
      expect(id.reason, JSON.stringify(idToken)).toBe('wrong-token-type');
      expect(id.message).toContain('an ID token (typ "JWT", with an ID token\'s nonce or typ claim, or no scope, scp or client_id claim)');
    }
    expect(await reason(verifier, await signedByProvider(claims({ name: 'no typ, no scope' })))).toBe('wrong-token-type');
  });

  it('id: at+jwt access tokens are refused, ID tokens pass', async () => {
    const verifier = new TokenVerifier([issuer({ tokenType: 'id' })]);
    const err = await rejection(verifier, await op.token({ subject: 'alice' }));
    expect(err.reason).toBe('wrong-token-type');
    expect(err.message).toContain('only ID tokens');
    expect(await reason(verifier, await signedByProvider(claims(), { typ: 'application/AT+JWT' }))).toBe('wrong-token-type');
    expect((await verifier.verify(await signedByProvider(claims(), { typ: 'JWT' }))).subject).toBe('mallory');
    expect((await verifier.verify(await signedByProvider(claims()))).subject).toBe('mallory');
  });

  it('any: both', async () => {
    const verifier = new TokenVerifier([issuer({ tokenType: 'any' })]);
    expect((await verifier.verify(await op.token({ subject: 'alice' }))).subject).toBe('alice');
    expect((await verifier.verify(await signedByProvider(claims(), { typ: 'JWT' }))).subject).toBe('mallory');
  });

  it('the type is checked only on a token whose signature verified', async () => {
    const verifier = new TokenVerifier([issuer({ tokenType: 'access' })]);
    const [h, p] = (await signedByProvider(claims(), { typ: 'JWT' })).split('.');
    expect(await reason(verifier, `${h}.${p}.${'A'.repeat(342)}`)).toBe('bad-signature');
  });
});

describe('workload issuers: claim rules make the identity', () => {
  const github = (extra: JWTPayload = {}): JWTPayload =>
    claims({
      sub: 'repo:acme/api:ref:refs/heads/main',
      repository: 'acme/api',
      repository_owner: 'acme',
      ref: 'refs/heads/main',
      environment: 'prod',
      groups: ['admins'],
      ...extra,
    });
  const workload = (rules: IssuerConfig['rules']): TokenVerifier => new TokenVerifier([issuer({ kind: 'workload', tokenType: 'id', rules })]);

  it("a matching rule gives the subject (its template) and its groups; the token's own groups claim is ignored", async () => {
    const verifier = workload([{ claims: { repository: 'acme/api', ref: 'refs/heads/main' }, groups: ['deployers'], subject: 'ci:{repository}' }]);
    const identity = await verifier.verify(await signedByProvider(github(), { typ: 'JWT' }));
    expect(identity).toMatchObject({ kind: 'workload', subject: 'ci:acme/api', issuer: op.issuer, groups: ['deployers'] });
    expect(identity.claims.sub).toBe('repo:acme/api:ref:refs/heads/main');
  });

  it("globs, and the token's subject when the rule has no template", async () => {
    const verifier = workload([{ claims: { repository: 'acme/*', ref: 'refs/heads/*' }, groups: ['ci'] }]);
    const identity = await verifier.verify(await signedByProvider(github({ repository: 'acme/web', ref: 'refs/heads/feature/x' })));
    expect(identity).toMatchObject({ subject: 'repo:acme/api:ref:refs/heads/main', groups: ['ci'] });
    expect(await reason(verifier, await signedByProvider(github({ repository: 'evil/acme' })))).toBe('no-matching-rule');
  });

  it("several matching rules: the union of their groups, the first one's subject", async () => {
    const verifier = workload([
      { claims: { repository: 'other/repo' }, groups: ['never'] },
      { claims: { repository: 'acme/api' }, groups: ['api-ci'], subject: 'ci:{repository}@{ref}' },
      { claims: { repository_owner: 'acme' }, groups: ['acme-ci', 'api-ci'] },
      { claims: { environment: 'prod' }, groups: ['prod-deployers'], subject: 'env:{environment}' },
    ]);
    const identity = await verifier.verify(await signedByProvider(github()));
    expect(identity.subject).toBe('ci:acme/api@refs/heads/main');
    expect(identity.groups).toEqual(['api-ci', 'acme-ci', 'prod-deployers']);
  });

  it('no rule matches: no-matching-rule, naming the issuer, with a hint for the operator', async () => {
    const verifier = workload([{ claims: { repository: 'acme/api', ref: 'refs/heads/main' }, groups: ['deployers'] }]);
    const err = await rejection(verifier, await signedByProvider(github({ ref: 'refs/heads/dev' })));
    expect(err.reason).toBe('no-matching-rule');
    expect(err.message).toContain(op.issuer);
    expect(err.hint).toContain('rule');
    expect(await reason(verifier, await signedByProvider(github({ ref: undefined })))).toBe('no-matching-rule');
  });

  it("the issuer's token type still applies", async () => {
    const verifier = workload([{ claims: { sub: '*' }, groups: [] }]);
    expect(await reason(verifier, await op.token({ subject: 'alice' }))).toBe('wrong-token-type');
  });
});

/** A minimal OpenID issuer with a key set the test can change: discovery and JWKS over HTTP on loopback. */
async function startKeyIssuer(): Promise<{
  issuer: string;
  keys: JWK[];
  hits: string[];
  failing: { discovery: number; jwks: number };
  close(): Promise<void>;
}> {
  const state = { keys: [] as JWK[], hits: [] as string[], failing: { discovery: 0, jwks: 0 } };
  const server = createServer((req, res) => {
    state.hits.push(req.url ?? '');
    res.setHeader('content-type', 'application/json');
    if (req.url === '/.well-known/openid-configuration') {
      if (state.failing.discovery > 0) {
        state.failing.discovery--;
        res.statusCode = 503;
        res.end('{}');
        return;
      }
      res.end(JSON.stringify({ issuer: base, jwks_uri: `${base}/jwks` }));
    } else if (req.url === '/jwks') {
      if (state.failing.jwks > 0) {
        state.failing.jwks--;
        res.statusCode = 500;
        res.end('{}');
        return;
      }
      res.end(JSON.stringify({ keys: state.keys }));
    } else {
      res.statusCode = 404;
      res.end('{}');
    }
  });
  const base = `http://127.0.0.1:${await listenOnLoopback(server)}`;
  return {
    issuer: base,
    get keys() {
      return state.keys;
    },
    set keys(k: JWK[]) {
      state.keys = k;
    },
    hits: state.hits,
    failing: state.failing,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function rsaKey(kid: string, alg?: string): Promise<{ kid: string; privateKey: KeyObject; jwk: JWK }> {
  const { privateKey, publicKey } = newKeyPair('rsa');
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, use: 'sig', ...(alg ? { alg } : {}) } };
}

describe('keys: rotation, algorithm pinning, failures', () => {
  const sign = (iss: string, key: { kid: string; privateKey: KeyObject }, alg = 'RS256'): Promise<string> =>
    new SignJWT(claims({ iss })).setProtectedHeader({ alg, kid: key.kid, typ: 'at+jwt' }).sign(key.privateKey);

  it('a key the provider rotates in is picked up on an unknown kid, once the refetch cooldown allows', async () => {
    const idp = await startKeyIssuer();
    try {
      const first = await rsaKey('k1', 'RS256');
      const second = await rsaKey('k2', 'RS256');
      idp.keys = [first.jwk];
      // The cooldowns run on Date.now(): the test's clock (only Date is faked; timers and sockets are real).
      vi.useFakeTimers({ toFake: ['Date'] });
      const verifier = new TokenVerifier([issuer({ issuer: idp.issuer })], { jwksCooldownMs: 300 });
      expect((await verifier.verify(await sign(idp.issuer, first))).subject).toBe('mallory');
      const jwksFetches = (): number => idp.hits.filter((h) => h === '/jwks').length;
      expect(jwksFetches()).toBe(1);

      idp.keys = [second.jwk];
      // Within the cooldown an unknown kid does not refetch (a flood of made-up kids cannot hammer the provider).
      expect(await reason(verifier, await sign(idp.issuer, second))).toBe('unknown-key');
      expect(await reason(verifier, await sign(idp.issuer, second))).toBe('unknown-key');
      expect(jwksFetches()).toBe(1);

      vi.setSystemTime(Date.now() + 350); // past the cooldown under test (300 ms), on the test's clock
      expect((await verifier.verify(await sign(idp.issuer, second))).subject).toBe('mallory');
      expect(jwksFetches()).toBe(2);
      // The retired key is gone with the old key set.
      expect(await reason(verifier, await sign(idp.issuer, first))).toBe('unknown-key');
      expect(idp.hits.filter((h) => h.endsWith('/openid-configuration'))).toHaveLength(1);
    } finally {
      await idp.close();
    }
  });

  it('a CI provider that rotates its signing key is not refused for long: by default an unknown kid refetches the key set after a second', async () => {
    const idp = await startKeyIssuer();
    try {
      const first = await rsaKey('k1', 'RS256');
      const second = await rsaKey('k2', 'RS256');
      idp.keys = [first.jwk];
      vi.useFakeTimers({ toFake: ['Date'] });
      const verifier = new TokenVerifier([issuer({ issuer: idp.issuer })]);
      expect((await verifier.verify(await sign(idp.issuer, first))).subject).toBe('mallory');
      idp.keys = [second.jwk];
      vi.setSystemTime(Date.now() + 1_100);
      expect((await verifier.verify(await sign(idp.issuer, second))).subject).toBe('mallory');
      expect(idp.hits.filter((h) => h === '/jwks')).toHaveLength(2);
    } finally {
      vi.useRealTimers();
      await idp.close();
    }
  });

  it('a key published with "alg" verifies only that algorithm; one without it any allowed algorithm of its type', async () => {
    const idp = await startKeyIssuer();
    try {
      const pinned = await rsaKey('pinned', 'RS256');
      const open = await rsaKey('open');
      idp.keys = [pinned.jwk, open.jwk];
      const verifier = new TokenVerifier([issuer({ issuer: idp.issuer })], { jwksCooldownMs: 0 });
      expect((await verifier.verify(await sign(idp.issuer, pinned, 'RS256'))).subject).toBe('mallory');
      const err = await rejection(verifier, await sign(idp.issuer, pinned, 'PS256'));
      expect(err.reason).toBe('algorithm-not-allowed');
      expect(err.message).toContain('"pinned" for "RS256" only');
      expect((await verifier.verify(await sign(idp.issuer, open, 'PS256'))).subject).toBe('mallory');
      expect((await verifier.verify(await sign(idp.issuer, open, 'RS256'))).subject).toBe('mallory');
    } finally {
      await idp.close();
    }
  });

  it('an issuer whose discovery fails is not asked again on every request, and is asked again after a while', async () => {
    const idp = await startKeyIssuer();
    try {
      const key = await rsaKey('k', 'RS256');
      idp.keys = [key.jwk];
      idp.failing.discovery = 1;
      // The cooldowns run on Date.now(): the test's clock (only Date is faked; timers and sockets are real).
      vi.useFakeTimers({ toFake: ['Date'] });
      const verifier = new TokenVerifier([issuer({ issuer: idp.issuer })], { failureCooldownMs: 300 });
      const token = await sign(idp.issuer, key);
      const discoveries = (): number => idp.hits.filter((h) => h.endsWith('/openid-configuration')).length;
      const err = await rejection(verifier, token);
      expect(err.reason).toBe('discovery-failed');
      expect(err.message).toContain('HTTP 503');
      expect(await reason(verifier, token)).toBe('discovery-failed');
      expect(await reason(verifier, token)).toBe('discovery-failed');
      expect(discoveries()).toBe(1);
      vi.setSystemTime(Date.now() + 350); // past the cooldown under test (300 ms), on the test's clock
      expect((await verifier.verify(token)).subject).toBe('mallory');
      expect(discoveries()).toBe(2);
    } finally {
      await idp.close();
    }
  });

  it('a key set that cannot be fetched is not refetched on every request either', async () => {
    const idp = await startKeyIssuer();
    try {
      const key = await rsaKey('k', 'RS256');
      idp.keys = [key.jwk];
      idp.failing.jwks = 1;
      // The cooldowns run on Date.now(): the test's clock (only Date is faked; timers and sockets are real).
      vi.useFakeTimers({ toFake: ['Date'] });
      const verifier = new TokenVerifier([issuer({ issuer: idp.issuer })], { failureCooldownMs: 300 });
      const token = await sign(idp.issuer, key);
      expect(await reason(verifier, token)).toBe('discovery-failed');
      expect(await reason(verifier, token)).toBe('discovery-failed');
      expect(idp.hits.filter((h) => h === '/jwks')).toHaveLength(1);
      vi.setSystemTime(Date.now() + 350); // past the cooldown under test (300 ms), on the test's clock
      expect((await verifier.verify(token)).subject).toBe('mallory');
      expect(idp.hits.filter((h) => h === '/jwks')).toHaveLength(2);
    } finally {
      await idp.close();
    }
  });
});

describe('bearerFromHeader', () => {
  it('takes the token of a Bearer header, any case of the scheme', () => {
    expect(TokenVerifier.bearerFromHeader('Bearer abc.def.ghi')).toBe('abc.def.ghi');
    expect(TokenVerifier.bearerFromHeader('bearer abc')).toBe('abc');
    expect(TokenVerifier.bearerFromHeader('BEARER a-b_c~d+e/f==')).toBe('a-b_c~d+e/f==');
    for (const h of [undefined, '', 'Bearer', 'Bearer ', 'Basic abc', 'Bearerabc', 'Bearer a b', 'Bearer a,b']) {
      expect(TokenVerifier.bearerFromHeader(h), String(h)).toBeUndefined();
    }
  });
});
