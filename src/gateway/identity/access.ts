/**
 * Who may use which connection. Deny by default: a connection with an empty allow list is
 * usable by nobody, and `*` must be written out to admit every authenticated identity.
 */
import type { ConnectionConfig } from '../../config/connection.js';
import type { Identity } from '../../identity.js';
import { namesPerson } from '../../policy/access.js';

/** True when `identity` is admitted by the connection's allow list. */
export function mayUse(identity: Identity, connection: ConnectionConfig): boolean {
  return namesPerson(connection.allow, identity);
}
