/**
 * Where tokens and the device private key are kept, under the profile's key (`<gateway
 * origin>#<subject>`; an older hoop's profile: the origin alone): the OS keychain (service `hoop`,
 * account = that key) through `@napi-rs/keyring`, or, where no keychain answers (headless Linux,
 * containers, CI) or `HOOP_TOKEN_STORE=file` says so, a JSON file of mode 0600 in
 * `<config dir>/tokens/` (mode 0700). Nothing here ever prints or logs a secret.
 *
 * @see https://www.npmjs.com/package/@napi-rs/keyring
 * @see https://specifications.freedesktop.org/secret-service-spec/latest/ (Linux keychain)
 */
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, HoopError, describeError } from '../errors.js';
import { checkPrivateDir, readOptionalFile, writePrivateFile } from '../private-file.js';
import type { StoreKind } from './profiles.js';

/**
 * The secrets of one profile (an identity at a gateway).
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-5.1 (token response)
 */
export interface Secrets {
  accessToken?: string;
  idToken?: string;
  refreshToken?: string;
  /** When the access token expires (from `expires_in`), ISO 8601. */
  accessTokenExpiresAt?: string;
  /** When these tokens were obtained, ISO 8601. */
  obtainedAt?: string;
  /** The device key pair (PEM: PKCS#8 private, SPKI public). */
  deviceKey?: { privateKey: string; publicKey: string };
}

/**
 * A place for {@link Secrets}, keyed by profile key.
 * @see https://www.npmjs.com/package/@napi-rs/keyring
 */
export interface SecretStore {
  readonly kind: StoreKind;
  /** Where the secrets of `key` are, for people (never the secrets themselves). */
  describe(key: string): string;
  read(key: string): Promise<Secrets | undefined>;
  write(key: string, secrets: Secrets): Promise<void>;
  /** True when something was deleted. */
  delete(key: string): Promise<boolean>;
}

/** The keychain entry operations the store uses (a subset of `@napi-rs/keyring`'s `Entry`). @see https://www.npmjs.com/package/@napi-rs/keyring */
export interface KeyringEntry {
  getPassword(): string | null;
  setPassword(password: string): void;
  deletePassword(): boolean;
}

/** Makes keychain entries; throws when no keychain is available. @see https://www.npmjs.com/package/@napi-rs/keyring */
export type KeyringFactory = (service: string, account: string) => KeyringEntry;

/** The keychain service name. @see https://www.npmjs.com/package/@napi-rs/keyring */
export const KEYCHAIN_SERVICE = 'hoop';

let defaultFactory: Promise<KeyringFactory | undefined> | undefined;

/**
 * The real `@napi-rs/keyring` (undefined when its native module cannot load on this platform).
 * @see https://www.npmjs.com/package/@napi-rs/keyring
 */
export function loadKeyring(): Promise<KeyringFactory | undefined> {
  defaultFactory ??= import('@napi-rs/keyring').then(
    (m) => (service: string, account: string) => new m.Entry(service, account),
    () => undefined,
  );
  return defaultFactory;
}

function parseSecrets(text: string | null | undefined): Secrets | undefined {
  if (!text) return undefined;
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value !== 'object' || value === null) return undefined;
    const inner = (value as { secrets?: unknown }).secrets;
    const secrets = (typeof inner === 'object' && inner !== null ? inner : value) as Record<string, unknown>;
    const out: Secrets = {};
    for (const key of ['accessToken', 'idToken', 'refreshToken', 'accessTokenExpiresAt', 'obtainedAt'] as const) {
      if (typeof secrets[key] === 'string') out[key] = secrets[key];
    }
    const dk = secrets.deviceKey as { privateKey?: unknown; publicKey?: unknown } | undefined;
    if (dk && typeof dk.privateKey === 'string' && typeof dk.publicKey === 'string') out.deviceKey = { privateKey: dk.privateKey, publicKey: dk.publicKey };
    return out;
  } catch {
    return undefined;
  }
}

/**
 * Secrets in the OS keychain: one entry per profile, service `hoop`, account = its key, the
 * password a JSON document.
 * @see https://www.npmjs.com/package/@napi-rs/keyring
 */
export class KeychainSecretStore implements SecretStore {
  readonly kind = 'keychain' as const;

  constructor(readonly factory: KeyringFactory) {}

  describe(key: string): string {
    return `the OS keychain (service "${KEYCHAIN_SERVICE}", account "${key}")`;
  }

  async read(key: string): Promise<Secrets | undefined> {
    try {
      return parseSecrets(this.factory(KEYCHAIN_SERVICE, key).getPassword());
    } catch (err) {
      throw keychainError('read', err);
    }
  }

  async write(key: string, secrets: Secrets): Promise<void> {
    try {
      this.factory(KEYCHAIN_SERVICE, key).setPassword(JSON.stringify(secrets));
    } catch (err) {
      throw keychainError('write to', err);
    }
  }

