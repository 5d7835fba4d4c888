/**
 * The HTTP lane's errors: a {@link HttpStatusError} carries the status a client is answered with
 * beside hoop's code, as the other lanes' errors carry their protocol's codes.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-15
 */
import { ErrorCode, HoopError, hoopSays } from '../../errors.js';

/** Reasons of the statuses the gateway answers with itself. */
export const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Content Too Large',
  417: 'Expectation Failed',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  505: 'HTTP Version Not Supported',
};

/** What the gateway answers a request with itself, and why. */
export class HttpStatusError extends HoopError {
  readonly status: number;

  constructor(status: number, message: string) {
    super(status === 504 ? ErrorCode.TIMEOUT : status >= 500 ? ErrorCode.UPSTREAM_UNAVAILABLE : status === 403 ? ErrorCode.ACCESS_DENIED : ErrorCode.PROTOCOL_VIOLATION, message);
    this.status = status;
  }
}

/** A whole answer of hoop's own that ends its connection: `status`, and why as JSON (`error`, `hint`). */
export function closingAnswer(status: number, message: string, hint?: string): string {
  const body = `${JSON.stringify({ error: hoopSays(message), ...(hint ? { hint } : {}) })}\n`;
  return `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${body}`;
}
