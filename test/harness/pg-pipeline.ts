/**
 * The gateway's PostgreSQL data path without a gateway: the relay's two paths
 * (src/postgres/pipeline/relay.ts) with the stages a session has — the statement gate, the write
 * guard, masking, the server state — between a test and a real server's signed-in connection.
 * The test writes the client's bytes, cut where it chooses, and reads the backend messages the
 * client would get; the database is the real one, so what it holds can be asserted too.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html
 */
import { PassThrough, Writable } from 'node:stream';
import { connectUpstreamPostgres, type UpstreamPostgres } from '../../src/postgres/gateway/upstream.js';
import { PgSessionMasking } from '../../src/postgres/pipeline/masking/stage.js';
import { CatalogConnection } from '../../src/postgres/pipeline/masking/catalog-connection.js';
import { BackendPath, FrontendPath } from '../../src/postgres/pipeline/relay.js';
import { ServerState } from '../../src/postgres/pipeline/server-state.js';
import type { Refusal } from '../../src/postgres/pipeline/stages.js';
import { StatementGate } from '../../src/postgres/pipeline/statement-gate.js';
import { WriteGuardStage } from '../../src/postgres/pipeline/write-guard.js';
import { MessageReader, parseErrorFields, type PgMessage } from '../../src/postgres/wire/reader.js';
import { terminate } from '../../src/postgres/wire/messages.js';
import { pump } from '../../src/tunnel/pump.js';
import type { PendingReview, ReviewAsk, ReviewOutcome, SessionJudge, SessionMasking, StatementRows } from '../../src/session/engine.js';
import { StatementTally } from '../../src/postgres/pipeline/tally.js';
import type { PgCluster, PgUser } from './postgres.js';
import { eventually } from './wait.js';

/** A review the test decides by hand. */
export interface HeldReview {
  ask: ReviewAsk;
  decide(outcome: ReviewOutcome): void;
}

/** What {@link openPipeline} takes: the session's judge, and the stages it has. */
export interface PipelineOptions {
  user?: PgUser;
  database?: string;
  judge?: SessionJudge;
  masking?: SessionMasking;
  /** Reviews may be raised (each waits in {@link Pipeline.reviews} for the test's decision). */
  reviews?: boolean;
  /** Follow what each statement reads and changes (into {@link Pipeline.statements}). */
  tally?: boolean;
}

/** One session's relay between a test and a real server. */
export interface Pipeline {
  /** Every backend message the client has received so far. */
  readonly received: PgMessage[];
  readonly refusals: Refusal[];
  readonly reviews: HeldReview[];
  /** Each statement's end, as the tally said it (with `tally`). */
  readonly statements: StatementRows[];
  /** Sends the client's bytes, cut at `cuts` (offsets into `bytes`), each piece a chunk of its own. */
  send(bytes: Buffer, cuts?: number[]): Promise<void>;
  /** Waits until `n` more ReadyForQuery messages arrived; resolves the messages since the last call. */
  answers(n?: number): Promise<PgMessage[]>;
  close(): Promise<void>;
}

/** A message's type as its letter (`Z`, `C`, `E`, ...). */
export const letter = (m: PgMessage): string => String.fromCharCode(m.type);

/** The SQLSTATE of an ErrorResponse. */
export const sqlstateOf = (m: PgMessage): string | undefined => parseErrorFields(m.body).code;

