/**
 * `hoop exec <http connection> METHOD PATH`: one request through the gateway, as curl makes one
 * (`-H` fields, `-d` a body, `--json` a JSON body, `-i` the answer's head too), without a local
 * port: one tunnel, one session. The answer's body goes to stdout as it streams; exit 0 for a 2xx
 * or 3xx answer, 1 for the API's error, 3 when the policy refused it, 4 when its review did not
 * approve it (or, with `--no-wait`, at once, its review id on stdout: once approved, the same
 * request sent again runs once).
 *
 * @see https://curl.se/docs/manpage.html
 */
import { TunnelTokenRenewal } from '../auth/token-renewal.js';
import { CommandExit, ErrorCode, HoopError, hoopSays } from '../errors.js';
import { ChunkedReader, readResponseHead, type ResponseHead, values } from '../http/wire/head.js';
import { whenAborted, type CliIo } from '../io.js';
import { createLogger, levelFromEnv, type Logger } from '../log.js';
import type { ResolvedTokenProvider } from '../auth/token-provider.js';
import type { ControlMessage } from '../tunnel/frames.js';
import { reviewStatusLine } from '../ui/review-lines.js';
import { commandTokenProvider, type GatewayFlags } from './client-config.js';
import { ExecExit } from './exec-statements.js';
import { openExecTunnel } from './gateway-sql.js';

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
export async function execHttp(io: CliIo, name: string, r: ExecRequest, opts: GatewayFlags & { wait: boolean }): Promise<void> {
  const bytes = requestBytes(name, r);
  const provider = await commandTokenProvider(io, opts);
  const log = createLogger({ level: levelFromEnv(io.env, 'warn'), sink: io.stderr, fields: { component: 'exec' } });
  const say = (line: string): void => void io.stderr.write(`${hoopSays(line)}\n`);
  try {
    const got = await Promise.race([
      requestThroughGateway({
        provider,
        name,
        method: r.method.toUpperCase(),
        bytes,
        log,
        say,
        body: (b) => void io.stdout.write(b),
        ...(r.include ? { head: (b: Buffer) => void io.stdout.write(b) } : {}),
        ...(opts.wait ? {} : { detach: true }),
      }),
      whenAborted(io.signal).then(() => undefined),
    ]);
    if (!got) {
      say('interrupted: the session is closed, and a request it held for review is withdrawn (it did not run)');
      throw new CommandExit(130);
    }
    if ('held' in got) {
      io.stdout.write(`${got.held}\n`);
      say(`the request is held for review ${got.held}. It did not run: once it is approved (\`hoop review show ${got.held} --wait\`), send the same request again, and the approval lets it run once`);
      throw new CommandExit(ExecExit.REVIEW);
    }
    const fieldsOf = (n: string): string[] => values(got.fields, n);
    if (fieldsOf('hoop-refused').length) throw new CommandExit(ExecExit.REFUSED);
    if (fieldsOf('hoop-review').length) throw new CommandExit(ExecExit.REVIEW);
    if (got.status >= 400) throw new CommandExit(ExecExit.STATEMENT_FAILED);
  } finally {
    provider.close();
  }
}

/** The bytes of request `r` on connection `name` (its body with its length; the session closes after it). @throws HoopError USAGE when `r` is not a request */
export function requestBytes(name: string, r: ExecRequest): Buffer {
  const method = r.method.toUpperCase();
  if (!/^[A-Z]{1,32}$/.test(method)) throw new HoopError(ErrorCode.USAGE, `${JSON.stringify(r.method)} is not an HTTP method`, { hint: `hoop exec ${name} GET /path` });
  if (!r.path.startsWith('/') || /[\s]/.test(r.path))
    throw new HoopError(ErrorCode.USAGE, `the path must begin with / and hold no white space (${JSON.stringify(r.path)})`, { hint: `hoop exec ${name} ${method} /path` });
  if (r.data !== undefined && r.json !== undefined) throw new HoopError(ErrorCode.USAGE, 'give -d DATA or --json DATA, not both');
  const fields: Array<[string, string]> = r.headers.map((h) => {
    const colon = h.indexOf(':');
    if (colon <= 0 || /[\r\n]/.test(h)) throw new HoopError(ErrorCode.USAGE, `-H ${JSON.stringify(h)} is not "Name: value"`);
    return [h.slice(0, colon).trim(), h.slice(colon + 1).trim()];
  });
  const body = r.json ?? r.data;
  if (r.json !== undefined) fields.push(['content-type', 'application/json'], ['accept', 'application/json']);
  if (body !== undefined && !fields.some(([n]) => n.toLowerCase() === 'content-type')) fields.push(['content-type', 'application/x-www-form-urlencoded']);
  const bytes = body === undefined ? Buffer.alloc(0) : Buffer.from(body, 'utf8');
  const sized = bytes.length > 0 || !['GET', 'HEAD', 'DELETE', 'OPTIONS'].includes(method);
  const head = [`${method} ${r.path} HTTP/1.1`, 'host: hoop', ...fields.map(([n, v]) => `${n}: ${v}`), ...(sized ? [`content-length: ${bytes.length}`] : []), 'connection: close', '', ''];
  return Buffer.concat([Buffer.from(head.join('\r\n'), 'utf8'), bytes]);
}

