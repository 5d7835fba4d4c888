/**
 * The CLI as an OpenID Connect public client: discovery of the provider the gateway names,
 * token responses turned into stored {@link Secrets}, and the token presented to the gateway.
 * Built on `openid-client` v6. Plain HTTP is allowed only to a provider on this machine.
 *
 * @see https://openid.net/specs/openid-connect-discovery-1_0.html
 * @see https://www.rfc-editor.org/rfc/rfc8252 (OAuth 2.0 for native apps)
 * @see https://github.com/panva/openid-client
 */
import { decodeJwt } from 'jose';
import * as client from 'openid-client';
import { ErrorCode, HoopError, describeError } from '../errors.js';
import { isLoopbackHost } from '../loopback.js';
import type { TokenKind } from './profiles.js';
import type { Secrets } from './secret-store.js';

/**
 * A token to present to the gateway and when it expires.
 * @see https://www.rfc-editor.org/rfc/rfc6750
 */
export interface TokenGrant {
  token: string;
  expiresAt?: Date;
  /** When it was issued (`iat`, else when the CLI got it): short tokens renew at half-life. */
  issuedAt?: Date;
}

/** Options of {@link discoverIssuer}. @see https://openid.net/specs/openid-connect-discovery-1_0.html */
export interface DiscoverOptions {
  /** Seconds before any request to the provider is abandoned (default 30). */
  timeoutSeconds?: number;
  /** A fetch to use instead of the global one. */
  fetch?: client.CustomFetch;
  /** An installed app's client secret, where the provider requires one (Google). */
  clientSecret?: string;
}

/**
 * The issuer URL, checked: https, or http to a loopback host (which then allows insecure requests).
 * @see https://www.rfc-editor.org/rfc/rfc8252#section-8.3
 */
export function issuerUrl(issuer: string): { url: URL; insecure: boolean } {
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    throw new HoopError(ErrorCode.GATEWAY_PROTOCOL, 'the gateway named an identity provider whose URL is not valid', { hint: 'ask its administrator to check `login.issuer`' });
  }
  if (url.protocol === 'https:') return { url, insecure: false };
  if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return { url, insecure: true };
  throw new HoopError(ErrorCode.GATEWAY_PROTOCOL, `refusing to log in through ${url.origin}: the identity provider must use https`, {
    hint: 'ask the gateway administrator to configure an https issuer (plain http is allowed only on this machine)',
  });
}

/**
 * Discovers `issuer` and makes a public-client configuration for `clientId` (no client secret:
 * PKCE protects the code; `clientSecret`, an installed app's where the provider requires one,
 * is sent in the body of token requests).
 * @see https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderConfig
 * @see https://www.rfc-editor.org/rfc/rfc7636 (PKCE)
 */
export async function discoverIssuer(issuer: string, clientId: string, options: DiscoverOptions = {}): Promise<client.Configuration> {
  const { url, insecure } = issuerUrl(issuer);
  try {
    return await client.discovery(url, clientId, undefined, options.clientSecret !== undefined ? client.ClientSecretPost(options.clientSecret) : client.None(), {
      timeout: options.timeoutSeconds ?? 30,
      ...(insecure ? { execute: [client.allowInsecureRequests] } : {}),
      ...(options.fetch ? { [client.customFetch]: options.fetch } : {}),
    });
  } catch (err) {
    throw providerError(err, url.origin, 'discover');
  }
}

/**
 * A HoopError for a failure talking to the identity provider at `origin` (`what` the CLI was
 * doing). The provider's `error` and `error_description` are shown; no token ever is.
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-5.2
 */
