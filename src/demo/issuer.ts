/**
 * The demo's own OpenID provider: `oidc-provider` on 127.0.0.1, with the accounts of the demo
 * and the one public client the CLI uses (`hoop-cli`: authorization code with PKCE S256, any
 * loopback port on `http://127.0.0.1/callback` as RFC 8252 §7.3 asks, refresh tokens). Access
 * tokens are JWTs (RFC 9068, `typ: at+jwt`) for the resource the CLI names (RFC 8707), with
 * `aud`, `groups` and `email` claims the gateway maps to an identity.
 *
 * Signing in takes no password: the sign-in page lists the demo's accounts, one button each.
 * {@link DemoIssuer.signIn} plays a browser for the demo itself (no page is shown): it follows
 * the authorization request through the provider to the CLI's loopback redirect as `username`.
 *
 * Not for production: anyone who reaches the page signs in as anyone listed.
 *
 * @see https://github.com/panva/node-oidc-provider/blob/main/docs/README.md
 * @see https://openid.net/specs/openid-connect-core-1_0.html
 * @see https://www.rfc-editor.org/rfc/rfc7636 (PKCE)
 * @see https://www.rfc-editor.org/rfc/rfc8252#section-7.3 (loopback redirect URIs)
 * @see https://www.rfc-editor.org/rfc/rfc8707 (resource indicators)
 * @see https://www.rfc-editor.org/rfc/rfc9068 (JWT access tokens)
 */
import { realClock } from '../clock.js';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { newKeyPair } from '../key-pair.js';
import { passwordMatches } from './dev-users.js';

/** Someone who can sign in to the demo. */
export interface DemoAccount {
  groups: string[];
  email: string;
  name: string;
  /** With it, signing in asks for the password this hashes (dev-users.ts), not a pick from a list. */
  password?: string;
}

/** Options of {@link startDemoIssuer}. */
export interface DemoIssuerOptions {
  accounts: Record<string, DemoAccount>;
  /** The `aud` of every access token (the gateway's issuer entry checks it). */
  audience: string;
  /** The resource indicator the gateway names in its `login` block. */
  resource: string;
  /** Port on 127.0.0.1; default any free one. */
  port?: number;
  /** What the sign-in page says it is. */
  title?: string;
}

/** A running demo provider. */
export interface DemoIssuer {
  /** `http://127.0.0.1:<port>`. */
  issuer: string;
  clientId: string;
  /**
   * Follows an authorization request URL (what `hoop login` would open in a browser) through the
   * provider as `username`, up to the client's redirect, which it requests too. Resolves once the
   * redirect was delivered.
   */
  signIn(authorizationUrl: string, username: string): Promise<void>;
  close(): Promise<void>;
}

const CLIENT_ID = 'hoop-cli';
const REDIRECT_URI = 'http://127.0.0.1/callback';
const SCOPES = ['openid', 'profile', 'email', 'offline_access'];

/** The parts of oidc-provider this module uses (the package ships no type declarations). */
interface Provider {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<Interaction>;
  interactionFinished(req: IncomingMessage, res: ServerResponse, result: Record<string, unknown>, options?: { mergeWithLastSubmission?: boolean }): Promise<void>;
  Grant: { new (init: { accountId: string; clientId: string }): Grant; find(id: string): Promise<Grant | undefined> };
}
type ProviderConstructor = new (issuer: string, configuration: Record<string, unknown>) => Provider;

interface Interaction {
  uid: string;
  prompt: { name: string; details: { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> } };
  params: Record<string, unknown>;
  session?: { accountId?: string };
  grantId?: string;
}

interface Grant {
  addOIDCScope(scope: string): void;
  addOIDCClaims(claims: string[]): void;
  addResourceScope(indicator: string, scope: string): void;
  save(): Promise<string>;
}

