/**
 * What a refusal of the gateway's API becomes on the CLI: a {@link GatewayApiError} (a HoopError
 * with a hint, never a token in its message), from the answer's status and error body (read with
 * the contract's reader, ../api/answers.ts). A 401's token rejection reason says what to do.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1
 */
import { codeFitsStatus, readErrorBody } from '../api/answers.js';
import { apiPath } from '../api/paths.js';
import { ErrorCode, HoopError } from '../errors.js';

/**
 * The gateway refused an identity API request. `reason` is the token rejection reason of a 401.
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1
 */
export class GatewayApiError extends HoopError {
  readonly status: number;
  readonly reason: string | undefined;

  constructor(code: ErrorCode, message: string, status: number, hint: string | undefined, reason?: string) {
    super(code, message, hint === undefined ? {} : { hint });
    this.status = status;
    this.reason = reason;
  }
}

/**
 * What a user should read for a token rejection `reason` from gateway `origin`.
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-3.1
 */
export function rejectionText(reason: string | undefined, origin: string): { message: string; hint: string } | undefined {
  const login = `run \`hoop login --gateway ${origin}\``;
  switch (reason) {
    case 'expired':
      return { message: `your token for ${origin} has expired`, hint: login };
    case 'missing':
      return { message: `${origin} needs a token and got none`, hint: login };
    case 'malformed':
    case 'unknown-key':
    case 'bad-signature':
      return { message: `${origin} could not verify your token`, hint: `${login} to get a fresh one` };
    case 'untrusted-issuer':
      return { message: `${origin} does not trust the identity provider that issued your token`, hint: `${login}; it asks the gateway which provider to use` };
    case 'wrong-audience':
      return { message: `your token was issued for another audience than ${origin}`, hint: `${login}; for a workload token, request it for the gateway's audience` };
    case 'wrong-token-type':
      return { message: `${origin} wants another kind of token (access token vs ID token)`, hint: login };
    case 'no-matching-rule':
      return {
        message: `${origin} trusts the issuer of this workload token, but none of its rules matches the token's claims`,
        hint: 'ask a gateway administrator to add a rule for this workload (repository, ref, namespace, ...)',
      };
    case 'not-yet-valid':
      return { message: `${origin} says your token is not valid yet`, hint: "check this machine's clock, then log in again" };
    case 'run-ended':
      return { message: `the run this credential belonged to has ended, and ${origin} no longer accepts it`, hint: 'start the command again with hoop run' };
    case 'unknown-run':
      return { message: `${origin} issued no such run credential`, hint: 'a run credential comes from hoop run: start the command with hoop run' };
    default:
      return undefined;
  }
}

/** The codes the CLI takes at the gateway's word when they come with their own status (../api/answers.ts), and what it says when the gateway said nothing more. */
const TAKEN_AT_ITS_WORD: Partial<Record<string, { message: (origin: string) => string; hint: string }>> = {
  [ErrorCode.SESSION_UNKNOWN]: { message: () => 'no such session', hint: '`hoop sessions ls` lists the sessions you may see' },
  [ErrorCode.REVIEW_UNKNOWN]: { message: () => 'no such review', hint: '`hoop review ls` lists the reviews you may see' },
  [ErrorCode.RUNBOOK_UNKNOWN]: { message: () => 'no such runbook that you may run', hint: '`hoop runbook ls` lists the runbooks you may run' },
  [ErrorCode.RUNBOOK_PARAM]: { message: () => 'a parameter of the runbook was refused', hint: '`hoop runbook show NAME` says what each parameter takes' },
  [ErrorCode.RECORDING_UNAVAILABLE]: { message: (origin) => `${origin} cannot record sessions now`, hint: 'try again later' },
};

/** The HoopError for a non-2xx answer `body` of `status` to `path` (on `connection`, when the request was about one). */
export function apiError(status: number, body: Buffer, origin: string, path: string, connection?: string): HoopError {
  const parsed = readErrorBody(body, 500);
  // The gateway's own codes for what only a person may do, and when: said as it says them.
  if (parsed.code === ErrorCode.RUN_FORBIDDEN || parsed.code === ErrorCode.SIGN_IN_REQUIRED) {
    return new GatewayApiError(parsed.code, parsed.message ?? `${origin} refused the request`, status, parsed.hint);
  }
  if (connection !== undefined && (status === 403 || status === 404)) {
    return status === 403
      ? new GatewayApiError(ErrorCode.ACCESS_DENIED, parsed.message ?? `you may not use the connection "${connection}"`, status, parsed.hint ?? 'ask an administrator to grant you access to it')
      : new GatewayApiError(
          ErrorCode.CONNECTION_UNKNOWN,
          parsed.message ?? `the gateway knows no connection named "${connection}"`,
          status,
          parsed.hint ?? 'check the name; `hoop connections` lists the ones you may use',
        );
  }
  if (status === 401) {
    const text = rejectionText(parsed.reason, origin);
    // Which kind of token the issuer is configured for, and what to change, only the gateway can say.
    const said = parsed.reason === 'wrong-token-type' && parsed.message ? `${origin}: ${parsed.message}` : undefined;
    return new GatewayApiError(
      ErrorCode.TOKEN_REJECTED,
      said ?? text?.message ?? parsed.message ?? `${origin} rejected the token`,
      status,
      text?.hint ?? parsed.hint ?? `run \`hoop login --gateway ${origin}\``,
      parsed.reason,
    );
  }
  if (status === 403) return new GatewayApiError(ErrorCode.ACCESS_DENIED, parsed.message ?? `${origin} refused the request`, status, parsed.hint);
  if (status === 404 && path === apiPath.authConfig) {
    return new GatewayApiError(
      ErrorCode.USAGE,
      `${origin} has no login configured`,
      status,
      parsed.hint ?? 'ask its administrator to add a `login` block to the gateway configuration, or log in with a workload token (--id-token-file)',
    );
  }
  const taken = parsed.code !== undefined && codeFitsStatus(parsed.code, status) ? TAKEN_AT_ITS_WORD[parsed.code] : undefined;
  if (taken) return new GatewayApiError(parsed.code as ErrorCode, parsed.message ?? taken.message(origin), status, parsed.hint ?? taken.hint);
  if (
    status === 409 ||
    status === 410 ||
    status === 429 ||
    (status === 400 && (path.startsWith('v1/reviews') || path.startsWith('v1/runs') || path.startsWith('v1/alerts') || path.startsWith('v1/runbooks') || path === apiPath.requests))
  )
    return new GatewayApiError(ErrorCode.USAGE, parsed.message ?? `${origin} refused the request (HTTP ${status})`, status, parsed.hint);
  if (status === 404) {
    return new GatewayApiError(ErrorCode.GATEWAY_PROTOCOL, `${origin} does not serve /${path}`, status, 'upgrade the gateway to a version with identity support, or check the URL');
  }
  if (status >= 500) return new GatewayApiError(ErrorCode.GATEWAY_UNREACHABLE, parsed.message ?? `${origin} failed with HTTP ${status}`, status, parsed.hint ?? 'try again later');
  return new GatewayApiError(
    ErrorCode.GATEWAY_PROTOCOL,
    parsed.message ?? `unexpected answer from ${origin}: HTTP ${status}`,
    status,
    parsed.hint ?? 'check that the URL points at a hoop gateway compatible with this client',
  );
}
