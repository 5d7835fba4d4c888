/**
 * `hoop gateway init --url URL --issuer URL [--idp keycloak|entra|okta|google|generic] …`: what a
 * first real gateway needs, in one directory: a commented `gateway.yaml` for the identity provider
 * named, a TLS key and certificate for the URL's host (with a CA of its own to give people), or
 * the ones given; a starter policy repo (git), with a first connection when `--connection` names
 * one; then what to register at the provider and the commands that follow. The configuration is
 * loaded once written, so what init leaves is what the gateway starts on.
 *
 * @see ../gateway/config/setup-templates.ts
 * @see ../../docs/deployment.md
 */
import { access, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { ErrorCode, HoopError } from '../errors.js';
import { parseGatewayConfig } from '../gateway/config/config.js';
import { gatewayYaml, IDP_PROFILES, IDPS, nextSteps, starterPolicy, type FirstConnection, type Idp, type InitChoices } from '../gateway/config/setup-templates.js';
import type { CliIo } from '../io.js';
import { isLoopbackHost } from '../loopback.js';
import { writeFileAtomic } from '../durable-file.js';
import { ensurePrivateDir } from '../private-file.js';
import { createPolicyRepo } from '../policy/git-js.js';
import { loadPolicyDir } from '../policy/load.js';
import { mintCertificate } from '../x509.js';

/** The flags of `hoop gateway init`. */
interface InitFlags {
  url: string;
  issuer: string;
  idp: Idp;
  clientId?: string;
  clientSecret?: string;
  audience: string;
  dir: string;
  tlsCert?: string;
  tlsKey?: string;
  policyRepo?: string;
  connection?: string;
  group: string;
  force?: boolean;
}

/** The gateway's URL, checked: https with a host. */
function gatewayUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new HoopError(ErrorCode.USAGE, `--url ${JSON.stringify(text)} is not a URL`, { hint: 'the address people will use, e.g. https://hoop.acme.example:8443' });
  }
  if (url.protocol !== 'https:' || url.pathname !== '/' || url.search || url.hash) {
    throw new HoopError(ErrorCode.USAGE, `--url must be https://host[:port], not ${JSON.stringify(text)}`, { hint: 'people reach the gateway over TLS; init makes its certificate for this host' });
  }
  return url;
}