/** Loads oidc-provider without its console notices (it prints development warnings on import). */
async function loadProvider(): Promise<ProviderConstructor> {
  const { warn, info } = console;
  const quiet =
    (original: (...args: unknown[]) => void) =>
    (...args: unknown[]): void => {
      if (typeof args[0] === 'string' && args[0].includes('oidc-provider')) return;
      original.apply(console, args);
    };
  console.warn = quiet(warn);
  console.info = quiet(info);
  try {
    // A non-literal specifier: the package has no type declarations.
    const specifier = 'oidc-provider';
    return ((await import(specifier)) as { default: ProviderConstructor }).default;
  } finally {
    console.warn = warn;
    console.info = info;
  }
}

/**
 * Where the provider keeps its sessions, grants, codes and tokens: this process's memory (the
 * demo's provider lives as long as the demo). Given explicitly, which also tells oidc-provider
 * that its development adapter is not in use.
 * @see https://github.com/panva/node-oidc-provider/blob/main/example/my_adapter.js
 */
class MemoryAdapter {
  static readonly #stored = new Map<string, { payload: Record<string, unknown>; expires: number }>();
  readonly #model: string;

  constructor(model: string) {
    this.#model = model;
  }

  #key(id: string): string {
    return `${this.#model}:${id}`;
  }

  async upsert(id: string, payload: Record<string, unknown>, expiresIn: number): Promise<void> {
    MemoryAdapter.#stored.set(this.#key(id), { payload, expires: expiresIn ? realClock.now() + expiresIn * 1000 : Infinity });
  }

  async find(id: string): Promise<Record<string, unknown> | undefined> {
    const entry = MemoryAdapter.#stored.get(this.#key(id));
    if (entry && entry.expires <= realClock.now()) MemoryAdapter.#stored.delete(this.#key(id));
    return entry && entry.expires > realClock.now() ? entry.payload : undefined;
  }

  async findByUid(uid: string): Promise<Record<string, unknown> | undefined> {
    for (const [key, entry] of MemoryAdapter.#stored) if (key.startsWith(`${this.#model}:`) && entry.payload.uid === uid) return this.find(key.slice(this.#model.length + 1));
    return undefined;
  }

  async findByUserCode(userCode: string): Promise<Record<string, unknown> | undefined> {
    for (const [key, entry] of MemoryAdapter.#stored) if (key.startsWith(`${this.#model}:`) && entry.payload.userCode === userCode) return this.find(key.slice(this.#model.length + 1));
    return undefined;
  }

  async consume(id: string): Promise<void> {
    const entry = MemoryAdapter.#stored.get(this.#key(id));
    if (entry) entry.payload.consumed = Math.floor(realClock.now() / 1000);
  }

  async destroy(id: string): Promise<void> {
    MemoryAdapter.#stored.delete(this.#key(id));
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    for (const [key, entry] of MemoryAdapter.#stored) if (entry.payload.grantId === grantId) MemoryAdapter.#stored.delete(key);
  }
}

function esc(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title: string, body: string): string {
  return `<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>${esc(title)}</title></head>\n<body style="font-family:sans-serif;max-width:40em;margin:3em auto">\n<h1>${esc(title)}</h1>\n${body}\n</body></html>\n`;
}

function send(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 16 * 1024) throw new Error('request body too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/**
 * Starts the demo's provider on 127.0.0.1.
 *
 * @see https://openid.net/specs/openid-connect-discovery-1_0.html
 */
export async function startDemoIssuer(options: DemoIssuerOptions): Promise<DemoIssuer> {
  const Provider = await loadProvider();
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const { privateKey } = newKeyPair('rsa');
  const signingJwk = { ...privateKey.export({ format: 'jwk' }), kid: `demo-${randomBytes(6).toString('hex')}`, alg: 'RS256', use: 'sig' };

  const provider = new Provider(issuer, providerSettings(options, signingJwk));
  const handle = provider.callback();

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const m = /^\/interaction\/([^/]+)(\/login)?$/.exec(path);
    const run = m ? interaction(provider, options, req, res, decodeURIComponent(m[1]!), m[2] !== undefined && req.method === 'POST') : Promise.resolve(handle(req, res));
    run.catch((err: unknown) => {
      if (res.headersSent) res.destroy();
      else send(res, 400, page('Error', `<p>${esc(err instanceof Error ? err.message : String(err))}</p>`));
    });
  });

  return {
    issuer,
    clientId: CLIENT_ID,
    signIn: (url, username) => followAs(url, username, issuer),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The provider's settings: the CLI as its one native client (PKCE, refresh tokens), JWT access tokens for the gateway's audience, the accounts' claims. */
function providerSettings(options: DemoIssuerOptions, signingJwk: Record<string, unknown>) {
  const claimsOf = accountClaims(options.accounts);
  return {
    adapter: MemoryAdapter,
    jwks: { keys: [signingJwk] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    clientBasedCORS: () => false,
    clients: [
      {
        client_id: CLIENT_ID,
        client_name: 'hoop CLI',
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        redirect_uris: [REDIRECT_URI],
        response_types: ['code'],
        grant_types: ['authorization_code', 'refresh_token'],
      },
    ],
    findAccount: async (_ctx: unknown, sub: string) =>
      Object.hasOwn(options.accounts, sub) ? { accountId: sub, claims: async () => ({ sub, preferred_username: sub, ...claimsOf(sub) }) } : undefined,
    claims: { openid: ['sub', 'groups'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'] },
    scopes: SCOPES,
    conformIdTokenClaims: false,
    // Refresh tokens for the CLI whether or not consent was prompted (OIDC Core §11).
    issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }) => client.grantTypeAllowed('refresh_token'),
    expiresWithSession: async () => false,
    pkce: { required: () => true },
    renderError: async (ctx: { type: string; body: string }, out: Record<string, unknown>) => {
      ctx.type = 'html';
      ctx.body = page('Error', `<p>${esc(out.error)}: ${esc(out.error_description ?? '')}</p>`);
    },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => options.resource,
        useGrantedResource: async () => true,
        getResourceServerInfo: async () => ({ scope: '', audience: options.audience, accessTokenTTL: 3600, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } }),
      },
    },
    // When the person signed in (the grant's: a code's, or a refresh token's, which keeps its sign-in's), so reviews.requireSignInWithin can be met.
    extraTokenClaims: async (ctx: { oidc?: { entities?: Record<string, { authTime?: number } | undefined> } }, token: { accountId?: string }) => {
      if (token.accountId === undefined) return undefined;
      const e = ctx.oidc?.entities ?? {};
      const authTime = e.AuthorizationCode?.authTime ?? e.RefreshToken?.authTime;
      return { ...claimsOf(token.accountId), ...(authTime !== undefined ? { auth_time: authTime } : {}) };
    },
    ttl: { AccessToken: 3600, AuthorizationCode: 60, Grant: 14 * 86_400, IdToken: 3600, Interaction: 600, RefreshToken: 14 * 86_400, Session: 14 * 86_400 },
  };
}

/** An account's claims by its name (none for a name that is no account). */
function accountClaims(accounts: DemoIssuerOptions['accounts']): (sub: string) => Record<string, unknown> {
  return (sub) => {
    const a = Object.hasOwn(accounts, sub) ? accounts[sub] : undefined;
    return a ? { groups: a.groups, email: a.email, email_verified: true, name: a.name } : {};
  };
}

/** Consents to what the client asked for, for the signed-in account. */
async function consent(provider: Provider, req: IncomingMessage, res: ServerResponse, details: Interaction): Promise<void> {
  const accountId = details.session!.accountId!;
  const grant = (details.grantId ? await provider.Grant.find(details.grantId) : undefined) ?? new provider.Grant({ accountId, clientId: String(details.params.client_id) });
  const missing = details.prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
  await provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: true });
}

