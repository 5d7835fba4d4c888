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

  listen(listener: EventListener): void {
    this.#listeners.push(listener);
  }
}
