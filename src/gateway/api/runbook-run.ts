/**
 * Running a runbook (`POST /v1/runbooks/{name}/run`, which `hoop runbook run`, `hoop mcp` and CI
 * call): its parameters checked before anything runs, then a session of its own on the runbook's
 * connection, admitted as any session (recorded, indexed, audited), whose client is the gateway:
 * it sends the runbook's steps, each with its values bound, never spliced into the text, into the
 * lane's own pipeline, so the policy judges, masks, guards and records them as a client's.
 *
 * - A runbook that asks for a reviewer holds the run first: the reviewer is shown the runbook, its
 *   file's SHA-256 and every value, and approves exactly that (the review's digest binds the file's
 *   digest and the values). The caller runs it again once approved; a run under another text of
 *   the runbook, or with other values, is another review. In a run so approved, a step a
 *   statement rule would hold is refused (the runbook's `bypass` lets its review stand for the rule).
 * - SQL steps run in one transaction: BEGIN, each step, COMMIT. A step that fails or is refused
 *   rolls it back and is named; so does a step a statement rule holds for review (run again once
 *   approved), and the runbook's deadline.
 * - SSH steps (./runbook-ssh.ts) and HTTP steps (./runbook-http.ts) run in turn until one fails;
 *   what ran before it stays.
 */
import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import * as z from 'zod';
import { RUNBOOK_ROWS, type RunbookRunAnswer, type RunbookStepResult, type StepOutcome } from '../../api/answers.js';
import { realClock } from '../../clock.js';
import type { PostgresConnection } from '../../config/connection.js';
import { describeError, ErrorCode, HoopError } from '../../errors.js';
import type { Identity } from '../../identity.js';
import { principalOf } from '../../policy/principal.js';
import { mayRun, stepLine } from '../../policy/runbooks.js';
import type { Runbook, RunbookStep } from '../../policy/schema.js';
import { reviewSettingsFor } from '../../policy/review-combine.js';
import { PgClient, type ResultHandler } from '../../postgres/wire/client.js';
import type { PgErrorFields } from '../../postgres/wire/messages.js';
import { MySqlGreeted, type ResultHandler as MySqlResultHandler } from '../../mysql/wire/client.js';
import type { ErrPacket } from '../../mysql/wire/results.js';
import { channelPair } from '../../session/channel-pair.js';
import { newEd25519Key } from '../../ssh/common/keys.js';
import { RunbookParamError, type ParamValue } from '../../policy/runbook-params.js';
import { KILL_AFTER_MS, runSshStep, sshSignIn, stepWords } from './runbook-ssh.js';
import { httpSession, requestTarget, runHttpStep } from './runbook-http.js';
import type { Engine, ReviewAsk, SessionOutcome, TunnelSession } from '../../session/engine.js';
import type { ControlMessage } from '../../tunnel/frames.js';
import type { PolicySnapshot } from '../config/policy-source.js';
import { unknownRunbook } from './runbooks.js';
import type { GatewayParts } from '../parts/parts.js';
import type { SessionAdmission } from '../sessions/admission.js';

/** What a run is given: its parameters, as JSON, or each as text (`hoop runbook run --param`). */
const runBody = z.strictObject(
  { params: z.record(z.string(), z.unknown()).default({}), text: z.boolean().default(false) },
  { error: 'the body is { "params": { name: value, … } } (with "text": true, every value a string, as typed on a command line)' },
);

/** A run's values in the runbook's order, `null` for an optional one not given. */
type Values = ReadonlyMap<string, ParamValue>;

/** The values each step binds, in its order. */
function boundOf(params: readonly string[], values: Values): Array<string | null> {
  return params.map((p) => values.get(p)?.text ?? null);
}

/** A value as a reviewer reads it: a number as written, text quoted (JSON), so its ends are seen. */
function shownValue(v: ParamValue | undefined): string {
  if (!v) return 'NULL';
  return v.type === 'integer' ? v.text : JSON.stringify(v.text);
}

