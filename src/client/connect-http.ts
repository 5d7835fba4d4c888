/**
 * `hoop connect` of an HTTP connection: a local port on 127.0.0.1 whose every client goes through
 * its own tunnel to the gateway (which adds the API's credential), its base URL printed; it runs
 * until interrupted.
 *
 * @see ../http/local/port.ts
 */
import type { ResolvedTokenProvider } from '../auth/token-provider.js';
import type { ConnectHttpJson } from '../connect-json.js';
import { ErrorCode, HoopError } from '../errors.js';
import { openHttpPort } from '../http/local/port.js';
import { whenAborted, type CliIo } from '../io.js';
import type { Logger } from '../log.js';
import { shellQuote } from '../text-format.js';

/** `hoop connect` of an HTTP connection: the local port, its base URL, and how to use it. */
export async function serveHttp(
  io: CliIo,
  opts: { port?: number; socket?: string; json?: boolean },
  provider: ResolvedTokenProvider,
  name: string,
  log: Logger,
  say: (line: string) => void,
): Promise<void> {
  if (opts.socket) throw new HoopError(ErrorCode.USAGE, `"${name}" is an http connection: it is served on a TCP port of 127.0.0.1, not a unix socket (drop --socket)`);
  const port = await openHttpPort({ provider, name, ...(opts.port !== undefined ? { port: opts.port } : {}), log, say });
  try {
    if (opts.json) io.stdout.write(`${JSON.stringify({ connection: name, host: port.host, port: port.port, url: port.url } satisfies ConnectHttpJson)}\n`);
    else
      io.stdout.write(
        [
          `Connected to "${name}" (http) through ${provider.gateway}; the gateway adds the API's credential.`,
          `Listening on ${port.host}:${port.port}. The base URL (its path is this run's secret):`,
          `  ${port.url}`,
          '',
          'Call it with:',
          `  curl ${shellQuote(`${port.url}/`)}PATH`,
          'Press Ctrl-C to stop.',
          '',
        ].join('\n'),
      );
    await whenAborted(io.signal);
  } finally {
    await port.close();
  }
}
