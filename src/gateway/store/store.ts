/**
 * The gateway's state behind one interface. Today: the device keys that `hoop login` registers
 * (the public half of an Ed25519 key pair per CLI installation, with which the CLI signs its
 * recordings). The embedded default keeps it in JSON files under the gateway's data directory;
 * a shared store (PostgreSQL) can implement the same interface for several replicas.
 *
 * The file store writes atomically (a temporary file, fsync, rename, fsync of the directory),
 * with files 0600 in a 0700 directory, serializes its writes so concurrent requests never lose
 * one another's device, and takes a lock file so a second gateway process cannot share it.
 *
 * @see docs/internals.md (§5, §3)
 * @see https://www.rfc-editor.org/rfc/rfc8410 (Ed25519 public keys in SubjectPublicKeyInfo)
 */
import { realClock } from '../../clock.js';
import { createHash, createPublicKey, randomUUID } from 'node:crypto';
import { chmod, mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, HoopError, describeError } from '../../errors.js';
import { processExists } from '../../pid.js';
import { writeFileAtomic } from '../../durable-file.js';

/** Who owns a device: an identity, by issuer and subject. */
export interface DeviceOwner {
  issuer: string;
  subject: string;
}

/** A registered device key. */
export interface Device {
  deviceId: string;
  issuer: string;
  subject: string;
  /** A label the CLI chose (host name, user), for people. */
  name: string;
  /** The Ed25519 public key, SPKI PEM as the gateway re-encoded it. */
  publicKey: string;
  /** `SHA256:` and the unpadded base64 SHA-256 of the raw 32-byte key, as OpenSSH prints fingerprints. */
  fingerprint: string;
  /** ISO 8601. */
  createdAt: string;
  /** An ephemeral key (a CLI with a token from the environment and no login): ISO 8601 end of its use. */
  expiresAt?: string;
}

/** A device to register, already validated with {@link parseDevicePublicKey} and {@link parseDeviceName}. */
export interface NewDevice {
  publicKey: string;
  fingerprint: string;
  name: string;
  /** An ephemeral key ends its use then (see {@link EPHEMERAL_DEVICE_MS}). */
  expiresAt?: string;
}

/** The gateway's state. @see docs/internals.md (§5) */
export interface GatewayStore {
  /**
   * Registers a device key for `owner`. Idempotent: the same key for the same owner returns the
   * existing device with `created: false`.
   */
  registerDevice(owner: DeviceOwner, device: NewDevice): Promise<{ device: Device; created: boolean }>;
  /** The devices of `owner` whose keys are still accepted, oldest first. */
  listDevices(owner: DeviceOwner): Promise<Device[]>;
  /** One device by id, whoever owns it. */
  getDevice(deviceId: string): Promise<Device | undefined>;
  /** Flushes and releases the store. */
  close(): Promise<void>;
}

/**
 * Refuses a new device beyond the identity's limit ({@link MAX_DEVICES_PER_IDENTITY}, or
 * {@link MAX_EPHEMERAL_DEVICES_PER_IDENTITY} for ephemeral keys), given its live devices `mine`.
 *
 * @throws HoopError USAGE
 */
export function checkDeviceLimit(owner: DeviceOwner, device: NewDevice, mine: ReadonlyArray<{ expiresAt?: string | undefined }>): void {
  const ephemeral = device.expiresAt !== undefined;
  const max = ephemeral ? MAX_EPHEMERAL_DEVICES_PER_IDENTITY : MAX_DEVICES_PER_IDENTITY;
  if (mine.filter((d) => (d.expiresAt !== undefined) === ephemeral).length < max) return;
  throw usage(
    `${owner.subject} already has ${max} registered ${ephemeral ? `ephemeral keys (one per hoop process with a token from the environment, for ${EPHEMERAL_DEVICE_MS / 86_400_000} days)` : 'devices'}`,
    ephemeral ? 'log in with `hoop login --id-token-file` so the CI job keeps one device key, or wait for older keys to expire' : 'ask the gateway operator to remove old devices',
  );
}

/** Longest device name accepted, in characters. */
export const MAX_DEVICE_NAME = 128;
/** Most devices one identity may register. */
export const MAX_DEVICES_PER_IDENTITY = 1000;
/** How long an ephemeral device key is accepted: long enough for its CLI to upload what it signed. */
export const EPHEMERAL_DEVICE_MS = 7 * 86_400_000;
/** Most ephemeral keys one identity holds at once (a CI job registers one per hoop process); apart from {@link MAX_DEVICES_PER_IDENTITY}. */
export const MAX_EPHEMERAL_DEVICES_PER_IDENTITY = 2000;
const MAX_PEM_LENGTH = 1024;

function usage(message: string, hint: string): HoopError {
  return new HoopError(ErrorCode.USAGE, message, { hint });
}