/** `NAME=postgres://user@host[:port]/database[?sslmode=…]`, as a first connection. */
function firstConnection(text: string): FirstConnection {
  const eq = text.indexOf('=');
  const name = text.slice(0, eq);
  let url: URL;
  try {
    url = new URL(text.slice(eq + 1));
  } catch {
    url = new URL('x:');
  }
  const sslmode = url.searchParams.get('sslmode') ?? 'prefer';
  if (eq < 1 || !/^[a-z0-9][a-z0-9-_.]{0,62}$/.test(name) || !/^postgres(ql)?:$/.test(url.protocol) || !url.hostname || !url.username || url.pathname.length < 2 || url.password) {
    throw new HoopError(ErrorCode.USAGE, `--connection must be NAME=postgres://user@host[:port]/database, without a password, not ${JSON.stringify(text)}`, {
      hint: 'e.g. --connection prod-db=postgres://hoop_gateway@db.internal:5432/app?sslmode=verify-full (the password goes in an environment variable of the gateway host)',
    });
  }
  if (!['disable', 'prefer', 'require', 'verify-full'].includes(sslmode)) throw new HoopError(ErrorCode.USAGE, `sslmode=${sslmode}: hoop takes disable, prefer, require or verify-full`);
  return {
    name,
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: Number(url.port || 5432),
    database: decodeURIComponent(url.pathname.slice(1)),
    user: decodeURIComponent(url.username),
    tlsMode: sslmode as FirstConnection['tlsMode'],
    passwordVariable: `HOOP_DB_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_PASSWORD`,
  };
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
async function tlsFiles(flags: InitFlags, dir: string, host: string): Promise<{ cert: string; key: string; ca?: string }> {
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

/** Builds `hoop gateway init`. */
export function gatewayInitCommand(io: CliIo): Command {
  return new Command('init')
    .description('write what a first real gateway needs: gateway.yaml for your identity provider, a TLS certificate, a starter policy repo; print what to register at the provider')
    .requiredOption('--url <url>', 'the address people reach the gateway at, e.g. https://hoop.acme.example:8443')
    .requiredOption('--issuer <url>', "your identity provider's issuer URL (its OpenID discovery is at <issuer>/.well-known/openid-configuration)")
    .addOption(new Option('--idp <provider>', 'your identity provider: its settings and what to register there').choices([...IDPS]).default('generic'))
    .option('--client-id <id>', 'the client registered for hoop at the provider (default hoop-cli; Entra ID and Google give their own)')
    .option('--client-secret <secret>', "the client secret Google gives a desktop app's client (not a secret: it ships with every copy of the app)")
    .option('--audience <aud>', 'the audience of the access tokens the gateway takes (Keycloak, Okta, others)', 'hoop')
    .option('--dir <dir>', 'where to write gateway.yaml, tls/, data/ and policy-repo/', '.')
    .option('--tls-cert <file>', 'use this certificate (PEM, with its chain) instead of making one')
    .option('--tls-key <file>', "that certificate's key (PEM)")
    .option('--policy-repo <repo>', 'use this config repo (URL or path) instead of making a starter one')
    .option('--connection <name=url>', 'a first connection for the starter policy: NAME=postgres://user@host[:port]/database[?sslmode=verify-full]')
    .option('--group <group>', 'the group whose people may read every connection in the starter policy', 'hoop-users')
    .option('--force', 'write over files that exist')
    .action(async (flags: InitFlags) => {
      const url = gatewayUrl(flags.url);
      const profile = IDP_PROFILES[flags.idp];
      if (profile.needsClientId && !flags.clientId) {
        throw new HoopError(ErrorCode.USAGE, `${profile.title} names the client: pass --client-id`, {
          hint: `register the client first (docs/deployment.md#${profile.recipe}), then run init with its id`,
        });
      }
      if (profile.clientSecret && !flags.clientSecret) {
        throw new HoopError(ErrorCode.USAGE, `${profile.title} requires the client secret of a desktop app's client: pass --client-secret`, { hint: `docs/deployment.md#${profile.recipe}` });
      }
      const issuer = flags.issuer.replace(/\/$/, '');
      const issuerUrl = new URL(issuer);
      if (issuerUrl.protocol !== 'https:' && !(issuerUrl.protocol === 'http:' && isLoopbackHost(issuerUrl.hostname))) throw new HoopError(ErrorCode.USAGE, '--issuer must be an https URL');
      const dir = resolve(io.cwd, flags.dir);
      await mkdir(dir, { recursive: true });
      await ownDir(dir);
      const config = join(dir, 'gateway.yaml');
      await fresh(config, flags.force);
      const host = url.hostname.replace(/^\[|\]$/g, '');
      const tls = await tlsFiles(flags, dir, host);
      const dataDir = join(dir, 'data');
      await ensurePrivateDir(dataDir, NOT_MADE_HERE);
      const choices: InitChoices = {
        url,
        idp: flags.idp,
        issuer,
        clientId: flags.clientId ?? 'hoop-cli',
        ...(profile.clientSecret && flags.clientSecret ? { clientSecret: flags.clientSecret } : {}),
        audience: flags.audience,
        tls: { cert: tls.cert, key: tls.key },
        dataDir,
        policyRepo: flags.policyRepo ?? join(dir, 'policy-repo'),
        group: flags.group,
        ...(flags.connection ? { connection: firstConnection(flags.connection) } : {}),
      };
      if (!flags.policyRepo) {
        // Its commits are the gateway's policy: a directory of another's, or one others may write to, is refused as tls/ is.
        await ensurePrivateDir(choices.policyRepo, NOT_MADE_HERE);
        await starterPolicyRepo(choices.policyRepo, starterPolicy(choices));
      }
      const text = gatewayYaml(choices, new Date());
      // What init leaves is what the gateway starts on: the file is loaded as the gateway loads it.
      await parseGatewayConfig(text, config, io.env);
      // 0600, and over what is there (--force) by a rename: never through a link planted at its name.
      await writeFileAtomic(config, text, dir);
      io.stdout.write(
        [
          `wrote ${config} (${profile.title}), ${tls.ca ? `${join(dir, 'tls')}/ (a CA of its own, ca.crt for people, and a certificate for ${host})` : `using ${tls.cert}`}, ${dataDir}/${flags.policyRepo ? '' : `, and the starter policy repo ${choices.policyRepo}`}`,
          ...nextSteps(choices, { config, ...(tls.ca ? { ca: tls.ca } : {}) }),
          '',
        ].join('\n'),
      );
    });
}
