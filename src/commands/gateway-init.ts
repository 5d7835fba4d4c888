/**
 * `hoop gateway init --url URL --issuer URL [--idp keycloak|entra|okta|google|generic] …`: what a
 * first real gateway needs, in one directory: a commented `gateway.yaml` for the identity provider
 * named, a TLS key and certificate for the URL's host (with a CA of its own to give people), or
 * the ones given; a starter policy repo (git), with a first connection when `--connection` names
 * one; then what to register at the provider and the commands that follow. What it writes, and
 * how, is ../gateway/setup.ts; the configuration is loaded once written, so what init leaves is
 * what the gateway starts on.
 *
 * @see ../gateway/config/setup-templates.ts
 * @see ../../docs/deployment.md
 */
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { ErrorCode, HoopError } from '../errors.js';
import { writeFirstGateway } from '../gateway/setup.js';
import { DEV_IDP_ISSUER, IDP_PROFILES, IDPS, nextSteps, type FirstConnection, type Idp } from '../gateway/config/setup-templates.js';
import { devUsersYaml } from '../demo/dev-users.js';
import type { CliIo } from '../io.js';
import { isLoopbackHost } from '../loopback.js';
import { parseListen } from '../gateway/config/config-schema.js';
import { printJson } from '../ui/output.js';

