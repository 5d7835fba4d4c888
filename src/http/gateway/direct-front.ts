/**
 * A direct HTTP client at the gateway's port (`hoop connect --direct` of an HTTP connection): its
 * TLS connection's requests name a direct credential as their path's first segments
 * (`/direct/<user>/<password>/…`, the base URL the CLI prints), which the first one must carry
 * before a session is opened and every later one again (the session's reader takes it off each
 * target, as a local port's per-run path). A client that names none that is open gets a 401 and is
 * closed; one the admission refuses gets its status.
 */
import type { TunnelErrorBody } from '../../tunnel/accept.js';
import type { SessionChannel } from '../../session/engine.js';
import { firstLine } from '../wire/first-line.js';
import { closingAnswer } from '../wire/status-error.js';
import { lingerEnd } from '../../session/relay-end.js';

/** The path a direct HTTP client's requests begin with at the gateway's port: nothing of the API's begins so. */
export const HTTP_DIRECT_PATH = '/direct/';

/** The base path of a direct credential's requests, `/direct/<user>/<password>`. */
export function directHttpPath(user: string, password: string): string {
  return `${HTTP_DIRECT_PATH}${user}/${password}`;
}

/** A direct client's first request line: its method, then `/direct/<user>/<password>` ending at `/`, `?` or the target's end. */
const DIRECT_LINE = /^[A-Z]+ \/direct\/([A-Za-z0-9_-]{1,64})\/([A-Za-z0-9_-]{1,128})(?:[/?][^ ]*)? HTTP\/1\.[01]$/;

/** What the gateway's direct endpoint gives the HTTP direct front. */
export interface HttpDirectOptions<T> {
  /** The credential named `user` if `password` is its own and it is open; else why not. */
  credential(user: string, password: string): Promise<{ value: T } | { refused: string; hint?: string }>;
  /** Admits the session (`prefix`: the path its requests begin with); the channel holds every byte its client sent, none read yet. */
  admit(value: T, prefix: string, answer: { refuse(status: number, body: TunnelErrorBody): void; accept(): SessionChannel }): void;
  /** Told when the client sent a request line (it spoke: the front's deadline is over). */
  spoke(): void;
}

/** Serves a direct HTTP client; see the module documentation. */
export async function serveDirectHttpClient<T>(channel: SessionChannel, seen: Buffer, o: HttpDirectOptions<T>): Promise<void> {
  const first = await firstLine(channel, seen);
  if (!first) return void channel.destroy();
  o.spoke();
  const named = DIRECT_LINE.exec(first.line);
  if (!named) return refuse(channel, 401, 'the URL names no direct credential', 'use the base URL hoop connect --direct printed');
  const [, user, password] = named as unknown as [string, string, string];
  const found = await o.credential(user, password);
  if ('refused' in found) return refuse(channel, 401, found.refused, found.hint);
  o.admit(found.value, directHttpPath(user, password).slice(1), {
    refuse: (status, body) => refuse(channel, status, body.error.message, body.error.hint),
    accept: () => channel,
  });
}

/** Answers a refused client and ends its connection: what it sends meanwhile is dropped (so its close is seen), and it is cut after a grace. */
function refuse(channel: SessionChannel, status: number, message: string, hint?: string): void {
  lingerEnd(channel, closingAnswer(status, message, hint), true);
}