/**
 * Sends the request `bytes` on HTTP connection `name` in a session of its own: the answer's head
 * once its body (handed to `body` as it comes) ended; or, with `detach`, the id of the review it
 * is held for (the review outlives the session: once approved, the same request runs once).
 */
export async function requestThroughGateway(o: {
  provider: ResolvedTokenProvider;
  name: string;
  method: string;
  bytes: Buffer;
  log: Logger;
  say: (line: string) => void;
  body: (chunk: Buffer) => void;
  /** Told the answer's head as it came. */
  head?: (bytes: Buffer) => void;
  detach?: boolean;
  context?: Record<string, string>;
}): Promise<ResponseHead | { held: string }> {
  const { tunnel, token } = await openExecTunnel(o.provider, o.name, o.detach === true, (type) =>
    type === 'http' ? undefined : new HoopError(ErrorCode.USAGE, `"${o.name}" is a ${type} connection: METHOD PATH is for http connections`, { hint: `hoop exec ${o.name} -c 'select 1'` }),
  );
  const { channel } = tunnel;
  const renewal = new TunnelTokenRenewal(o.provider, o.log, o.say);
  renewal.track(channel, token);
  try {
    if (o.context) channel.sendControl({ type: 'context', fields: o.context });
    const held = new Promise<{ held: string }>((resolve) =>
      channel.on('control', (m: ControlMessage) => {
        if (m.type === 'review' && o.detach && m.state === 'pending' && typeof m.id === 'string') resolve({ held: m.id });
        else if (m.type === 'review') o.say(reviewStatusLine(m));
        else if (m.type === 'close' && typeof m.message === 'string') o.say(m.message);
      }),
    );
    channel.write(o.bytes);
    return await Promise.race([readAnswer(channel, o.method, o.body, o.head), held]);
  } finally {
    renewal.close();
    channel.destroy();
  }
}

/** Reads the answer from `channel`: its head (told to `onHead`), then its body to `body` as it comes; resolves the head once the body ended. */
function readAnswer(channel: NodeJS.ReadWriteStream, method: string, body: (chunk: Buffer) => void, onHead?: (bytes: Buffer) => void): Promise<ResponseHead> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let head: ResponseHead | undefined;
    let left = 0;
    const chunked = new ChunkedReader();
    const done = (): void => resolve(head!);
    const take = (b: Buffer): void => {
      if (!head) return;
      if (head.framing.kind === 'chunked') {
        const read = chunked.push(b);
        for (const d of read.data) body(d);
        if (read.ended) done();
      } else if (head.framing.kind === 'length') {
        const n = Math.min(left, b.length);
        body(b.subarray(0, n));
        left -= n;
        if (left === 0) done();
      } else if (head.framing.kind === 'until-close') body(b);
    };
    channel.on('data', (b: Buffer) => {
      try {
        if (head) return take(b);
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
        onHead?.(buf.subarray(0, h.bytes));
        left = h.framing.kind === 'length' ? h.framing.length : 0;
        if (h.framing.kind === 'none') return done();
        take(buf.subarray(h.bytes));
      } catch (err) {
        reject(new HoopError(ErrorCode.GATEWAY_PROTOCOL, `the answer could not be read: ${(err as Error).message}`));
      }
    });
    channel.on('end', () => (head ? done() : reject(new HoopError(ErrorCode.GATEWAY_PROTOCOL, 'the gateway closed the session before it answered'))));
    channel.on('error', (err: Error) => reject(new HoopError(ErrorCode.GATEWAY_UNREACHABLE, err.message)));
  });
}
