/**
 * The observers of live sessions (./live-session.ts), each one place that hears every session's
 * facts: the gateway's log (`tunnel.open`, `tunnel.close`), the audit stream and the alerts
 * (`session.start`, `statement.refused`, `statement.completed`, `session.end`), the session's
 * recording (its reviews, its `end` event, then closed), the session index (listed as running,
 * the upstream's cancel key, then indexed) and an agent's first use of a connection. Admission
 * (./admission.ts) and the engines write none of these themselves.
 */
import { realClock } from '../../clock.js';
import { describeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { GatewayEvents } from '../audit/events.js';
import type { SessionObserver } from './live-session.js';
import type { SessionSummary } from '../../api/answers.js';
import type { GatewayRecordings } from '../records/recordings.js';
import { reviewRecordingEvent } from '../reviews/reviews.js';

/** `tunnel.open` and `tunnel.close` in the gateway's log. */
export function logObserver(log: Logger): SessionObserver {
  return {
    opened: (s) =>
      log.info('tunnel.open', {
        ...s.who,
        type: s.connection.type,
        kind: s.identity.kind,
        expiresAt: s.identity.expiresAt.toISOString(),
        client: s.origin.client,
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
        durationMs: realClock.now() - s.started,
      }),
  };
}

/** `session.start`, each refused and completed statement, and `session.end` among the gateway's events (to the audit stream and the alerts). */
export function auditObserver(audit: GatewayEvents): SessionObserver {
  return {
    opened: (s) =>
      audit.emit('session.start', {
        ...s.who,
        kind: s.identity.kind,
        groups: s.identity.groups,
        ...(s.identity.email !== undefined ? { email: s.identity.email } : {}),
        type: s.connection.type,
        ...(s.origin.client !== undefined ? { client: s.origin.client } : {}),
        ...(s.policyCommit !== undefined ? { policyCommit: s.policyCommit } : {}),
        recorded: s.recording !== undefined,
      }),
    refused: (s, r) => audit.emit('statement.refused', { ...s.who, ...r }),
    statement: (s, st) => {
      if (!audit.wants('statement.completed')) return;
      audit.emit('statement.completed', {
        ...s.who,
        verb: st.verb,
        rows: st.rows,
        changed: st.changed,
        tables: st.tables,
        ...(st.failed ? { failed: true } : {}),
        ...(st.partial ? { partial: true } : {}),
      });
    },
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
        durationMs: realClock.now() - s.started,
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

/** Each review's request and end as `review` events of the recording; its `end` event, then the recording closed (signed). */
export function recordingObserver(log: Logger): SessionObserver {
  return {
    reviewed: (s, r) => s.recording?.event(reviewRecordingEvent(r)),
    ended: async (s, outcome) => {
      if (!s.recording) return;
      s.recording.event({
        t: 'end',
        at: realClock.now(),
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

/** The session index: the session listed as running (`running`, and the archive's own) with its upstream's cancel key, then indexed as it ended. */
export function indexObserver(recordings: GatewayRecordings, running: Map<string, () => SessionSummary>, log: Logger): SessionObserver {
  return {
    opened: (s) => {
      running.set(s.who.session, () => s.summarize());
      recordings.archive.started(s.summarize());
    },
    upstream: (s, key) => recordings.archive.upstream?.(s.who.session, key),
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