export function providerError(err: unknown, origin: string, what: string): HoopError {
  if (err instanceof HoopError) return err;
  if (err instanceof client.ResponseBodyError || err instanceof client.AuthorizationResponseError) {
    const detail = err.error_description ? `${err.error}: ${err.error_description}` : err.error;
    const expired = err.error === 'invalid_grant' || err.error === 'expired_token' || err.error === 'access_denied';
    return new HoopError(expired ? ErrorCode.NOT_LOGGED_IN : ErrorCode.GATEWAY_PROTOCOL, `the identity provider at ${origin} refused to ${what}: ${detail}`, {
      hint: 'run `hoop login` again',
      cause: err,
    });
  }
  const name = (err as { name?: string } | undefined)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') {
    return new HoopError(ErrorCode.GATEWAY_UNREACHABLE, `the identity provider at ${origin} did not answer in time (${what})`, { hint: 'check your network and try again', cause: err });
  }
  const cause = (err as { cause?: unknown } | undefined)?.cause;
  if (err instanceof TypeError && cause !== undefined) {
    return new HoopError(ErrorCode.GATEWAY_UNREACHABLE, `cannot reach the identity provider at ${origin}: ${describeError(cause)}`, {
      hint: 'check your network; if the provider uses a private CA, add it with NODE_EXTRA_CA_CERTS',
      cause: err,
    });
  }
  return new HoopError(ErrorCode.GATEWAY_PROTOCOL, `the identity provider at ${origin} answered something unexpected (${what}): ${describeError(err)}`, {
    hint: "check the gateway's `login` configuration; run again with HOOP_DEBUG=1 for details",
    cause: err,
  });
}

/**
 * The `exp` of a JWT as a Date (not verified: only to know when to renew), or undefined.
 * @see https://www.rfc-editor.org/rfc/rfc7519#section-4.1.4
 */
export function jwtExpiry(token: string): Date | undefined {
  try {
    const { exp } = decodeJwt(token);
    return typeof exp === 'number' ? new Date(exp * 1000) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The `iat` of a JWT as a Date, or undefined.
 * @see https://www.rfc-editor.org/rfc/rfc7519#section-4.1.6
 */
export function jwtIssuedAt(token: string): Date | undefined {
  try {
    const { iat } = decodeJwt(token);
    return typeof iat === 'number' ? new Date(iat * 1000) : undefined;
  } catch {
    return undefined;
  }
}

const looksLikeJwt = (token: string): boolean => /^[\w-]+\.[\w-]+\.[\w-]*$/.test(token);

/**
 * The secrets to store from a token endpoint response; the previous refresh token is kept when
 * the provider did not rotate it.
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-5.1
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-6 (refresh; rotation is optional)
 */
export function secretsFromTokenResponse(response: client.TokenEndpointResponse, now: Date, previous: Secrets = {}): Secrets {
  const out: Secrets = { ...previous };
  delete out.accessToken;
  delete out.idToken;
  delete out.accessTokenExpiresAt;
  if (response.access_token) out.accessToken = response.access_token;
  if (response.id_token) out.idToken = response.id_token;
  if (response.refresh_token) out.refreshToken = response.refresh_token;
  if (typeof response.expires_in === 'number') out.accessTokenExpiresAt = new Date(now.getTime() + response.expires_in * 1000).toISOString();
  out.obtainedAt = now.toISOString();
  return out;
}

/**
 * The token the gateway wants (`tokenType`) from stored secrets: the access token, the ID token,
 * or for `any` the access token when it is a JWT, else the ID token.
 * @see https://www.rfc-editor.org/rfc/rfc9068 (JWT access tokens)
 * @see https://openid.net/specs/openid-connect-core-1_0.html#IDToken
 */
export function presentedToken(secrets: Secrets, tokenType: TokenKind): TokenGrant | undefined {
  const access = secrets.accessToken;
  const id = secrets.idToken;
  const obtainedAt = secrets.obtainedAt ? new Date(secrets.obtainedAt) : undefined;
  const grant = (token: string, expiresAt: Date | undefined): TokenGrant => {
    const issuedAt = jwtIssuedAt(token) ?? obtainedAt;
    return { token, ...(expiresAt ? { expiresAt } : {}), ...(issuedAt ? { issuedAt } : {}) };
  };
  const fromAccess = (): TokenGrant | undefined => (access ? grant(access, jwtExpiry(access) ?? (secrets.accessTokenExpiresAt ? new Date(secrets.accessTokenExpiresAt) : undefined)) : undefined);
  const fromId = (): TokenGrant | undefined => (id ? grant(id, jwtExpiry(id)) : undefined);
  if (tokenType === 'access') return fromAccess();
  if (tokenType === 'id') return fromId();
  return access && looksLikeJwt(access) ? fromAccess() : (fromId() ?? fromAccess());
}

/**
 * Extra token endpoint parameters: the RFC 8707 resource, when the gateway names one.
 * @see https://www.rfc-editor.org/rfc/rfc8707#section-2
 */
export function resourceParameters(resource: string | undefined): Record<string, string> {
  return resource ? { resource } : {};
}
