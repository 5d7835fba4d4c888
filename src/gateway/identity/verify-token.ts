/**
 * Bearer-token verification: who is calling.
 *
 * A token is accepted when its `iss` is exactly a configured issuer, its signature verifies
 * against a key that issuer publishes (found through OpenID discovery and the JWKS it names),
 * its algorithm is allowed, it is inside its validity window and it is meant for one of the
 * configured audiences. Keys the token brings itself (`jku`, `jwk`, `x5u`, `x5c`) are never
 * trusted; a published key that names its algorithm (`alg` in the JWK) verifies only that one.
 * An issuer may accept only JWT access tokens (`typ: at+jwt`), only ID tokens, or both. Tokens of
 * workload issuers are mapped to an identity by the issuer's claim rules. The token is never
 * logged nor echoed in an error.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750 (bearer tokens)
 * @see https://www.rfc-editor.org/rfc/rfc7519 (JWT)
 * @see https://www.rfc-editor.org/rfc/rfc8725 (JWT best current practices)
 * @see https://openid.net/specs/openid-connect-discovery-1_0.html
 * @see https://www.rfc-editor.org/rfc/rfc9068#section-4 (validating JWT access tokens)
 */
import { realClock } from '../../clock.js';
import { createRemoteJWKSet, customFetch, decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTHeaderParameters, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { ErrorCode, HoopError } from '../../errors.js';
import type { IssuerConfig } from '../config/config.js';
import { applyWorkloadRules, readClaim } from '../config/workload-rules.js';
import type { Identity } from '../../identity.js';

/**
 * Why a token was refused. Stable values: logged and sent to clients.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1 (all of them are `invalid_token`)
 */
export type TokenRejection =
  | 'missing'
  | 'malformed'
  | 'untrusted-issuer'
  | 'discovery-failed'
  | 'unknown-key'
  | 'bad-signature'
  | 'algorithm-not-allowed'
  | 'expired'
  | 'not-yet-valid'
  | 'wrong-audience'
  | 'wrong-issuer'
  | 'missing-claim'
  | 'wrong-token-type'
  | 'no-matching-rule'
  | 'unknown-run'
  | 'run-ended';

const hints: Record<TokenRejection, string> = {
  missing: 'log in (hoop login) so requests carry a bearer token',
  malformed: 'log in again (hoop login) to get a fresh token',
  'untrusted-issuer': 'log in with an identity provider the gateway trusts, or add the issuer to the gateway configuration',
  'discovery-failed': 'try again later; if it persists, check that the gateway can reach the identity provider',
  'unknown-key': 'log in again (hoop login) to get a fresh token',
  'bad-signature': 'log in again (hoop login) to get a fresh token',
  'algorithm-not-allowed': 'log in again (hoop login); if it persists, add the algorithm to the issuer in the gateway configuration',
  expired: 'log in again (hoop login) to get a fresh token',
  'not-yet-valid': 'check the clocks of this machine, the gateway and the identity provider, then get a fresh token',
  'wrong-audience': "get a token for the gateway's audience (check the client configuration of hoop login)",
  'wrong-issuer': 'set the issuer in the gateway configuration exactly as it appears in tokens',
  'missing-claim': 'ask the identity provider administrator to include the claim, or change the claim names in the gateway configuration',
  'wrong-token-type': 'log in with hoop login, which gets the kind of token this gateway accepts (see tokenType in its configuration)',
  'no-matching-rule': 'ask the gateway operator to add a rule for this workload (repository, branch, namespace...) to the issuer in the gateway configuration',
  'unknown-run': 'a run credential comes from hoop run; start the command with hoop run',
  'run-ended': 'the run ended, and its credential with it: start the command again with hoop run',
};

/**
 * The gateway refused the bearer token; `reason` says why, the hint what to do.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3
 */
export class TokenRejectedError extends HoopError {
  readonly reason: TokenRejection;
  /**
   * What the refused token said of itself (`iss`, `sub`, each cut to 256 characters; never the
   * token), and whether its signature verified (then the issuer stands behind them); for the audit
   * stream's `auth.refused`.
   */
  token: { issuer?: string; subject?: string; signed: boolean } | undefined;

  constructor(reason: TokenRejection, message: string, options: { cause?: unknown } = {}) {
    super(ErrorCode.TOKEN_REJECTED, message, { hint: hints[reason], ...(options.cause !== undefined ? { cause: options.cause } : {}) });
    this.reason = reason;
  }
}

/**
 * Options of a {@link TokenVerifier}.
 *
 * @see https://www.rfc-editor.org/rfc/rfc7519#section-4.1.4 (clock for exp / nbf)
 */
export interface TokenVerifierOptions {
  /** The current time (tests move it). */
  clock?: () => Date;
  /** Used for discovery and JWKS requests. */
  fetch?: typeof fetch;
  /** Milliseconds before a discovery or JWKS request is abandoned (default 5000). */
  timeoutMs?: number;
  /** Milliseconds a discovery document is reused (default 1 hour). */
  discoveryMaxAgeMs?: number;
  /**
   * Milliseconds after a failed discovery or key-set fetch during which requests fail at once
   * instead of asking the issuer again (default 5000): an issuer that is down is not hammered.
   */
  failureCooldownMs?: number;
  /** Minimum milliseconds between two key-set refetches for an unknown `kid` (default 1 000: a provider's rotated key is taken within a second, and a flood of made-up kids costs it one fetch a second). */
  jwksCooldownMs?: number;
}

interface IssuerState {
  config: IssuerConfig;
  keys?: { getKey: JWTVerifyGetKey; fetchedAt: number };
  pending?: Promise<JWTVerifyGetKey>;
  /** The last failed discovery, while it is remembered. */
  failure?: { at: number; error: Error };
}

/** The issuer's discovery document or keys could not be fetched or are not usable: no token of it can be verified. */
class DiscoveryError extends HoopError {
  constructor(message: string) {
    super(ErrorCode.TOKEN_REJECTED, message);
  }
}

/** Header parameters by which a token would bring or point to its own verification key. */
const SELF_KEY_HEADERS = ['jku', 'jwk', 'x5u', 'x5c'] as const;
const MAX_TOKEN_LENGTH = 16 * 1024;

/** A token-supplied value for a message: quoted, control characters escaped, length capped. */
function quote(value: string): string {
  return JSON.stringify(value.length > 120 ? `${value.slice(0, 120)}...` : value);
}

function normalizeIssuer(issuer: string): string {
  try {
    const u = new URL(issuer);
    return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
  } catch {
    return issuer.replace(/\/+$/, '');
  }
}

/** What a token is, as its `typ` header and its claims tell: an access token, an ID token, or a `typ` this issuer's access tokens do not carry. */
type TokenKind = 'access' | 'id' | 'other-typ';

/**
 * Whether a token is an access token of an issuer whose access tokens carry a `typ` of `types`
 * (`none`: no `typ` at all): `at+jwt` always says so (RFC 9068). A `JWT` or absent `typ`, where
 * the issuer is said to use it, says so only for a token that carries what access tokens carry
 * and ID tokens do not (`scope`, Entra's and Okta's `scp`, `client_id`) and none of an ID token's
 * marks (a `nonce`, Keycloak's `typ: ID` claim): providers that mark both kinds `JWT` (Entra ID)
 * may give both the same audience.
 * @see https://www.rfc-editor.org/rfc/rfc9068#section-2.2 (client_id, scope)
 * @see https://openid.net/specs/openid-connect-core-1_0.html#IDToken (nonce)
 */
function accessTokenKind(typ: unknown, claims: Record<string, unknown>, types: readonly string[]): TokenKind {
  if (isAccessTokenType(typ)) return 'access';
  const marked = typeof typ === 'string' ? (typ.toUpperCase() === 'JWT' ? 'JWT' : undefined) : typ === undefined ? 'none' : undefined;
  if (marked === undefined || !types.includes(marked)) return marked === 'JWT' ? 'other-typ' : 'id';
  const accessClaims = claims.scope !== undefined || claims.scp !== undefined || claims.client_id !== undefined;
  const idMarks = claims.nonce !== undefined || claims.typ === 'ID';
  return accessClaims && !idMarks ? 'access' : 'id';
}

/** Why a token that is not an access token was refused, and what to do. */
function accessRefusal(kind: TokenKind, typ: unknown, config: IssuerConfig): string {
  if (kind === 'other-typ') {
    return `a token of typ "JWT", which this issuer is not said to use for access tokens (RFC 9068 says at+jwt): if it issues access tokens so (Keycloak, Microsoft Entra ID do), add accessTokenTypes: [at+jwt, JWT] to this issuer in the gateway configuration`;
  }
  const lenient = config.accessTokenTypes.some((t) => t !== 'at+jwt');
  return `an ID token (typ ${typeof typ === 'string' ? quote(typ) : 'absent'}${lenient ? ", with an ID token's nonce or typ claim, or no scope, scp or client_id claim" : ''}): sign in with hoop login, which asks for an access token`;
}

/**
 * True when a JOSE `typ` header value names a JWT access token (`at+jwt`, optionally with the
 * `application/` prefix, compared without regard to case as media types are).
 *
 * @see https://www.rfc-editor.org/rfc/rfc9068#section-2.1
 * @see https://www.rfc-editor.org/rfc/rfc7515#section-4.1.9
 */
export function isAccessTokenType(typ: unknown): boolean {
  if (typeof typ !== 'string') return false;
  // Media types compare without regard to case; nothing else (spaces, parameters) is tolerated.
  const t = typ.toLowerCase();
  return t === 'at+jwt' || t === 'application/at+jwt';
}

/**
 * Verifies bearer tokens against the configured issuers. Discovery documents and key sets are
 * fetched on first use and cached; an unknown `kid` refetches the key set (with a cooldown), so
 * key rotation at the provider needs no restart.
 *
 * @see https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderConfig
 * @see https://www.rfc-editor.org/rfc/rfc7517 (JWK sets)
 */
export class TokenVerifier {
  readonly #issuers = new Map<string, IssuerState>();
  readonly #clock: () => Date;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;
  readonly #discoveryMaxAgeMs: number;
  readonly #failureCooldownMs: number;
  readonly #jwksCooldownMs: number;

  constructor(issuers: IssuerConfig[], options: TokenVerifierOptions = {}) {
    for (const config of issuers) this.#issuers.set(config.issuer, { config });
    this.#clock = options.clock ?? (() => new Date(realClock.now()));
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#timeoutMs = options.timeoutMs ?? 5000;
    this.#discoveryMaxAgeMs = options.discoveryMaxAgeMs ?? 3_600_000;
    this.#failureCooldownMs = options.failureCooldownMs ?? 5000;
    this.#jwksCooldownMs = options.jwksCooldownMs ?? 1_000;
  }

  /** The configuration of a trusted issuer (as written in `iss`), if it is one. */
  issuerConfig(issuer: string): IssuerConfig | undefined {
    return this.#issuers.get(issuer)?.config;
  }

  /**
   * The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), or
   * undefined when there is none.
   *
   * @see https://www.rfc-editor.org/rfc/rfc6750#section-2.1
   */
  static bearerFromHeader(header: string | undefined): string | undefined {
    if (header === undefined) return undefined;
    const m = /^\s*bearer +([A-Za-z0-9\-._~+/]+=*)\s*$/i.exec(header);
    return m?.[1];
  }

  /**
   * Verifies `token` and returns who it identifies.
   *
   * @throws TokenRejectedError with the reason it was refused.
   */
  async verify(token: string | undefined): Promise<Identity> {
    const seen: NonNullable<TokenRejectedError['token']> = { signed: false };
    try {
      return await this.#verify(token, seen);
    } catch (err) {
      if (err instanceof TokenRejectedError && (seen.issuer !== undefined || seen.subject !== undefined)) err.token = seen;
      throw err;
    }
  }

  /** {@link verify}, noting in `seen` what the token claims and whether its signature held. */
  async #verify(token: string | undefined, seen: NonNullable<TokenRejectedError['token']>): Promise<Identity> {
    if (token === undefined || token === '') throw new TokenRejectedError('missing', 'no bearer token was presented');
    if (token.length > MAX_TOKEN_LENGTH) throw new TokenRejectedError('malformed', `the bearer token is longer than ${MAX_TOKEN_LENGTH} characters`);

    let header: ReturnType<typeof decodeProtectedHeader>;
    let unverified: JWTPayload;
    try {
      header = decodeProtectedHeader(token);
      unverified = decodeJwt(token);
    } catch (err) {
      throw new TokenRejectedError('malformed', 'the bearer token is not a signed JWT', { cause: err });
    }
    if (token.split('.').length !== 3) throw new TokenRejectedError('malformed', 'the bearer token is not a signed JWT (JWS compact form)');

    const iss = unverified.iss;
    if (typeof iss === 'string') seen.issuer = iss.slice(0, 256);
    if (typeof unverified.sub === 'string') seen.subject = unverified.sub.slice(0, 256);
    if (typeof iss !== 'string' || iss === '') throw new TokenRejectedError('missing-claim', 'the token has no "iss" claim');
    const state = this.#issuers.get(iss);
    if (!state) {
      const near = [...this.#issuers.keys()].find((k) => normalizeIssuer(k) === normalizeIssuer(iss));
      if (near !== undefined) {
        throw new TokenRejectedError('wrong-issuer', `the token's issuer ${quote(iss)} is not written exactly as the configured issuer "${near}"`);
      }
      throw new TokenRejectedError('untrusted-issuer', `the token's issuer ${quote(iss)} is not trusted by this gateway`);
    }
    const { config } = state;

    if (typeof header.alg !== 'string') throw new TokenRejectedError('malformed', "the token's header names no algorithm");
    if (!config.algorithms.includes(header.alg)) {
      throw new TokenRejectedError('algorithm-not-allowed', `the token is signed with ${quote(header.alg)}, which is not allowed for ${config.issuer}`);
    }
    for (const h of SELF_KEY_HEADERS) {
      if (h in header) throw new TokenRejectedError('unknown-key', `the token names its own key ("${h}" header); only keys published by ${config.issuer} are trusted`);
    }

    const getKey = await this.#keysFor(state);
    const now = this.#clock();
    let payload: JWTPayload;
    let protectedHeader: JWTHeaderParameters;
    try {
      ({ payload, protectedHeader } = await jwtVerify(token, getKey, {
        issuer: config.issuer,
        audience: config.audience,
        algorithms: config.algorithms,
        clockTolerance: config.clockToleranceSeconds,
        currentDate: now,
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      // jose checks the signature before the claims: an expired or misaddressed token was signed by the issuer.
      seen.signed = err instanceof joseErrors.JWTExpired || err instanceof joseErrors.JWTClaimValidationFailed;
      throw this.#mapError(err, config);
    }
    seen.signed = true;

    const tolerance = config.clockToleranceSeconds;
    if (typeof payload.iat === 'number' && payload.iat > now.getTime() / 1000 + tolerance) {
      throw new TokenRejectedError('not-yet-valid', 'the token was issued in the future (clocks disagree)');
    }

    const claims = payload as Record<string, unknown>;
    const access = accessTokenKind(protectedHeader.typ, claims, config.accessTokenTypes);
    if (config.tokenType === 'access' && access !== 'access') {
      throw new TokenRejectedError('wrong-token-type', `${config.issuer} is configured to accept only access tokens, and this is ${accessRefusal(access, protectedHeader.typ, config)}`);
    }
    if (config.tokenType === 'id' && access === 'access') {
      throw new TokenRejectedError('wrong-token-type', `${config.issuer} is configured to accept only ID tokens; this is an access token (typ ${quote(String(protectedHeader.typ))})`);
    }

    const tokenSubject = readClaim(claims, config.subjectClaim);
    if (typeof tokenSubject !== 'string' || tokenSubject === '') {
      throw new TokenRejectedError('missing-claim', `the token has no "${config.subjectClaim}" claim (the subject)`);
    }
    let subject = tokenSubject;
    let groups: string[];
    if (config.kind === 'workload') {
      const mapped = applyWorkloadRules(config.rules, claims, tokenSubject);
      if (!mapped) {
        throw new TokenRejectedError('no-matching-rule', `no rule of ${config.issuer} in the gateway configuration matches this workload token (subject ${quote(tokenSubject)})`);
      }
      ({ subject, groups } = mapped);
    } else {
      const rawGroups = readClaim(claims, config.groupsClaim);
      groups = typeof rawGroups === 'string' ? [rawGroups] : Array.isArray(rawGroups) ? rawGroups.filter((g): g is string => typeof g === 'string') : [];
    }
    const email = readClaim(claims, config.emailClaim);
    const emailOk = typeof email === 'string' && email !== '' && claims.email_verified !== false && claims.email_verified !== 'false';
    return {
      subject,
      issuer: config.issuer,
      kind: config.kind,
      ...(emailOk ? { email } : {}),
      groups,
      expiresAt: new Date((payload.exp as number) * 1000),
      claims: { ...claims },
    };
  }

  #mapError(err: unknown, config: IssuerConfig): TokenRejectedError {
    if (err instanceof TokenRejectedError) return err;
    if (err instanceof DiscoveryError) {
      return new TokenRejectedError('discovery-failed', `cannot fetch the signing keys of ${config.issuer}: ${err.message}`, { cause: err });
    }
    if (err instanceof joseErrors.JWTExpired) return new TokenRejectedError('expired', 'the token has expired', { cause: err });
    if (err instanceof joseErrors.JWTClaimValidationFailed) {
      if (err.reason === 'missing') return new TokenRejectedError('missing-claim', `the token has no "${err.claim}" claim`, { cause: err });
      switch (err.claim) {
        case 'nbf':
        case 'iat':
          return new TokenRejectedError('not-yet-valid', 'the token is not valid yet', { cause: err });
        case 'aud':
          return new TokenRejectedError('wrong-audience', `the token is not meant for this gateway (audience must include ${config.audience.map((a) => `"${a}"`).join(' or ')})`, { cause: err });
        case 'iss':
          return new TokenRejectedError('wrong-issuer', `the token's issuer is not "${config.issuer}"`, { cause: err });
        default:
          return new TokenRejectedError('malformed', `the token's "${err.claim}" claim is invalid`, { cause: err });
      }
    }
    if (err instanceof joseErrors.JOSEAlgNotAllowed) return new TokenRejectedError('algorithm-not-allowed', "the token's signing algorithm is not allowed", { cause: err });
    if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) {
      return new TokenRejectedError('unknown-key', `the token is signed with a key ${config.issuer} does not publish`, { cause: err });
    }
    if (err instanceof joseErrors.JWSSignatureVerificationFailed) return new TokenRejectedError('bad-signature', "the token's signature does not verify", { cause: err });
    if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid) {
      return new TokenRejectedError('discovery-failed', `cannot fetch the signing keys of ${config.issuer}`, { cause: err });
    }
    if (err instanceof joseErrors.JOSENotSupported) return new TokenRejectedError('algorithm-not-allowed', 'the token uses an unsupported algorithm or key type', { cause: err });
    if (err instanceof joseErrors.JOSEError || err instanceof TypeError) {
      return new TokenRejectedError('malformed', 'the bearer token is not a valid signed JWT', { cause: err });
    }
    return new TokenRejectedError('discovery-failed', `cannot verify the token against ${config.issuer}`, { cause: err });
  }

  async #keysFor(state: IssuerState): Promise<JWTVerifyGetKey> {
    const fresh = state.keys && realClock.now() - state.keys.fetchedAt < this.#discoveryMaxAgeMs;
    if (fresh) return state.keys!.getKey;
    const failure = state.failure && realClock.now() - state.failure.at < this.#failureCooldownMs ? state.failure : undefined;
    if (failure) {
      if (state.keys) return state.keys.getKey;
      throw new TokenRejectedError('discovery-failed', `OpenID discovery for ${state.config.issuer} failed: ${failure.error.message}`, { cause: failure.error });
    }
    state.pending ??= this.#discover(state.config).then(
      (getKey) => {
        state.keys = { getKey, fetchedAt: realClock.now() };
        state.pending = undefined;
        state.failure = undefined;
        return getKey;
      },
      (err: unknown) => {
        state.pending = undefined;
        state.failure = { at: realClock.now(), error: err as Error };
        throw err;
      },
    );
    try {
      return await state.pending;
    } catch (err) {
      if (state.keys) return state.keys.getKey;
      throw new TokenRejectedError('discovery-failed', `OpenID discovery for ${state.config.issuer} failed: ${(err as Error).message}`, { cause: err });
    }
  }

  async #discover(config: IssuerConfig): Promise<JWTVerifyGetKey> {
    const url = `${config.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
    let doc: unknown;
    try {
      const res = await this.#fetch(url, { headers: { accept: 'application/json' }, redirect: 'manual', signal: AbortSignal.timeout(this.#timeoutMs) });
      if (res.status !== 200) {
        await res.body?.cancel();
        throw new DiscoveryError(`${url} answered HTTP ${res.status}`);
      }
      doc = await res.json();
    } catch (err) {
      if (err instanceof DiscoveryError) throw err;
      throw new DiscoveryError(`cannot fetch ${url}: ${(err as Error).message}`);
    }
    const meta = doc !== null && typeof doc === 'object' ? (doc as Record<string, unknown>) : {};
    if (meta.issuer !== config.issuer) {
      throw new DiscoveryError(`the discovery document names issuer ${JSON.stringify(meta.issuer)}, not ${config.issuer}`);
    }
    if (typeof meta.jwks_uri !== 'string') throw new DiscoveryError('the discovery document has no jwks_uri');
    let jwksUri: URL;
    try {
      jwksUri = new URL(meta.jwks_uri);
    } catch {
      throw new DiscoveryError("the discovery document's jwks_uri is not a URL");
    }
    if (jwksUri.origin !== new URL(config.issuer).origin) {
      throw new DiscoveryError(`the jwks_uri ${jwksUri.href} is not on the issuer's origin`);
    }
    const remote = createRemoteJWKSet(jwksUri, {
      timeoutDuration: this.#timeoutMs,
      cooldownDuration: this.#jwksCooldownMs,
      cacheMaxAge: 600_000,
      [customFetch]: (u, init) => this.#fetch(u, init),
    });
    let failure: { at: number; error: DiscoveryError } | undefined;
    return async (protectedHeader, token) => {
      // Without a key set yet, every request would refetch it: remember a failure for a while.
      if (failure && remote.jwks() === undefined && realClock.now() - failure.at < this.#failureCooldownMs) throw failure.error;
      try {
        return await remote(protectedHeader, token);
      } catch (err) {
        if (err instanceof joseErrors.JWKSNoMatchingKey) throw this.#noMatchingKey(remote.jwks(), protectedHeader, config, err);
        if (err instanceof joseErrors.JWKSMultipleMatchingKeys || err instanceof joseErrors.JOSEAlgNotAllowed || err instanceof joseErrors.JOSENotSupported) {
          throw err;
        }
        const error = new DiscoveryError(`cannot fetch ${jwksUri.href}: ${(err as Error).message}`);
        failure = { at: realClock.now(), error };
        throw error;
      }
    };
  }

  /**
   * A published key with the token's `kid` that names another algorithm pins it: say so
   * rather than that the key is unknown.
   *
   * @see https://www.rfc-editor.org/rfc/rfc7517#section-4.4 (the `alg` member of a JWK)
   */
  #noMatchingKey(jwks: { keys: Array<Record<string, unknown>> } | undefined, header: { alg?: string; kid?: string }, config: IssuerConfig, err: Error): Error {
    const pinned = jwks?.keys.find((k) => header.kid !== undefined && k.kid === header.kid && typeof k.alg === 'string' && k.alg !== header.alg);
    if (pinned) {
      return new TokenRejectedError(
        'algorithm-not-allowed',
        `the token is signed with ${quote(String(header.alg))}, but ${config.issuer} publishes the key ${quote(header.kid!)} for ${quote(String(pinned.alg))} only`,
        { cause: err },
      );
    }
    return err;
  }
}
