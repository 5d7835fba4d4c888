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

  constructor(message: string, options: PgProtocolErrorOptions = {}) {
    const { sqlstate, ...rest } = options;
    super(ErrorCode.PROTOCOL_VIOLATION, message, rest);
    this.sqlstate = sqlstate ?? '08P01';
  }
}