/**
 * The review a run of `runbook` with `values` asks for: the text a reviewer is shown (the runbook,
 * its file's digest, every value, every step as it will run) and the digest an approval binds.
 */
export function runbookAsk(runbook: Runbook, values: Values, snapshot: PolicySnapshot): Omit<ReviewAsk, 'settings'> {
  const names = runbook.params.specs.map((s) => s.name);
  const lines = [
    `runbook ${runbook.name}: ${runbook.description}`,
    `file ${runbook.file}, sha256 ${runbook.digest}${snapshot.commit ? `, policy commit ${snapshot.commit}` : ''}`,
    `on ${runbook.connection}${runbook.steps.every((s) => s.kind === 'sql') ? ', in one transaction' : ''}${names.length > 0 ? ', with:' : ''}`,
    ...names.map((n) => `  ${n} = ${shownValue(values.get(n))}`),
    ...runbook.steps.flatMap((s, i) => (s.kind === 'sql' ? [`step ${i + 1}: ${s.sql}`, ...s.params.map((p, j) => `  $${j + 1} = ${p}`)] : [`step ${i + 1}: ${stepLine(s)}`])),
  ];
  const digest = createHash('sha256')
    .update(JSON.stringify(['runbook', runbook.name, runbook.digest, runbook.connection, names.map((n) => values.get(n)?.text ?? null)]))
    .digest('hex');
  return { sql: lines.join('\n'), digest, rule: `runbook:${runbook.name}`, reason: `runbook ${runbook.name} asks for a reviewer's approval of each run` };
}

/** What a step may not be given: a value a program would read as an option (an SSH word), one that names another path (an HTTP segment). @throws RunbookParamError */
function checkStepValues(runbook: Runbook, values: Values): void {
  for (const s of runbook.steps) {
    if (s.kind === 'http') requestTarget(s, (p) => values.get(p));
    if (s.kind !== 'ssh') continue;
    for (const w of s.words) {
      if (typeof w !== 'string' && values.get(w.param)?.text.startsWith('-'))
        throw new RunbookParamError(w.param, 'begins with -, which the command would read as an option', 'an SSH step takes a value as one word, never as an option');
    }
  }
}

/** The runner of `POST /v1/runbooks/{name}/run`. */
export function runbookRunner(parts: GatewayParts, admission: SessionAdmission) {
  /** Runs runbook `name` for `identity` (come `via`, from `remote`) with the JSON `body`, until `gone` (the caller left: the run ends); resolves how it went. */
  return async (identity: Identity, name: string, body: unknown, via: string | undefined, remote: string, gone: AbortSignal): Promise<RunbookRunAnswer> => {
    const snapshot = parts.policySource?.current();
    const principal = principalOf(identity, via);
    // A refusal before the run's session is an event of its own, which `refused` alerts count.
    const refused = (reason: 'not-admitted' | 'parameter', param?: string): void =>
      parts.events.emit('runbook.refused', {
        runbook: name.slice(0, 80),
        subject: identity.subject,
        issuer: identity.issuer,
        via: principal.via,
        ...(principal.run !== undefined ? { run: principal.run } : {}),
        ...(principal.agent !== undefined ? { agent: principal.agent } : {}),
        reason,
        ...(param !== undefined ? { param: param.slice(0, 80) } : {}),
      });
    const runbook = snapshot?.policy.runbooks?.find((r) => r.name === name && mayRun(r, identity, principal));
    if (!snapshot || !runbook) {
      refused('not-admitted');
      throw unknownRunbook(name);
    }
    const parsed = runBody.safeParse(body ?? {});
    if (!parsed.success) throw new HoopError(ErrorCode.USAGE, parsed.error.issues[0]!.message);
    let values: Values;
    try {
      // Every value checked before anything runs: a refusal names the parameter.
      values = runbook.params.check(Object.entries(parsed.data.params), parsed.data.text ? 'text' : 'json');
      // JSON.parse keeps a "__proto__" key as its own; the body's schema drops it: said, not dropped.
      if (body !== null && typeof body === 'object' && Object.hasOwn((body as { params?: object }).params ?? {}, '__proto__'))
        throw new RunbookParamError('__proto__', 'the runbook has no such parameter');
      checkStepValues(runbook, values);
    } catch (err) {
      if (err instanceof RunbookParamError) refused('parameter', err.param);
      throw err;
    }
    const { gateway, client } = channelPair();
    // An SSH run signs in to its session with a key of its own, which the session expects.
    const key = runbook.steps[0]?.kind === 'ssh' ? newEd25519Key(`hoop runbook ${runbook.name}`) : undefined;
    return new Promise<RunbookRunAnswer>((resolve, reject) => {
      const answered = (a: Omit<RunbookRunAnswer, 'runbook' | 'digest' | 'commit'>): void =>
        resolve({ runbook: runbook.name, digest: runbook.digest, ...(snapshot.commit ? { commit: snapshot.commit } : {}), ...a });
      admission.admitRunbook(
        identity,
        {
          runbook,
          snapshot,
          principal,
          ...(key ? { clientKey: key.public } : {}),
          serve: async (session, engine) => {
            const run = new RunbookRun(session, engine, runbook, values, snapshot, client, key?.private, gone);
            const outcome = await run.serve();
            answered({ session: session.id, ...run.result });
            return outcome;
          },
        },
        remote,
        {
          refuse: (_status, refusal) => reject(new HoopError(refusal.error.code as ErrorCode, refusal.error.message, refusal.error.hint !== undefined ? { hint: refusal.error.hint } : {})),
          accept: () => gateway,
        },
      );
    });
  };
}

