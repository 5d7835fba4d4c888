/**
 * The type bytes of the PostgreSQL v3 protocol's messages, one table per direction: every reader
 * and writer in hoop names a message through these (a byte means different messages in the two
 * directions: 'E' is Execute from the client and ErrorResponse from the server).
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */

/** Messages the client (frontend) sends, after the startup packet. */
export const Frontend = {
  BIND: 0x42, // 'B'
  CLOSE: 0x43, // 'C'
  COPY_DATA: 0x64, // 'd'
  COPY_DONE: 0x63, // 'c'
  COPY_FAIL: 0x66, // 'f'
  DESCRIBE: 0x44, // 'D'
  EXECUTE: 0x45, // 'E'
  FLUSH: 0x48, // 'H'
  FUNCTION_CALL: 0x46, // 'F'
  PARSE: 0x50, // 'P'
  /** PasswordMessage, SASLInitialResponse, SASLResponse and GSSResponse share it. */
  PASSWORD: 0x70, // 'p'
  QUERY: 0x51, // 'Q'
  SYNC: 0x53, // 'S'
  TERMINATE: 0x58, // 'X'
} as const;

/** Messages the server (backend) sends. */
export const Backend = {
  AUTHENTICATION: 0x52, // 'R'
  BACKEND_KEY_DATA: 0x4b, // 'K'
  BIND_COMPLETE: 0x32, // '2'
  CLOSE_COMPLETE: 0x33, // '3'
  COMMAND_COMPLETE: 0x43, // 'C'
  COPY_BOTH: 0x57, // 'W'
  COPY_DATA: 0x64, // 'd'
  COPY_DONE: 0x63, // 'c'
  COPY_IN: 0x47, // 'G'
  COPY_OUT: 0x48, // 'H'
  DATA_ROW: 0x44, // 'D'
  EMPTY_QUERY: 0x49, // 'I'
  ERROR: 0x45, // 'E'
  FUNCTION_CALL_RESPONSE: 0x56, // 'V'
  NEGOTIATE_PROTOCOL_VERSION: 0x76, // 'v'
  NO_DATA: 0x6e, // 'n'
  NOTICE: 0x4e, // 'N'
  NOTIFICATION: 0x41, // 'A'
  PARAMETER_DESCRIPTION: 0x74, // 't'
  PARAMETER_STATUS: 0x53, // 'S'
  PARSE_COMPLETE: 0x31, // '1'
  PORTAL_SUSPENDED: 0x73, // 's'
  READY_FOR_QUERY: 0x5a, // 'Z'
  ROW_DESCRIPTION: 0x54, // 'T'
} as const;

/** ReadyForQuery's transaction status bytes: idle, in a transaction block, in a failed block. */
export const TransactionStatus = { IDLE: 0x49, IN_BLOCK: 0x54, FAILED: 0x45 } as const;

/**
 * The one byte a server answers SSLRequest or GSSENCRequest with: go ahead with the encryption, or not.
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL
 */
export const EncryptionAnswer = { ACCEPT: 0x53, DECLINE: 0x4e } as const;
