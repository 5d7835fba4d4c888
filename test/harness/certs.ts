/**
 * A throwaway test PKI made with the real `openssl` CLI: an EC P-256 CA and leaf certificates
 * with subjectAltNames and the serverAuth (and clientAuth) extended key usage, in a temp dir.
 *
 * The directory is readable by other users (a PostgreSQL harness running the server as the
 * `postgres` user copies a key into its own data dir); private keys are mode 0600.
 *
 * @see https://docs.openssl.org/3.0/man1/openssl-req/
 * @see https://docs.openssl.org/3.0/man1/openssl-x509/
 * @see https://www.rfc-editor.org/rfc/rfc5280#section-4.2.1.6 (subjectAltName)
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A leaf certificate issued by a {@link TestPki}. @see https://www.rfc-editor.org/rfc/rfc5280 */
export interface IssuedCert {
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
}

/** A test certificate authority in a temp dir. @see https://www.rfc-editor.org/rfc/rfc5280 */
export interface TestPki {
  /** The temp dir holding every file (mode 0755). */
  dir: string;
  /** The CA certificate (PEM). */
  caFile: string;
  /** The CA certificate's PEM bytes. */
  ca: Buffer;
  /**
   * Issues a leaf certificate for `name` (the CN and file stem: letters, digits, `.`, `_`, `-`)
   * with subjectAltNames like `['IP:127.0.0.1', 'DNS:localhost']`.
   */
  issue(name: string, sans: string[]): Promise<IssuedCert>;
  /** Removes the directory. */
  cleanup(): Promise<void>;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  try {
    await run('openssl', args, { cwd: dir, env: { ...process.env, OPENSSL_CONF: join(dir, 'openssl.cnf') } });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`openssl ${args[0]} failed: ${stderr.trim() || String(err)}`, { cause: err });
  }
}

async function newKey(dir: string, file: string): Promise<void> {
  await openssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file]);
  await chmod(join(dir, file), 0o600);
}

const serial = (): string => `0x${randomBytes(16).toString('hex').replace(/^./, '1')}`;

/**
 * Creates a CA (EC P-256, `basicConstraints=critical,CA:TRUE`, keyCertSign) valid for 30 days
 * in a new temp dir. Call {@link TestPki.cleanup} when done.
 * @see https://docs.openssl.org/3.0/man5/x509v3_config/
 */
export async function createTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), 'hoop-pki-'));
  await chmod(dir, 0o755);
  await writeFile(
    join(dir, 'openssl.cnf'),
    [
      '[req]',
      'distinguished_name = dn',
      'prompt = no',
      '[dn]',
      'CN = hoop test CA',
      '[v3_ca]',
      'basicConstraints = critical, CA:TRUE',
      'keyUsage = critical, keyCertSign, cRLSign',
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid:always',
      '',
    ].join('\n'),
  );
  await newKey(dir, 'ca.key');
  await openssl(dir, ['req', '-x509', '-new', '-config', 'openssl.cnf', '-extensions', 'v3_ca', '-key', 'ca.key', '-sha256', '-days', '30', '-set_serial', serial(), '-out', 'ca.crt']);
  const caFile = join(dir, 'ca.crt');
  const ca = await readFile(caFile);

  const issue = async (name: string, sans: string[]): Promise<IssuedCert> => {
    if (!/^[A-Za-z0-9._-]+$/.test(name) || name.startsWith('.')) throw new Error(`invalid certificate name ${JSON.stringify(name)}`);
    if (name === 'ca') throw new Error('the name "ca" is taken by the CA');
    if (sans.length === 0) throw new Error('a leaf certificate needs at least one subjectAltName');
    for (const san of sans) {
      if (!/^(IP|DNS|email|URI):[^,\s]+$/.test(san)) throw new Error(`invalid subjectAltName ${JSON.stringify(san)}`);
    }
    const extFile = `${name}.ext`;
    await writeFile(
      join(dir, extFile),
      [
        '[leaf]',
        'basicConstraints = critical, CA:FALSE',
        'keyUsage = critical, digitalSignature',
        'extendedKeyUsage = serverAuth, clientAuth',
        `subjectAltName = ${sans.join(', ')}`,
        'subjectKeyIdentifier = hash',
        'authorityKeyIdentifier = keyid',
        '',
      ].join('\n'),
    );
    const keyFile = join(dir, `${name}.key`);
    const certFile = join(dir, `${name}.crt`);
    await newKey(dir, `${name}.key`);
    await openssl(dir, ['req', '-new', '-config', 'openssl.cnf', '-key', `${name}.key`, '-subj', `/CN=${name}`, '-out', `${name}.csr`]);
    await openssl(dir, [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-set_serial',
      serial(),
      '-days',
      '30',
      '-sha256',
      '-extfile',
      extFile,
      '-extensions',
      'leaf',
      '-out',
      `${name}.crt`,
    ]);
    await chmod(certFile, 0o644);
    return { certFile, keyFile, cert: await readFile(certFile), key: await readFile(keyFile) };
  };

  return {
    dir,
    caFile,
    ca,
    issue,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