/** Opens a signed-in connection to `cluster` and relays it through the stages `o` names. */
export async function openPipeline(cluster: PgCluster, o: PipelineOptions = {}): Promise<Pipeline> {
  const user = o.user ?? cluster.users.scram;
  const database = o.database ?? 'app';
  const target = { host: '127.0.0.1', port: cluster.port, user: user.user, password: user.password, database, tls: { mode: 'disable' as const }, allowCleartextWithoutTls: true };
  const upstream: UpstreamPostgres = await connectUpstreamPostgres({ ...target, params: [] });
  const refusals: Refusal[] = [];
  const reviews: HeldReview[] = [];
  const state = new ServerState();
  const gate = o.judge
    ? new StatementGate(o.judge, {
        confirmed: true,
        onRefusal: (r) => refusals.push(r),
        ...(o.reviews
          ? {
              review: (ask: ReviewAsk): PendingReview => {
                let decide!: (outcome: ReviewOutcome) => void;
                const decided = new Promise<ReviewOutcome>((resolve) => (decide = resolve));
                reviews.push({ ask, decide });
                return { id: `rv-test-${reviews.length}`, decided, withdraw: (why) => decide({ state: 'withdrawn', why }) };
              },
            }
          : {}),
      })
    : undefined;
  const guard = gate ? new WriteGuardStage({ state, gate }) : undefined;
  // The session's own catalog connection here (the gateway shares one per connection), closed with it.
  const lookups = new CatalogConnection(() => connectUpstreamPostgres({ ...target, params: [['default_transaction_read_only', 'on']] }));
  const masking = o.masking
    ? new PgSessionMasking({
        masking: o.masking,
        sessionPid: upstream.backendKey.processId,
        catalog: lookups,
      })
    : undefined;
  const statements: StatementRows[] = [];
  const tally = o.tally ? new StatementTally((st) => statements.push(st)) : undefined;
  const stages = { state, ...(gate ? { gate, guard } : {}), ...(masking ? { masking } : {}), ...(tally ? { tally } : {}) };
  const frontend = new FrontendPath({ reader: new MessageReader({ side: 'frontend' }), ...stages, ...(gate ? { guardLexing: true } : {}) });
  const backend = new BackendPath({ reader: new MessageReader({ side: 'backend' }), ...stages });

  const received: PgMessage[] = [];
  const reader = new MessageReader({ side: 'backend' });
  const client = new Writable({
    write(chunk: Buffer, _enc, done) {
      reader.push(chunk);
      for (let m = reader.next(); m; m = reader.next()) received.push({ type: m.type, body: Buffer.from(m.body), raw: Buffer.from(m.raw) });
      done();
    },
  });
  const fromClient = new PassThrough();
  const failures: unknown[] = [];
  const socket = upstream.socket;
  socket.on('error', (err) => failures.push(err));
  pump(fromClient, socket, { step: frontend.step, onError: (err) => failures.push(err) });
  pump(socket, client, { initial: upstream.leftover, step: backend.step, onError: (err) => failures.push(err) });
  socket.resume();

  let seen = 0;
  let readies = 0;
  return {
    received,
    refusals,
    reviews,
    statements,
    async send(bytes, cuts = []) {
      let at = 0;
      for (const c of [...cuts, bytes.length]) {
        if (c > at) fromClient.write(bytes.subarray(at, c));
        at = c;
        await new Promise((resolve) => setImmediate(resolve));
      }
    },
    async answers(n = 1) {
      const want = readies + n;
      await eventually(() => {
        if (failures.length > 0) throw new Error(`the relay failed: ${String(failures[0])}`);
        if (received.filter((m) => m.type === 0x5a).length < want) throw new Error(`waiting for ReadyForQuery ${want}; got ${letters(received.slice(seen))}`);
      });
      readies = want;
      let end = seen;
      for (let z = 0; end < received.length && z < n; end++) if (received[end]!.type === 0x5a) z++;
      const out = received.slice(seen, end);
      seen = end;
      return out;
    },
    async close() {
      lookups.close();
      fromClient.end(terminate());
      await new Promise<void>((resolve) => {
        if (socket.destroyed) return resolve();
        socket.once('close', () => resolve());
        setTimeout(() => socket.destroy(), 2000).unref();
      });
    },
  };
}

/** The letters of `messages` (`CZ`, `EZ`): a compact view of what the client got. */
export function letters(messages: readonly PgMessage[]): string {
  return messages.map(letter).join('');
}
