/**
 * The records the stage hands the recording thread (src/recording/thread.ts), which keeps them as they are (docs/recording-format.md, format 3), shared by the stage (./stage.ts) and the decoder readers run (./encoder.ts); each has the time
 * it was seen. A client message: the message as it came (`CLIENT`), or for a Query or Parse too
 * long to keep, its type, length and statement name (`CLIENT_LONG`), or for a Bind streamed
 * through, its portal and statement (`BIND_STREAMED`). (A refusal is a whole `decision` event.) Server
 * messages as the client received them (`SERVER`); how masking treated the columns of the next
 * RowDescription, as JSON (`MASKED`); rows that passed unread (`PASSED`: their count; the time of
 * the first).
 */
export const CLIENT = 16;
export const CLIENT_LONG = 17;
export const BIND_STREAMED = 18;
export const SERVER = 20;
export const MASKED = 21;
export const PASSED = 22;
export const PASSED_COUNT = Buffer.alloc(4);
/** A {@link PostgresRawTap}'s records: the bytes of the client's (the server's) messages a record keeps, as they came (whole or in pieces). */
export const RAW_CLIENT = 25;
export const RAW_SERVER = 26;

/** Most rows (and COPY data messages) per result a CLI's own record keeps (fewer when the gateway says so): enough to show what came back, not a second copy of the data. */
export const CLIENT_RECORD_ROW_CAP = 100;

/** A result of at most this many rows and {@link SMALL_BYTES} of values is written as one `result` event. */
export const SMALL_ROWS = 16;
export const SMALL_BYTES = 8192;
