/**
 * What ssh2 sends without words, said with them: the description of an `SSH_MSG_DISCONNECT`
 * (ssh2's `end()` sends an empty one; OpenSSH prints it as "Received disconnect from …: 11: <it>")
 * and of a channel open failure (OpenSSH prints "open failed: administratively prohibited: <it>"),
 * and the description of a disconnect the far side sent (ssh2 drops it for reason 11,
 * "by application"). ssh2 has no API for these, so this module reaches into its protocol object
 * the way its own `disconnect` does; where that object is not as expected, it falls back to
 * ssh2's own wordless calls and never throws.
 *
 * @see https://www.rfc-editor.org/rfc/rfc4253#section-11.1 (disconnection message)
 * @see https://www.rfc-editor.org/rfc/rfc4254#section-5.1 (channel open failure)
 */
import { hoopSays } from '../../errors.js';

/** RFC 4253 section 11.1: SSH_MSG_DISCONNECT, and its reason "by application". */
const DISCONNECT = 1;
const BY_APPLICATION = 11;
/** RFC 4254 section 5.1: SSH_OPEN_ADMINISTRATIVELY_PROHIBITED. */
const ADMINISTRATIVELY_PROHIBITED = 1;
/** The longest description sent (OpenSSH prints it on one line). */
const MAX_DESCRIPTION_BYTES = 1024;

/** The parts of ssh2's protocol object this module uses (ssh2 1.x, lib/protocol/Protocol.js). */
interface Ssh2Protocol {
  _packetRW: { write: { allocStartKEX: number; alloc(size: number, force: boolean): Buffer; finalize(packet: Buffer, force: boolean): Buffer } };
  _cipher: { encrypt(packet: Buffer): void };
  _handlers: Record<string, ((...args: unknown[]) => void) | undefined>;
  channelOpenFail(remote: number, reason: number, description: string): void;
}

/** An ssh2 client or server connection, as this module reaches into it. */
interface Ssh2Connection {
  end(): unknown;
  _protocol?: Ssh2Protocol;
  _sock?: { writable?: boolean; end(): void };
}

/** `text` as a one-line description of at most {@link MAX_DESCRIPTION_BYTES} bytes, said by hoop. */
function description(text: string): Buffer {
  const bytes = Buffer.from(hoopSays(text.replace(/\s+/g, ' ').trim()), 'utf8');
  if (bytes.length <= MAX_DESCRIPTION_BYTES) return bytes;
  // Cut where a character starts, and say it was cut.
  const cut = bytes
    .subarray(0, MAX_DESCRIPTION_BYTES - 3)
    .toString('utf8')
    .replace(/\uFFFD+$/, '');
  return Buffer.from(`${cut}...`, 'utf8');
}

/** Ends `conn` with a disconnect message that says `text` (reason 11, "by application"), as ssh2's `end()` does without one. */
export function disconnectSaying(conn: unknown, text: string): void {
  const c = conn as Ssh2Connection;
  const proto = c._protocol;
  if (!proto?._packetRW?.write || !proto._cipher || !c._sock) return void c.end();
  if (!c._sock.writable) return;
  try {
    const desc = description(text);
    const w = proto._packetRW.write;
    let p = w.allocStartKEX;
    const packet = w.alloc(1 + 4 + 4 + desc.length + 4, true);
    packet[p] = DISCONNECT;
    packet.writeUInt32BE(BY_APPLICATION, ++p);
    packet.writeUInt32BE(desc.length, (p += 4));
    desc.copy(packet, (p += 4));
    packet.writeUInt32BE(0, p + desc.length); // the language tag: none
    proto._cipher.encrypt(w.finalize(packet, true));
    c._sock.end();
  } catch {
    c.end();
  }
}

/** Refuses a channel open with ssh2's `reject`, its failure saying `text` ("administratively prohibited"). */
export function rejectSaying(conn: unknown, reject: () => void, text: string): void {
  const proto = (conn as Ssh2Connection)._protocol;
  const fail = proto?.channelOpenFail;
  if (!proto || typeof fail !== 'function') return reject();
  proto.channelOpenFail = (remote: number) => fail.call(proto, remote, ADMINISTRATIVELY_PROHIBITED, description(text).toString('utf8'));
  try {
    reject();
  } finally {
    proto.channelOpenFail = fail;
  }
}

/** Keeps the description of the disconnect message `client`'s far side sends; call once its `connect()` has run. */
export function disconnectHeard(client: unknown): () => string | undefined {
  let heard: string | undefined;
  const handlers = (client as Ssh2Connection)._protocol?._handlers;
  const handler = handlers?.DISCONNECT;
  if (handlers && typeof handler === 'function') {
    handlers.DISCONNECT = (...args: unknown[]) => {
      if (typeof args[2] === 'string' && args[2] !== '') heard = args[2];
      handler(...args);
    };
  }
  return () => heard;
}

/** What the far side said of a channel it did not open, from ssh2's error ("(SSH) Channel open failure: <it>"). */
export function openFailureOf(err: Error): string {
  return err.message.replace(/^\(SSH\) Channel open failure:\s*/, '') || 'the channel was not opened';
}

/** Why a subsystem other than sftp does not run, as both of hoop's SSH ends tell the client. */
export function subsystemRefusal(name: string): string {
  return `the subsystem "${name}" is not allowed through hoop: only sftp is`;
}
