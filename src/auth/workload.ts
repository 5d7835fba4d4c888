/**
 * Workload identity for CI and services: an OIDC ID token the platform issues, presented to the
 * gateway as is. Sources, in order: `--id-token-file`, `HOOP_ID_TOKEN`, `HOOP_ID_TOKEN_FILE`,
 * GitHub Actions (`ACTIONS_ID_TOKEN_REQUEST_URL` + `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, asked for the
 * gateway's audience), a Kubernetes projected service account token (`HOOP_K8S_TOKEN_FILE`, else
 * `/var/run/secrets/tokens/hoop`, else `/var/run/secrets/kubernetes.io/serviceaccount/token`).
 * Tokens are fetched again whenever one is needed and never stored.
 *
 * @see https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect
 * @see https://kubernetes.io/docs/concepts/storage/projected-volumes/#serviceaccounttoken
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ErrorCode, HoopError, describeError } from '../errors.js';
import { isLoopbackHost } from '../loopback.js';
import type { WorkloadSource } from './profiles.js';

/** The Kubernetes token files tried when `HOOP_K8S_TOKEN_FILE` is not set. @see https://kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/#serviceaccount-token-volume-projection */
export const KUBERNETES_TOKEN_FILES = ['/var/run/secrets/tokens/hoop', '/var/run/secrets/kubernetes.io/serviceaccount/token'] as const;

/** A detected source; GitHub's still needs the audience to ask for. @see https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect */
export type DetectedWorkload = Exclude<WorkloadSource, { kind: 'github' }> | { kind: 'github' };

/** Options of {@link detectWorkload}. @see https://kubernetes.io/docs/concepts/storage/projected-volumes/#serviceaccounttoken */
export interface DetectOptions {
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** `--id-token-file`. */
  idTokenFile?: string | undefined;
  /** Whether a file exists (tests replace it). */
  exists?: (path: string) => boolean;
}

/**
 * The workload token source this environment offers, or undefined.
 * @see https://docs.github.com/en/actions/reference/variables-reference (ACTIONS_ID_TOKEN_REQUEST_URL)
 */
export function detectWorkload(options: DetectOptions): DetectedWorkload | undefined {
  const { env, cwd } = options;
  const exists = options.exists ?? existsSync;
  if (options.idTokenFile) return { kind: 'file', path: resolve(cwd, options.idTokenFile) };
  if (env.HOOP_ID_TOKEN?.trim()) return { kind: 'env', variable: 'HOOP_ID_TOKEN' };
  if (env.HOOP_ID_TOKEN_FILE?.trim()) return { kind: 'file', path: resolve(cwd, env.HOOP_ID_TOKEN_FILE.trim()) };
  if (env.ACTIONS_ID_TOKEN_REQUEST_URL?.trim() && env.ACTIONS_ID_TOKEN_REQUEST_TOKEN?.trim()) return { kind: 'github' };
  const k8s = env.HOOP_K8S_TOKEN_FILE?.trim();
  if (k8s) return { kind: 'kubernetes', path: resolve(cwd, k8s) };
  for (const path of KUBERNETES_TOKEN_FILES) if (exists(path)) return { kind: 'kubernetes', path };
  return undefined;
}

/**
 * Words for where a workload token comes from.
 * @see https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect
 */
export function describeWorkload(source: DetectedWorkload): string {
  switch (source.kind) {
    case 'file':
      return `the token file ${source.path}`;
    case 'env':
      return `$${source.variable}`;
    case 'github':
      return 'GitHub Actions';
    case 'kubernetes':
      return `the Kubernetes service account token ${source.path}`;
  }
}

/** Options of {@link fetchWorkloadToken}. @see https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect */
export interface FetchWorkloadOptions {
  env: NodeJS.ProcessEnv;
  fetch?: typeof fetch;
  timeoutMs?: number;
}

const noToken = (message: string, hint: string, cause?: unknown): HoopError => new HoopError(ErrorCode.NOT_LOGGED_IN, message, { hint, ...(cause !== undefined ? { cause } : {}) });

async function readTokenFile(path: string, what: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw noToken(`cannot read ${what} ${path}: ${describeError(err)}`, 'check the path and that this user may read it');
  }
  const token = text.trim();
  if (!token) throw noToken(`${what} ${path} is empty`, 'check that the platform wrote the token before hoop runs');
  return token;
}

/**
 * A fresh token from `source`.
 * @see https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/configuring-openid-connect-in-cloud-providers#requesting-the-jwt-using-environment-variables
 */
export async function fetchWorkloadToken(source: WorkloadSource, options: FetchWorkloadOptions): Promise<string> {
  switch (source.kind) {
    case 'file':
      return readTokenFile(source.path, 'the ID token file');
    case 'kubernetes':
      return readTokenFile(source.path, 'the Kubernetes token file');
    case 'env': {
      const token = options.env[source.variable]?.trim();
      if (!token) throw noToken(`$${source.variable} is empty`, `set ${source.variable} to an ID token the gateway trusts`);
      return token;
    }
    case 'github':
      return fetchGithubToken(source.audience, options);
  }
}

async function fetchGithubToken(audience: string, options: FetchWorkloadOptions): Promise<string> {
  const requestUrl = options.env.ACTIONS_ID_TOKEN_REQUEST_URL?.trim();
  const requestToken = options.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN?.trim();
  const hint = 'give the job `permissions: id-token: write` so GitHub Actions offers ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN';
  if (!requestUrl || !requestToken) throw noToken('GitHub Actions offers no ID token to this step', hint);
  let url: URL;
  try {
    url = new URL(requestUrl);
  } catch {
    throw noToken('ACTIONS_ID_TOKEN_REQUEST_URL is not a valid URL', hint);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) {
    throw noToken('ACTIONS_ID_TOKEN_REQUEST_URL must be an https URL', hint);
  }
  url.searchParams.set('audience', audience);
  const doFetch = options.fetch ?? fetch;
  let res: Response;
  try {
    res = await doFetch(url, {
      headers: { Authorization: `bearer ${requestToken}`, Accept: 'application/json; api-version=2.0' },
      signal: AbortSignal.timeout(options.timeoutMs ?? 15_000),
      redirect: 'error',
    });
  } catch (err) {
    throw new HoopError(ErrorCode.GATEWAY_UNREACHABLE, `cannot reach the GitHub Actions token service at ${url.origin}: ${describeError((err as { cause?: unknown }).cause ?? err)}`, {
      hint: 'try again; the service may be briefly unavailable',
      cause: err,
    });
  }
  const body = (await res.json().catch(() => undefined)) as { value?: unknown } | undefined;
  if (res.status !== 200) throw noToken(`the GitHub Actions token service refused to issue an ID token (HTTP ${res.status})`, hint);
  if (typeof body?.value !== 'string' || body.value === '') throw noToken('the GitHub Actions token service answered without a token', hint);
  return body.value;
}
