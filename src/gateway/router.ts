/**
 * The gateway's HTTP API, one route per endpoint (the areas' modules in ../api/ answer them):
 *
 * - open, no token: `GET /healthz`, `GET /v1/auth/config`, `GET /v1/keys`; the tunnel endpoint
 *   `GET /v1/connections/{name}/tunnel` is an Upgrade (./tunnel-endpoint.ts; a plain GET gets 426);
 *   a run's `POST /v1/runs/{id}/heartbeat|end|egress` carries its control credential;
 * - with a bearer token, verified before anything else happens: `GET /v1/whoami`,
 *   `GET|POST /v1/devices`, `GET /v1/connections[/{name}]`, `GET /v1/runbooks[/{name}]`, `POST /v1/runbooks/{name}/run`, `POST /v1/connections/{name}/cancel`,
 *   `POST /v1/connections/{name}/direct`, `POST /v1/direct/{id}/renew`, `DELETE /v1/direct/{id}`,
 *   `GET /v1/policy`, `GET /v1/alerts`,
 *   `POST /v1/alerts/{id}/clear`,
 *   `GET|POST /v1/reviews…`, `POST /v1/requests`, `POST /v1/runs`, `GET /v1/sessions…` and the
 *   CLIs' records (`PUT|GET /v1/sessions/{id}/client[/{file}]`, `PUT|GET /v1/runs/{id}[/files/{file}]`).
 *
 * A method an endpoint does not take is 405 and an unknown path 404, both before the token is
 * read. What an agent's run credential may not do is refused at its route. Errors are
 * `{ error: { code, message, hint?, reason? } }` (./http/respond.ts).
 *
 * @see https://www.rfc-editor.org/rfc/rfc9110#name-405-method-not-allowed
 */
import type * as http from 'node:http';
import { API_ROUTES, exactPath, type RunAction } from '../api/paths.js';
import { ErrorCode, HoopError, describeError } from '../errors.js';
import type { Identity } from '../identity.js';
import { VERSION } from '../version.js';
import { requestAccess, requireRecentSignIn } from './api/access.js';
import { connectionsApi } from './api/connections.js';
import { runbooksApi } from './api/runbooks.js';
import { authConfig, devicesApi, whoami } from './api/identity.js';
import { runsApi } from './api/runs.js';
import { directApi } from './api/direct.js';
import { alertsApi } from './api/alerts.js';
import { sessionsApi } from './api/sessions.js';
import type { Callers } from './sessions/callers.js';
import type { ConnectionGuard } from './front/connection-guard.js';
import { HttpError } from './http/http-error.js';
import { pathPart, requestUrl } from './http/request-target.js';
import type { GatewayParts } from './parts/parts.js';
import { peerOf, peerText } from './front/peer-address.js';
import { runbookRunner } from './api/runbook-run.js';
import type { SessionAdmission } from './sessions/admission.js';
import { reviewsApi } from './api/reviews.js';
import { runForbidden } from './runs/runs.js';
import { type Answer, allowOnly, asHoopError, readJsonBody, readOptionalJsonBody, sendAnswer, sendError } from './http/respond.js';

const exactly = exactPath;
const R = API_ROUTES;

type RunArea = Parameters<typeof runForbidden>[0];

/** One endpoint. */
interface Route {
  path: RegExp;
  /** The methods it takes (for this match). */
  methods: readonly string[] | ((m: RegExpExecArray) => readonly string[]);
  /** Answered without a bearer token. */
  open?: (req: http.IncomingMessage, m: RegExpExecArray) => Answer | Promise<Answer>;
  /** With a verified token. */
  handle?: (req: http.IncomingMessage, m: RegExpExecArray, identity: Identity) => Answer | Promise<Answer>;
  /** What a run's credential is refused here (none: open to it). */
  forRun?: RunArea | ((method: string) => RunArea | undefined);
  /** What it does that needs a decision or a credential (none: nothing), which a suspended identity may not. */
  acts?: (method: string, m: RegExpExecArray) => string | undefined;
}

const ok = (body: unknown): Answer => ({ status: 200, body });

/** A run's parameters: enough for a few of the longest strings a parameter takes (64 Ki characters). */
const RUNBOOK_BODY_BYTES = 1024 * 1024;

