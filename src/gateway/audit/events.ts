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
  'auth.refused',
  'auth.refused.suppressed',
  'alert.raised',
  'alert.cleared',
  'audit.dropped',
] as const;

/** An event of the {@link GATEWAY_EVENTS} catalogue. */
export type GatewayEvent = (typeof GATEWAY_EVENTS)[number];

export type EventListener = (event: GatewayEvent, fields: Record<string, unknown>) => void;

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
  emit(event: Exclude<GatewayEvent, 'audit.dropped'>, fields: Record<string, unknown>): void {
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