/** The result of a run as its caller hears it, besides the runbook's name, digest and commit. */
type RunResult = Omit<RunbookRunAnswer, 'runbook' | 'digest' | 'commit' | 'session'>;

/** One run of a runbook, its client the gateway. */
class RunbookRun {
  result: RunResult = { outcome: 'failed', steps: [], failed: { step: 0, message: 'the run did not start', undone: true } };
  /** The step running (1-based; 0 before the first, and for BEGIN). */
  #step = 0;

  constructor(
    private readonly session: TunnelSession,
    private readonly engine: Engine,
    private readonly runbook: Runbook,
    private readonly values: Values,
    private readonly snapshot: PolicySnapshot,
    private readonly client: Duplex,
    private readonly sshKey: string | undefined,
    private readonly gone: AbortSignal,
  ) {}

  /** Holds the run for its review when the runbook asks for one; else (or once approved) runs it. Resolves the session's outcome. */
  async serve(): Promise<SessionOutcome> {
    const { runbook, session } = this;
    if (runbook.review) {
      const settings = reviewSettingsFor(this.snapshot.policy, runbook.connection, runbook.review);
      const refused = !settings ? 'the policy names no group that may review it' : !session.reviews ? 'this gateway cannot hold it for review' : undefined;
      if (refused || !settings || !session.reviews)
        return this.#end({ outcome: 'failed', steps: [], failed: { step: 0, message: `runbook ${runbook.name} asks for a reviewer, and ${refused}`, refused: true, undone: true } });
      const pending = session.reviews.request({ ...runbookAsk(runbook, this.values, this.snapshot), settings });
      // A review raised now is held: the caller runs it again once it is approved, and that run uses the approval.
      if (!pending.reused) {
        // Its session ends now; the review waits on without it (detached), and its approval is for a later run.
        pending.withdraw('session-ended');
        return this.#end({ outcome: 'held', steps: [], held: { review: pending.id } });
      }
      const decided = await pending.decided;
      if (decided.state !== 'approved') {
        return this.#end({
          outcome: 'failed',
          steps: [],
          failed: { step: 0, message: `approval ${pending.id} could not be used: ${'because' in decided && decided.because ? decided.because : decided.state}`, refused: true, undone: true },
        });
      }
      // Its reviewer saw every step as it runs: a statement rule that would hold one is refused, not raised (each rerun would need the runbook's approval anew).
      session.reviews = {
        request: (ask) => ({
          id: pending.id,
          reused: true,
          withdraw: () => undefined,
          decided: Promise.resolve({
            state: 'expired',
            afterMs: 0,
            because: `a run its runbook's review approved is not held again; to let that review stand for rule ${ask.rule ?? 'this'}, list it in the runbook's bypass`,
          }),
        }),
      };
    }
    const served = this.engine.serve(session);
    await this.#run();
    this.client.destroy();
    return served;
  }

  /** Ends the session before its engine serves it, with `result`. */
  #end(result: RunResult): SessionOutcome {
    this.result = result;
    this.client.destroy();
    return { reason: 'client-terminated', bytesFromClient: 0, bytesToClient: 0, detail: result.outcome === 'held' ? `held for review ${result.held!.review}: nothing ran` : result.failed!.message };
  }

  /** Runs the steps in its lane; a failure, a hold or the deadline ends it (and the session, which rolls back what SQL did). */
  async #run(): Promise<void> {
    const { runbook, client } = this;
    const lane = this.session.connection.type;
    const undone = lane === 'postgres' || lane === 'mysql';
    let settle!: (r: RunResult) => void;
    const stopped = new Promise<RunResult>((resolve) => (settle = resolve));
    // What stops the run also stops what it runs: an SSH step's command is signalled (./runbook-ssh.ts).
    const halt = new AbortController();
    const stop = (r: RunResult): void => {
      halt.abort();
      settle(r);
    };
    const held = (m: ControlMessage): void => {
      if (m.type === 'review' && m.state === 'pending' && typeof m.id === 'string') stop({ outcome: 'held', steps: [], held: { review: m.id, step: this.#step } });
    };
    client.on('control', held);
    // A caller that left (^C) ends the run as a client that hangs up ends its session: SQL is rolled back.
    const left = (): void => stop({ outcome: 'failed', steps: [], failed: { step: this.#step, message: 'the caller went away before the run ended', undone } });
    if (this.gone.aborted) left();
    this.gone.addEventListener('abort', left, { once: true });
    const cancelDeadline = realClock.timer(runbook.deadlineMs, () =>
      stop({ outcome: 'failed', steps: [], failed: { step: this.#step, message: `the runbook's deadline of ${runbook.deadlineMs / 1000} s passed`, undone } }),
    );
    const steps: RunbookStepResult[] = [];
    const ran = (this.sshKey ? this.#ssh(steps, this.sshKey, halt.signal) : lane === 'http' ? this.#http(steps) : this.#sql(steps)).catch(
      (err: unknown): RunResult => ({ outcome: 'failed', steps, failed: { step: this.#step, message: `the session ended: ${describeError(err)}`, ...hintOf(err), undone } }),
    );
    try {
      this.result = await Promise.race([ran, stopped]);
      // Stopped while an SSH command ran: it was signalled; the run ends once it has (or says it may not have).
      if (halt.signal.aborted && lane === 'ssh' && this.result.failed) {
        const ended = await Promise.race([ran.then(() => true), new Promise<false>((resolve) => realClock.timer(2 * KILL_AFTER_MS + 1_000, () => resolve(false)))]);
        const step = this.result.failed.step;
        this.result = {
          ...this.result,
          failed: {
            ...this.result.failed,
            message: `${this.result.failed.message}; ${ended ? `step ${step}'s command was stopped (TERM, then KILL)` : `step ${step}'s command may still be running on the target`}`,
          },
        };
      }
    } finally {
      cancelDeadline();
      this.gone.removeEventListener('abort', left);
      client.off('control', held);
    }
    // What SQL ran and did not commit is not kept: no step of it is said to have run.
    if (this.result.outcome !== 'ran' && undone) this.result = { ...this.result, steps: [] };
  }

  /** BEGIN, each step with its values bound, COMMIT; ROLLBACK at the first failure. */
  async #sql(steps: RunbookStepResult[]): Promise<RunResult> {
    const { runbook, values } = this;
    const budget = { bytes: RUNBOOK_BYTES };
    const sql = await signIn(this.session, this.client, `hoop runbook ${runbook.name}`);
    const failedAt = (f: StepFailure): RunResult => ({ outcome: 'failed', steps, failed: { step: this.#step, ...f, undone: true } });
    const begun = await sql.run(sql.begin);
    if (begun) return failedAt(begun);
    for (const [i, s] of runbook.steps.entries()) {
      if (s.kind !== 'sql') throw new HoopError(ErrorCode.USAGE, `step ${i + 1} of runbook ${runbook.name} is not SQL`);
      this.#step = i + 1;
      const rows = new StepRows(i + 1, runbook.returns, budget);
      const failure = await sql.bound(s.sql, boundOf(s.params, values), rows);
      if (failure) {
        await sql.run('ROLLBACK');
        return failedAt(failure);
      }
      steps.push(rows.result());
    }
    this.#step = runbook.steps.length + 1;
    const committed = await sql.run('COMMIT');
    if (committed) return failedAt(committed);
    sql.close();
    return { outcome: 'ran', steps };
  }

  /** Each step a request, in turn, until one fails. */
  async #http(steps: RunbookStepResult[]): Promise<RunResult> {
    const h = httpSession(this.client);
    try {
      return await this.#inTurn(steps, 'http', (s, n) => runHttpStep(h.agent, n, s, (p) => this.values.get(p)));
    } finally {
      h.close();
    }
  }

  /** Each step an exec request, in turn, until one fails or the run stops. */
  async #ssh(steps: RunbookStepResult[], privateKey: string, halt: AbortSignal): Promise<RunResult> {
    const ssh = await sshSignIn(this.client, privateKey);
    try {
      return await this.#inTurn(
        steps,
        'ssh',
        (s, n) =>
          runSshStep(
            ssh,
            n,
            stepWords(s, (p) => this.values.get(p)?.text),
            halt,
          ),
        halt,
      );
    } finally {
      ssh.end();
    }
  }

  /** Runs each step of `kind` with `one`, in turn, until one fails (what ran before it stays) or `halt` aborts. */
  async #inTurn<K extends 'ssh' | 'http'>(steps: RunbookStepResult[], kind: K, one: (s: RunbookStep & { kind: K }, n: number) => Promise<StepOutcome>, halt?: AbortSignal): Promise<RunResult> {
    const { runbook } = this;
    for (const [i, s] of runbook.steps.entries()) {
      if (s.kind !== kind) throw new HoopError(ErrorCode.USAGE, `step ${i + 1} of runbook ${runbook.name} is not ${kind === 'ssh' ? 'an SSH command' : 'an HTTP request'}`);
      this.#step = i + 1;
      if (halt?.aborted) break;
      const done = await one(s as RunbookStep & { kind: K }, i + 1);
      steps.push(done.result);
      if (done.failed) return { outcome: 'failed', steps, failed: { step: i + 1, ...done.failed, undone: false } };
    }
    return { outcome: 'ran', steps };
  }
}

/** Why a step (or BEGIN, COMMIT) failed, as the database or the policy said it. */
type StepFailure = Omit<NonNullable<RunResult['failed']>, 'step' | 'undone'>;

/** The gateway as a SQL client of the session: statements as text (BEGIN, COMMIT, ROLLBACK), a step with its values bound. */
interface SqlSession {
  begin: string;
  run(sql: string): Promise<StepFailure | undefined>;
  bound(sql: string, params: Array<string | null>, rows: StepRows): Promise<StepFailure | undefined>;
  close(): void;
}

/** A failure the policy made (its refusals begin `hoop: `) is a refusal. */
function failure(f: { code: string; message: string; detail?: string | undefined; hint?: string | undefined }): StepFailure {
  return {
    code: f.code,
    message: f.message,
    ...(f.detail !== undefined ? { detail: f.detail } : {}),
    ...(f.hint !== undefined ? { hint: f.hint } : {}),
    ...(f.message.startsWith('hoop: ') ? { refused: true } : {}),
  };
}

/** Signs in to the session's engine on `client`, in its lane's protocol, as `application`. */
async function signIn(session: TunnelSession, client: Duplex, application: string): Promise<SqlSession> {
  const c = session.connection;
  if (c.type === 'mysql') {
    const my = await (await MySqlGreeted.read(client)).signIn({ user: 'hoop', password: '', database: c.database ?? '', attributes: { program_name: application } });
    const said = (e: ErrPacket | undefined): StepFailure | undefined => (e ? failure({ code: `${e.code} (${e.sqlState})`, message: e.message }) : undefined);
    const ignored: MySqlResultHandler = { columns: () => undefined, row: () => undefined, end: () => undefined };
    return {
      begin: 'START TRANSACTION',
      run: async (sql) => said(await my.run(sql, ignored)),
      bound: async (sql, params, rows) =>
        said(
          await my.runBound(sql, params, {
            columns: (cs) => rows.columns(cs.map((x) => x.name)),
            row: (v) => rows.row(v),
            end: (ok) => rows.complete(ok ? `OK ${ok.affectedRows}` : `ROWS ${rows.count}`),
          }),
        ),
      close: () => my.close(),
    };
  }
  const pg = await PgClient.start(client, [
    ['user', 'hoop'],
    ['database', (c as PostgresConnection).database],
    ['application_name', application],
  ]);
  const said = (f: PgErrorFields | undefined): StepFailure | undefined => (f ? failure(f) : undefined);
  const ignored: ResultHandler = { columns: () => undefined, row: () => undefined, complete: () => undefined, notice: () => undefined };
  return {
    begin: 'BEGIN',
    run: async (sql) => said(await pg.run(sql, ignored)),
    bound: async (sql, params, rows) =>
      said(await pg.runBound(sql, params, { columns: (fs) => rows.columns(fs.map((f) => f.name)), row: (v) => rows.row(v), complete: (t) => rows.complete(t), notice: () => undefined })),
    close: () => pg.close(),
  };
}

function hintOf(err: unknown): { hint?: string } {
  return err instanceof HoopError && err.hint !== undefined ? { hint: err.hint } : {};
}

/** The most characters of values a run's answer carries, all steps together: what comes after is counted, not kept. */
const RUNBOOK_BYTES = 8 * 1024 * 1024;

/** One step's results: its tag, and its rows (the columns the runbook returns, at most {@link RUNBOOK_ROWS}, within the run's {@link RUNBOOK_BYTES}). */
class StepRows {
  #columns: string[] | undefined;
  /** The indexes of the columns kept. */
  #kept: number[] = [];
  readonly #rows: Array<Array<string | null>> = [];
  #truncated = false;
  #dropped = 0;
  #tag = '';

  constructor(
    private readonly step: number,
    private readonly returns: readonly string[] | undefined,
    /** The bytes of values the run's answer may still carry, shared by its steps. */
    private readonly budget: { bytes: number },
  ) {}

  columns(names: string[]): void {
    this.#kept = names.flatMap((n, i) => (!this.returns || this.returns.includes(n) ? [i] : []));
    this.#columns = this.#kept.map((i) => names[i]!);
  }

  row(values: Array<string | null>): void {
    const kept = this.#kept.map((i) => values[i] ?? null);
    const size = kept.reduce((n, v) => n + (v?.length ?? 0) + 8, 0);
    if (this.#rows.length >= RUNBOOK_ROWS || size > this.budget.bytes) {
      this.#truncated = true;
      this.#dropped++;
      return;
    }
    this.budget.bytes -= size;
    this.#rows.push(kept);
  }

  complete(tag: string): void {
    this.#tag = tag;
  }

  /** The rows seen so far. */
  get count(): number {
    return this.#rows.length + this.#dropped;
  }

  result(): RunbookStepResult {
    return { step: this.step, tag: this.#tag, ...(this.#columns ? { columns: this.#columns, rows: this.#rows } : {}), ...(this.#truncated ? { truncated: true as const } : {}) };
  }
}
