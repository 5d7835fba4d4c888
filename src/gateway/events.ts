/**
 * The gateway's security events, from one place: what happens to sessions, statements, reviews,
 * runs, credentials and alerts is emitted here once, and goes to the audit stream (when one is
 * configured, ./audit.ts) and to whoever listens in the gateway (the alerts, ./alerts.ts). A
 * listener that throws is logged; the others still hear the event.
 */
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { audited, type AuditStream, type StatementVolume } from './audit.js';

export type EventListener = (event: string, fields: Record<string, unknown>) => void;

export class GatewayEvents {
  readonly #listeners: EventListener[] = [];
  readonly #wanted: Array<(event: string) => boolean> = [];

  constructor(
    private readonly audit: AuditStream | undefined,
    private readonly log: Logger,
    /** Which statement events the audit stream gets (listeners hear them all). */
    private readonly statements: StatementVolume = 'refused',
  ) {}

  /** Emits `event` to the audit stream (statements as its volume says) and every listener; never waits. */
  emit(event: string, fields: Record<string, unknown>): void {
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
  listen(listener: EventListener, wants: (event: string) => boolean = () => true): void {
    this.#listeners.push(listener);
    this.#wanted.push(wants);
  }

  /**
   * Whether an `event` emitted now may go anywhere (the audit stream, a listener that may act on
   * it): a caller on the relay's path (each statement's end) makes the event's fields only then.
   */
  wants(event: string): boolean {
    if (this.audit && (event !== 'statement.completed' || this.statements === 'all' || this.statements === 'writes')) return true;
    return this.#wanted.some((w) => w(event));
  }
}
