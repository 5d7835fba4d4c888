/**
 * Log in with the device authorization grant: the provider gives a user code and a URL, the
 * user approves on any device with a browser, the CLI polls the token endpoint. Polling is
 * openid-client's own loop, which waits `interval` seconds between requests and adds 5 s on
 * every `slow_down`; this module only watches the answers to show the interval it now uses.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8628 (OAuth 2.0 device authorization grant)
 * @see https://www.rfc-editor.org/rfc/rfc8628#section-3.5 (slow_down)
 */
import { realClock } from '../clock.js';
import * as client from 'openid-client';
import { ErrorCode, HoopError } from '../errors.js';
import { providerError, resourceParameters } from './oidc.js';

/** What the user must do, as a view shows it. @see https://www.rfc-editor.org/rfc/rfc8628#section-3.3 */
export interface DevicePrompt {
  userCode: string;
  verificationUri: string;
  verificationUriComplete?: string;
  expiresAt: Date;
  /** Seconds between polls; grows with each `slow_down`. */
  intervalSeconds: number;
}

/** Shows the device prompt and its progress (the ink view on a terminal, plain lines otherwise). @see https://www.rfc-editor.org/rfc/rfc8628#section-3.3 */
export interface DeviceLoginView {
  show(prompt: DevicePrompt): void;
  /** The polling interval changed (after a `slow_down`). */
  slowedDown(intervalSeconds: number): void;
  /** The flow ended; resolves once the view is done drawing. */
  finish(result: { ok: boolean; message: string }): Promise<void>;
}

/**
 * A view that writes plain lines.
 * @see https://www.rfc-editor.org/rfc/rfc8628#section-3.3
 */
export function plainDeviceView(say: (text: string) => void): DeviceLoginView {
  return {
    show(p) {
      say(`To log in, open ${p.verificationUri} and enter the code ${p.userCode}`);
      if (p.verificationUriComplete) say(`(or open ${p.verificationUriComplete})`);
      say(`Waiting for approval until ${p.expiresAt.toLocaleTimeString()} (checking every ${p.intervalSeconds} s; Ctrl-C to stop)...`);
    },
    slowedDown(interval) {
      say(`The identity provider asked hoop to slow down; checking every ${interval} s.`);
    },
    async finish(result) {
      say(result.message);
    },
  };
}

/** Options of {@link loginWithDevice}. @see https://www.rfc-editor.org/rfc/rfc8628 */
export interface DeviceLoginOptions {
  scopes: string[];
  resource?: string | undefined;
  /** Upper bound on the wait; the code's own `expires_in` may end it sooner. */
  timeoutMs: number;
  signal?: AbortSignal;
  view: DeviceLoginView;
  now?: () => Date;
}

/**
 * Runs the device authorization grant and resolves with the provider's token response.
 * @see https://www.rfc-editor.org/rfc/rfc8628#section-3.4
 */
export async function loginWithDevice(config: client.Configuration, options: DeviceLoginOptions): Promise<client.TokenEndpointResponse> {
  const metadata = config.serverMetadata();
  const origin = new URL(metadata.issuer).origin;
  if (!metadata.device_authorization_endpoint) {
    throw new HoopError(ErrorCode.USAGE, `the identity provider at ${origin} does not offer the device flow`, { hint: 'log in with the browser: `hoop login` (without --device)' });
  }
  let authorization: client.DeviceAuthorizationResponse;
  try {
    authorization = await client.initiateDeviceAuthorization(config, { scope: options.scopes.join(' '), ...resourceParameters(options.resource) });
  } catch (err) {
    throw providerError(err, origin, 'start the device login');
  }
  const now = options.now ?? (() => new Date(realClock.now()));
  let interval = authorization.interval ?? 5;
  const waitMs = Math.min(options.timeoutMs, authorization.expires_in * 1000);
  options.view.show({
    userCode: authorization.user_code,
    verificationUri: authorization.verification_uri,
    ...(authorization.verification_uri_complete ? { verificationUriComplete: authorization.verification_uri_complete } : {}),
    expiresAt: new Date(now().getTime() + waitMs),
    intervalSeconds: interval,
  });

  const tokenEndpoint = metadata.token_endpoint;
  const previousFetch = config[client.customFetch];
  const baseFetch: client.CustomFetch = previousFetch ?? ((url, init) => fetch(url, init));
  config[client.customFetch] = async (url, init) => {
    const res = await baseFetch(url, init);
    if (url === tokenEndpoint && res.status === 400) {
      const body = (await res
        .clone()
        .json()
        .catch(() => undefined)) as { error?: unknown } | undefined;
      if (body?.error === 'slow_down') {
        interval += 5;
        options.view.slowedDown(interval);
      }
    }
    return res;
  };

  const timeout = AbortSignal.timeout(waitMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  try {
    const response = await client.pollDeviceAuthorizationGrant(config, authorization, resourceParameters(options.resource), { signal });
    await options.view.finish({ ok: true, message: 'Approved.' });
    return response;
  } catch (err) {
    let error: HoopError;
    if (options.signal?.aborted) error = new HoopError(ErrorCode.NOT_LOGGED_IN, 'login cancelled', { exitCode: 130 });
    else if (timeout.aborted) {
      error = new HoopError(ErrorCode.TIMEOUT, `the code was not approved within ${Math.round(waitMs / 1000)} s`, { hint: 'run `hoop login --device` again and approve the code in time' });
    } else if (err instanceof client.ResponseBodyError && err.error === 'access_denied') {
      error = new HoopError(ErrorCode.NOT_LOGGED_IN, 'the login was denied on the approval page', { hint: 'run `hoop login --device` again and approve it' });
    } else if (err instanceof client.ResponseBodyError && err.error === 'expired_token') {
      error = new HoopError(ErrorCode.TIMEOUT, 'the code expired before it was approved', { hint: 'run `hoop login --device` again and approve the code in time' });
    } else error = providerError(err, origin, 'complete the device login');
    await options.view.finish({ ok: false, message: error.message });
    throw error;
  } finally {
    if (previousFetch) config[client.customFetch] = previousFetch;
  }
}
