/**
 * What both SSH ends of hoop do with a channel once they have decided to let it run: copy its
 * bytes both ways with back-pressure, and hand on its exit status, EOF and close in the order the
 * far side sent them. The gateway's engine bridges the client to the target
 * (src/ssh/gateway/engine.ts); the CLI's local end bridges the local client to the gateway when it
 * keeps its own record (src/ssh/local/terminator.ts).
 *
 * @see https://www.rfc-editor.org/rfc/rfc4254#section-5 (channel data, EOF, close)
 * @see https://www.rfc-editor.org/rfc/rfc4254#section-6.10 (exit-status, exit-signal)
 */
import { createHash } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import type { ClientChannel, ServerChannel } from 'ssh2';
import type { SftpStage } from './sftp-stage.js';

/**
 * The tunnel control message in which the gateway tells the CLI what it decided for a command, a
 * shell or an sftp session, as it records it: `{ type, kind, command?, decision, rule? }`. A
 * command longer than {@link DECISION_COMMAND_BYTES} is named by `commandSha256` instead (a
 * control message holds at most 64 KiB; a command may be longer).
 */
export const SSH_DECISION = 'ssh-decision';

/** The longest command an `ssh-decision` message spells out. */
export const DECISION_COMMAND_BYTES = 1024;

/** How an `ssh-decision` message names `command`: itself, or its SHA-256 when long. */
export function decisionCommand(command: string): { command: string } | { commandSha256: string } {
  return Buffer.byteLength(command) <= DECISION_COMMAND_BYTES ? { command } : { commandSha256: createHash('sha256').update(command).digest('hex') };
}

/** An empty write: its callback runs once everything written before it has gone out. */
export const EMPTY = Buffer.alloc(0);

/** How a channel's command ended, as the far side said (RFC 4254 section 6.10). */
export type ChannelExit = { status: number } | { signal: string; core?: boolean; message?: string };

/** Bytes that crossed a channel, by stream. */
export type ChannelBytes = { out: number; err: number; in: number };

/** A channel stream: what the far side printed (`out`, `err`) or what the near side typed (`in`). */
export type ChannelStream = keyof ChannelBytes;

/**
 * `e` with its `emit` guarded: a listener that throws (on what a peer sent) goes to `fail`, which
 * ends that one session, instead of becoming an uncaught exception of the process.
 */
export function guarded<T extends { emit(event: string | symbol, ...args: unknown[]): boolean }>(e: T, fail: (err: unknown) => void): T {
  const emit = e.emit.bind(e);
  e.emit = (event: string | symbol, ...args: unknown[]): boolean => {
    try {
      return emit(event, ...args);
    } catch (err) {
      fail(err);
      return true;
    }
  };
  return e;
}

/** `fn`, with what it throws going to `fail` (for callbacks ssh2 and streams call outside any emit). */
export function safely<A extends unknown[]>(fail: (err: unknown) => void, fn: (...args: A) => void): (...args: A) => void {
  return (...args: A): void => {
    try {
      fn(...args);
    } catch (err) {
      fail(err);
    }
  };
}

/**
 * Copies `from` into `to` with back-pressure: `from` pauses while `to` is full or while the
 * Promise `observe` returns (the recording is behind) is pending. When `from` ends, `ended` runs
 * (default: `to` is ended).
 */
export function relay(from: Readable, to: Writable, observe: ((chunk: Buffer) => Promise<void> | undefined) | undefined, ended: () => void = () => to.end()): void {
  let held = 0;
  const hold = (p: Promise<void>): void => {
    if (held++ === 0) from.pause();
    void p.then(() => {
      if (--held === 0) from.resume();
    });
  };
  from.on('data', (chunk: Buffer) => {
    const behind = observe?.(chunk);
    if (!to.write(chunk)) hold(new Promise((r) => to.once('drain', r)));
    if (behind) hold(behind);
  });
  from.on('end', ended);
}