/**
 * The sign-in page and its answers: one button per account (the demo's), or a name and password
 * (accounts with a password: the development provider's); consent is given at once.
 */
async function interaction(provider: Provider, options: DemoIssuerOptions, req: IncomingMessage, res: ServerResponse, uid: string, login: boolean): Promise<void> {
  const { accounts } = options;
  const title = options.title ?? 'Sign in to the hoop demo';
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('this sign-in page belongs to another request; start again');
  if (details.prompt.name === 'consent') return consent(provider, req, res, details);
  const withPasswords = Object.values(accounts).some((a) => a.password !== undefined);
  if (!login) {
    const form = withPasswords
      ? `<form id="login" method="post" action="/interaction/${esc(uid)}/login">\n<p><label>Name <input name="username" autocomplete="username"></label></p>\n<p><label>Password <input name="password" type="password" autocomplete="current-password"></label></p>\n<p><button type="submit">Sign in</button></p>\n</form>`
      : `<p>Pick who you are (the demo asks for no password).</p>\n<form method="post" action="/interaction/${esc(uid)}/login">\n${Object.entries(accounts)
          .map(([name, a]) => `<p><button type="submit" name="username" value="${esc(name)}">${esc(name)}</button> ${esc(a.name)} — groups ${esc(a.groups.join(', '))}</p>`)
          .join('\n')}\n</form>`;
    return send(res, 200, page(title, form));
  }
  const form = await readForm(req);
  const username = form.get('username') ?? '';
  const account = Object.hasOwn(accounts, username) ? accounts[username] : undefined;
  if (withPasswords ? !account?.password || !passwordMatches(account.password, form.get('password') ?? '') : !account) {
    return send(res, withPasswords ? 401 : 400, page(title, withPasswords ? '<p>Wrong name or password.</p>' : `<p>There is no demo account "${esc(username)}".</p>`));
  }
  await provider.interactionFinished(req, res, { login: { accountId: username } }, { mergeWithLastSubmission: false });
}

