/**
 * The runbooks a caller may run: `GET /v1/runbooks` and `GET /v1/runbooks/{name}`, from the
 * policy in force (none without a policy repo). A runbook the caller may not run is answered as
 * one that does not exist: its name says nothing to whoever may not use it. Runs: ./runbook-run.ts.
 */
import type { RunbookInfo } from '../../api/answers.js';
import { ErrorCode, HoopError } from '../../errors.js';
import type { Identity } from '../../identity.js';
import { mayRun, stepAsWritten } from '../../policy/runbooks.js';
import { paramInfo } from '../../policy/runbook-params.js';
import type { Runbook } from '../../policy/schema.js';
import type { GatewayParts } from '../parts/parts.js';

/** Runbook `r` as the API describes it (`commit`: the policy's). */
function runbookInfo(r: Runbook, commit: string | undefined): RunbookInfo {
  return {
    name: r.name,
    description: r.description,
    connection: r.connection,
    parameters: r.params.specs.map(paramInfo),
    steps: r.steps.map(stepAsWritten),
    review: r.review !== undefined,
    ...(r.maxAffectedRows !== undefined ? { maxAffectedRows: r.maxAffectedRows } : {}),
    deadlineSeconds: r.deadlineMs / 1000,
    ...(r.returns ? { returns: [...r.returns] } : {}),
    ...(r.bypass ? { bypass: [...r.bypass] } : {}),
    digest: r.digest,
    ...(commit !== undefined ? { commit } : {}),
  };
}

/** What a caller is answered for a name no runbook it may run has: as for one that does not exist. */
export function unknownRunbook(name: string): HoopError {
  return new HoopError(ErrorCode.RUNBOOK_UNKNOWN, `no runbook ${JSON.stringify(name.slice(0, 80))} that you may run`, { hint: '`hoop runbook ls` lists the runbooks you may run' });
}

/** The runbook endpoints. */
export function runbooksApi(parts: GatewayParts) {
  const runnable = (identity: Identity): { runbooks: Runbook[]; commit: string | undefined } => {
    const snapshot = parts.policySource?.current();
    return { runbooks: (snapshot?.policy.runbooks ?? []).filter((r) => mayRun(r, identity)), commit: snapshot?.commit || undefined };
  };
  return {
    /** `GET /v1/runbooks` */
    list(identity: Identity): { runbooks: RunbookInfo[] } {
      const { runbooks, commit } = runnable(identity);
      return { runbooks: runbooks.map((r) => runbookInfo(r, commit)) };
    },
    /** `GET /v1/runbooks/{name}` */
    one(identity: Identity, name: string): RunbookInfo {
      const { runbooks, commit } = runnable(identity);
      const r = runbooks.find((x) => x.name === name);
      if (!r) throw unknownRunbook(name);
      return runbookInfo(r, commit);
    },
  };
}
