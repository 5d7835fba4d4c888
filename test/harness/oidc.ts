/**
 * A real OpenID provider for tests: `oidc-provider` on 127.0.0.1, port 0.
 *
 * {@link startOidc} serves discovery, the JWKS and the token endpoint over plain HTTP on loopback
 * (issuer `http://127.0.0.1:<port>`). {@link TestOidc.token} gets a real signed JWT access token
 * from it over HTTP with the client_credentials grant: each call registers a one-off confidential
 * client that remembers the subject, groups, email, audience and lifetime asked for, and the
 * provider's hooks put them into the token (`sub` by the JWT customizer, `groups` and `email` by
 * `extraTokenClaims`, `aud` and lifetime by the resource server the resource indicator resolves to).
 *
 * The provider gets its own signing key, adapter and cookie keys so it prints no quick-start
 * warnings; {@link TestOidc.provider} stays reachable so later tests can add browser and device
 * flows.
 *
 * @see https://github.com/panva/node-oidc-provider/blob/main/docs/README.md
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-4.4 (client credentials grant)
 * @see https://www.rfc-editor.org/rfc/rfc8707 (resource indicators)
 * @see https://www.rfc-editor.org/rfc/rfc9068 (JWT access tokens)
 */
import { generateKeyPairSync, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What a test can ask the provider to put into a token. */
export interface TokenRequest {
  subject: string;
  groups?: string[];
  email?: string;
  /** Default: the audience given to {@link startOidc}. */
  audience?: string;
  /** Default 600. */
  expiresInSeconds?: number;
}

/** A running provider. */
export interface TestOidc {
  /** `http://127.0.0.1:<port>`. */
  issuer: string;
  /** The default audience of {@link TestOidc.token}. */
  audience: string;
  /** Stops the HTTP server. Idempotent. */
  close(): Promise<void>;
  /** A real access token (JWT, RS256) issued by the provider over HTTP. */
  token(opts: TokenRequest): Promise<string>;
  /** The `oidc-provider` instance (a Koa application). */
  provider: OidcProvider;
  /** The provider's signing key: tests forge tokens with it that the provider would never issue. */
  signingKey: { kid: string; alg: 'RS256'; privateKey: KeyObject };
  /** The provider's adapter store, to register clients or inspect artifacts. */
  store: MemoryStore;
}

/** The parts of an `oidc-provider` Provider these tests use (the package ships no types). */
export interface OidcProvider {
  readonly issuer: string;
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  [key: string]: unknown;
}

type ProviderConstructor = new (issuer: string, configuration: Record<string, unknown>) => OidcProvider;

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

/**
 * Starts a real OpenID provider on 127.0.0.1 (port 0).
 *
 * @see https://openid.net/specs/openid-connect-discovery-1_0.html
 */
export async function startOidc(options: { audience?: string } = {}): Promise<TestOidc> {
  const audience = options.audience ?? 'hoop-test';
  const Provider = await loadProvider();

  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const issuer = `http://127.0.0.1:${port}`;

  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = `test-${randomBytes(6).toString('hex')}`;
  const signingJwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
  const store = new MemoryStore();
  const requests = new Map<string, Required<Pick<TokenRequest, 'subject' | 'audience' | 'expiresInSeconds'>> & TokenRequest>();
  const clientIdOf = (token: unknown): string | undefined => {
    const t = token as { clientId?: string; client?: { clientId?: string } };
    return t.clientId ?? t.client?.clientId;
  };

  const provider = await quietly(async () =>
    new Provider(issuer, {
      adapter: store.adapter(),
      jwks: { keys: [signingJwk] },
      cookies: { keys: [randomBytes(32).toString('base64url')] },
      clientBasedCORS: () => false,
      findAccount: async (_ctx: unknown, sub: string) => ({ accountId: sub, claims: async () => ({ sub }) }),
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: async () => RESOURCE,
          useGrantedResource: async () => true,
          getResourceServerInfo: async (_ctx: unknown, _resource: string, client: { clientId: string }) => {
            const req = requests.get(client.clientId);
            return {
              scope: '',
              audience: req?.audience ?? audience,
              accessTokenTTL: req?.expiresInSeconds ?? 600,
              accessTokenFormat: 'jwt',
              jwt: { sign: { alg: 'RS256' } },
            };
          },
        },
      },
      extraTokenClaims: async (_ctx: unknown, token: unknown) => {
        const id = clientIdOf(token);
        const req = id === undefined ? undefined : requests.get(id);
        if (!req) return undefined;
        return { ...(req.groups ? { groups: req.groups } : {}), ...(req.email ? { email: req.email, email_verified: true } : {}) };
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
        AccessToken: 600,
        AuthorizationCode: 60,
        ClientCredentials: (_ctx: unknown, token: { resourceServer?: { accessTokenTTL?: number } }) => token.resourceServer?.accessTokenTTL ?? 600,
        DeviceCode: 600,
        Grant: 3600,
        IdToken: 600,
        Interaction: 600,
        RefreshToken: 3600,
        Session: 3600,
      },
    }),
  );
  server.on('request', provider.callback());

  let closed: Promise<void> | undefined;
  let tokenEndpoint: string | undefined;

  return {
    issuer,
    audience,
    provider,
    store,
    signingKey: { kid, alg: 'RS256', privateKey },
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
    async token(opts) {
      tokenEndpoint ??= await (async () => {
        const res = await fetch(`${issuer}/.well-known/openid-configuration`);
        const meta = (await res.json()) as { token_endpoint: string };
        return meta.token_endpoint;
      })();
      const clientId = `client-${randomUUID()}`;
      const clientSecret = randomBytes(32).toString('base64url');
      requests.set(clientId, { ...opts, audience: opts.audience ?? audience, expiresInSeconds: opts.expiresInSeconds ?? 600 });
      store.set(`Client:${clientId}`, {
        client_id: clientId,
        client_secret: clientSecret,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      });
      const res = await fetch(tokenEndpoint, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ grant_type: 'client_credentials', resource: RESOURCE }).toString(),
      });
      const body = (await res.json()) as { access_token?: string; error?: string; error_description?: string };
      if (res.status !== 200 || typeof body.access_token !== 'string') {
        throw new Error(`test OIDC provider refused the token request: HTTP ${res.status} ${body.error ?? ''} ${body.error_description ?? ''}`);
      }
      return body.access_token;
    },
  };
}
