/**
 * Who may use which connection. Deny by default: a connection with an empty allow list is
 * usable by nobody, and `*` must be written out to admit every authenticated identity.
 */
import type { ConnectionConfig } from '../config/connection.js';
import type { Identity } from '../identity.js';

/** True when `identity` is admitted by the connection's allow list. */
export function mayUse(identity: Identity, connection: ConnectionConfig): boolean {
  const { subjects, emails, groups } = connection.allow;
  if (subjects.includes('*') || subjects.includes(identity.subject)) return true;
  if (identity.email !== undefined && emails.includes(identity.email)) return true;
  return identity.groups.some((g) => groups.includes(g));
}
