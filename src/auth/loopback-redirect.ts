/**
 * The one-shot redirect listener of a native-app login: plain HTTP on the `127.0.0.1` literal,
 * a port the OS picks, path `/callback`. It accepts the one response that carries the `state`
 * this login sent; a response with another (or no) `state` gets a 400 page and the listener
 * keeps waiting, so a stray or forged request cannot end a login in progress. The browser's
 * request is held open until the code exchange is over, then answered with a short result page.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8252#section-7.3 (loopback interface redirection)
 * @see https://www.rfc-editor.org/rfc/rfc8252#section-8.3 (use the IP literal, not localhost)
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-10.12 (CSRF: state)
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ErrorCode, HoopError } from '../errors.js';

/** A callback request with the expected `state`; answer it with {@link CallbackRequest.respond}. @see https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2 */
export interface CallbackRequest {
  /** The full callback URL (`http://127.0.0.1:<port>/callback?code=...&state=...`). */
  url: URL;
  /** Sends the result page to the browser and closes its connection. */
  respond(ok: boolean, message: string): void;
}

/** Options of {@link RedirectListener.wait}. @see https://www.rfc-editor.org/rfc/rfc8252#section-7.3 */
export interface WaitOptions {
  state: string;
  /** Milliseconds to wait for the browser (the HoopError(TIMEOUT) says so). */
  timeoutMs: number;
  /** Aborts the wait (Ctrl-C). */
  signal?: AbortSignal;
  /** Called for each response that is refused for a wrong or missing state. */
  onWrongState?: () => void;
}

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(res: ServerResponse, status: number, title: string, message: string): void {
  const body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hoop: ${escapeHtml(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}h1{font-size:1.4rem}</style></head>
<body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p></body></html>
`;
  res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    'Referrer-Policy': 'no-referrer',
    'X-Frame-Options': 'DENY',
    'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    Connection: 'close',
  });
  res.end(body);
}

/**
 * A listening redirect endpoint; {@link startRedirectListener} makes one.
 * @see https://www.rfc-editor.org/rfc/rfc8252#section-7.3
 */
export class RedirectListener {
  /** `http://127.0.0.1:<port>/callback`. */
  readonly redirectUri: string;
  readonly #server: Server;
  readonly #host: string;
  #waiter: { state: string; resolve: (c: CallbackRequest) => void; onWrongState?: (() => void) | undefined } | undefined;
  #answered = false;

  constructor(server: Server) {
    this.#server = server;
    const { port } = server.address() as AddressInfo;
    this.#host = `127.0.0.1:${port}`;
    this.redirectUri = `http://${this.#host}/callback`;
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.#handle(req, res));
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    // A page on another origin that resolves to 127.0.0.1 (DNS rebinding) sends its own Host.
    if (req.headers.host !== this.#host) return page(res, 400, 'Wrong host', 'This address only answers to the login hoop started.');
    let url: URL;
    try {
      url = new URL(req.url ?? '/', `http://${this.#host}`);
    } catch {
      return page(res, 400, 'Bad request', 'The request target is not a URL path.');
    }
    if (url.pathname !== '/callback') return page(res, 404, 'Not found', 'Nothing here.');
    if (req.method !== 'GET') return page(res, 405, 'Method not allowed', 'The login response must come as a GET request.');
    const waiter = this.#waiter;
    const state = url.searchParams.get('state');
    if (!waiter || this.#answered) return page(res, 409, 'Already done', 'This login is already finished. Return to the terminal.');
    if (state !== waiter.state) {
      waiter.onWrongState?.();
      return page(
        res,
        400,
        'Login response rejected',
        'This response does not belong to the login hoop is waiting for (its state does not match). hoop keeps waiting for the right one; if you started another login, finish that one.',
      );
    }
    this.#answered = true;
    waiter.resolve({ url, respond: (ok, message) => page(res, ok ? 200 : 400, ok ? 'Logged in' : 'Login failed', message) });
  }

  /**
   * Waits for the callback with `state`. Rejects with HoopError(TIMEOUT) after `timeoutMs`, or
   * with the abort reason (as a HoopError) when `signal` aborts.
   * @see https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2
   */
  wait(options: WaitOptions): Promise<CallbackRequest> {
    return new Promise((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new HoopError(ErrorCode.TIMEOUT, `no login response came back from the browser within ${Math.round(options.timeoutMs / 1000)} s`, {
            hint: 'run `hoop login` again (and finish in the browser); where the browser cannot reach this machine, use `hoop login --device`',
          }),
        );
      }, options.timeoutMs);
      const onAbort = (): void => {
        cleanup();
        reject(new HoopError(ErrorCode.NOT_LOGGED_IN, 'login cancelled', { exitCode: 130 }));
      };
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiter = {
        state: options.state,
        onWrongState: options.onWrongState,
        resolve: (c) => {
          cleanup();
          resolve(c);
        },
      };
    });
  }

  /** Stops listening and drops any connection left. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeIdleConnections();
      // Let a result page still being written reach the browser before cutting connections.
      setTimeout(() => this.#server.closeAllConnections(), 500).unref();
    });
  }
}

/**
 * Listens on `127.0.0.1`, on `port` when the provider compares the redirect URI's port (Okta), else
 * on one the OS picks (RFC 8252: a provider must take any port of a loopback redirect).
 * @see https://www.rfc-editor.org/rfc/rfc8252#section-7.3
 */
export async function startRedirectListener(port = 0): Promise<RedirectListener> {
  const server = createServer({ requestTimeout: 30_000, headersTimeout: 10_000 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(
        new HoopError(ErrorCode.LISTEN_FAILED, `cannot listen on 127.0.0.1${port ? `:${port}` : ''} for the login redirect: ${err.message}`, {
          cause: err,
          ...(port ? { hint: `the identity provider wants its redirect on port ${port} (login.redirectPort of the gateway): free it, or ask the gateway operator to register another` } : {}),
        }),
      ),
    );
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return new RedirectListener(server);
}
