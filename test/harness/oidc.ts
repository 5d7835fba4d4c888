/**
 * A real OpenID provider for tests: `oidc-provider` on 127.0.0.1, port 0.
 *
 * {@link startOidc} serves discovery, the JWKS, the token, revocation and device authorization
 * endpoints and the browser pages over plain HTTP on loopback (issuer `http://127.0.0.1:<port>`).
 *
 * Two ways to get tokens:
 *
 * - {@link TestOidc.token} gets a real signed JWT access token over HTTP with the client_credentials
 *   grant: each call registers a one-off confidential client that remembers the subject, groups,
 *   email, audience and lifetime asked for, and the provider's hooks put them into the token.
 * - The CLI's flows: a public native client ({@link TestOidc.clientId}, default `hoop-cli`, no
 *   secret, PKCE S256 required, any loopback port on `http://127.0.0.1/callback` as RFC 8252 §7.3
 *   asks) may use the authorization code, refresh token and device authorization grants. The
 *   harness serves its own minimal login page (a username field, no password) and consent page
 *   at `/interaction/<uid>`; `test/harness/browser.ts` plays the user. Accounts come from
 *   `options.accounts`; any other username signs in too, with no groups.
 *
 * Access tokens are JWTs (RFC 9068, `typ: at+jwt`) for whatever resource indicator the client
 * sends (default {@link TestOidc.resource}), with `aud` = the audience, plus `groups`/`email`
 * claims. ID tokens carry `groups`, `email`, `name` too. Refresh tokens are issued when
 * `offline_access` is asked for and rotate on every use. The device grant answers `slow_down`
 * when a client polls faster than {@link OidcOptions.deviceInterval}, which oidc-provider alone
 * does not enforce.
 *
 * The provider gets its own signing key, adapter, cookie keys, TTLs and page renderers so it
 * prints no quick-start notices; {@link TestOidc.provider} stays reachable for further hooks.
 *
 * @see https://github.com/panva/node-oidc-provider/blob/main/docs/README.md
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-4.4 (client credentials grant)
 * @see https://www.rfc-editor.org/rfc/rfc7636 (PKCE)
 * @see https://www.rfc-editor.org/rfc/rfc8252#section-7.3 (loopback redirect URIs)
 * @see https://www.rfc-editor.org/rfc/rfc8628 (device authorization grant)
 * @see https://www.rfc-editor.org/rfc/rfc7009 (token revocation)
 * @see https://www.rfc-editor.org/rfc/rfc8707 (resource indicators)
 * @see https://www.rfc-editor.org/rfc/rfc9068 (JWT access tokens)
 */
