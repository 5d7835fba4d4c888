/**
 * Who a live session belongs to, for acting on it from another session (a PostgreSQL
 * CancelRequest, a MySQL `KILL QUERY`): the same person or workload, through the same run
 * credential (or none), on the same connection. An agent's run cannot act on its person's
 * sessions, nor the person on a run's.
 */
import type { Identity } from '../identity.js';

/** See the module documentation. */
export interface SessionOwner {
  subject: string;
  issuer: string;
  /** The run credential's id (`run-…`) the session was opened with; absent for a person's own. */
  run?: string;
  connection: string;
}

/** The owner of a session `identity` opens on `connection`. */
export function sessionOwnerOf(identity: Identity, connection: string): SessionOwner {
  return { subject: identity.subject, issuer: identity.issuer, ...(identity.run ? { run: identity.run.id } : {}), connection };
}

/** Whether `a` and `b` are the same owner. */
export function sameOwner(a: SessionOwner, b: SessionOwner): boolean {
  return a.subject === b.subject && a.issuer === b.issuer && (a.run ?? '') === (b.run ?? '') && a.connection === b.connection;
}
