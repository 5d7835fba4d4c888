/**
 * The gateway's security events, from one place: what happens to sessions, statements, reviews,
 * runs, credentials and alerts is emitted here once, and goes to the audit stream (when one is
 * configured, ./audit.ts) and to whoever listens in the gateway (the alerts, ../alerts/alerts.ts). A
 * listener that throws is logged; the others still hear the event.
 */
import { describeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { audited, type AuditStream, type StatementVolume } from './audit.js';

/**
 * Every event the gateway emits, once: the catalogue the audit stream's readers get (docs/audit.md
 * lists exactly these, which a test checks). `auth.refused.suppressed` and `audit.dropped` are the
 * stream's own (../identity/auth-refusals.ts, ./audit.ts); the others go through {@link GatewayEvents.emit}.
 */
export const GATEWAY_EVENTS = [
  'session.start',
  'agent.first-use',
  'statement.refused',
  'statement.completed',
  'review.requested',
  'review.decided',
  'session.bytes',
  'session.end',
  'run.start',
  'run.end',
  'run.egress-refused',
  'runbook.refused',
  'auth.refused',
  'auth.refused.suppressed',
  'alert.raised',
  'alert.cleared',
  'audit.dropped',
] as const;

/** An event of the {@link GATEWAY_EVENTS} catalogue. */
export type GatewayEvent = (typeof GATEWAY_EVENTS)[number];

/** Who a session is, as each event about it names it. */
type SessionNamed = { session: string; subject: string; issuer: string; connection: string; remote?: string; via?: string; run?: string; agent?: string };

/** A review's event: the review and its session, never the SQL text. */
export type ReviewNamed = { review: string; session?: string; subject: string; issuer: string; connection: string; kind: string; state: string; [more: string]: unknown };

/** The fields of each event emitted through {@link GatewayEvents.emit}, as docs/audit.md describes them. */
export type GatewayEventFields = {
  'session.start': SessionNamed & { kind: string; groups: readonly string[]; email?: string; type: string; client?: string; policyCommit?: string; recorded: boolean };
  'agent.first-use': SessionNamed;
  'statement.refused': SessionNamed & { action: 'deny' | 'review'; rule: string; reason: string; message: string; by?: 'cli' };
  'statement.completed': SessionNamed & { verb: string; rows: number; changed: number; tables: readonly string[]; failed?: true; partial?: true };
  'review.requested': ReviewNamed;
  'review.decided': ReviewNamed;
  'session.bytes': SessionNamed & { bytesToClient: number; total: number };
  'session.end': SessionNamed & {
    reason: string;
    durationMs: number;
    statements?: number;
    refused?: number;
    rowsRead?: number;
    rowsChanged?: number;
    bytesFromClient?: number;
    bytesToClient?: number;
    bytesTold?: number;
    takenOverFrom?: string;
  };
  'run.start': { run: string; subject: string; issuer: string; agent: string; via: string; isolation: string; connections: readonly string[]; expiresAt: string };
  'run.end': { run: string; subject: string; issuer: string; agent: string; via: string; reason: string };
  'run.egress-refused': { run: string; subject: string; issuer: string; agent?: string; host: string; port: number; at: string };
  'runbook.refused': { runbook: string; subject: string; issuer: string; run?: string; agent?: string; via: string; reason: string; param?: string };
  'auth.refused': { reason: string; message: string; at: string; path?: string; remote: string; tokenIssuer?: string; tokenSubject?: string; signed: boolean };
  'auth.refused.suppressed': { remote: string; count: number; since: string; until: string };
  'alert.raised': { alert: string; rule: string; counted: string; subject?: string; issuer?: string; agent?: string; count: number; [more: string]: unknown };
  'alert.cleared': { alert: string; rule: string; subject?: string; issuer?: string; clearer?: unknown; reason: string };
};

/** An event emitted through {@link GatewayEvents.emit} (the stream's own `audit.dropped` is written to it directly). */
export type EmittedEvent = keyof GatewayEventFields;

/** Every event of the catalogue but the stream's own has its fields typed (a compile-time check: this is `true`). */
export const EVERY_EVENT_TYPED: Exclude<GatewayEvent, EmittedEvent | 'audit.dropped'> extends never ? true : never = true;

export type EventListener = (event: GatewayEvent, fields: Readonly<Record<string, unknown>>) => void;

export class GatewayEvents {
  readonly #listeners: EventListener[] = [];
  readonly #wanted: Array<(event: GatewayEvent) => boolean> = [];

  constructor(
    private readonly audit: AuditStream | undefined,
    private readonly log: Logger,
    /** Which statement events the audit stream gets (listeners hear them all). */
    private readonly statements: StatementVolume = 'refused',
  ) {}

  /** Emits `event` to the audit stream (statements as its volume says) and every listener; never waits. */
  emit<E extends EmittedEvent>(event: E, fields: GatewayEventFields[E]): void {
    if (this.audit && audited(this.statements, event, fields)) this.audit.emit(event, fields);
    for (const l of this.#listeners) {
      try {
        l(event, fields);
      } catch (err) {
        this.log.error('events.listener-failed', { event, error: describeError(err) });
      }
    }
  }

  /** Adds a listener; `wants` says which events it may act on (default: every one), for {@link wants}. */
  listen(listener: EventListener, wants: (event: GatewayEvent) => boolean = () => true): void {
    this.#listeners.push(listener);
    this.#wanted.push(wants);
  }

  /**
   * Whether an `event` emitted now may go anywhere (the audit stream, a listener that may act on
   * it): a caller on the relay's path (each statement's end) makes the event's fields only then.
   */
  wants(event: GatewayEvent): boolean {
    if (this.audit && (event !== 'statement.completed' || this.statements === 'all' || this.statements === 'writes')) return true;
    return this.#wanted.some((w) => w(event));
  }
}