/** The routes of the API, over the gateway's parts. */
function routes(parts: GatewayParts, callers: Callers, sshHostKey: string, admission: SessionAdmission): Route[] {
  const connections = connectionsApi(parts, callers, sshHostKey);
  const runbooks = runbooksApi(parts);
  const runRunbook = runbookRunner(parts, admission);
  const sessions = sessionsApi(parts, callers);
  const runs = runsApi(parts, callers);
  const alerts = alertsApi(parts, callers);
  const direct = directApi(parts, callers);
  const writeOr = (m: RegExpExecArray, read: string): readonly string[] => (m[2] !== undefined ? [read, 'PUT'] : [read]);
  return [
    { path: exactly('/healthz'), methods: ['GET'], open: () => ok({ status: 'ok', version: VERSION }) },
    {
      path: R.tunnel,
      methods: ['GET'],
      open: () => {
        throw new HttpError(426, 'this endpoint needs Upgrade: hoop-tunnel/1', { headers: { Upgrade: 'hoop-tunnel/1', Connection: 'Upgrade' } });
      },
    },
    { path: exactly('/v1/auth/config'), methods: ['GET'], open: () => ok(authConfig(parts)) },
    { path: exactly('/v1/keys'), methods: ['GET'], open: () => sessions.keys() },
    { path: R.runControl, methods: ['POST'], open: async (req, m) => ok(await runs.control(req, m[1]!, m[2] as RunAction)) },
    {
      path: R.reviews,
      methods: (m) => (m[2] !== undefined ? ['POST'] : ['GET']),
      forRun: (method) => (method === 'GET' ? undefined : 'decide'), // its own reviews only (mayView)
      acts: (_method, m) => (m[2] !== undefined ? `${m[2]} a review` : undefined),
      handle: (req, m, identity) => {
        if (m[2] !== undefined) requireRecentSignIn(parts, identity, `${m[2]} a review`);
        return reviewsApi(parts.reviews, parts.runs, req, identity, callers.isAuditor(identity), m, () => readOptionalJsonBody(req));
      },
    },
    {
      path: exactly('/v1/requests'),
      methods: ['POST'],
      forRun: 'request',
      acts: () => 'ask for access',
      handle: async (req, _m, identity) => {
        requireRecentSignIn(parts, identity, 'ask for access');
        return { status: 201, body: requestAccess(parts, identity, await readJsonBody(req)) };
      },
    },
    {
      path: exactly('/v1/runs'),
      methods: ['POST'],
      forRun: 'runs',
      acts: () => 'begin a run',
      handle: async (req, _m, identity) => ({ status: 201, body: await runs.start(identity, await readJsonBody(req)) }),
    },
    {
      path: R.alerts,
      methods: (m) => (m[1] !== undefined ? ['POST'] : ['GET']),
      forRun: 'alerts',
      acts: (_method, m) => (m[1] !== undefined ? 'clear an alert' : undefined),
      handle: async (req, m, identity) => (m[1] !== undefined ? ok(await alerts.clear(identity, m[1], await readJsonBody(req))) : ok(alerts.list(req, identity))),
    },
    { path: exactly('/v1/whoami'), methods: ['GET'], handle: (_req, _m, identity) => ok(whoami(identity)) },
    { path: exactly('/v1/connections'), methods: ['GET'], handle: async (_req, _m, identity) => ok(await connections.list(identity)) },
    { path: R.connection, methods: ['GET'], handle: async (_req, m, identity) => ok(await connections.one(identity, pathPart(m[1]!))) },
    { path: R.cancel, methods: ['POST'], handle: async (req, m, identity) => ok(await connections.cancel(identity, pathPart(m[1]!), await readJsonBody(req))) },
    {
      path: R.direct,
      methods: ['POST'],
      acts: () => 'get a direct credential',
      handle: async (req, m, identity) => ({ status: 201, body: await direct.mint(identity, pathPart(m[1]!), await readOptionalJsonBody(req)) }),
    },
    {
      path: R.directOne,
      methods: (m) => (m[2] !== undefined ? ['POST'] : ['DELETE']),
      acts: (method) => (method === 'POST' ? 'renew a direct credential' : undefined),
      handle: async (req, m, identity) => ok(m[2] !== undefined ? await direct.renew(identity, m[1]!, await readOptionalJsonBody(req)) : await direct.revoke(identity, m[1]!)),
    },
    { path: exactly('/v1/runbooks'), methods: ['GET'], handle: (_req, _m, identity) => ok(runbooks.list(identity)) },
    {
      path: R.runbook,
      methods: (m) => (m[2] !== undefined ? ['POST'] : ['GET']),
      acts: (_method, m) => (m[2] !== undefined ? 'run a runbook' : undefined),
      handle: async (req, m, identity) => {
        if (m[2] === undefined) return ok(runbooks.one(identity, pathPart(m[1]!)));
        const via = req.headers['hoop-via'];
        // The caller hanging up (^C) ends its run, as it would its own session.
        const gone = new AbortController();
        const hungUp = (): void => gone.abort();
        req.socket.once('close', hungUp);
        const run = await runRunbook(
          identity,
          pathPart(m[1]!),
          await readOptionalJsonBody(req, RUNBOOK_BODY_BYTES),
          typeof via === 'string' ? via : undefined,
          peerText(req.socket),
          gone.signal,
        ).finally(() => req.socket.off('close', hungUp));
        return { status: run.outcome === 'held' ? 202 : 200, body: run };
      },
    },
    { path: exactly('/v1/policy'), methods: ['GET'], forRun: 'policy', handle: (_req, _m, identity) => ok(connections.policy(identity)) },
    { path: exactly('/v1/sessions'), methods: ['GET'], forRun: 'sessions', handle: (req, _m, identity) => sessions.sessions(req, identity, undefined, false, undefined) },
    { path: R.session, methods: ['GET'], forRun: 'sessions', handle: (req, m, identity) => sessions.sessions(req, identity, m[1]!, m[2] !== undefined, m[3]) },
    {
      path: exactly('/v1/devices'),
      methods: ['GET', 'POST'],
      forRun: 'devices',
      acts: (method) => (method === 'POST' ? 'register a device key' : undefined),
      handle: (req, _m, identity) => devicesApi(parts, req, identity),
    },
    { path: R.clientRecord, methods: (m) => writeOr(m, 'GET'), forRun: 'records', handle: (req, m, identity) => sessions.clientRecord(req, identity, 'sessions', m[1]!, m[2]) },
    { path: R.clientRecords, methods: ['POST'], forRun: 'records', handle: (req, _m, identity) => sessions.clientRecords(req, identity) },
    { path: R.runRecord, methods: (m) => writeOr(m, 'GET'), forRun: 'records', handle: (req, m, identity) => sessions.clientRecord(req, identity, 'runs', m[1]!, m[2]) },
    // An id no session, run or review can have (`hoop sessions show nope`) names nothing: said so, not as an endpoint this gateway lacks.
    { path: MALFORMED_ID, methods: ['GET', 'PUT', 'POST'], open: (_req, m) => Promise.reject(noSuchId(m[1]!, m[2]!)) },
  ];
}

