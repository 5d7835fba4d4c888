/**
 * The embedded gateway store on a real file system: atomic 0600 files in a 0700 directory,
 * serialized writes, a lock against a second gateway process, clear errors for corrupt state;
 * and the validation of device keys and names.
 */
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src/errors.js';
import { FileGatewayStore, deviceFingerprint, parseDeviceName, parseDevicePublicKey } from '../../src/gateway/store/store.js';
import { thrown } from '../harness/thrown.js';

let root: string;
let n = 0;
const fresh = (): string => join(root, `store-${++n}`);
/** What the promise `fn` returns rejects with (undefined when it resolves). */
const rejected = (fn: () => Promise<unknown>): Promise<unknown> =>
  fn().then(
    () => undefined,
    (e: unknown) => e,
  );
const alice = { issuer: 'https://idp.example.com', subject: 'alice' };

function device(name = 'laptop'): { publicKey: string; fingerprint: string; name: string } {
  const pem = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return { ...parseDevicePublicKey(pem), name };
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'hoop-store-'));
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('device keys and names', () => {
  it('fingerprints like OpenSSH: SHA256: and unpadded base64', () => {
    expect(deviceFingerprint(new Uint8Array(32))).toBe('SHA256:Zmh6rfhivXdsj8GLjp+OIAiXFIVu4jOzkCpZHQ1fKSU');
  });

  it('re-encodes a valid key and names it by fingerprint', () => {
    const { publicKey } = generateKeyPairSync('ed25519');
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const parsed = parseDevicePublicKey(`\n  ${pem.replace(/\n/g, '\r\n')}  \n`);
    expect(parsed.publicKey).toBe(pem);
    expect(parsed.fingerprint).toBe(deviceFingerprint(Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url')));
  });

  it('refuses names that are empty, too long, or hold control characters', () => {
    expect(parseDeviceName('  alice@laptop ')).toBe('alice@laptop');
    expect(parseDeviceName('é'.repeat(128))).toHaveLength(128);
    for (const bad of [undefined, 3, '', '   ', 'x'.repeat(129), 'a\nb', 'a\u200bb']) {
      const err = thrown(() => parseDeviceName(bad));
      expect(err, JSON.stringify(bad)).toMatchObject({ code: ErrorCode.USAGE });
    }
  });
});

describe('FileGatewayStore', () => {
  it('creates its directory 0700 (tightening an existing one) and writes 0600 files, leaving no temporary file', async () => {
    const dir = fresh();
    await mkdir(dir, { mode: 0o755 });
    await chmod(dir, 0o755);
    const store = await FileGatewayStore.open(dir);
    try {
      expect((await stat(dir)).mode & 0o777).toBe(0o700);
      const { device: d, created } = await store.registerDevice(alice, device());
      expect(created).toBe(true);
      expect((await stat(join(dir, 'devices.json'))).mode & 0o777).toBe(0o600);
      expect((await readdir(dir)).sort()).toEqual(['devices.json', 'gateway.lock']);
      expect(await store.getDevice(d.deviceId)).toEqual(d);
      expect(await store.getDevice('nope')).toBeUndefined();
    } finally {
      await store.close();
    }
    expect(await readdir(dir)).toEqual(['devices.json']);
  });

  it('serializes concurrent writes: none is lost; the same key twice is one device', async () => {
    const dir = fresh();
    const store = await FileGatewayStore.open(dir);
    const devices = Array.from({ length: 40 }, (_, i) => device(`d${i}`));
    const results = await Promise.all([...devices, devices[0]!, devices[1]!].map((d, i) => store.registerDevice({ ...alice, subject: i % 2 ? 'alice' : 'bob' }, d)));
    expect(results.filter((r) => r.created)).toHaveLength(40);
    await store.close();
    const reopened = await FileGatewayStore.open(dir);
    try {
      const all = [...(await reopened.listDevices(alice)), ...(await reopened.listDevices({ ...alice, subject: 'bob' }))];
      expect(all.map((d) => d.fingerprint).sort()).toEqual(devices.map((d) => d.fingerprint).sort());
      expect(await reopened.listDevices({ issuer: 'https://other.example.com', subject: 'alice' })).toEqual([]);
    } finally {
      await reopened.close();
    }
  });

  it('one process, one store per directory; a second gateway process is refused; a stale lock is taken over', async () => {
    const dir = fresh();
    const store = await FileGatewayStore.open(dir);
    const again = await rejected(() => FileGatewayStore.open(dir));
    expect(again).toMatchObject({ code: ErrorCode.CONFIG_INVALID });
    expect((again as Error).message).toContain('already open in this process');
    await store.close();

    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
    try {
      await writeFile(join(dir, 'gateway.lock'), `${other.pid}\n`);
      const busy = await rejected(() => FileGatewayStore.open(dir));
      expect((busy as Error).message).toContain(`in use by another gateway process (pid ${other.pid})`);
    } finally {
      other.kill();
      await new Promise((r) => other.once('exit', r));
    }
    const taken = await FileGatewayStore.open(dir);
    await taken.close();
  });

  it('says what is wrong with a corrupt or foreign devices file, and a data directory it cannot use', async () => {
    for (const [content, message] of [
      ['{not json', 'is not valid JSON'],
      ['{"version":2,"devices":[]}', 'is not a hoop devices file'],
      ['{"version":1,"devices":[{"deviceId":1}]}', 'is not a hoop devices file'],
    ]) {
      const dir = fresh();
      await mkdir(dir);
      await writeFile(join(dir, 'devices.json'), content!);
      const err = await rejected(() => FileGatewayStore.open(dir));
      expect(err).toMatchObject({ code: ErrorCode.CONFIG_INVALID });
      expect((err as Error).message).toContain(message);
      expect(await readdir(dir)).toEqual(['devices.json']);
    }
    const file = join(root, 'a-file');
    await writeFile(file, '');
    const err = await rejected(() => FileGatewayStore.open(file));
    expect((err as Error).message).toContain(`cannot use the data directory ${file}`);
    expect(JSON.parse(await readFile(file, 'utf8').then((t) => (t === '' ? '{}' : t)))).toEqual({});
  });
});
