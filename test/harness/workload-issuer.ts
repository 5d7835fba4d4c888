/**
 * A local workload identity issuer for tests: a tiny OIDC-discoverable HTTP server on 127.0.0.1
 * (port 0) that serves `/.well-known/openid-configuration` and a JWKS, and signs RS256 JWTs
 * (`typ: JWT`) with jose — the shape of the ID tokens GitHub Actions, GitLab CI or Kubernetes
 * service account token projection hand to a job.
 *
 * {@link WorkloadIssuer.githubActionsEndpoint} is a stand-in for GitHub's
 * `ACTIONS_ID_TOKEN_REQUEST_URL` (which cannot run here — the one allowed mock): `GET ?audience=X`
 * with `Authorization: bearer <ACTIONS_ID_TOKEN_REQUEST_TOKEN>` answers `{"value": "<JWT>"}`
 * with a GitHub-like claim set and `aud` X; anything else gets 401.
 *
 * @see https://openid.net/specs/openid-connect-discovery-1_0.html
 * @see https://www.rfc-editor.org/rfc/rfc7517 (JWK sets)
 * @see https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect
 * @see https://kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/#serviceaccount-token-volume-projection
 */
import { listenOnLoopback } from './listen.js';
import { randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { exportJWK, SignJWT } from 'jose';
import { newKeyPair } from '../../src/key-pair.js';

/** Claims of a workload token; `aud` and `sub` are required, anything else goes in as is. */
export type WorkloadClaims = Record<string, unknown> & { aud: string; sub: string };

/** Options of {@link WorkloadIssuer.token}. */
export interface WorkloadTokenOptions {
  /** Default 300. Negative values make an already expired token. */
  expiresInSeconds?: number;
}

/** The GitHub-like claims the fake Actions endpoint puts into its tokens (besides `aud`, `iat`, `exp`...). */
export interface GithubClaims {
  repository: string;
  repository_owner: string;
  ref: string;
  ref_type: string;
  environment?: string;
  workflow: string;
  job_workflow_ref: string;
  actor: string;
  event_name: string;
  run_id: string;
  sha: string;
  [claim: string]: unknown;
}

/** The fake `ACTIONS_ID_TOKEN_REQUEST_URL` / `ACTIONS_ID_TOKEN_REQUEST_TOKEN` pair. */
export interface GithubActionsEndpoint {
  /** For `ACTIONS_ID_TOKEN_REQUEST_URL` (already has a query string, as GitHub's does). */
  url: string;
  /** For `ACTIONS_ID_TOKEN_REQUEST_TOKEN`. */
  bearer: string;
}

/** A running workload issuer. */
export interface WorkloadIssuer {
  /** `http://127.0.0.1:<port>`. */
  issuer: string;
  /** The `kid` of the signing key in the JWKS. */
  kid: string;
  /** A signed RS256 JWT with `iss` = {@link WorkloadIssuer.issuer}, `iat`, `nbf`, `exp`, `jti` and the given claims. */
  token(claims: WorkloadClaims, options?: WorkloadTokenOptions): Promise<string>;
  /** The fake GitHub Actions token endpoint (one per issuer; same value on every call). */
  githubActionsEndpoint(): GithubActionsEndpoint;
  /** Claims the fake GitHub endpoint uses (mutable: a test may change `ref`, `environment`...). */
  githubClaims: GithubClaims;
  /** How many requests each path got (e.g. `/.well-known/jwks.json`, `/github/token`). */
  hits: Map<string, number>;
  /** Stops the server. Idempotent. */
  close(): Promise<void>;
}

const JWKS_PATH = '/.well-known/jwks.json';
const GITHUB_PATH = '/github/token';

function json(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...extra });
  res.end(text);
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Starts a workload issuer on 127.0.0.1 (port 0).
 *
 * @see https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderMetadata
 */
export async function startWorkloadIssuer(): Promise<WorkloadIssuer> {
  const { privateKey, publicKey } = newKeyPair('rsa');
  const kid = `wl-${randomBytes(6).toString('hex')}`;
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  const bearer = randomBytes(24).toString('base64url');
  const hits = new Map<string, number>();

  const server = createServer();
  // Idle connections stay until the client closes them: a server that closes one races a busy test's reuse of it ("fetch failed").
  server.keepAliveTimeout = 0;
  const port = await listenOnLoopback(server);
  const issuer = `http://127.0.0.1:${port}`;

  const githubClaims: GithubClaims = {
    repository: 'acme/api',
    repository_owner: 'acme',
    repository_id: '123456',
    ref: 'refs/heads/main',
    ref_type: 'branch',
    environment: 'production',
    workflow: 'deploy',
    job_workflow_ref: 'acme/api/.github/workflows/deploy.yml@refs/heads/main',
    actor: 'octocat',
    event_name: 'push',
    run_id: '1',
    run_attempt: '1',
    sha: '0000000000000000000000000000000000000000',
  };

  async function token(claims: WorkloadClaims, options: WorkloadTokenOptions = {}): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const exp = now + (options.expiresInSeconds ?? 300);
    const { aud, sub, ...rest } = claims;
    return new SignJWT({ ...rest, jti: randomUUID() })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid })
      .setIssuer(issuer)
      .setSubject(sub)
      .setAudience(aud)
      .setIssuedAt(Math.min(now, exp - 1))
      .setNotBefore(Math.min(now, exp - 1))
      .setExpirationTime(exp)
      .sign(privateKey);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', issuer);
    hits.set(url.pathname, (hits.get(url.pathname) ?? 0) + 1);
    if (req.method !== 'GET') {
      json(res, 405, { error: 'method not allowed' });
      return;
    }
    if (url.pathname === '/.well-known/openid-configuration') {
      json(res, 200, {
        issuer,
        jwks_uri: `${issuer}${JWKS_PATH}`,
        response_types_supported: ['id_token'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
        claims_supported: ['sub', 'aud', 'exp', 'iat', 'iss', 'jti', 'nbf', ...Object.keys(githubClaims)],
      });
      return;
    }
    if (url.pathname === JWKS_PATH) {
      json(res, 200, { keys: [jwk] });
      return;
    }
    if (url.pathname === GITHUB_PATH) {
      const auth = req.headers.authorization ?? '';
      const m = /^bearer\s+(.+)$/i.exec(auth);
      if (!m?.[1] || !sameSecret(m[1], bearer)) {
        json(res, 401, { message: 'Bad credentials' });
        return;
      }
      const audience = url.searchParams.get('audience') ?? 'https://github.com/acme';
      const sub = `repo:${githubClaims.repository}:${githubClaims.environment ? `environment:${githubClaims.environment}` : `ref:${githubClaims.ref}`}`;
      json(res, 200, { count: 1, value: await token({ ...githubClaims, sub, aud: audience }) });
      return;
    }
    json(res, 404, { error: 'not found' });
  }

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) json(res, 500, { error: 'internal' });
      else res.destroy();
    });
  });

  let closed: Promise<void> | undefined;
  return {
    issuer,
    kid,
    token,
    githubClaims,
    hits,
    githubActionsEndpoint: () => ({ url: `${issuer}${GITHUB_PATH}?api-version=2.0`, bearer }),
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}
