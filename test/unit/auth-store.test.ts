/**
 * Profiles and secret stores: 0600 files in 0700 directories, atomic replacement, one profile
 * per identity per gateway (an older hoop's file, one per origin, read as it is), finding one by
 * name, the keychain fallback and HOOP_TOKEN_STORE.
 */
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configDir, gatewayOrigin } from '../../src/auth/paths.js';
import { logout } from '../../src/auth/logout.js';
import { findProfile, ProfileStore, secretsKeyOf, type Profile, type ProfilesFile } from '../../src/auth/profiles.js';
import { resolveTokenProvider } from '../../src/auth/token-provider.js';
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
  it('keeps one profile per identity per gateway, 0600: another identity or gateway never overwrites one', async () => {
    const store = new ProfileStore(join(dir, 'conf'));
    expect(await store.read()).toEqual({ profiles: {} });
    expect(await store.put(profile('https://a.example', 'alice'))).toBe('https://a.example#alice');
    await store.put(profile('https://b.example', 'carol'));
    await store.put(profile('https://a.example', 'bob'));
    const file = await store.read();
    expect(Object.keys(file.profiles).sort()).toEqual(['https://a.example#alice', 'https://a.example#bob', 'https://b.example#carol']);
    expect(file.current).toBe('https://a.example#bob');
    expect((await store.get('https://a.example#alice'))?.subject).toBe('alice');
    expect((await store.atGateway('https://b.example'))?.profile.subject).toBe('carol');
    expect((await stat(store.file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'conf'))).mode & 0o777).toBe(0o700);
    // No temporary files left behind by the atomic writes.
    expect(await readdir(join(dir, 'conf'))).toEqual(['profiles.json']);

    await store.use('https://a.example#alice');
    await store.use('https://b.example#carol');
    // At a gateway not current, the identity last made current there is used.
    expect((await store.atGateway('https://a.example'))?.key).toBe('https://a.example#alice');
    await store.remove('https://b.example#carol');
    expect((await store.current())?.key).toBe('https://a.example#alice');
    await store.remove('https://a.example#alice');
    expect((await store.current())?.key).toBe('https://a.example#bob');
    await store.remove('https://a.example#bob');
    expect(await store.current()).toBeUndefined();
  });

  it("reads an older hoop's file, one profile per origin: rekeyed per identity, its secrets left where they are", async () => {
    const store = new ProfileStore(dir);
    await writeFile(
      store.file,
      JSON.stringify({ current: 'https://a.example', profiles: { 'https://a.example': profile('https://a.example', 'alice'), 'https://b.example': profile('https://b.example', 'bob') } }),
    );
    await new FileSecretStore(dir).write('https://a.example', { accessToken: 'ALICE', accessTokenExpiresAt: new Date(Date.now() + 600_000).toISOString() });
    const file = await store.read();
    expect(Object.keys(file.profiles).sort()).toEqual(['https://a.example#alice', 'https://b.example#bob']);
    expect(file.current).toBe('https://a.example#alice');
    const alice = file.profiles['https://a.example#alice']!;
    expect(secretsKeyOf(alice)).toBe('https://a.example');
    expect(await new FileSecretStore(dir).read(secretsKeyOf(alice))).toMatchObject({ accessToken: 'ALICE' });

    // The old login still works as it was: no new login, no refresh.
    const provider = await resolveTokenProvider({ env: { HOOP_CONFIG_DIR: dir }, cwd: dir });
    expect((await provider.current()).token).toBe('ALICE');
    provider.close();

    // Another identity at that gateway is added beside it; the next write keeps the new shape.
    await store.put(profile('https://a.example', 'dana'));
    const written = JSON.parse(await readFile(store.file, 'utf8')) as ProfilesFile;
    expect(Object.keys(written.profiles).sort()).toEqual(['https://a.example#alice', 'https://a.example#dana', 'https://b.example#bob']);
    expect(written.profiles['https://a.example#alice']?.secretsKey).toBe('https://a.example');
    expect(written.profiles['https://a.example#dana']?.secretsKey).toBeUndefined();
    expect(await store.read()).toEqual(written);
  });

  it("an older hoop's login kept in the keychain keeps working too", async () => {
    const { factory, items } = memoryKeyring();
    const store = new ProfileStore(dir);
    await writeFile(store.file, JSON.stringify({ current: 'https://a.example', profiles: { 'https://a.example': { ...profile('https://a.example', 'alice'), store: 'keychain' } } }));
    await new KeychainSecretStore(factory).write('https://a.example', { accessToken: 'ALICE', accessTokenExpiresAt: new Date(Date.now() + 600_000).toISOString() });
    const provider = await resolveTokenProvider({ env: { HOOP_CONFIG_DIR: dir }, cwd: dir, keyring: factory });
    expect((await provider.current()).token).toBe('ALICE');
    expect(provider.storeDescription).toContain('account "https://a.example"');
    provider.close();
    expect([...items.keys()]).toEqual(['hoop/https://a.example']);
  });

  it("logout forgets one identity (an older hoop's secrets too) and leaves the other current", async () => {
    const store = new ProfileStore(dir);
    await writeFile(store.file, JSON.stringify({ current: 'https://a.example', profiles: { 'https://a.example': profile('https://a.example', 'alice') } }));
    const secrets = new FileSecretStore(dir);
    await secrets.write('https://a.example', { accessToken: 'ALICE' });
    const bob = await store.put(profile('https://a.example', 'bob'));
    await secrets.write(bob, { accessToken: 'BOB' });
    const out = await logout({ profile: 'alice' }, { env: { HOOP_CONFIG_DIR: dir }, cwd: dir });
    expect(out.results).toEqual([{ origin: 'https://a.example', subject: 'alice', found: true, revocation: 'no-refresh-token' }]);
    expect(await secrets.read('https://a.example')).toBeUndefined();
    expect(await secrets.read(bob)).toEqual({ accessToken: 'BOB' });
    expect(Object.keys((await store.read()).profiles)).toEqual([bob]);
    const again = await logout({}, { env: { HOOP_CONFIG_DIR: dir }, cwd: dir });
    expect(again.results.map((r) => r.subject)).toEqual(['bob']);
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

describe('findProfile', () => {
  const file: ProfilesFile = {
    current: 'https://a.example#alice',
    profiles: {
      'https://a.example#alice': { ...profile('https://a.example', 'alice'), email: 'Alice@Example.com' },
      'https://a.example#bob': profile('https://a.example', 'bob'),
      'https://b.example#alice': profile('https://b.example', 'alice'),
    },
  };

  it('finds a profile by subject, email (any case) or key, within a gateway when one is given', () => {
    expect(findProfile(file, 'bob').key).toBe('https://a.example#bob');
    expect(findProfile(file, 'alice@example.com').key).toBe('https://a.example#alice');
    expect(findProfile(file, 'https://b.example#alice').key).toBe('https://b.example#alice');
    expect(findProfile(file, 'alice', 'https://b.example').key).toBe('https://b.example#alice');
  });

  it('a name that picks several, or none, is a usage error saying what to pass, with the near name', () => {
    const several = (() => {
      try {
        return findProfile(file, 'alice');
      } catch (err) {
        return err as HoopError;
      }
    })() as HoopError;
    expect(several).toBeInstanceOf(HoopError);
    expect(several.exitCode).toBe(64);
    expect(several.message).toBe('"alice" names 2 profiles: alice at https://a.example, alice at https://b.example');
    expect(several.hint).toContain('--gateway');
    expect(several.hint).toContain('https://b.example#alice');
    expect(() => findProfile(file, 'bobb')).toThrow('no profile "bobb": did you mean "bob"?');
    expect(() => findProfile(file, 'bob', 'https://b.example')).toThrow('no profile "bob" at https://b.example');
    expect(() => findProfile(file, 'zed')).toThrow(/^no profile "zed"$/);
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
    await profiles.put(profile('https://a.example', 'alice'));
    expect(await readFile(profiles.file, 'utf8')).not.toContain('SECRET');
  });
});
