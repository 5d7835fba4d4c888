/**
 * A session's recording at the gateway (docs/recording-format.md): opened before the session is
 * accepted (or the session refused, as the policy's `recording.onFailure` says), its `start` event,
 * what the engine records into it, the client's claims about why (`context` control messages,
 * bounded), and what a failure to write does to the session.
 */
import { realClock } from '../../clock.js';
import type { SessionChannel } from '../../session/engine.js';
import type { ControlMessage } from '../../tunnel/frames.js';
import { ErrorCode, HoopError, describeError } from '../../errors.js';
import type { RecordingPolicy } from '../../policy/schema.js';
import { cutValue } from '../../recording/event-line.js';
import type { RecordingStream } from '../../recording/thread.js';
import { type Engine, SessionEnd, type StatementRefusal, type TunnelSession } from '../../session/engine.js';
import { VERSION } from '../../version.js';
import type { GatewayParts } from '../parts/parts.js';
import type { LiveSession } from './live-session.js';

/** Characters of context messages a session records; past it they are dropped (a client's claims cannot fill the disk). */
const CONTEXT_BUDGET = 256 * 1024;
/** A context message's field names: short identifiers; at most {@link MAX_CONTEXT_FIELDS} of them. */
const CONTEXT_FIELD = /^[a-z][A-Za-z0-9_]{0,31}$/;
const MAX_CONTEXT_FIELDS = 8;
/** Refusals of hoop connect's early check a session records and counts; past it, the CLI's reports are ignored. */
const MAX_CLIENT_REFUSALS = 100;

/**
 * The fields of a client's `context` control message (`{ type: 'context', fields: { tool, intent, … } }`)
 * as a recording keeps them: string values cut at 4 KiB, names that cannot clash with an event's
 * own (`t`, `at`); undefined for anything else.
 */
export function clientContext(fields: unknown): Record<string, string> | undefined {
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) return undefined;
  const entries = Object.entries(fields);
  if (entries.length === 0 || entries.length > MAX_CONTEXT_FIELDS) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of entries) {
    if (!CONTEXT_FIELD.test(k) || k === 't' || k === 'at' || typeof v !== 'string') return undefined;
    out[k] = cutValue(v);
  }
  return out;
}

/** The fields of a client's `refusal` control message as a recording keeps them: the rule, the action, the reason, the message type and the SQL (cut); undefined for anything else. */
export function clientRefusal(fields: unknown): (StatementRefusal & { sql?: string }) | undefined {
  if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) return undefined;
  const { action, rule, reason, message, sql } = fields as Record<string, unknown>;
  if ((action !== 'deny' && action !== 'review') || typeof rule !== 'string' || typeof reason !== 'string' || typeof message !== 'string') return undefined;
  if (sql !== undefined && typeof sql !== 'string') return undefined;
  return { action, rule: cutValue(rule), reason: cutValue(reason), message: cutValue(message), ...(sql !== undefined ? { sql: cutValue(sql) } : {}) };
}

/**
 * A new session's recording, by the engine's encoder. Undefined when the gateway records nothing,
 * or it cannot record this one and the policy lets the session go on unrecorded.
 * @throws HoopError RECORDING_UNAVAILABLE when it cannot, and the session may not go on
 */
export async function openRecording(parts: GatewayParts, engine: Engine, sessionId: string, policy: RecordingPolicy, logFields: Record<string, string>): Promise<RecordingStream | undefined> {
  const { recordings, replica, config, log } = parts;
  if (!recordings) return undefined;
  try {
    await parts.disk.check('record new sessions');
    if (replica && !replica.reachable) {
      throw new HoopError(ErrorCode.RECORDING_UNAVAILABLE, 'hoop: the gateway cannot reach its store (PostgreSQL), so it cannot record new sessions', {
        hint: "try again in a moment, and tell the gateway's operators (`hoop gateway status` says whether the store answers)",
      });
    }
    return await recordings.start(sessionId, engine.recordProtocol, config.recording.checkpointSeconds * 1000);
  } catch (err) {
    const e = err instanceof HoopError ? err : new HoopError(ErrorCode.RECORDING_UNAVAILABLE, `the gateway cannot record this session: ${describeError(err)}`);
    log.error('recording.unavailable', { session: sessionId, ...logFields, message: e.message, onFailure: policy.onFailure });
    if (policy.onFailure !== 'continue') throw e;
    return undefined;
  }
}

