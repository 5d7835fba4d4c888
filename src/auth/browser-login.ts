/**
 * Log in with the browser: OAuth 2.0 Authorization Code with PKCE (S256), `state` and `nonce`,
 * redirected to a one-shot listener on `127.0.0.1` (RFC 8252). The URL is always printed; the
 * browser is opened unless told not to. Waits at most `timeoutMs` for the browser.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8252 (OAuth 2.0 for native apps)
 * @see https://www.rfc-editor.org/rfc/rfc7636 (PKCE)
 * @see https://openid.net/specs/openid-connect-core-1_0.html#CodeFlowAuth
 */
import * as client from 'openid-client';
import { ErrorCode, HoopError } from '../errors.js';
import { startRedirectListener } from './loopback-redirect.js';
import { providerError, resourceParameters } from './oidc.js';

/** Options of {@link loginWithBrowser}. @see https://www.rfc-editor.org/rfc/rfc8252 */
export interface BrowserLoginOptions {
  scopes: string[];
  resource?: string | undefined;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Opens the URL in a browser; resolves false when it could not. Absent: only print it. */
  openUrl?: ((url: string) => Promise<boolean>) | undefined;
  /** Writes one line for the user (stderr). */
  say: (text: string) => void;
  /**
   * Asks the provider to sign the person in anew even when it has a session (`prompt=login`,
   * `max_age=0`), for decisions a policy wants a recent sign-in for.
   * @see https://openid.net/specs/openid-connect-core-1_0.html#AuthRequest
   */
  reauth?: boolean | undefined;
  /** The redirect's port, when the provider compares it (login.redirectPort); default any. */
  redirectPort?: number | undefined;
  /** More parameters of the authorization request, as the gateway's login configuration gives them (Google: access_type=offline). */
  authorizationParams?: Record<string, string> | undefined;
}

/**
 * Runs the authorization code flow and resolves with the provider's token response.
 * @see https://www.rfc-editor.org/rfc/rfc8252#section-7.3
 */
export async function loginWithBrowser(config: client.Configuration, options: BrowserLoginOptions): Promise<client.TokenEndpointResponse> {
  const origin = new URL(config.serverMetadata().issuer).origin;
  const listener = await startRedirectListener(options.redirectPort);
  try {
    const codeVerifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(config, {
      ...options.authorizationParams,
      redirect_uri: listener.redirectUri,
      scope: options.scopes.join(' '),
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      ...(options.reauth ? { prompt: 'login', max_age: '0' } : {}),
      ...resourceParameters(options.resource),
    });
    options.say(`To log in, open this URL in a browser on this machine:\n\n  ${url.href}\n`);
    if (options.openUrl && !(await options.openUrl(url.href))) options.say('Could not start a browser; open the URL above yourself.');
    options.say(`Waiting for the browser (up to ${Math.round(options.timeoutMs / 1000)} s; Ctrl-C to stop)...`);

    const callback = await listener.wait({
      state,
      timeoutMs: options.timeoutMs,
      ...(options.signal ? { signal: options.signal } : {}),
      onWrongState: () => options.say('Ignored a browser response whose state does not match this login; still waiting.'),
    });
    const error = callback.url.searchParams.get('error');
    if (error !== null) {
      const description = callback.url.searchParams.get('error_description');
      callback.respond(false, `The identity provider said: ${error}${description ? ` (${description})` : ''}. Return to the terminal.`);
      throw new HoopError(ErrorCode.NOT_LOGGED_IN, `the identity provider did not log you in: ${error}${description ? `: ${description}` : ''}`, {
        hint: 'run `hoop login` again',
      });
    }
    try {
      const response = await client.authorizationCodeGrant(
        config,
        callback.url,
        { pkceCodeVerifier: codeVerifier, expectedState: state, expectedNonce: nonce, idTokenExpected: options.scopes.includes('openid') },
        resourceParameters(options.resource),
      );
      callback.respond(true, 'You are logged in to hoop. You can close this tab and return to the terminal.');
      return response;
    } catch (err) {
      callback.respond(false, 'hoop could not finish the login; the terminal says why.');
      throw providerError(err, origin, 'exchange the authorization code');
    }
  } finally {
    await listener.close();
  }
}
