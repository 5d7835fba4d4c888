/**
 * The HTTP lane's errors: a {@link HttpStatusError} carries the status a client is answered with
 * beside hoop's code, as the other lanes' errors carry their protocol's codes.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-15
 */
import { ErrorCode, HoopError } from '../../errors.js';

/** Reasons of the statuses the gateway answers with itself. */
export const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'Bad Request',
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