  async delete(key: string): Promise<boolean> {
    try {
      return this.factory(KEYCHAIN_SERVICE, key).deletePassword();
    } catch {
      return false;
    }
  }
}

function keychainError(what: string, err: unknown): HoopError {
  return new HoopError(ErrorCode.CONFIG_INVALID, `cannot ${what} the OS keychain: ${describeError(err)}`, {
    hint: 'unlock the keychain, or set HOOP_TOKEN_STORE=file to keep tokens in a 0600 file, then run `hoop login` again',
    cause: err,
  });
}

/**
 * Secrets in `<dir>/tokens/<first 16 hex digits of sha256(key)>.json`, mode 0600, directory 0700.
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/functions/chmod.html
 */
export class FileSecretStore implements SecretStore {
  readonly kind = 'file' as const;
  /** The `tokens` directory. */
  readonly dir: string;

  constructor(configDir: string) {
    this.dir = join(configDir, 'tokens');
  }

  /** The file holding the secrets of `key`. */
  fileOf(key: string): string {
    return join(this.dir, `${createHash('sha256').update(key).digest('hex').slice(0, 16)}.json`);
  }

  describe(key: string): string {
    return `${this.fileOf(key)} (mode 0600)`;
  }

  async read(key: string): Promise<Secrets | undefined> {
    await checkPrivateDir(this.dir);
    return parseSecrets(await readOptionalFile(this.fileOf(key)));
  }

  async write(key: string, secrets: Secrets): Promise<void> {
    await writePrivateFile(this.fileOf(key), `${JSON.stringify({ key, secrets }, null, 2)}\n`);
  }

  async delete(key: string): Promise<boolean> {
    const file = this.fileOf(key);
    const existed = (await readOptionalFile(file)) !== undefined;
    await rm(file, { force: true });
    return existed;
  }
}

/** Options of {@link storeOf} and {@link writeSecrets}. @see https://www.npmjs.com/package/@napi-rs/keyring */
export interface SecretStoreOptions {
  env: NodeJS.ProcessEnv;
  configDir: string;
  /** The keychain to use (default: `@napi-rs/keyring`). */
  keyring?: KeyringFactory | undefined;
}

/**
 * The store of kind `kind` (where a profile says its secrets are).
 * @see https://www.npmjs.com/package/@napi-rs/keyring
 */
export async function storeOf(kind: StoreKind, options: SecretStoreOptions): Promise<SecretStore> {
  if (kind === 'file') return new FileSecretStore(options.configDir);
  const factory = options.keyring ?? (await loadKeyring());
  if (!factory) {
    throw new HoopError(ErrorCode.CONFIG_INVALID, 'the OS keychain module cannot load on this platform', {
      hint: 'set HOOP_TOKEN_STORE=file and run `hoop login` again',
    });
  }
  return new KeychainSecretStore(factory);
}

/** Where {@link writeSecrets} put the secrets, and why not in the keychain if it did not. @see https://www.npmjs.com/package/@napi-rs/keyring */
export interface WrittenSecrets {
  store: SecretStore;
  /** Set when the file was used: `HOOP_TOKEN_STORE=file`, or what the keychain said. */
  fallbackReason?: string;
}

/**
 * Writes `secrets` of `key` to the keychain, or to the file when `HOOP_TOKEN_STORE=file` or
 * the keychain refuses (`HOOP_TOKEN_STORE=keychain` makes that refusal an error).
 * @see https://www.npmjs.com/package/@napi-rs/keyring
 */
export async function writeSecrets(key: string, secrets: Secrets, options: SecretStoreOptions): Promise<WrittenSecrets> {
  const wanted = options.env.HOOP_TOKEN_STORE?.trim().toLowerCase();
  if (wanted && wanted !== 'file' && wanted !== 'keychain' && wanted !== 'auto') {
    throw new HoopError(ErrorCode.USAGE, `HOOP_TOKEN_STORE must be "keychain", "file" or "auto", not "${options.env.HOOP_TOKEN_STORE}"`);
  }
  if (wanted === 'file') {
    const store = new FileSecretStore(options.configDir);
    await store.write(key, secrets);
    return { store, fallbackReason: 'HOOP_TOKEN_STORE=file' };
  }
  let reason: string;
  const factory = options.keyring ?? (await loadKeyring());
  if (factory) {
    const keychain = new KeychainSecretStore(factory);
    try {
      await keychain.write(key, secrets);
      return { store: keychain };
    } catch (err) {
      if (wanted === 'keychain') throw err;
      reason = describeError((err as HoopError).cause ?? err);
    }
  } else {
    if (wanted === 'keychain') await storeOf('keychain', options);
    reason = 'the keychain module cannot load on this platform';
  }
  const store = new FileSecretStore(options.configDir);
  await store.write(key, secrets);
  return { store, fallbackReason: reason };
}
