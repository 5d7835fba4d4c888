/**
 * `hoop exec <http connection> METHOD PATH`: one request through the gateway, as curl makes one
 * (`-H` fields, `-d` a body, `--json` a JSON body, `-i` the answer's head too), without a local
 * port: one tunnel, one session. The answer's body goes to stdout as it streams; exit 0 for a 2xx
 * or 3xx answer, 1 for the API's error, 3 when the policy refused it, 4 when its review did not
 * approve it.
 *
 * @see https://curl.se/docs/manpage.html
 */
import { getConnection } from '../api-client/connections.js';
import { TunnelTokenRenewal } from '../auth/token-renewal.js';
import { CommandExit, ErrorCode, HoopError, hoopSays } from '../errors.js';
import { ChunkedReader, readResponseHead, type ResponseHead, values } from '../http/wire/head.js';
import { whenAborted, type CliIo } from '../io.js';
import { createLogger, levelFromEnv } from '../log.js';
import type { ControlMessage } from '../tunnel/frames.js';
import { newSessionId, openTunnel } from '../tunnel/transport.js';
import { reviewStatusLine } from '../ui/review-lines.js';
import { VERSION } from '../version.js';
import { commandTokenProvider, type GatewayFlags } from './client-config.js';
import { ExecExit } from './exec-statements.js';

/** One request as `hoop exec` was given it. */
export interface ExecRequest {
  method: string;
  path: string;
  /** `Name: value` lines, as curl's -H. */
  headers: string[];
  /** The body (-d), or JSON (--json: sent with its Content-Type and Accept). */
  data?: string;
  json?: string;
  /** Prints the answer's status line and fields on stdout before its body (curl -i). */
  include?: boolean;
}

/** `hoop exec <name> METHOD PATH`; see the module documentation. */
export async function execHttp(io: CliIo, name: string, r: ExecRequest, opts: GatewayFlags): Promise<void> {
  const method = r.method.toUpperCase();
  if (!/^[A-Z]{1,32}$/.test(method)) throw new HoopError(ErrorCode.USAGE, `${JSON.stringify(r.method)} is not an HTTP method`, { hint: `hoop exec ${name} GET /path` });
  if (!r.path.startsWith('/')) throw new HoopError(ErrorCode.USAGE, `the path must begin with / (${JSON.stringify(r.path)})`, { hint: `hoop exec ${name} ${method} /${r.path}` });
  if (r.data !== undefined && r.json !== undefined) throw new HoopError(ErrorCode.USAGE, 'give -d DATA or --json DATA, not both');
  const fields: Array<[string, string]> = r.headers.map((h) => {
    const colon = h.indexOf(':');
    if (colon <= 0) throw new HoopError(ErrorCode.USAGE, `-H ${JSON.stringify(h)} is not "Name: value"`);
    return [h.slice(0, colon).trim(), h.slice(colon + 1).trim()];
  });
  const body = r.json ?? r.data;
  if (r.json !== undefined) fields.push(['content-type', 'application/json'], ['accept', 'application/json']);
  if (body !== undefined && !fields.some(([n]) => n.toLowerCase() === 'content-type')) fields.push(['content-type', 'application/x-www-form-urlencoded']);
  const provider = await commandTokenProvider(io, opts);
  const log = createLogger({ level: levelFromEnv(io.env, 'warn'), sink: io.stderr, fields: { component: 'exec' } });
  const say = (line: string): void => void io.stderr.write(`${hoopSays(line)}\n`);
  try {
    const { gateway, ca } = provider;
    const { token } = await provider.current();
    const info = await getConnection({ gateway, ca }, token, name);
    if (info.type !== 'http') throw new HoopError(ErrorCode.USAGE, `"${name}" is a ${info.type} connection: METHOD PATH is for http connections`, { hint: `hoop exec ${name} -c 'select 1'` });
    const { channel } = await openTunnel({ gateway, connection: name, token, sessionId: newSessionId(), clientVersion: VERSION, via: 'exec', ...(ca ? { ca } : {}) });
    const renewal = new TunnelTokenRenewal(provider, log, say);
    renewal.track(channel, token);
    channel.on('control', (m: ControlMessage) => {
      if (m.type === 'review') say(reviewStatusLine(m));
      else if (m.type === 'close' && typeof m.message === 'string') say(m.message);
    });
    const bytes = body === undefined ? Buffer.alloc(0) : Buffer.from(body, 'utf8');
    const head = [
      `${method} ${r.path} HTTP/1.1`,
      'host: hoop',
      ...fields.map(([n, v]) => `${n}: ${v}`),
      ...(bytes.length || !['GET', 'HEAD', 'DELETE', 'OPTIONS'].includes(method) ? [`content-length: ${bytes.length}`] : []),
      'connection: close',
      '',
      '',
    ];
    channel.write(Buffer.concat([Buffer.from(head.join('\r\n'), 'latin1'), bytes]));
    try {
      const answer = await Promise.race([readAnswer(channel, method, io, r.include === true), whenAborted(io.signal).then(() => undefined)]);
      if (!answer) {
        say('interrupted: the session is closed, and a request it held for review is withdrawn (it did not run)');
        throw new CommandExit(130);
      }
      const fieldsOf = (n: string): string[] => values(answer.fields, n);
      if (fieldsOf('hoop-refused').length) throw new CommandExit(ExecExit.REFUSED);
      if (fieldsOf('hoop-review').length) throw new CommandExit(ExecExit.REVIEW);
      if (answer.status >= 400) throw new CommandExit(ExecExit.STATEMENT_FAILED);
    } finally {
      renewal.close();
      channel.destroy();
    }
  } finally {
    provider.close();
  }
}

