/**
 * The server's answers to a client's statements, read the one way both of hoop's small clients
 * (./../round-trip.ts for the gateway's own lookups and the demo, ./../simple-query.ts for
 * `hoop exec`) read them: columns, rows (values as text), command tags, notices, the error that
 * stopped the statements, a COPY this client cannot serve, and the ReadyForQuery that ends them.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SIMPLE-QUERY
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY
 */
import { Backend } from './codes.js';
import { parseErrorFields, type PgMessage } from './reader.js';
import { cstr, parseDataRow, parseRowDescription, type RowDescriptionField } from './rows.js';

/** An ErrorResponse or NoticeResponse, as its fields say. @see https://www.postgresql.org/docs/current/protocol-error-fields.html */
export type ServerMessage = ReturnType<typeof parseErrorFields>;

/** One server message of a statement's answer, decoded. */
export type ResultMessage =
  | { kind: 'columns'; fields: RowDescriptionField[] }
  | { kind: 'row'; values: Array<string | null> }
  | { kind: 'complete'; tag: string }
  | { kind: 'notice'; fields: ServerMessage }
  | { kind: 'error'; fields: ServerMessage }
  | { kind: 'copy' }
  | { kind: 'ready' };

/** `m` as a {@link ResultMessage}; undefined for what an answer may carry besides (ParameterStatus, NotificationResponse, EmptyQueryResponse, ParseComplete, ...). */
export function resultMessage(m: PgMessage): ResultMessage | undefined {
  switch (m.type) {
    case Backend.ROW_DESCRIPTION:
      return { kind: 'columns', fields: parseRowDescription(m.body) };
    case Backend.DATA_ROW:
      return { kind: 'row', values: parseDataRow(m.body).map((v) => (v === null ? null : v.toString('utf8'))) };
    case Backend.COMMAND_COMPLETE:
      return { kind: 'complete', tag: cstr(m.body, 0)[0] };
    case Backend.NOTICE:
      return { kind: 'notice', fields: parseErrorFields(m.body) };
    case Backend.ERROR:
      return { kind: 'error', fields: parseErrorFields(m.body) };
    case Backend.COPY_IN:
    case Backend.COPY_OUT:
    case Backend.COPY_BOTH:
      return { kind: 'copy' };
    case Backend.READY_FOR_QUERY:
      return { kind: 'ready' };
    default:
      return undefined;
  }
}
