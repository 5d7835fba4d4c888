/**
 * The gateway's SSH host key: an Ed25519 key made at first start and kept in its data directory
 * (`ssh_host_ed25519_key`, mode 0600, OpenSSH format, as sshd keeps its own). `hoop connect`
 * pins its public half in the known_hosts file it writes.
 *
 * @see https://man.openbsd.org/sshd.8#FILES
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import ssh2 from '../common/ssh2-vendor.js';
import { newEd25519Key } from '../common/keys.js';

/** The key's file in the gateway's data directory. */
export const SSH_HOST_KEY_FILE = 'ssh_host_ed25519_key';

/** The gateway's host key: made on first use; `public` is its `ssh-ed25519 AAAA…` line. */
export async function gatewaySshHostKey(dataDir: string): Promise<{ private: string; public: string }> {
  const file = join(dataDir, SSH_HOST_KEY_FILE);
  let text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (text === undefined) {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const made = newEd25519Key('hoop gateway');
    // `wx`: two gateways starting on one data directory keep the first key.
    await writeFile(file, made.private, { mode: 0o600, flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
    text = await readFile(file, 'utf8');
  }
  const key = ssh2.utils.parseKey(text);
  if (key instanceof Error) throw new Error(`the gateway's SSH host key ${file} cannot be read: ${key.message}`);
  return { private: text, public: `${key.type} ${key.getPublicSSH().toString('base64')}` };
}
