/**
 * The error thrown when a PostgreSQL peer sends bytes that violate the v3 wire protocol.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 * @see https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
import { ErrorCode, HoopError, type HoopErrorOptions } from '../../errors.js';

/** Options of a {@link PgProtocolError}. */
export interface PgProtocolErrorOptions extends HoopErrorOptions {
  /** The SQLSTATE to report to the peer in an ErrorResponse; default `08P01` (protocol_violation). */
  sqlstate?: string;
  /**
   * PostgreSQL answers this by closing the connection without an ErrorResponse (it only logs it):
   * a startup packet with an impossible length, or a client gone before its startup finished.
   */
  unanswered?: boolean;
}

/**
 * A wire-protocol violation (bad length, unknown message type, malformed body, unsupported
 * startup request). `sqlstate` is what a listener puts into the ErrorResponse it sends back.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
export class PgProtocolError extends HoopError {
  /** The SQLSTATE for the ErrorResponse, e.g. `08P01` or `0A000`. */
  readonly sqlstate: string;
  /** Close without an ErrorResponse, as PostgreSQL does (see {@link PgProtocolErrorOptions.unanswered}). */
  readonly unanswered: boolean;

  constructor(message: string, options: PgProtocolErrorOptions = {}) {
    const { sqlstate, unanswered, ...rest } = options;
    super(ErrorCode.PROTOCOL_VIOLATION, message, rest);
    this.sqlstate = sqlstate ?? '08P01';
    this.unanswered = unanswered === true;
  }
}
