/**
 * Agents' runs (../runs/runs.ts): `POST /v1/runs` `{ connections, agent, via, isolation, command?, prompt?, apply? }`
 * begins a run for the caller (a person's credential) once every connection it names admits the
 * agent, and answers the run with its credential and its control credential;
 * `POST /v1/runs/{id}/heartbeat|end` with the control credential keeps it alive or ends it, and
 * `POST /v1/runs/{id}/egress` reports connections its command was refused. What a
 * run credential may not do is refused at each route (`forRun` in ../router.ts).
 */
import type * as http from 'node:http';
import { describeError } from '../../errors.js';
import type { Identity } from '../../identity.js';
import { RUN_DEFAULTS, type RunPolicy } from '../../policy/schema.js';
import { globMatches } from '../../glob.js';
import type { Callers } from '../sessions/callers.js';
import type { GatewayParts } from '../parts/parts.js';
import { peerOf } from '../front/peer-address.js';
import { describeRun, isRunToken, parseRunAsk, runForbidden } from '../runs/runs.js';
import { TokenRejectedError, TokenVerifier } from '../identity/verify-token.js';
import { checkBody, readOptionalJsonBody } from '../http/respond.js';
import type { RunStarted, RunView } from '../../api/answers.js';
import { runEgressBody, runHeartbeatBody } from '../../api/bodies.js';
import type { RunAction } from '../../api/paths.js';
import { egressFor } from '../../policy/egress.js';

export function runsApi(parts: GatewayParts, callers: Callers) {
  const { policySource, reviews, runs, events, verifier, log } = parts;
  const runPolicy = (): RunPolicy => policySource?.current().policy.runs ?? RUN_DEFAULTS;
  const egress = (agent: string): string[] => egressFor(runPolicy().egress, agent);
  /** What the policy says now of a run of `agent`: where it may connect, whether its changes are reviewed, the controls the gate lets through. */
  const now = (agent: string): Pick<RunView, 'egress' | 'review' | 'applyControls'> => {
    const { review, applyControls } = runPolicy();
    return { egress: egress(agent), review: typeof review === 'boolean' ? review : review.some((g) => globMatches(g, agent)), applyControls };
  };

  /**
   * The person a run's heartbeat brings (`{ personToken }`), verified as any person's token: their
   * identity, or why it was refused for good (the run then ends); none when it brings none, or one
   * that cannot be checked for now (the issuer's keys out of reach: the run ends when the last one
   * it had runs out).
   */
  const heartbeatPerson = async (req: http.IncomingMessage): Promise<Identity | { refused: string } | undefined> => {
    const body = await readOptionalJsonBody(req);
    const token = body === null ? undefined : checkBody(runHeartbeatBody, body).personToken;
    if (typeof token !== 'string' || isRunToken(token)) return undefined;
    try {
      return await verifier.verify(token);
    } catch (err) {
      log.info('run.person-token-refused', { error: describeError(err) });
      callers.refusals.report(err, peerOf(req.socket).address ?? '?', 'run-control', req.url);
      const transient = err instanceof TokenRejectedError && (err.reason === 'discovery-failed' || err.reason === 'unknown-key');
      return transient || !(err instanceof TokenRejectedError) ? undefined : { refused: err.message };
    }
  };

  return {
    /** `POST /v1/runs` */
    async start(identity: Identity, body: unknown): Promise<RunStarted> {
      if (identity.run) throw runForbidden('runs');
      const ask = parseRunAsk(body);
      // An agent suspended by its name (`per: agent`) gets no new run under it either.
      const suspended = parts.alerts.refusal(identity, ask.agent, `begin a run of the agent ${ask.agent}`);
      if (suspended) throw suspended;
      const principal = { via: ask.via, run: 'run-new', agent: ask.agent, isolated: ask.isolation !== 'none' };
      // A run that may not use what it names is refused now, saying which, rather than at its first session.
      for (const name of ask.connections) {
        if (policySource) policySource.lookup(identity, name, reviews.grantsOf(identity), undefined, principal);
        else callers.lookup(identity, name);
      }
      const { run, token, controlToken } = await runs.create(identity, ask, runPolicy());
      events.emit('run.start', {
        run: run.id,
        subject: identity.subject,
        issuer: identity.issuer,
        agent: run.agent,
        via: run.via,
        isolation: run.isolation,
        connections: run.connections,
        expiresAt: run.expiresAt,
      });
      return { ...describeRun(run), ...now(run.agent), token, controlToken };
    },

    /**
     * `POST /v1/runs/{id}/heartbeat|end|egress`: the control credential, never a person's nor the
     * run's own (only the hoop that began the run keeps it alive, ends it, or says what its command
     * was refused). A heartbeat's answer says where the command may connect now.
     */
    async control(req: http.IncomingMessage, id: string, action: RunAction): Promise<RunView> {
      const token = TokenVerifier.bearerFromHeader(req.headers.authorization);
      const refused = (err: unknown): never => {
        callers.refusals.report(err, peerOf(req.socket).address ?? '?', 'run-control', `/v1/runs/${id}/${action}`);
        throw err;
      };
      if (action === 'egress') {
        const run = await runs.controlled(token, id).catch(refused);
        const { refused: connections } = checkBody(runEgressBody, await readOptionalJsonBody(req));
        const who = { run: run.id, subject: run.owner.subject, issuer: run.owner.issuer, agent: run.agent, via: run.via };
        for (const c of connections) events.emit('run.egress-refused', { ...who, host: c.host, port: c.port, at: c.at });
        return describeRun(run);
      }
      const person = action === 'heartbeat' ? await heartbeatPerson(req) : undefined;
      const run = await runs.control(token, id, action, person).catch(refused);
      return { ...describeRun(run), ...now(run.agent) };
    },
  };
}