/**
 * Starts `s`'s recording: its `start` event (with where the session came from), what the
 * engine records (`session.recording`), the client's context messages, and on a failure to write
 * or a disk running low, the session's end (or its statements' refusal) unless the policy says to
 * go on. Returns what stops watching the disk, once the session ended.
 */
export function startRecording(s: LiveSession, recording: RecordingStream, session: TunnelSession, policy: RecordingPolicy, parts: GatewayParts, end: (reason: SessionEnd) => void): () => void {
  const { identity } = s;
  const strict = policy.onFailure === 'close';
  recording.onFailure = (err) => {
    s.recordingFailed = true;
    parts.log.error('recording.failed', { ...s.who, error: describeError(err), onFailure: policy.onFailure });
    if (strict) end(recordingFailed('this session can no longer be recorded'));
  };
  recording.event({
    t: 'start',
    at: s.started,
    session: s.who.session,
    identity: { subject: identity.subject, issuer: identity.issuer, kind: identity.kind, groups: identity.groups, ...(identity.email !== undefined ? { email: identity.email } : {}) },
    ...s.origin,
    gateway: VERSION,
  });
  session.recording = {
    stream: recording,
    results: policy.results,
    rowCap: policy.rowCap,
    ...(policy.sshInput ? { sshInput: policy.sshInput } : {}),
    ...(strict ? { stopping: () => parts.disk.stopping() } : {}),
    ...(parts.recordings ? { redactionKey: parts.recordings.redactionKey } : {}),
  };
  // Under the disk's stop line, a judged session's statements are refused one by one (the engine asks `stopping`); any other ends.
  const unwatch = strict
    ? parts.disk.watch(session.judge ? undefined : () => end(recordingFailed("the gateway's data disk is nearly full and this session can no longer be recorded")))
    : () => undefined;
  recordContext(session.channel, recording, {
    refusal: ({ sql: _sql, ...refusal }) => s.refusedByClient(refusal),
    context: (fields) => {
      if (fields.intent !== undefined) s.intent = fields.intent;
    },
  });
  return unwatch;
}

/** The end of a session that can no longer be recorded (`why`). */
function recordingFailed(why: string): SessionEnd {
  return new SessionEnd('recording-failed', `hoop: ${why}, so the gateway ended it`, "connect again later; if it happens again, tell the gateway's operators (its data disk may be full)");
}

/**
 * What the client says: why (an MCP tool call and the agent's intent: `context`), and what its own
 * early check refused before it reached the gateway (`refusal`: `onRefusal` is told); recorded as
 * the client's claims, bounded. A refusal the CLI reports can only add to the session's record:
 * what it sent in place of the statement the gateway still judged as it does any message.
 */
function recordContext(
  channel: SessionChannel,
  recording: RecordingStream,
  on: { refusal: (refusal: NonNullable<ReturnType<typeof clientRefusal>>) => void; context: (fields: Record<string, string>) => void },
): void {
  let budget = CONTEXT_BUDGET;
  let reported = 0;
  /** Whether a claim of these fields is still recorded: past its budget, or while the disk is behind, a session's claims are no longer recorded (said once). */
  const spend = (fields: object): boolean => {
    budget -= Object.values(fields).reduce((n: number, v: string) => n + v.length, 0);
    if (budget > 0 && !recording.behind) return true;
    budget = 0;
    recording.event({ t: 'context-dropped', at: realClock.now() });
    return false;
  };
  channel.on('control', (m: ControlMessage) => {
    if (budget <= 0) return;
    if (m.type === 'refusal') {
      const refusal = clientRefusal(m.fields);
      // A client's word counts for a few refusals a session, not for a flood of the audit stream and the alerts.
      if (!refusal || !spend(refusal) || ++reported > MAX_CLIENT_REFUSALS) return;
      recording.event({ t: 'client-refusal', at: realClock.now(), ...refusal });
      on.refusal(refusal);
    } else if (m.type === 'context') {
      const fields = clientContext(m.fields);
      if (!fields || !spend(fields)) return;
      recording.event({ t: 'context', at: realClock.now(), ...fields }); // fields never hold t or at (clientContext)
      on.context(fields);
    }
  });
}