import { listenOnLoopback } from './listen.js';
import { randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { newKeyPair } from '../../src/key-pair.js';

/** What a test can ask the provider to put into a client_credentials token. */
export interface TokenRequest {
  subject: string;
  groups?: string[];
  email?: string;
  /** Default: the audience given to {@link startOidc}. */
  audience?: string;
  /** Default 600. */
  expiresInSeconds?: number;
  /** `auth_time` (seconds since the epoch): when the person last signed in, as an identity provider says in a user's token. */
  authTime?: number;
}

/** A user who can sign in on the provider's login page. */
export interface TestAccount {
  groups?: string[];
  email?: string;
  name?: string;
}

/** Lifetimes in seconds of what the CLI's flows get; mutable on a running provider. */
export interface OidcLifetimes {
  /** Access tokens of the user flows. Default 600. */
  accessToken: number;
  /** Refresh tokens. Default 3600. */
  refreshToken: number;
  /** ID tokens. Default 600. */
  idToken: number;
  /** Device codes (the `expires_in` of the device authorization response). Default 600. */
  deviceCode: number;
}

/** Options of {@link startOidc}. */
export interface OidcOptions {
  /** `aud` of every access token. Default `hoop-test`. */
  audience?: string;
  /** Known users by username (the `sub`). Unknown usernames sign in too, with no groups or email. */
  accounts?: Record<string, TestAccount>;
  /** The public native client's id. Default `hoop-cli`. */
  clientId?: string;
  /** The native client's secret, which it must send with its token requests (as Google's desktop clients do); default: none. */
  clientSecret?: string;
  /** Access token TTL of the user flows, seconds. Default 600. */
  accessTokenTTL?: number;
  /** Refresh token TTL, seconds. Default 3600. */
  refreshTokenTTL?: number;
  /** ID token TTL, seconds. Default 600. */
  idTokenTTL?: number;
  /** Device code TTL, seconds. Default 600. */
  deviceCodeTTL?: number;
  /**
   * The device grant's polling interval in seconds, sent as `interval` in the device
   * authorization response; a poll sooner than this after the previous one gets `slow_down`.
   * Default 1. `0` turns the check off.
   */
  deviceInterval?: number;
}

/** A running provider. */
export interface TestOidc {
  /** `http://127.0.0.1:<port>`. */
  issuer: string;
  /** The `aud` of every access token. */
  audience: string;
  /** The public native client for the CLI (`hoop-cli` unless set). */
  clientId: string;
  /** Redirect URI registered for {@link TestOidc.clientId}; any port on it is accepted. */
  redirectUri: string;
  /** The default resource indicator (RFC 8707); a client may send any absolute URI instead. */
  resource: string;
  /** The scopes the CLI should ask for. */
  scopes: string[];
  /** Known accounts (mutable: add users on a running provider). */
  accounts: Record<string, TestAccount>;
  /** Lifetimes of what the user flows issue (mutable: changes apply to the next tokens). */
  lifetimes: OidcLifetimes;
  /** Device grant polling interval, seconds (mutable). */
  deviceInterval: number;
  /** How many device grant polls were answered `slow_down` (a test waits for one instead of guessing when it came). */
  slowDowns: number;
  /** Every token the revocation endpoint revoked, in order (RFC 7009). */
  revocations: RevokedToken[];
  /**
   * Revokes, behind the client's back, every refresh token, grant and session of `subject` (all
   * subjects if omitted) — like an admin disabling a user; the next refresh gets `invalid_grant`.
   * Returns how many entries it removed. Issued JWT access tokens stay valid until they expire.
   */
  revokeTokens(subject?: string): number;
  /** Stops the HTTP server. Idempotent. */
  close(): Promise<void>;
  /** A real access token (JWT, RS256) issued by the provider over HTTP (client_credentials). */
  token(opts: TokenRequest): Promise<string>;
  /** The `oidc-provider` instance (a Koa application). */
  provider: OidcProvider;
  /** The provider's signing key: tests forge tokens with it that the provider would never issue. */
  signingKey: { kid: string; alg: 'RS256'; privateKey: KeyObject };
  /** The provider's adapter store, to register clients or inspect artifacts. */
  store: MemoryStore;
}

/** A token the revocation endpoint revoked. */
export interface RevokedToken {
  /** `RefreshToken`, `AccessToken` (opaque only: JWT access tokens get `unsupported_token_type`) or `ClientCredentials`. */
  kind: string;
  accountId?: string;
  clientId?: string;
}

/** The parts of an `oidc-provider` Provider these tests use (the package ships no types). */
export interface OidcProvider {
  readonly issuer: string;
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  [key: string]: unknown;
}

type ProviderConstructor = new (issuer: string, configuration: Record<string, unknown>) => OidcProvider;

interface Interaction {
  uid: string;
  prompt: { name: string; reasons: string[]; details: Record<string, unknown> };
  params: Record<string, unknown>;
  session?: { accountId?: string };
  grantId?: string;
  lastSubmission?: Record<string, unknown>;
}

interface GrantInstance {
  addOIDCScope(scope: string): void;
  addOIDCClaims(claims: string[]): void;
  addResourceScope(indicator: string, scope: string): void;
  save(): Promise<string>;
}

interface ProviderInternals {
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<Interaction>;
  interactionFinished(req: IncomingMessage, res: ServerResponse, result: Record<string, unknown>, options?: { mergeWithLastSubmission?: boolean }): Promise<void>;
  Grant: { new (init: { accountId: string; clientId: string }): GrantInstance; find(id: string): Promise<GrantInstance | undefined> };
}

interface Stored {
  payload: Record<string, unknown>;
  expiresAt: number;
}

/**
 * The in-memory storage behind the provider's adapter: one map per provider, entries expire.
 *
 * @see https://github.com/panva/node-oidc-provider/blob/main/example/my_adapter.js (adapter interface)
 */
export class MemoryStore {
  readonly #items = new Map<string, Stored>();

  get(key: string): Record<string, unknown> | undefined {
    const item = this.#items.get(key);
    if (!item) return undefined;
    if (item.expiresAt <= Date.now()) {
      this.#items.delete(key);
      return undefined;
    }
    return item.payload;
  }

  set(key: string, payload: Record<string, unknown>, expiresInSeconds?: number): void {
    this.#items.set(key, { payload, expiresAt: expiresInSeconds === undefined ? Infinity : Date.now() + expiresInSeconds * 1000 });
  }

  delete(key: string): void {
    this.#items.delete(key);
  }

  /** Keys of every live entry. */
  keys(): string[] {
    return [...this.#items.keys()].filter((k) => this.get(k) !== undefined);
  }

  /** An `oidc-provider` adapter class bound to this store. */
  adapter(): new (model: string) => object {
    const store = this;
    return class Adapter {
      constructor(readonly model: string) {}
      #key(id: string): string {
        return `${this.model}:${id}`;
      }
      async upsert(id: string, payload: Record<string, unknown>, expiresIn?: number): Promise<void> {
        store.set(this.#key(id), payload, expiresIn);
      }
      async find(id: string): Promise<Record<string, unknown> | undefined> {
        return store.get(this.#key(id));
      }
      async findByUid(uid: string): Promise<Record<string, unknown> | undefined> {
        for (const key of store.keys()) {
          const p = store.get(key);
          if (key.startsWith(`${this.model}:`) && p?.uid === uid) return p;
        }
        return undefined;
      }
      async findByUserCode(userCode: string): Promise<Record<string, unknown> | undefined> {
        for (const key of store.keys()) {
          const p = store.get(key);
          if (key.startsWith(`${this.model}:`) && p?.userCode === userCode) return p;
        }
        return undefined;
      }
      async consume(id: string): Promise<void> {
        const p = store.get(this.#key(id));
        if (p) p.consumed = Math.floor(Date.now() / 1000);
      }
      async destroy(id: string): Promise<void> {
        store.delete(this.#key(id));
      }
      async revokeByGrantId(grantId: string): Promise<void> {
        for (const key of store.keys()) if (store.get(key)?.grantId === grantId) store.delete(key);
      }
    };
  }
}

const RESOURCE = 'urn:hoop-test:gateway';
const SCOPES = ['openid', 'profile', 'email', 'offline_access'];
const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

/** Lines oidc-provider prints to the console; anything else passes through. */
function quietly<T>(run: () => Promise<T>): Promise<T> {
  const { warn, info } = console;
  const filter =
    (orig: (...args: unknown[]) => void) =>
    (...args: unknown[]): void => {
      if (typeof args[0] === 'string' && args[0].includes('oidc-provider')) return;
      orig.apply(console, args);
    };
  console.warn = filter(warn);
  console.info = filter(info);
  return run().finally(() => {
    console.warn = warn;
    console.info = info;
  });
}

let providerClass: Promise<ProviderConstructor> | undefined;

function loadProvider(): Promise<ProviderConstructor> {
  // A non-literal specifier: the package has no type declarations.
  const specifier = 'oidc-provider';
  providerClass ??= quietly(async () => ((await import(specifier)) as { default: ProviderConstructor }).default);
  return providerClass;
}

function esc(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title: string, body: string): string {
  return `<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>${esc(title)}</title></head>\n<body>\n<h1>${esc(title)}</h1>\n${body}\n</body></html>\n`;
}

async function readBody(req: IncomingMessage, limit = 64 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** A stand-in for `req` whose body has already been read: the provider reads `replay` instead. */
function replayRequest(req: IncomingMessage, body: Buffer): IncomingMessage {
  const replay = Readable.from([body], { objectMode: false });
  return Object.assign(replay, {
    headers: req.headers,
    rawHeaders: req.rawHeaders,
    url: req.url,
    method: req.method,
    socket: req.socket,
    connection: req.socket,
    httpVersion: req.httpVersion,
    httpVersionMajor: req.httpVersionMajor,
    httpVersionMinor: req.httpVersionMinor,
    complete: true,
  }) as unknown as IncomingMessage;
}

function send(res: ServerResponse, status: number, type: string, body: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...extra });
  res.end(body);
}

/**
 * Starts a real OpenID provider on 127.0.0.1 (port 0).
 *
 * @see https://openid.net/specs/openid-connect-discovery-1_0.html
 * @see https://openid.net/specs/openid-connect-core-1_0.html
 */
export async function startOidc(options: OidcOptions = {}): Promise<TestOidc> {
  const audience = options.audience ?? 'hoop-test';
  const clientId = options.clientId ?? 'hoop-cli';
  const redirectUri = 'http://127.0.0.1/callback';
  const accounts: Record<string, TestAccount> = { ...options.accounts };
  const lifetimes: OidcLifetimes = {
    accessToken: options.accessTokenTTL ?? 600,
    refreshToken: options.refreshTokenTTL ?? 3600,
    idToken: options.idTokenTTL ?? 600,
    deviceCode: options.deviceCodeTTL ?? 600,
  };
  const Provider = await loadProvider();

  const server = createServer();
  // Idle connections stay until the client closes them: a server that closes one races a busy test's reuse of it ("fetch failed").
  server.keepAliveTimeout = 0;
  const port = await listenOnLoopback(server);
  const issuer = `http://127.0.0.1:${port}`;

  const { privateKey } = newKeyPair('rsa');
  const kid = `test-${randomBytes(6).toString('hex')}`;
  const signingJwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
  const store = new MemoryStore();
  const requests = new Map<string, Required<Pick<TokenRequest, 'subject' | 'audience' | 'expiresInSeconds'>> & TokenRequest>();
  const clientIdOf = (token: unknown): string | undefined => {
    const t = token as { clientId?: string; client?: { clientId?: string } };
    return t.clientId ?? t.client?.clientId;
  };
  const accountClaims = (sub: string): Record<string, unknown> => {
    const account = Object.hasOwn(accounts, sub) ? accounts[sub] : undefined;
    return {
      ...(account?.groups ? { groups: account.groups } : {}),
      ...(account?.email ? { email: account.email, email_verified: true } : {}),
      ...(account?.name ? { name: account.name } : {}),
    };
  };

  const revocations: RevokedToken[] = [];

  const provider = await quietly(
    async () =>
      new Provider(issuer, {
        adapter: store.adapter(),
        jwks: { keys: [signingJwk] },
        cookies: { keys: [randomBytes(32).toString('base64url')] },
        clientBasedCORS: () => false,
        clients: [
          {
            client_id: clientId,
            client_name: 'hoop CLI (test)',
            application_type: 'native',
            ...(options.clientSecret !== undefined ? { token_endpoint_auth_method: 'client_secret_post', client_secret: options.clientSecret } : { token_endpoint_auth_method: 'none' }),
            redirect_uris: [redirectUri],
            response_types: ['code'],
            grant_types: ['authorization_code', 'refresh_token', DEVICE_CODE_GRANT],
          },
        ],
        findAccount: async (_ctx: unknown, sub: string) => ({
          accountId: sub,
          claims: async () => ({ sub, preferred_username: sub, ...accountClaims(sub) }),
        }),
        claims: {
          openid: ['sub', 'groups'],
          email: ['email', 'email_verified'],
          profile: ['name', 'preferred_username'],
        },
        scopes: SCOPES,
        conformIdTokenClaims: false,
        // OIDC Core §11 makes offline_access need prompt=consent, so oidc-provider drops it otherwise;
        // like most IdPs, the harness issues refresh tokens to the CLI client either way.
        issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }) => client.grantTypeAllowed('refresh_token'),
        expiresWithSession: async () => false,
        pkce: { required: () => true },
        renderError: async (ctx: { type: string; body: string }, out: Record<string, unknown>) => {
          ctx.type = 'html';
          ctx.body = page('Error', `<p id="op-error">${esc(out.error)}: ${esc(out.error_description ?? '')}</p>`);
        },
        features: {
          devInteractions: { enabled: false },
          clientCredentials: { enabled: true },
          rpInitiatedLogout: { enabled: false },
          revocation: {
            enabled: true,
            allowedPolicy: async (_ctx: unknown, client: { clientId: string }, token: { kind: string; clientId?: string; accountId?: string }) => {
              if (token.clientId !== client.clientId) return false;
              revocations.push({ kind: token.kind, accountId: token.accountId, clientId: token.clientId });
              return true;
            },
          },
          deviceFlow: {
            enabled: true,
            userCodeInputSource: async (ctx: { body: string }, form: string, _out: unknown, err?: { name?: string; userCode?: string }) => {
              const msg = err ? `<p id="op-error">${esc(err.userCode ? 'The code you entered is incorrect' : (err.name ?? 'error'))}</p>` : '<p>Enter the code displayed on your device</p>';
              ctx.body = page('Device sign-in', `${msg}\n${form}\n<button type="submit" form="op.deviceInputForm">Continue</button>`);
            },
            userCodeConfirmSource: async (ctx: { body: string }, form: string, client: { clientId: string }, _info: unknown, userCode: string) => {
              ctx.body = page(
                'Confirm device',
                `<p>${esc(client.clientId)} shows the code <code>${esc(userCode)}</code></p>\n${form}\n<button type="submit" form="op.deviceConfirmForm">Continue</button>`,
              );
            },
            successSource: async (ctx: { body: string }) => {
              ctx.body = page('Device approved', '<p id="op-device-success">Sign-in successful, you can close this page.</p>');
            },
          },
          resourceIndicators: {
            enabled: true,
            defaultResource: async () => RESOURCE,
            useGrantedResource: async () => true,
            getResourceServerInfo: async (_ctx: unknown, _resource: string, client: { clientId: string }) => {
              const req = requests.get(client.clientId);
              return {
                scope: '',
                audience: req?.audience ?? audience,
                accessTokenTTL: req?.expiresInSeconds ?? lifetimes.accessToken,
                accessTokenFormat: 'jwt',
                jwt: { sign: { alg: 'RS256' } },
              };
            },
          },
        },
        extraTokenClaims: async (ctx: { oidc?: { entities?: Record<string, { authTime?: number } | undefined> } }, token: unknown) => {
          const id = clientIdOf(token);
          const req = id === undefined ? undefined : requests.get(id);
          if (req)
            return {
              ...(req.groups ? { groups: req.groups } : {}),
              ...(req.email ? { email: req.email, email_verified: true } : {}),
              ...(req.authTime !== undefined ? { auth_time: req.authTime } : {}),
            };
          const accountId = (token as { accountId?: string }).accountId;
          if (accountId === undefined) return undefined;
          // When the person signed in: the grant's (a code's, a refresh token's, a device code's), as identity providers put it in access tokens.
          const e = ctx.oidc?.entities ?? {};
          const authTime = e.AuthorizationCode?.authTime ?? e.RefreshToken?.authTime ?? e.DeviceCode?.authTime;
          return { ...accountClaims(accountId), ...(authTime !== undefined ? { auth_time: authTime } : {}) };
        },
        formats: {
          customizers: {
            jwt: async (_ctx: unknown, token: unknown, jwt: { payload: Record<string, unknown> }) => {
              const id = clientIdOf(token);
              const req = id === undefined ? undefined : requests.get(id);
              if (req) jwt.payload.sub = req.subject;
            },
          },
        },
        ttl: {
          AccessToken: (_ctx: unknown, token: { resourceServer?: { accessTokenTTL?: number } }) => token.resourceServer?.accessTokenTTL ?? lifetimes.accessToken,
          AuthorizationCode: 60,
          ClientCredentials: (_ctx: unknown, token: { resourceServer?: { accessTokenTTL?: number } }) => token.resourceServer?.accessTokenTTL ?? 600,
          DeviceCode: () => lifetimes.deviceCode,
          Grant: 3600 * 24,
          IdToken: () => lifetimes.idToken,
          Interaction: 600,
          RefreshToken: () => lifetimes.refreshToken,
          Session: 3600 * 24,
        },
      }),
  );
  const internals = provider as unknown as ProviderInternals;

  const self: TestOidc = {
    issuer,
    audience,
    clientId,
    redirectUri,
    resource: RESOURCE,
    scopes: [...SCOPES],
    accounts,
    lifetimes,
    deviceInterval: options.deviceInterval ?? 1,
    slowDowns: 0,
    revocations,
    revokeTokens(subject) {
      let removed = 0;
      for (const key of store.keys()) {
        const kind = key.slice(0, key.indexOf(':'));
        const payload = store.get(key);
        if (!['RefreshToken', 'Grant', 'Session', 'AccessToken'].includes(kind)) continue;
        if (subject !== undefined && payload?.accountId !== subject) continue;
        store.delete(key);
        removed++;
      }
      return removed;
    },
    provider,
    store,
    signingKey: { kid, alg: 'RS256', privateKey },
    close: () => Promise.resolve(),
    token: () => Promise.resolve(''),
  };

  provider.on('device_authorization.success', (_ctx: unknown, body: unknown) => {
    if (self.deviceInterval > 0) (body as Record<string, unknown>).interval = self.deviceInterval;
  });

  const lastPoll = new Map<string, number>();
  const handle = provider.callback();

  /** RFC 8628 §3.5: the provider itself never answers `slow_down`, so the harness does. */
  async function tokenRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const params = new URLSearchParams(body.toString('utf8'));
    const deviceCode = params.get('device_code');
    if (params.get('grant_type') === DEVICE_CODE_GRANT && deviceCode && self.deviceInterval > 0) {
      const now = Date.now();
      const last = lastPoll.get(deviceCode);
      lastPoll.set(deviceCode, now);
      if (last !== undefined && now - last < self.deviceInterval * 1000) {
        self.slowDowns++;
        send(res, 400, 'application/json', JSON.stringify({ error: 'slow_down', error_description: 'you are polling too quickly and should back off' }));
        return;
      }
    }
    handle(replayRequest(req, body), res);
  }

  async function interaction(req: IncomingMessage, res: ServerResponse, uid: string, action: string | undefined): Promise<void> {
    const details = await internals.interactionDetails(req, res);
    if (details.uid !== uid) throw new Error('interaction mismatch');
    if (req.method === 'GET' && action === undefined) {
      const base = `/interaction/${encodeURIComponent(uid)}`;
      if (details.prompt.name === 'login') {
        send(
          res,
          200,
          'text/html; charset=utf-8',
          page(
            'Sign in',
            `<p>Client <code>${esc(details.params.client_id)}</code> asks you to sign in.</p>\n` +
              `<form id="login" method="post" action="${base}/login">\n<input type="text" name="username" autofocus autocomplete="username">\n<button type="submit">Sign in</button>\n</form>\n` +
              `<form id="abort" method="post" action="${base}/abort"><button type="submit">Cancel</button></form>`,
          ),
        );
        return;
      }
      const scopes = String(details.params.scope ?? '');
      send(
        res,
        200,
        'text/html; charset=utf-8',
        page(
          'Authorize',
          `<p>Client <code>${esc(details.params.client_id)}</code> asks for <code id="scopes">${esc(scopes)}</code> as <code id="account">${esc(details.session?.accountId ?? '')}</code>.</p>\n` +
            `<form id="consent" method="post" action="${base}/confirm"><button type="submit">Allow</button></form>\n` +
            `<form id="deny" method="post" action="${base}/abort"><button type="submit">Deny</button></form>`,
        ),
      );
      return;
    }
    if (req.method !== 'POST') {
      send(res, 405, 'text/plain', 'method not allowed');
      return;
    }
    const form = new URLSearchParams((await readBody(req)).toString('utf8'));
    if (action === 'login') {
      const username = form.get('username')?.trim();
      if (details.prompt.name !== 'login' || !username) {
        send(res, 400, 'text/html; charset=utf-8', page('Error', '<p id="op-error">a username is required</p>'));
        return;
      }
      await internals.interactionFinished(req, res, { login: { accountId: username } }, { mergeWithLastSubmission: false });
      return;
    }
    if (action === 'confirm') {
      const accountId = details.session?.accountId;
      if (details.prompt.name !== 'consent' || !accountId) {
        send(res, 400, 'text/html; charset=utf-8', page('Error', '<p id="op-error">nothing to consent to</p>'));
        return;
      }
      const grant = (details.grantId ? await internals.Grant.find(details.grantId) : undefined) ?? new internals.Grant({ accountId, clientId: String(details.params.client_id) });
      const missing = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
      const grantId = await grant.save();
      await internals.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
      return;
    }
    if (action === 'abort') {
      await internals.interactionFinished(req, res, { error: 'access_denied', error_description: 'End-User aborted interaction' }, { mergeWithLastSubmission: false });
      return;
    }
    send(res, 404, 'text/plain', 'not found');
  }

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const m = /^\/interaction\/([^/]+)(?:\/(login|confirm|abort))?$/.exec(path);
    const run = m ? interaction(req, res, decodeURIComponent(m[1] ?? ''), m[2]) : req.method === 'POST' && path === '/token' ? tokenRequest(req, res) : Promise.resolve(handle(req, res));
    run.catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      send(res, 400, 'text/html; charset=utf-8', page('Error', `<p id="op-error">${esc(err instanceof Error ? err.message : String(err))}</p>`));
    });
  });

  let closed: Promise<void> | undefined;
  let tokenEndpoint: string | undefined;

  self.close = () => {
    closed ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return closed;
  };
  self.token = async (opts) => {
    tokenEndpoint ??= await (async () => {
      const res = await fetch(`${issuer}/.well-known/openid-configuration`);
      const meta = (await res.json()) as { token_endpoint: string };
      return meta.token_endpoint;
    })();
    const ccClientId = `client-${randomUUID()}`;
    const clientSecret = randomBytes(32).toString('base64url');
    requests.set(ccClientId, { ...opts, audience: opts.audience ?? audience, expiresInSeconds: opts.expiresInSeconds ?? 600 });
    store.set(`Client:${ccClientId}`, {
      client_id: ccClientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    });
    const res = await fetch(tokenEndpoint, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${encodeURIComponent(ccClientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ grant_type: 'client_credentials', resource: RESOURCE }).toString(),
    });
    const body = (await res.json()) as { access_token?: string; error?: string; error_description?: string };
    if (res.status !== 200 || typeof body.access_token !== 'string') {
      throw new Error(`test OIDC provider refused the token request: HTTP ${res.status} ${body.error ?? ''} ${body.error_description ?? ''}`);
    }
    return body.access_token;
  };
  return self;
}