/** A path under sessions, runs or reviews whose id matched none of the routes above (group 1: which; group 2: the id). */
const MALFORMED_ID = /^\/v1\/(sessions|runs|reviews)\/([^/]+)(?:\/.*)?$/;

/** What an id of the wrong shape gets: the code of an unknown one, and what ids look like. */
function noSuchId(kind: string, id: string): HoopError {
  const shown = JSON.stringify(id.slice(0, 80));
  if (kind === 'reviews')
    return new HoopError(ErrorCode.REVIEW_UNKNOWN, `no review ${shown}: review ids are 1 to 64 letters, digits and -`, { hint: '`hoop review ls` lists the reviews you may see' });
  const what = kind === 'runs' ? 'run' : 'session';
  return new HoopError(ErrorCode.SESSION_UNKNOWN, `no ${what} ${shown}: ${what} ids are 8 to 64 letters, digits, - and _`, { hint: '`hoop sessions ls` lists the sessions you may see' });
}

/** The request handler of the gateway's HTTP server. */
export function apiHandler(
  parts: GatewayParts,
  callers: Callers,
  sshHostKey: string,
  guard: ConnectionGuard,
  admission: SessionAdmission,
): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  const table = routes(parts, callers, sshHostKey, admission);
  const answer = async (req: http.IncomingMessage, path: string): Promise<Answer> => {
    const method = req.method ?? 'GET';
    for (const route of table) {
      const m = route.path.exec(path);
      if (!m) continue;
      allowOnly(method, typeof route.methods === 'function' ? route.methods(m) : route.methods);
      if (route.open) return route.open(req, m);
      const identity = await callers.authenticate(req.headers.authorization, { remote: peerOf(req.socket).address ?? '?', at: 'api', path });
      guard.trust(req.socket);
      const refused = identity.run ? (typeof route.forRun === 'function' ? route.forRun(method) : route.forRun) : undefined;
      if (refused) throw runForbidden(refused);
      // A suspended identity (or its agent) may look, never act: no decision, no credential, on any replica (the alerts are shared).
      const act = route.acts?.(method, m);
      const suspended = act ? parts.alerts.refusal(identity, identity.run?.agent, act) : undefined;
      if (suspended) throw suspended;
      return route.handle!(req, m, identity);
    }
    throw new HttpError(404, `no such endpoint: ${path}`);
  };
  return (req, res) => {
    let path: string;
    try {
      path = requestUrl(req).pathname;
    } catch (err) {
      return sendError(res, asHoopError(err));
    }
    const failed = (err: unknown): void => {
      if (!(err instanceof HoopError)) parts.log.error('api.error', { path, error: describeError(err) });
      sendError(res, asHoopError(err));
    };
    // An answer that cannot be sent (one too large to write as JSON) is a failure answered as one, never an unhandled rejection.
    answer(req, path)
      .then((a) => sendAnswer(res, a))
      .catch(failed);
  };
}
