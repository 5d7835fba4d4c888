import { ErrorCode, HoopError } from '../../errors.js';

/** ER_NET_PACKETS_OUT_OF_ORDER's SQLSTATE: what a client is told of a packet hoop cannot read. */
const PROTOCOL_STATE = '08S01';

/** A peer broke the MySQL protocol (a short packet, an impossible length, a message out of turn): the one connection closes. */
export class MySqlProtocolError extends HoopError {
  /** The MySQL error number a client is told (ER_NET_PACKETS_OUT_OF_ORDER), and its SQLSTATE. */
  readonly errno = 1156;
  readonly sqlState = PROTOCOL_STATE;

  constructor(message: string) {
    super(ErrorCode.PROTOCOL_VIOLATION, message);
  }
}