/** Reads the answer from `channel`: its head (printed with `include`), then its body to stdout as it comes; resolves the head once the body ended. */
function readAnswer(channel: NodeJS.ReadWriteStream, method: string, io: CliIo, include: boolean): Promise<ResponseHead> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let head: ResponseHead | undefined;
    let left = 0;
    const chunked = new ChunkedReader();
    const done = (): void => resolve(head!);
    const body = (b: Buffer): void => {
      if (!head) return;
      if (head.framing.kind === 'chunked') {
        const read = chunked.push(b);
        for (const d of read.data) io.stdout.write(d);
        if (read.ended) done();
      } else if (head.framing.kind === 'length') {
        const n = Math.min(left, b.length);
        io.stdout.write(b.subarray(0, n));
        left -= n;
        if (left === 0) done();
      } else if (head.framing.kind === 'until-close') io.stdout.write(b);
    };
    channel.on('data', (b: Buffer) => {
      try {
        if (head) return body(b);
        buf = Buffer.concat([buf, b]);
        let h = readResponseHead(buf, method);
        // An interim answer (100 Continue) is passed over.
        while (h && !('refused' in h) && h.status < 200) {
          buf = buf.subarray(h.bytes);
          h = readResponseHead(buf, method);
        }
        if (!h) return;
        if ('refused' in h) return reject(new HoopError(ErrorCode.GATEWAY_PROTOCOL, h.refused));
        head = h;
        if (include) io.stdout.write(buf.subarray(0, h.bytes));
        left = h.framing.kind === 'length' ? h.framing.length : 0;
        if (h.framing.kind === 'none') return done();
        body(buf.subarray(h.bytes));
      } catch (err) {
        reject(new HoopError(ErrorCode.GATEWAY_PROTOCOL, `the answer could not be read: ${(err as Error).message}`));
      }
    });
    channel.on('end', () => (head ? done() : reject(new HoopError(ErrorCode.GATEWAY_PROTOCOL, 'the gateway closed the session before it answered'))));
    channel.on('error', (err: Error) => reject(new HoopError(ErrorCode.GATEWAY_UNREACHABLE, err.message)));
  });
}