/**
 * A browser reduced to what the demo's own sign-in needs: follows redirects with the provider's
 * cookies, answers the sign-in page as `username`, and stops after requesting the loopback
 * redirect that carries the code to the CLI.
 */
async function followAs(start: string, username: string, issuer: string): Promise<void> {
  const cookies = new Map<string, string>();
  let url = start;
  let form: URLSearchParams | undefined;
  for (let hop = 0; hop < 20; hop++) {
    const own = url.startsWith(`${issuer}/`);
    const res = await fetch(url, {
      redirect: 'manual',
      method: form ? 'POST' : 'GET',
      headers: {
        ...(own && cookies.size > 0 ? { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') } : {}),
        ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      },
      ...(form ? { body: form.toString() } : {}),
    });
    form = undefined;
    if (!own) {
      // The CLI's loopback listener: the code has been delivered.
      await res.arrayBuffer();
      if (res.status >= 400) throw new Error(`the sign-in redirect was refused (HTTP ${res.status})`);
      return;
    }
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair!.indexOf('=');
      if (eq > 0) cookies.set(pair!.slice(0, eq).trim(), pair!.slice(eq + 1).trim());
    }
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.arrayBuffer();
      url = new URL(location, url).toString();
      continue;
    }
    const body = await res.text();
    const action = /<form method="post" action="([^"]+\/login)">/.exec(body)?.[1];
    if (res.status !== 200 || action === undefined)
      throw new Error(
        `the demo's sign-in did not go through (HTTP ${res.status}): ${body
          .replace(/<[^>]+>/g, ' ')
          .replace(/\s+/g, ' ')
          .trim()
          .slice(0, 200)}`,
      );
    url = new URL(action, url).toString();
    form = new URLSearchParams({ username });
  }
  throw new Error('the demo sign-in took too many redirects');
}