/**
 * The OpenSSH-style fingerprint of a raw Ed25519 public key: `SHA256:` and the base64 of its
 * SHA-256 digest, without padding.
 *
 * @see https://man.openbsd.org/ssh-keygen#l (fingerprint format)
 */
export function deviceFingerprint(rawKey: Uint8Array): string {
  return `SHA256:${createHash('sha256').update(rawKey).digest('base64').replace(/=+$/, '')}`;
}

/**
 * Checks that `pem` is one Ed25519 public key in SubjectPublicKeyInfo PEM (`BEGIN PUBLIC KEY`),
 * and returns it re-encoded with its fingerprint. A private key is refused, not turned into its
 * public half.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8410#section-4
 * @see https://www.rfc-editor.org/rfc/rfc7468#section-13 (the PUBLIC KEY label)
 * @throws HoopError USAGE saying what is wrong.
 */
export function parseDevicePublicKey(pem: unknown): { publicKey: string; fingerprint: string } {
  const hint = 'send the public half of the device key as an Ed25519 SPKI PEM ("-----BEGIN PUBLIC KEY-----")';
  if (typeof pem !== 'string' || pem.trim() === '') throw usage('publicKey must be a PEM string', hint);
  if (pem.length > MAX_PEM_LENGTH) throw usage(`publicKey is longer than ${MAX_PEM_LENGTH} characters; an Ed25519 public key PEM is about 113`, hint);
  const text = pem.trim();
  const blocks = text.match(/-----BEGIN [A-Z0-9 ]+-----/g) ?? [];
  if (blocks.length !== 1 || blocks[0] !== '-----BEGIN PUBLIC KEY-----' || !text.startsWith('-----BEGIN PUBLIC KEY-----') || !text.endsWith('-----END PUBLIC KEY-----')) {
    if (blocks.some((b) => b.includes('PRIVATE'))) throw usage('publicKey holds a private key; send only the public key', hint);
    throw usage('publicKey must be exactly one PEM block labelled PUBLIC KEY', hint);
  }
  let key;
  try {
    key = createPublicKey({ key: text, format: 'pem' });
  } catch {
    throw usage('publicKey is not a valid PEM public key', hint);
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw usage(`publicKey is a${key.asymmetricKeyType === 'ec' || key.asymmetricKeyType === 'ed448' ? 'n' : ''} ${key.asymmetricKeyType ?? 'unknown'} key; device keys must be Ed25519`, hint);
  const jwk = key.export({ format: 'jwk' });
  const raw = Buffer.from(jwk.x ?? '', 'base64url');
  if (raw.length !== 32) throw usage('publicKey is not a 32-byte Ed25519 key', hint);
  return { publicKey: key.export({ type: 'spki', format: 'pem' }).toString(), fingerprint: deviceFingerprint(raw) };
}

/**
 * Checks a device name: 1 to {@link MAX_DEVICE_NAME} printable characters.
 *
 * @see https://www.unicode.org/reports/tr18/#General_Category_Property (control characters refused)
 * @throws HoopError USAGE
 */
export function parseDeviceName(name: unknown): string {
  const hint = `name the device in 1 to ${MAX_DEVICE_NAME} printable characters, e.g. the host name`;
  if (typeof name !== 'string') throw usage('name must be a string', hint);
  const trimmed = name.trim();
  if (trimmed === '' || [...trimmed].length > MAX_DEVICE_NAME) throw usage(`name must be 1 to ${MAX_DEVICE_NAME} characters`, hint);
  if (/\p{Cc}|\p{Cf}/u.test(trimmed)) throw usage('name must not contain control or format characters', hint);
  return trimmed;
}

interface DevicesFile {
  version: 1;
  devices: Device[];
}

const DEVICES_FILE = 'devices.json';
const LOCK_FILE = 'gateway.lock';
/** Directories opened by a store of this process. */
const openDirs = new Set<string>();

function isDevice(v: unknown): v is Device {
  const d = v as Record<string, unknown> | null;
  return (
    d !== null &&
    typeof d === 'object' &&
    ['deviceId', 'issuer', 'subject', 'name', 'publicKey', 'fingerprint', 'createdAt'].every((k) => typeof d[k] === 'string') &&
    (d.expiresAt === undefined || typeof d.expiresAt === 'string')
  );
}

/** Whether a device key is still accepted at `now`. */
function live(d: Device, now: number): boolean {
  return d.expiresAt === undefined || Date.parse(d.expiresAt) > now;
}

/**
 * The embedded store: JSON files in the gateway's data directory, for a single gateway process.
 *
 * @see docs/internals.md (§5)
 */
export class FileGatewayStore implements GatewayStore {
  readonly dir: string;
  readonly #devices: Device[];
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(dir: string, devices: Device[]) {
    this.dir = dir;
    this.#devices = devices;
  }

  /**
   * Opens (creating it 0700 if needed) the data directory `dir` and loads its state.
   *
   * @throws HoopError CONFIG_INVALID when the directory cannot be used, its files are corrupt, or
   *   another gateway process holds it.
   */
  static async open(dir: string): Promise<FileGatewayStore> {
    const fail = (message: string, hint: string, cause?: unknown): HoopError => new HoopError(ErrorCode.CONFIG_INVALID, message, { hint, ...(cause !== undefined ? { cause } : {}) });
    if (openDirs.has(dir)) throw fail(`the data directory ${dir} is already open in this process`, 'give each gateway its own dataDir');
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const s = await stat(dir);
      if (!s.isDirectory()) throw new Error('not a directory');
      if ((s.mode & 0o077) !== 0) await chmod(dir, 0o700);
    } catch (err) {
      throw fail(`cannot use the data directory ${dir}: ${describeError(err)}`, 'set dataDir in the gateway configuration to a directory the gateway may write', err);
    }
    await FileGatewayStore.#lock(dir, fail);
    openDirs.add(dir);
    try {
      const devices = await FileGatewayStore.#load(join(dir, DEVICES_FILE), fail);
      return new FileGatewayStore(dir, devices);
    } catch (err) {
      openDirs.delete(dir);
      await rm(join(dir, LOCK_FILE), { force: true });
      throw err;
    }
  }

  static async #lock(dir: string, fail: (message: string, hint: string, cause?: unknown) => HoopError): Promise<void> {
    const lock = join(dir, LOCK_FILE);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const handle = await open(lock, 'wx', 0o600);
        await handle.writeFile(`${process.pid}\n`);
        await handle.close();
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw fail(`cannot lock the data directory ${dir}: ${describeError(err)}`, 'check the permissions of dataDir', err);
      }
      const pid = Number((await readFile(lock, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processExists(pid)) {
        throw fail(`the data directory ${dir} is in use by another gateway process (pid ${pid})`, 'stop the other gateway, or give this one its own dataDir');
      }
      await rm(lock, { force: true });
    }
    throw fail(`cannot lock the data directory ${dir}`, 'check that no other gateway starts at the same time');
  }

  static async #load(file: string, fail: (message: string, hint: string, cause?: unknown) => HoopError): Promise<Device[]> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw fail(`cannot read ${file}: ${describeError(err)}`, 'check the permissions of dataDir', err);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw fail(`${file} is not valid JSON`, 'restore it from a backup, or move it aside to start with no registered devices', err);
    }
    const data = parsed as Partial<DevicesFile> | null;
    if (data === null || typeof data !== 'object' || data.version !== 1 || !Array.isArray(data.devices) || !data.devices.every(isDevice)) {
      throw fail(`${file} is not a hoop devices file (version 1)`, 'restore it from a backup, or move it aside to start with no registered devices');
    }
    return data.devices.map((d) => ({ ...d }));
  }

  /** Runs `task` after every earlier write, so no two writes interleave. */
  #serialized<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task, task);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #check(): void {
    if (this.#closed) throw new HoopError(ErrorCode.INTERNAL, 'the gateway store is closed');
  }

  async registerDevice(owner: DeviceOwner, device: NewDevice): Promise<{ device: Device; created: boolean }> {
    this.#check();
    return this.#serialized(async () => {
      const now = realClock.now();
      const mine = this.#devices.filter((d) => d.issuer === owner.issuer && d.subject === owner.subject && live(d, now));
      const existing = mine.find((d) => d.fingerprint === device.fingerprint);
      if (existing) return { device: { ...existing }, created: false };
      checkDeviceLimit(owner, device, mine);
      const record: Device = {
        deviceId: randomUUID(),
        issuer: owner.issuer,
        subject: owner.subject,
        name: device.name,
        publicKey: device.publicKey,
        fingerprint: device.fingerprint,
        createdAt: new Date(now).toISOString(),
        ...(device.expiresAt !== undefined ? { expiresAt: device.expiresAt } : {}),
      };
      // Expired ephemeral keys go when the file is next written.
      const kept = this.#devices.filter((d) => live(d, now));
      const next: DevicesFile = { version: 1, devices: [...kept, record] };
      await writeFileAtomic(join(this.dir, DEVICES_FILE), `${JSON.stringify(next, null, 2)}\n`, this.dir);
      this.#devices.splice(0, this.#devices.length, ...kept, record);
      return { device: { ...record }, created: true };
    });
  }

  async listDevices(owner: DeviceOwner): Promise<Device[]> {
    this.#check();
    const now = realClock.now();
    return this.#devices.filter((d) => d.issuer === owner.issuer && d.subject === owner.subject && live(d, now)).map((d) => ({ ...d }));
  }

  async getDevice(deviceId: string): Promise<Device | undefined> {
    this.#check();
    const d = this.#devices.find((x) => x.deviceId === deviceId);
    return d ? { ...d } : undefined;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queue;
    openDirs.delete(this.dir);
    await rm(join(this.dir, LOCK_FILE), { force: true });
  }
}
