/**
 * What becomes of each session, told once to every observer: the gateway's log (`tunnel.open`,
 * `tunnel.close`), the audit stream (`session.start`, `session.end`), the session's recording (its
 * `end` event, then closed) and the session index (listed as running, then indexed). Admission
 * (./admission.ts) says when a session opened and how it ended, and writes none of these itself;
 * what happens within a session (a refused statement, a review) goes to the gateway's events
 * (./events.ts) as it happens, from the session's engine and the review registry.
 */
import type { ConnectionConfig } from '../config/connection.js';
import { describeError } from '../errors.js';
import type { Identity } from '../identity.js';
import type { Logger } from '../log.js';
import type { RecordingStream } from '../recording/thread.js';
import type { SessionOutcome } from '../session/engine.js';
import type { GatewayEvents } from './events.js';
import type { GatewayRecordings, SessionSummary, TablesTouched, TouchedSummary } from './recordings.js';

/** Who a session is, as every log line and audit event about it names it. */
export type SessionWho = {
  session: string;
  subject: string;
  issuer: string;
  connection: string;
  remote: string;
  via: string;
  run?: string;
  agent?: string;
};

/** A session that opened. */
export interface OpenedSession {
  who: SessionWho;
  identity: Identity;
  connection: ConnectionConfig;
  started: number;
  /** The client's version, as it says. */
  client?: string | undefined;
  policyCommit?: string | undefined;
  readOnly: boolean;
  maxSessionSeconds?: number | undefined;
  recording?: RecordingStream | undefined;
  /** The recording could not be written (or opened) to the end. */
  recordingFailed: boolean;
  /** Statements run and refused; rows the client received and rows its statements changed. */
  counts: { statements: number; refused: number; rowsRead: number; rowsChanged: number };
  /** Bytes sent to the client already told in `session.bytes` events (./bytes-sent.ts), when there were any. */
  bytesTold?: number | undefined;
  /** Columns masked in what the client received, and how (at most 1,000). */
  maskedColumns: Map<string, string>;
  touched: TablesTouched;
  /** What the client last said the session is for (its `context` message's `intent`), for reviewers. */
  intent?: string;
  /** PostgreSQL: the role and database it signed in as. */
  signedInAs?: { role: string; database: string };
  /** The index's line for the session: as it ends (`end`), or while it runs. */
  summarize(end?: SessionOutcome, touched?: TouchedSummary): SessionSummary;
}

/** Hears sessions open and end; an `ended` that returns a Promise is waited for before the next observer hears it. */
export interface SessionObserver {
  opened?(s: OpenedSession): void;
  ended?(s: OpenedSession, outcome: SessionOutcome): void | Promise<void>;
}

/** The one source of session events. */
export class SessionEvents {
  readonly #observers: SessionObserver[] = [];

  /** Adds an observer; observers hear each event in the order they were added. */
  observe(o: SessionObserver): void {
    this.#observers.push(o);
  }

