/**
 * Profiles and secret stores: 0600 files in 0700 directories, atomic replacement, one profile
 * per gateway origin, the keychain fallback and HOOP_TOKEN_STORE.
 */
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configDir, gatewayOrigin } from '../../src/auth/paths.js';
import { ProfileStore, type Profile } from '../../src/auth/profiles.js';
import { FileSecretStore, KeychainSecretStore, writeSecrets, type KeyringEntry, type KeyringFactory } from '../../src/auth/secret-store.js';
import { ErrorCode, HoopError } from '../../src/errors.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hoop-auth-store-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const profile = (gateway: string, subject: string): Profile => ({
  gateway,
  issuer: 'https://idp.example.com',
  clientId: 'hoop-cli',
  tokenType: 'access',
  subject,
  kind: 'user',
  store: 'file',
  loggedInAt: new Date(0).toISOString(),
});

/** An in-memory keychain: no OS keychain answers on this machine, so a stand-in. */
function memoryKeyring(): { factory: KeyringFactory; items: Map<string, string> } {
  const items = new Map<string, string>();
  const factory: KeyringFactory = (service, account): KeyringEntry => ({
    getPassword: () => items.get(`${service}/${account}`) ?? null,
    setPassword: (p) => void items.set(`${service}/${account}`, p),
    deletePassword: () => items.delete(`${service}/${account}`),
  });
  return { factory, items };
}

const failingKeyring: KeyringFactory = () => ({
  getPassword: () => null,
  setPassword: () => {
    throw new Error("Couldn't access platform storage: AccessDenied");
  },
  deletePassword: () => false,
});

describe('configDir and gatewayOrigin', () => {
  it('prefers HOOP_CONFIG_DIR, then an absolute XDG_CONFIG_HOME, then ~/.config', () => {
    expect(configDir({ HOOP_CONFIG_DIR: 'conf', XDG_CONFIG_HOME: '/x' }, '/work')).toBe('/work/conf');
    expect(configDir({ XDG_CONFIG_HOME: '/x' })).toBe('/x/hoop');
    expect(configDir({ XDG_CONFIG_HOME: 'relative', HOME: '/home/u' })).toBe('/home/u/.config/hoop');
    expect(configDir({ HOME: '/home/u' })).toBe('/home/u/.config/hoop');
  });

  it('keys profiles by origin and refuses plain http off loopback', () => {
    expect(gatewayOrigin('https://GW.example.com:443/prefix/')).toBe('https://gw.example.com');
    expect(gatewayOrigin('http://127.0.0.1:8080')).toBe('http://127.0.0.1:8080');
    expect(() => gatewayOrigin('http://gw.example.com')).toThrow(/TLS is required/);
  });
});

describe('ProfileStore', () => {
  it('keeps one profile per gateway, 0600, and a second gateway never overwrites the first', async () => {
    const store = new ProfileStore(join(dir, 'conf'));
    expect(await store.read()).toEqual({ profiles: {} });
    await store.put('https://a.example', profile('https://a.example', 'alice'));
    await store.put('https://b.example', profile('https://b.example', 'bob'));
    const file = await store.read();
    expect(Object.keys(file.profiles).sort()).toEqual(['https://a.example', 'https://b.example']);
    expect(file.current).toBe('https://b.example');
    expect((await store.get('https://a.example'))?.subject).toBe('alice');
    expect((await stat(store.file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'conf'))).mode & 0o777).toBe(0o700);
    // No temporary files left behind by the atomic writes.
    expect(await readdir(join(dir, 'conf'))).toEqual(['profiles.json']);

    await store.remove('https://b.example');
    expect((await store.current())?.origin).toBe('https://a.example');
    await store.remove('https://a.example');
    expect(await store.current()).toBeUndefined();
  });

  it('says which file is damaged and how to recover', async () => {
    const store = new ProfileStore(dir);
    await writeFile(store.file, '{not json');
    const err = await store.read().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HoopError);
    expect((err as HoopError).code).toBe(ErrorCode.CONFIG_INVALID);
    expect((err as HoopError).message).toContain(store.file);
    expect((err as HoopError).hint).toContain('hoop login');
  });
});