/** The flags of `hoop gateway init`. */
interface InitFlags {
  url: string;
  listen?: string;
  issuer?: string;
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
  json?: boolean;
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

/** `--listen host:port`, checked. */
function listenFlag(text: string): string {
  if (parseListen(text) === undefined)
    throw new HoopError(ErrorCode.USAGE, `--listen must be host:port, not ${JSON.stringify(text)}`, {
      hint: 'e.g. --listen 0.0.0.0:8443 (every interface) or --listen 127.0.0.1:8443 (this machine only)',
    });
  return text;
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
  // The database's certificate checked unless said otherwise (a database on this host has no network to cross).
  const sslmode = url.searchParams.get('sslmode') ?? (isLoopbackHost(url.hostname.replace(/^\[|\]$/g, '')) ? 'prefer' : 'verify-full');
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

/** Builds `hoop gateway init`. */
export function gatewayInitCommand(io: CliIo): Command {
  return new Command('init')
    .description('write what a first real gateway needs: gateway.yaml for your identity provider, a TLS certificate, a starter policy repo; print what to register at the provider')
    .requiredOption('--url <url>', 'the address people reach the gateway at, e.g. https://hoop.acme.example:8443')
    .option('--listen <host:port>', "where the gateway listens (default: the --url's address, 127.0.0.1 for a loopback one; every interface for a host name)")
    .option('--issuer <url>', `your identity provider's issuer URL (its OpenID discovery is at <issuer>/.well-known/openid-configuration); with --idp dev: ${DEV_IDP_ISSUER}`)
    .addOption(new Option('--idp <provider>', 'your identity provider: its settings and what to register there').choices([...IDPS]).default('generic'))
    .option('--client-id <id>', 'the client registered for hoop at the provider (default hoop-cli; Entra ID and Google give their own)')
    .option('--client-secret <secret>', "the client secret Google gives a desktop app's client (not a secret: it ships with every copy of the app)")
    .option('--audience <aud>', 'the audience of the access tokens the gateway takes (Keycloak, Okta, others)', 'hoop')
    .option('--dir <dir>', 'where to write gateway.yaml, tls/, data/ and policy-repo/', '.')
    .option('--tls-cert <file>', 'use this certificate (PEM, with its chain) instead of making one')
    .option('--tls-key <file>', "that certificate's key (PEM)")
    .option('--policy-repo <repo>', 'use this config repo (URL or path) instead of making a starter one')
    .option(
      '--connection <name=url>',
      "a first connection for the starter policy: NAME=postgres://user@host[:port]/database[?sslmode=…] (default verify-full: the database's certificate checked against the system's CAs)",
    )
    .option('--group <group>', 'the group whose people may read every connection in the starter policy', 'hoop-users')
    .option('--force', 'write over files that exist')
    .option('--json', 'print what it wrote and what to do next as one JSON object: { config, idp, tls, dataDir, policyRepo, devUsers?, next }')
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
      if (flags.issuer === undefined && flags.idp !== 'dev')
        throw new HoopError(ErrorCode.USAGE, 'which identity provider? pass --issuer', {
          hint: `its issuer URL, e.g. ${profile.issuerShape}; or --idp dev to try hoop with a development provider on this machine`,
        });
      const issuer = (flags.issuer ?? DEV_IDP_ISSUER).replace(/\/$/, '');
      const issuerUrl = new URL(issuer);
      if (issuerUrl.protocol !== 'https:' && !(issuerUrl.protocol === 'http:' && isLoopbackHost(issuerUrl.hostname))) throw new HoopError(ErrorCode.USAGE, '--issuer must be an https URL');
      const warn = (line: string): void => void io.stderr.write(`hoop: warning: ${line}\n`);
      if (issuerUrl.protocol === 'http:') warn(`the issuer ${issuer} is plain http: fine to try hoop on one machine; tokens that cross a network need https`);
      const connection = flags.connection ? firstConnection(flags.connection) : undefined;
      if (connection && connection.tlsMode !== 'verify-full' && !isLoopbackHost(connection.host)) {
        warn(`${connection.name}'s TLS is ${connection.tlsMode}: the gateway would not notice a server in the middle; sslmode=verify-full checks the database's certificate`);
      }
      const dir = resolve(io.cwd, flags.dir);
      // The development provider's people: a first user, whose password is said once, below.
      const devUsers = flags.idp === 'dev' ? { file: join(dir, 'dev-users.yaml'), user: 'admin', password: randomBytes(12).toString('base64url') } : undefined;
      const { config, choices, tls, host } = await writeFirstGateway({
        dir,
        choices: {
          url,
          ...(flags.listen !== undefined ? { listen: listenFlag(flags.listen) } : {}),
          idp: flags.idp,
          issuer,
          clientId: flags.clientId ?? 'hoop-cli',
          ...(profile.clientSecret && flags.clientSecret ? { clientSecret: flags.clientSecret } : {}),
          audience: flags.audience,
          group: flags.group,
          ...(connection ? { connection } : {}),
        },
        ...(flags.policyRepo ? { policyRepo: flags.policyRepo } : {}),
        ...(flags.tlsCert ? { tlsCert: flags.tlsCert } : {}),
        ...(flags.tlsKey ? { tlsKey: flags.tlsKey } : {}),
        ...(flags.force ? { force: true } : {}),
        ...(devUsers ? { more: { 'dev-users.yaml': devUsersYaml(devUsers.user, devUsers.password, [flags.group]) } } : {}),
        env: io.env,
      });
      if (flags.json) {
        printJson(io, {
          config,
          idp: flags.idp,
          tls: { cert: tls.cert, key: tls.key, ...(tls.ca ? { ca: tls.ca } : {}) },
          dataDir: choices.dataDir,
          policyRepo: choices.policyRepo,
          ...(devUsers ? { devUsers: { file: devUsers.file, user: devUsers.user, password: devUsers.password } } : {}),
          next: nextSteps(choices, { config, ...(tls.ca ? { ca: tls.ca } : {}), ...(devUsers ? { devUsers } : {}) }).filter((l) => l.trim() !== ''),
        });
        return;
      }
      io.stdout.write(
        [
          `wrote ${config} (${profile.title}), ${tls.ca ? `${join(dir, 'tls')}/ (a CA of its own, ca.crt for people, and a certificate for ${host})` : `using ${tls.cert}`}, ${choices.dataDir}/${flags.policyRepo ? '' : `, and the starter policy repo ${choices.policyRepo}`}`,
          ...nextSteps(choices, { config, ...(tls.ca ? { ca: tls.ca } : {}), ...(devUsers ? { devUsers } : {}) }),
          '',
        ].join('\n'),
      );
    });
}
