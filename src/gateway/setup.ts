/**
 * What `hoop gateway init` does on disk for a first real gateway, in one directory of the user's
 * own: a TLS key and certificate for the URL's host (with a CA of its own to give people), or the
 * ones given; the data directory; a starter policy repo (git), made once its files load as a
 * policy; then `gateway.yaml` (./config/setup-templates.ts), loaded as the gateway loads it before it is
 * written, so what init leaves is what the gateway starts on. Nothing is written over without
 * `force`, and never through a link planted at a name.
 *
 * @see ../../docs/deployment.md
 */
import { realClock } from '../clock.js';
import { access, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { writeFileAtomic } from '../durable-file.js';
import { ErrorCode, HoopError } from '../errors.js';
import { createPolicyRepo } from '../policy/git-js.js';
import { loadPolicyDir } from '../policy/load.js';
import { ensurePrivateDir } from '../private-file.js';
import { mintCertificate } from '../x509.js';
import { parseGatewayConfig } from './config/config.js';
import { gatewayYaml, type InitChoices, starterPolicy } from './config/setup-templates.js';

/** What init writes from: the choices but where its files go, which it decides in `dir`. */
export interface SetupOptions {
  /** The directory to write in (absolute); made when missing. */
  dir: string;
  choices: Omit<InitChoices, 'tls' | 'dataDir' | 'policyRepo'>;
  /** A config repo to use instead of making a starter one. */
  policyRepo?: string;
  /** A certificate (PEM, with its chain) and its key to use instead of making them. */
  tlsCert?: string;
  tlsKey?: string;
  /** Write over files that exist. */
  force?: boolean;
  /** More files of the directory, by name: private (0600), as gateway.yaml is written. */
  more?: Record<string, string>;
  env: NodeJS.ProcessEnv;
}

/** What init wrote: the configuration file, the choices it holds, and the TLS files (`ca`: the CA init made, for people, with a certificate for `host`). */
export interface WrittenGateway {
  config: string;
  choices: InitChoices;
  tls: { cert: string; key: string; ca?: string };
  host: string;
}

/** Writes a first gateway's files: see the module documentation. */
export async function writeFirstGateway(o: SetupOptions): Promise<WrittenGateway> {
  const dir = o.dir;
  await mkdir(dir, { recursive: true });
  await ownDir(dir);
  const config = join(dir, 'gateway.yaml');
  await fresh(config, o.force);
  const host = o.choices.url.hostname.replace(/^\[|\]$/g, '');
  const tls = await tlsFiles(o, dir, host);
  const dataDir = join(dir, 'data');
  await ensurePrivateDir(dataDir, NOT_MADE_HERE);
  const choices: InitChoices = { ...o.choices, tls: { cert: tls.cert, key: tls.key }, dataDir, policyRepo: o.policyRepo ?? join(dir, 'policy-repo') };
  if (!o.policyRepo) {
    // Its commits are the gateway's policy: a directory of another's, or one others may write to, is refused as tls/ is.
    await ensurePrivateDir(choices.policyRepo, NOT_MADE_HERE);
    await starterPolicyRepo(choices.policyRepo, starterPolicy(choices));
  }
  const text = gatewayYaml(choices, new Date(realClock.now()));
  // What init leaves is what the gateway starts on: the file is loaded as the gateway loads it.
  await parseGatewayConfig(text, config, o.env);
  // 0600, and over what is there (--force) by a rename: never through a link planted at its name.
  await writeFileAtomic(config, text, dir);
  for (const [name, more] of Object.entries(o.more ?? {})) {
    await fresh(join(dir, name), o.force);
    await writeFileAtomic(join(dir, name), more, dir);
  }
  return { config, choices, tls, host };
}

/** Refuses to write over `file` unless `force`. */
async function fresh(file: string, force: boolean | undefined): Promise<void> {
  if (force) return;
  const there = await access(file).then(
    () => true,
    () => false,
  );
  if (there) throw new HoopError(ErrorCode.USAGE, `${file} exists`, { hint: 'give another --dir, or --force to write over it' });
}

/**
 * The starter policy repo, made once its files load as a policy (the gateway's checks but its
 * secrets, which are only set where it runs): init never commits a policy the gateway refuses.
 */
async function starterPolicyRepo(dir: string, files: Record<string, string>): Promise<void> {
  const scratch = await mkdtemp(join(tmpdir(), 'hoop-init-'));
  try {
    for (const [name, text] of Object.entries(files)) {
      await mkdir(dirname(join(scratch, name)), { recursive: true });
      await writeFile(join(scratch, name), text);
    }
    await loadPolicyDir(scratch);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  await createPolicyRepo(dir, files, { name: 'hoop gateway init', email: 'hoop-gateway-init@localhost' }, 'The starter policy');
}

/** Refuses `dir` unless it is the user's and no one else may write to it (another could replace what init writes there). */
async function ownDir(dir: string): Promise<void> {
  const st = await stat(dir);
  const why =
    typeof process.getuid === 'function' && st.uid !== process.getuid()
      ? `it belongs to another user (uid ${st.uid})`
      : (st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0
        ? `others may write to it (mode ${(st.mode & 0o777).toString(8)})`
        : undefined;
  if (why) throw new HoopError(ErrorCode.CONFIG_INVALID, `hoop will not write the gateway's keys and policy in ${dir}: ${why}`, { hint: 'give a --dir of your own' });
}

/** What to do about a directory in --dir that init did not make and will not write through (a link to elsewhere, another's). */
const NOT_MADE_HERE = 'remove it (init makes tls/, data/ and policy-repo/ itself), or give another --dir';

/** The gateway's key and certificate: the ones given, or a CA of init's own and a certificate it issues for `host`. */
async function tlsFiles(flags: Pick<SetupOptions, 'tlsCert' | 'tlsKey' | 'force'>, dir: string, host: string): Promise<{ cert: string; key: string; ca?: string }> {
  if (flags.tlsCert || flags.tlsKey) {
    if (!flags.tlsCert || !flags.tlsKey) throw new HoopError(ErrorCode.USAGE, '--tls-cert and --tls-key go together');
    return { cert: resolve(flags.tlsCert), key: resolve(flags.tlsKey) };
  }
  const tls = join(dir, 'tls');
  await ensurePrivateDir(tls, NOT_MADE_HERE);
  const files = { ca: join(tls, 'ca.crt'), caKey: join(tls, 'ca.key'), cert: join(tls, 'gateway.crt'), key: join(tls, 'gateway.key') };
  for (const f of Object.values(files)) await fresh(f, flags.force);
  const ca = mintCertificate({ commonName: `hoop gateway CA (${host})`, ca: true, validDays: 3650 });
  const cert = mintCertificate({ commonName: host, altNames: [isIP(host) ? host : host.toLowerCase()], validDays: 397, issuer: ca });
  await writeFileAtomic(files.caKey, ca.key, tls);
  await writeFileAtomic(files.ca, ca.cert, tls);
  await writeFileAtomic(files.key, cert.key, tls);
  await writeFileAtomic(files.cert, cert.cert, tls);
  return { cert: files.cert, key: files.key, ca: files.ca };
}