describe('secret stores', () => {
  it('FileSecretStore writes 0600 files in a 0700 tokens directory, one per origin', async () => {
    const store = new FileSecretStore(dir);
    await store.write('https://a.example', { accessToken: 'AAA', refreshToken: 'RRR' });
    await store.write('https://b.example', { accessToken: 'BBB' });
    const file = store.fileOf('https://a.example');
    expect(file).toMatch(/tokens\/[0-9a-f]{16}\.json$/);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(store.dir)).mode & 0o777).toBe(0o700);
    expect(await store.read('https://a.example')).toEqual({ accessToken: 'AAA', refreshToken: 'RRR' });
    expect(await store.read('https://b.example')).toEqual({ accessToken: 'BBB' });
    expect(store.describe('https://a.example')).toBe(`${file} (mode 0600)`);
    expect(await store.delete('https://a.example')).toBe(true);
    expect(await store.delete('https://a.example')).toBe(false);
    expect(await store.read('https://a.example')).toBeUndefined();
  });

  it('KeychainSecretStore keeps one JSON entry per origin under service "hoop"', async () => {
    const { factory, items } = memoryKeyring();
    const store = new KeychainSecretStore(factory);
    await store.write('https://a.example', { idToken: 'III' });
    expect([...items.keys()]).toEqual(['hoop/https://a.example']);
    expect(await store.read('https://a.example')).toEqual({ idToken: 'III' });
    expect(store.describe('https://a.example')).toContain('service "hoop"');
    expect(await store.delete('https://a.example')).toBe(true);
  });

  it('writeSecrets uses the keychain when it answers', async () => {
    const { factory } = memoryKeyring();
    const written = await writeSecrets('https://a.example', { accessToken: 'x' }, { env: {}, configDir: dir, keyring: factory });
    expect(written.store.kind).toBe('keychain');
    expect(written.fallbackReason).toBeUndefined();
    await expect(readdir(dir)).resolves.toEqual([]);
  });

  it('writeSecrets falls back to the file, saying why, when the keychain refuses', async () => {
    const written = await writeSecrets('https://a.example', { accessToken: 'x' }, { env: {}, configDir: dir, keyring: failingKeyring });
    expect(written.store.kind).toBe('file');
    expect(written.fallbackReason).toContain("Couldn't access platform storage");
    expect(await new FileSecretStore(dir).read('https://a.example')).toEqual({ accessToken: 'x' });
  });

  it('HOOP_TOKEN_STORE=file skips the keychain; =keychain makes its refusal an error', async () => {
    const { factory, items } = memoryKeyring();
    const forced = await writeSecrets('https://a.example', { accessToken: 'x' }, { env: { HOOP_TOKEN_STORE: 'file' }, configDir: dir, keyring: factory });
    expect(forced.store.kind).toBe('file');
    expect(items.size).toBe(0);
    const err = await writeSecrets('https://a.example', {}, { env: { HOOP_TOKEN_STORE: 'keychain' }, configDir: dir, keyring: failingKeyring }).catch((e: unknown) => e);
    expect((err as HoopError).code).toBe(ErrorCode.CONFIG_INVALID);
    expect((err as HoopError).hint).toContain('HOOP_TOKEN_STORE=file');
    await expect(writeSecrets('https://a.example', {}, { env: { HOOP_TOKEN_STORE: 'vault' }, configDir: dir })).rejects.toThrow(/HOOP_TOKEN_STORE/);
  });

  it('never writes a secret anywhere but the secret file', async () => {
    const profiles = new ProfileStore(dir);
    await writeSecrets('https://a.example', { accessToken: 'SECRET-ACCESS', refreshToken: 'SECRET-REFRESH' }, { env: { HOOP_TOKEN_STORE: 'file' }, configDir: dir });
    await profiles.put('https://a.example', profile('https://a.example', 'alice'));
    expect(await readFile(profiles.file, 'utf8')).not.toContain('SECRET');
  });
});
