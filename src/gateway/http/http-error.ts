/** An API error with its own HTTP status (and headers). */
import { ErrorCode, HoopError } from '../../errors.js';

export class HttpError extends HoopError {
  readonly status: number;
  readonly headers: Record<string, string>;

  constructor(status: number, message: string, options: { hint?: string | undefined; headers?: Record<string, string>; code?: ErrorCode } = {}) {
    super(options.code ?? ErrorCode.USAGE, message, options.hint === undefined ? {} : { hint: options.hint });
    this.status = status;
    this.headers = options.headers ?? {};
  }
}
