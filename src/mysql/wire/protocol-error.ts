/** A peer broke the MySQL protocol (a short packet, an impossible length, a message out of turn): the one connection closes. */
export class MySqlProtocolError extends Error {
  override readonly name = 'MySqlProtocolError';
}
