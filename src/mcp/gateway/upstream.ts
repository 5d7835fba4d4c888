/**
 * The MCP server behind a connection, as the gateway speaks to it: a program it runs for the
 * session and talks to on its stdio (one message per line, each line capped), or a Streamable
 * HTTP endpoint reached with the MCP SDK's client transport (the connection's headers added,
 * every answer's body capped). Either way the session sees one thing: messages in, messages out,
 * and one close with a reason.
 *
 * A program gets only PATH, HOME and the locale of the gateway's environment, then the
 * connection's own `env` (its secrets resolved now): the gateway's secrets never reach it. Its
 * stderr goes to the gateway's log (the last line is kept for the reason it ended), never to the
 * agent.
 *
 * @see https://modelcontextprotocol.io/specification/2025-06-18/basic/transports
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync, statSync } from 'node:fs';
import { basename, delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { mediaTypeEssence } from '@modelcontextprotocol/sdk/shared/mediaType.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { McpConnection, McpValue } from '../../config/connection.js';
import type { SecretRef } from '../../config/secrets.js';
import { checkTrustedFile, checkTrustedPaths } from '../../config/trusted-paths.js';
import { describeError, ErrorCode, HoopError } from '../../errors.js';
import { markJsonPart, markNumbers, newMark, parseJson, unmarked, unmarkText } from '../../json-number.js';
import { classify, LineReader, MAX_LINE_BYTES, type McpMessage, type NotAMessage } from '../wire/json-rpc.js';

/** What the session hears from the server. */
export interface UpstreamEvents {
  message(m: McpMessage | NotAMessage, bytes: number): void;
  /** The server is gone (once): why, as the agent's errors say it; `stderr`: the last line the program wrote there, for the gateway's log alone. */
  closed(why: string, stderr?: string): void;
}

/** An open MCP server. */
export interface McpUpstream {
  /** Sends one message; false when the server is behind (wait for {@link McpUpstream.drained}). */
  send(line: string): boolean;
  /** Resolves when the server has taken what was sent. */
  drained(): Promise<void>;
  /** Stops (and restarts) reading the server's messages, while the agent is behind. */
  pause(): void;
  resume(): void;
  /** Tells an HTTP server's transport the protocol version the session agreed on (its requests then carry it). */
  agreed(protocolVersion: string): void;
  /** Ends the server (a program: its stdin closed, then signalled). */
  close(): Promise<void>;
}

/** The environment variables of the gateway's own a program is given. */
const INHERITED_ENV = ['PATH', 'HOME', 'LANG', 'LC_ALL', 'LC_CTYPE', 'TZ'];
/** Bytes of a program's stderr kept for the reason it ended. */
const STDERR_TAIL = 2048;
/** How long a program has to exit after its stdin closes, then after SIGTERM. */
const EXIT_GRACE_MS = 2000;

/** Opens the server of `connection`. @throws Error when a secret does not resolve or the program cannot start */
export async function openUpstream(connection: McpConnection, resolveSecret: (ref: SecretRef) => Promise<string>, workDir: string, on: UpstreamEvents): Promise<McpUpstream> {
  const values = async (m: Record<string, McpValue> | undefined): Promise<Record<string, string>> =>
    Object.fromEntries(await Promise.all(Object.entries(m ?? {}).map(async ([k, v]) => [k, 'secret' in v ? await resolveSecret(v.secret) : v.text] as const)));
  if (connection.command) return startProgram(connection.command, await values(connection.env), connection.cwd, workDir, on);
  return openHttp(new URL(connection.url!), await values(connection.headers), on);
}

/** Programs that run what their first operand names as code (a directory: node's index.js, python's __main__.py). */
const INTERPRETER = /^(node|nodejs|deno|bun|tsx|python[0-9.]*|pypy[0-9.]*|ruby|perl|php)$/;

/** Shells: a script given with `-c` is refused (the gateway does not read what a script runs). */
const SHELL = /^(sh|bash|dash|zsh|ksh|fish)$/;

