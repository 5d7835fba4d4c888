/**
 * A direct client's TLS connection as a {@link SessionChannel}: the protocol's bytes go straight
 * over it (no tunnel framing, no second process), the bytes sent are the TLS socket's own count of
 * what it encrypted, and CONTROL messages are dropped: such a client hears only what its protocol
 * says (PostgreSQL: notices and errors), which the engines say anyway.
 *
 * @see https://nodejs.org/api/tls.html#class-tlstlssocket
 */
import { TLSSocket } from 'node:tls';
import type { SessionChannel } from './engine.js';

export class TlsSessionChannel extends TLSSocket implements SessionChannel {
  sendControl(): boolean {
    return false;
  }

  get bytesSent(): number {
    return this.bytesWritten;
  }
}