/**
 * Ends a channel this end answers itself: `line` on its error output (what the ssh client prints),
 * then exit `status`, EOF and close. Nothing is written once the near side has gone (ssh2 would
 * fail the write after the fact).
 */
export function endChannel(down: ServerChannel, status: number, line: string, fail: (err: unknown) => void): void {
  if (down.destroyed || !down.writable || !down.stderr.writable) return;
  down.stderr.write(line);
  down.write(
    EMPTY,
    safely(fail, () => {
      down.exit(status);
      down.end();
    }),
  );
}

/** Relays a forwarded TCP channel (`ssh -L`) both ways with back-pressure; each side's close closes the other. */
export function bridgeForward(up: ClientChannel, down: ServerChannel): void {
  relay(up, down, undefined);
  relay(down, up, undefined);
  down.on('close', () => up.close());
  up.on('close', () => down.close());
}

/** What {@link bridgeChannel} tells and asks of its caller. */
export interface BridgeHooks {
  /** Sees each chunk of a stream as it passes (not an sftp channel's data); a Promise it returns holds the source until it settles. */
  observe?: (stream: ChannelStream, chunk: Buffer) => Promise<void> | undefined;
  /** Relays the channel's data (both ways) instead, reading its sftp packets. */
  sftp?: SftpStage;
  /** The far side closed: everything it sent has gone out, its exit is about to; the near side's channel ends next. */
  exited: (exit: ChannelExit | undefined, bytes: ChannelBytes) => void;
}

/**
 * Relays a running channel: `up` (the channel this end opened to the far side) to `down` (the
 * channel the near side opened to this end), both ways, then the far side's exit, EOF and close in
 * that order, as the near side must see them.
 */
export function bridgeChannel(up: ClientChannel, down: ServerChannel, hooks: BridgeHooks, fail: (err: unknown) => void): void {
  const bytes: ChannelBytes = { out: 0, err: 0, in: 0 };
  const observe = (stream: ChannelStream) => (chunk: Buffer) => {
    bytes[stream] += chunk.length;
    return hooks.observe?.(stream, chunk);
  };
  // The far side's EOF waits for its close: ssh2 sends no exit status after EOF, so the near side gets data, exit status, EOF, close.
  const eof = (): void => undefined;
  if (hooks.sftp) hooks.sftp.relay(down, up, eof);
  else {
    relay(up, down, observe('out'), eof);
    relay(down, up, observe('in'));
  }
  relay(up.stderr, down.stderr, observe('err'), () => undefined);
  let exit: ChannelExit | undefined;
  up.on('exit', (code: number | null, signal?: string, core?: boolean, message?: string) => {
    exit = code !== null && code !== undefined ? { status: code } : { signal: signal ?? 'KILL', ...(core ? { core } : {}), ...(message ? { message } : {}) };
  });
  // The exit is told once: when the near side got it, or when the near side was gone before it could.
  let told = false;
  const tell = (): void => {
    if (told) return;
    told = true;
    hooks.exited(exit, bytes);
  };
  let downClosed = false;
  let upClosed = false;
  up.on('close', () => {
    upClosed = true;
    // The near side closed first (ssh2 calls back no write on a closed channel): nothing more goes out.
    if (downClosed) return tell();
    // What the far side sent before closing goes out first, then its exit, EOF and close.
    let waiting = 2;
    const done = safely(fail, (): void => {
      if (--waiting > 0) return;
      if (exit && 'status' in exit) down.exit(exit.status);
      else if (exit) {
        try {
          down.exit(exit.signal.replace(/^SIG/, ''), exit.core ?? false, exit.message ?? '');
        } catch {
          down.exit(255); // a signal name ssh2 does not know (RFC 4254 section 6.10 lists them)
        }
      }
      tell();
      down.end();
    });
    down.write(EMPTY, done);
    down.stderr.write(EMPTY, done);
  });
  down.on('close', () => {
    downClosed = true;
    if (upClosed) tell();
    else up.close();
  });
}