  opened(s: OpenedSession): void {
    for (const o of this.#observers) o.opened?.(s);
  }

  async ended(s: OpenedSession, outcome: SessionOutcome): Promise<void> {
    // Every observer hears it, even after one failed (the index must not list it as running for ever); the first failure is thrown after.
    let failure: { err: unknown } | undefined;
    for (const o of this.#observers) {
      try {
        await o.ended?.(s, outcome);
      } catch (err) {
        failure ??= { err };
      }
    }
    if (failure) throw failure.err;
  }
}

/** `tunnel.open` and `tunnel.close` in the gateway's log. */
export function logObserver(log: Logger): SessionObserver {
  return {
    opened: (s) =>
      log.info('tunnel.open', {
        ...s.who,
        type: s.connection.type,
        kind: s.identity.kind,
        expiresAt: s.identity.expiresAt.toISOString(),
        client: s.client,
        ...(s.policyCommit !== undefined ? { policyCommit: s.policyCommit } : {}),
        ...(s.readOnly ? { readOnly: true } : {}),
        ...(s.maxSessionSeconds !== undefined ? { maxSessionSeconds: s.maxSessionSeconds } : {}),
      }),
    ended: (s, outcome) =>
      log.info('tunnel.close', {
        ...s.who,
        reason: outcome.reason,
        ...(outcome.detail ? { detail: outcome.detail } : {}),
        bytesFromClient: outcome.bytesFromClient,
        bytesToClient: outcome.bytesToClient,
        durationMs: Date.now() - s.started,
      }),
  };
}

/** `session.start` and `session.end` among the gateway's events (to the audit stream and the alerts). */
export function auditObserver(audit: GatewayEvents): SessionObserver {
  return {
    opened: (s) =>
      audit.emit('session.start', {
        ...s.who,
        kind: s.identity.kind,
        groups: s.identity.groups,
        ...(s.identity.email !== undefined ? { email: s.identity.email } : {}),
        type: s.connection.type,
        ...(s.client !== undefined ? { client: s.client } : {}),
        ...(s.policyCommit !== undefined ? { policyCommit: s.policyCommit } : {}),
        recorded: s.recording !== undefined,
      }),
    ended: (s, outcome) =>
      audit.emit('session.end', {
        ...s.who,
        reason: outcome.reason,
        statements: s.counts.statements,
        refused: s.counts.refused,
        rowsRead: s.counts.rowsRead,
        rowsChanged: s.counts.rowsChanged,
        bytesFromClient: outcome.bytesFromClient,
        bytesToClient: outcome.bytesToClient,
        ...(s.bytesTold !== undefined ? { bytesTold: s.bytesTold } : {}),
        durationMs: Date.now() - s.started,
      }),
  };
}

/**
 * `agent.first-use` among the gateway's events when an agent's session opens on a connection that
 * agent of that person never used before (as the session index, or this replica since it
 * started, knows): what the alerts' `first-use` counts.
 */
export function firstUseObserver(recordings: GatewayRecordings, events: GatewayEvents, log: Logger): SessionObserver {
  const seen = new Set<string>();
  return {
    opened: (s) => {
      const { agent, connection, session } = s.who;
      if (agent === undefined) return;
      const key = JSON.stringify([s.identity.issuer, s.identity.subject, agent, connection]);
      if (seen.has(key)) return;
      if (seen.size > 100_000) seen.clear();
      seen.add(key);
      recordings.archive
        .agentUsed({ subject: s.identity.subject, issuer: s.identity.issuer, agent, connection, except: session })
        .then((used) => {
          if (!used) events.emit('agent.first-use', { ...s.who });
        })
        .catch((err: unknown) => {
          // Not known: the next session of it asks again.
          seen.delete(key);
          log.warn('agent.first-use-unknown', { session, error: describeError(err) });
        });
    },
  };
}

/** The recording's `end` event, then the recording closed (signed). */
export function recordingObserver(log: Logger): SessionObserver {
  return {
    ended: async (s, outcome) => {
      if (!s.recording) return;
      s.recording.event({
        t: 'end',
        at: Date.now(),
        reason: outcome.reason,
        ...(outcome.detail ? { detail: outcome.detail } : {}),
        bytesFromClient: outcome.bytesFromClient,
        bytesToClient: outcome.bytesToClient,
      });
      await s.recording.close().catch((err: unknown) => {
        if (!s.recordingFailed) log.error('recording.failed', { ...s.who, error: describeError(err) });
        s.recordingFailed = true;
      });
    },
  };
}

/** The session index: the session listed as running (`running`, and the archive's own), then indexed as it ended. */
export function indexObserver(recordings: GatewayRecordings, running: Map<string, () => SessionSummary>, log: Logger): SessionObserver {
  return {
    opened: (s) => {
      running.set(s.who.session, () => s.summarize());
      recordings.archive.started(s.summarize());
    },
    ended: async (s, outcome) => {
      const summary = s.summarize(outcome, await s.touched.summary().catch(() => undefined));
      // Listed from memory, as it ended, until the index has it: never neither. (A shared store
      // takes it a moment later; a CLI uploading its record of the session at once must find it.)
      running.set(s.who.session, () => summary);
      const listed = (): boolean => running.delete(s.who.session);
      try {
        await recordings.index(summary);
      } catch (err) {
        log.error('recording.index-failed', { ...s.who, error: describeError(err) });
        listed();
        return;
      }
      const later = recordings.archive.indexedLater?.(s.who.session);
      if (later) void later.then(listed);
      else listed();
    },
  };
}