/** `name` as `PATH` finds it (the first executable file of that name), if it does. */
function onPath(name: string, path: string | undefined): string | undefined {
  for (const dir of (path ?? '').split(delimiter).filter((d) => isAbsolute(d))) {
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      if (statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Refuses to run what another user could replace: what the gateway runs it trusts as it trusts its keys (as sshd its
 * AuthorizedKeysCommand), its directories above included. It checks what may run, not which words name code: the
 * program (and the one `env` runs), the `cwd` set (a tree: `python -m`, `npx` load from it), and every path a word
 * or a value of the environment names, whole or after `=` (a name without its extension as each file it may complete
 * to; a directory as a tree when an interpreter runs it, and a script's directory, else it is the program's data);
 * a shell's `-c` script, an interpreter's code in its words (`-e`, `-c`) and `env -S`, `env -C` are refused.
 * @throws HoopError CONFIG_INVALID naming the file and the fix
 */
function checkProgram(command: readonly string[], env: Record<string, string>, cwd: string, cwdSet: boolean): void {
  const [name, ...words] = command as [string, ...string[]];
  checkRun(name, cwd, env.PATH);
  if (cwdSet) checkPath(cwd, true);
  if (SHELL.test(basename(name)) && words.some((w) => /^-[a-z]*c/i.test(w)))
    throw new HoopError(ErrorCode.CONFIG_INVALID, `a shell's -c script is not run: the gateway does not check what a script runs`, {
      hint: 'give the MCP server program and its arguments as the command',
    });
  if (basename(name) === 'env') checkEnv(words, cwd, env.PATH);
  const interpreter = INTERPRETER.test(basename(name));
  const at = interpreter ? words.findIndex((w) => !w.startsWith('-')) : -1;
  const options = interpreter ? (at < 0 ? words : words.slice(0, at)) : [];
  const inline = options.find((w) => INLINE_CODE.test(w));
  if (inline !== undefined)
    throw new HoopError(ErrorCode.CONFIG_INVALID, `an interpreter's code given in its words (${inline}) is not run: the gateway does not check what code loads`, {
      hint: "give the MCP server as a script file (or package directory) of the gateway's own",
    });
  for (const [i, word] of words.entries())
    for (const p of pathsNamed(word, cwd)) {
      checkPath(p, i === at);
      // A script runs what lies beside it (`import './helper.mjs'`): its directory is checked as a tree, as a package directory is.
      if (i === at && !statSync(p).isDirectory()) checkPath(dirname(p), true);
    }
  // What the environment names is loaded as the words' paths are (NODE_OPTIONS=--import=FILE, PYTHONPATH, LD_PRELOAD).
  for (const [k, v] of Object.entries(env)) if (k !== 'PATH') for (const word of v.split(/[\s:]+/)) for (const p of pathsNamed(word, cwd)) checkPath(p, LOADED_FROM.test(k));
}

/** An interpreter's options that give it code in a word (`node -e`, `python3 -c`, `perl -E`, `ruby -pe`, `--eval=…`, `--print`). */
const INLINE_CODE = /^(-[a-zA-Z]*[ecE][a-zA-Z]*|-p|--eval(=.*)?|--print(=.*)?)$/;

/** Variables whose paths a program loads code from (the others' paths are its data). */
const LOADED_FROM = /^(NODE_OPTIONS|NODE_PATH|PYTHON[A-Z_]*|PERL5[A-Z0-9_]*|PERLLIB|RUBY[A-Z_]*|LD_[A-Z_]+|BASH_ENV|ENV)$/;

/** Refuses a program another user could replace: `name` as the child finds it (by `PATH` without a slash: a PATH with a relative or empty entry, which the child searches from its directory, is refused). */
function checkRun(name: string, cwd: string, path: string | undefined): void {
  if (!name.includes('/') && path !== undefined && path.split(delimiter).some((d) => !isAbsolute(d)))
    throw new HoopError(ErrorCode.CONFIG_INVALID, `the MCP server's PATH (${path}) has a relative or empty entry, which the program would be searched in from its directory`, {
      hint: 'give PATH absolute directories only (or the program by its absolute path)',
    });
  const program = name.includes('/') ? resolve(cwd, name) : onPath(name, path);
  if (program !== undefined && existsSync(program)) checkTrustedFile(program);
}

/** `env`'s words: `-S` (a command line in one word) and `-C` (another directory) refused, each word its PATH finds checked as a program. */
function checkEnv(words: readonly string[], cwd: string, path: string | undefined): void {
  if (words.some((w) => /^(-[a-zA-Z]*[SC]|--split-string|--chdir)/.test(w)))
    throw new HoopError(ErrorCode.CONFIG_INVALID, 'env -S or -C is not run: the gateway does not check what a command line runs, or where', {
      hint: 'give the program and its arguments as the command (and the directory as cwd)',
    });
  for (const w of words) if (!w.startsWith('-') && !w.includes('=')) checkRun(w, cwd, path);
}

/** The existing paths word `word` names, whole or after its first `=`; a name that is none, each `name.*` beside it (node and python add an extension). */
function pathsNamed(word: string, cwd: string): string[] {
  const eq = word.indexOf('=');
  return [word, ...(eq >= 0 ? [word.slice(eq + 1)] : [])]
    .filter((w) => w !== '')
    .flatMap((w) => {
      const at = resolve(cwd, w);
      if (existsSync(at)) return [at];
      const dir = dirname(at);
      const completed = existsSync(dir) && statSync(dir).isDirectory() ? readdirSync(dir).filter((e) => e.startsWith(`${basename(at)}.`)) : [];
      return completed.map((e) => join(dir, e));
    });
}

/** Refuses a file another user could replace, a directory of code holding one (see {@link checkTrustedPaths}' trees), or another directory they could write to (what is made in it). */
function checkPath(at: string, code: boolean): void {
  if (!statSync(at).isDirectory()) checkTrustedFile(at);
  else checkTrustedPaths(code ? { state: [], checkouts: [], read: [], trees: [at] } : { state: [], checkouts: [], read: [at] });
}

/** Runs `command` and speaks MCP on its stdio. */
function startProgram(command: readonly string[], own: Record<string, string>, set: string | undefined, workDir: string, on: UpstreamEvents): Promise<McpUpstream> {
  const env: Record<string, string> = {};
  for (const k of INHERITED_ENV) if (process.env[k] !== undefined) env[k] = process.env[k]!;
  Object.assign(env, own);
  const cwd = set ?? workDir;
  try {
    checkProgram(command, env, cwd, set !== undefined);
  } catch (err) {
    return Promise.reject(new Error(`the MCP server's program ${command[0]} was not started: ${describeError(err)}`));
  }
  const child: ChildProcessByStdio<Writable, Readable, Readable> = spawn(command[0]!, command.slice(1), { cwd, env, stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
  let tail = '';
  let closed = false;
  const close = (why: string, stderr?: string): void => {
    if (closed) return;
    closed = true;
    on.closed(why, stderr);
  };
  const reader = new LineReader(
    (text) => on.message(classifyLine(text), Buffer.byteLength(text)),
    (bytes) => {
      close(`the MCP server sent a message over ${MAX_LINE_BYTES} bytes (${bytes} so far)`);
      child.kill('SIGKILL');
    },
  );
  child.stdout.on('data', (b: Buffer) => reader.push(b));
  child.stderr.on('data', (b: Buffer) => (tail = (tail + b.toString('utf8')).slice(-STDERR_TAIL)));
  child.stdin.on('error', () => undefined);
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  child.once('close', (code, signal) => {
    // Its stderr is the gateway's to read (a server may print its own token there): the agent is told how it ended, not what it said.
    const last = tail.trim().split('\n').pop();
    close(`the MCP server exited (${signal ? `signal ${signal}` : `code ${code}`})`, last ? last.slice(0, 300) : undefined);
  });
  return new Promise((resolve, reject) => {
    child.once('error', (err) => {
      closed = true;
      reject(new Error(`the MCP server's program ${command[0]} could not start: ${describeError(err)}`));
    });
    child.once('spawn', () =>
      resolve({
        send: (line) => child.stdin.writable && child.stdin.write(line),
        drained: () => (child.stdin.writableNeedDrain ? new Promise((r) => child.stdin.once('drain', () => r())) : Promise.resolve()),
        pause: () => void child.stdout.pause(),
        resume: () => void child.stdout.resume(),
        agreed: () => undefined,
        async close() {
          closed = true;
          child.stdin.end();
          const term = setTimeout(() => child.kill('SIGTERM'), EXIT_GRACE_MS);
          const kill = setTimeout(() => child.kill('SIGKILL'), 2 * EXIT_GRACE_MS);
          await exited;
          clearTimeout(term);
          clearTimeout(kill);
        },
      }),
    );
  });
}

/** A line from a server, classified. */
function classifyLine(text: string): McpMessage | NotAMessage {
  try {
    return classify(parseJson(text));
  } catch {
    return { invalid: 'not JSON', code: -32700, id: null };
  }
}

/** Speaks MCP to a Streamable HTTP endpoint with the SDK's transport, `headers` on every request. */
async function openHttp(url: URL, headers: Record<string, string>, on: UpstreamEvents): Promise<McpUpstream> {
  let closed = false;
  const close = (why: string): void => {
    if (closed) return;
    closed = true;
    on.closed(why);
  };
  // The SDK reads and writes JSON with doubles: a long number crosses it as a string marked with a mark of this session's (../../json-number.ts).
  const mark = newMark();
  const fetchCapped = upstreamFetch(mark, () => close(`the MCP server sent a message over ${MAX_LINE_BYTES} bytes`));
  const transport = new StreamableHTTPClientTransport(url, {
    // A redirect would carry the connection's headers (its credential) elsewhere: refused.
    requestInit: { headers, redirect: 'error' },
    fetch: fetchCapped,
    reconnectionOptions: { maxRetries: 0, initialReconnectionDelay: 1000, maxReconnectionDelay: 1000, reconnectionDelayGrowFactor: 1 },
  });
  transport.onmessage = (m: JSONRPCMessage) => on.message(classify(unmarked(m, mark)), 0);
  // A request the server refused or could not answer fails that request (send's catch); a body past the cap ends the session (upstreamFetch).
  transport.onerror = () => undefined;
  transport.onclose = () => close('the MCP server closed the session');
  await transport.start();
  const pending = new Set<Promise<void>>();
  return {
    send(line) {
      const sent = transport.send(JSON.parse(markNumbers(line, mark)) as JSONRPCMessage).catch((err: unknown) => {
        const answered = classifyLine(line);
        // A request whose POST failed is answered, so that the agent is not left waiting.
        if (!closed && 'kind' in answered && answered.kind === 'request')
          on.message(
            { kind: 'response', id: answered.id, raw: { jsonrpc: '2.0', id: answered.id, error: { code: -32603, message: `hoop: the MCP server did not take the request: ${describeError(err)}` } } },
            0,
          );
      });
      pending.add(sent);
      void sent.finally(() => pending.delete(sent));
      return pending.size < 16;
    },
    drained: async () => {
      while (pending.size >= 16) await Promise.race(pending);
    },
    pause: () => undefined,
    resume: () => undefined,
    agreed: (v) => transport.setProtocolVersion(v),
    async close() {
      closed = true;
      await transport.terminateSession().catch(() => undefined);
      await transport.close().catch(() => undefined);
    },
  };
}

/**
 * `fetch` for the SDK's transport: a request's body with its marked numbers written as numbers, a
 * successful answer's JSON (the whole body, or each SSE event's data) with its long numbers marked, and cut off
 * (`tooLong` told) once one message of it passes {@link MAX_LINE_BYTES}: an SSE event, or a whole JSON body.
 */
const upstreamFetch =
  (mark: string, tooLong: () => void): typeof fetch =>
  async (input, init) => {
    const response = await fetch(input, typeof init?.body === 'string' ? { ...init, body: unmarkText(init.body, mark) } : init);
    if (!response.body) return response;
    // The media type as the SDK reads it (its own reading: the two never disagree).
    const type = mediaTypeEssence(response.headers.get('content-type') ?? '');
    // Only an answer's messages are marked: an error's body goes into an error's text, which no reader unmarks.
    const sse = response.ok && type === 'text/event-stream';
    const json = response.ok && type === 'application/json';
    const decoder = new TextDecoder();
    const encoder = new TextEncoder();
    let run = 0;
    let held = '';
    const capped = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          if (sse) {
            const text = Buffer.from(chunk).toString('latin1');
            const end = Math.max(text.lastIndexOf('\n\n'), text.lastIndexOf('\r\n\r\n'));
            run = end < 0 ? run + chunk.length : chunk.length - end;
          } else run += chunk.length;
          if (run > MAX_LINE_BYTES) {
            controller.error(new Error(`the MCP server sent a message over ${MAX_LINE_BYTES} bytes`));
            return tooLong();
          }
          if (!sse && !json) return controller.enqueue(chunk);
          held += decoder.decode(chunk, { stream: true });
          if (json) return;
          // Whole events only (an event's data lines are one JSON text): a number is never cut in two.
          const end = eventsEnd(held);
          if (end === 0) return;
          controller.enqueue(encoder.encode(markedEvents(held.slice(0, end), mark)));
          held = held.slice(end);
        },
        flush(controller) {
          held += decoder.decode();
          if (held !== '') controller.enqueue(encoder.encode(json ? markNumbers(held, mark) : markedEvents(held, mark)));
        },
      }),
    );
    return new Response(capped, { status: response.status, statusText: response.statusText, headers: response.headers });
  };

/** Where the whole events of SSE text end (past the blank line of the last complete one; 0: none is complete yet). A `\r` at the very end may be half of `\r\n`. */
function eventsEnd(text: string): number {
  let end = 0;
  for (const m of text.matchAll(/(?:\r\n|\r(?!$)|\n)(?:\r\n|\r(?!$)|\n)/g)) end = m.index + m[0].length;
  return end;
}

/**
 * SSE events' data with their long numbers marked: an event's `data:` lines joined are its JSON
 * (marked only when that is JSON), and JSON has no line break in a string, so each line is marked
 * on its own from outside one.
 */
function markedEvents(text: string, mark: string): string {
  const lines = text.split(/(\r\n|\r|\n)/);
  let event: number[] = [];
  const flush = (): void => {
    const data = event.map((i) => lines[i]!.slice(5).replace(/^ /, '')).join('\n');
    if (markNumbers(data, mark) !== data) for (const i of event) lines[i] = `data:${markJsonPart(lines[i]!.slice(5), mark)}`;
    event = [];
  };
  for (let i = 0; i < lines.length; i += 2) {
    if (lines[i] === '') flush();
    else if (lines[i]!.startsWith('data:')) event.push(i);
  }
  flush();
  return lines.join('');
}
