/**
 * `hoop connect --direct <name>`: no local port. The gateway mints a direct credential for the
 * caller on the connection (a user and password good for that connection alone, for `--ttl`), and
 * the client talks TLS to the gateway with it (PostgreSQL's at the gateway's own port, MySQL's at
 * its MySQL port, HTTP's at the gateway's own port under a base URL whose path holds it): one hop, the gateway's engine as through a tunnel (policy, masking, reviews,
 * recording), but no record of the CLI's, since no hoop is in the client's path. Prints how to
 * connect and a file holding the password (a PGPASSFILE, a MySQL option file, the HTTP base URL); while it runs it renews the credential with the person's current sign-in (which also
 * brings their groups as they are now), and when it stops it revokes it, which ends its sessions.
 * With `--once` it prints and exits: the credential lives its `--ttl` and ends then.
 *
 * @see ../gateway/credentials/direct-credentials.ts
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING
 */
import { type Clock, realClock } from '../clock.js';
import { existsSync } from 'node:fs';
import { mintDirect, renewDirect, revokeDirect } from '../api-client/direct.js';
import type { ResolvedTokenProvider } from '../auth/token-provider.js';
import type { DirectCredentialView } from '../api/answers.js';
import { describeError } from '../errors.js';
import { whenAborted, type CliIo } from '../io.js';
import { writePgpass, writeRootCert } from '../postgres/local/pgpass.js';
import { removeRunFile, runtimeDir, writeRunFile } from '../runtime-files.js';
import { mysqlOptionFile } from './connect-mysql.js';
import { shellQuote } from '../text-format.js';
import { localUri } from './local-port.js';

/** What `hoop connect --direct --json` prints of any connection (one line): where, as whom, the credential's id (also its user) and end. */
interface DirectJsonBase {
  connection: string;
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  id: string;
  expiresAt: string;
}

/** What `hoop connect --direct --json` prints of a PostgreSQL connection. */
export interface DirectJson extends DirectJsonBase {
  sslmode: 'verify-full';
  sslrootcert: string;
  /** Libpq's channel binding: the client proves the TLS connection it signed in on ends at the gateway. */
  channelBinding: 'require';
  pgpassFile: string;
  uri: string;
}

/** Options of {@link serveDirect}. */
export interface DirectOptions {
  json?: boolean;
  /** Seconds the credential lives (and, while this runs, each renewal). */
  ttl?: number;
  /** Print and exit: the credential is not renewed or revoked. */
  once?: boolean;
  /** The clock renewals run on (the real one unless a test holds it). */
  clock?: Clock;
}

/** The CA bundle libpq should verify the gateway with when its certificate is a public one: the system's (libpq 16 reads `system`; older ones need the file). */
const SYSTEM_ROOTS = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/cert.pem'];

/** Where a client finds the CA to verify the gateway with: the CLI's (`--ca-file`, the profile's) written to `dir`, else the system's roots. */
export async function directRootCert(ca: Buffer | undefined, dir: string, name: string, port: number): Promise<{ file: string; written: boolean }> {
  if (ca) return { file: await writeRootCert({ dir, name: `${name}-direct`, port, pem: ca.toString('utf8') }), written: true };
  return { file: SYSTEM_ROOTS.find((f) => existsSync(f)) ?? 'system', written: false };
}

/** The gateway's host and port, where direct clients connect. */
export function gatewayAddress(gateway: string): { host: string; port: number } {
  const url = new URL(gateway);
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 443) };
}

/** What `hoop connect --direct --json` prints of a MySQL connection. */
export interface MysqlDirectJson extends DirectJsonBase {
  sslCa: string;
  optionFile: string;
}

/** What `hoop connect --direct --json` prints of an HTTP connection. */
export interface HttpDirectJson extends Omit<DirectJsonBase, 'database'> {
  /** The base URL at the gateway's own port: every request's path goes under it (its path holds the credential). */
  url: string;
  /** The CA the client verifies the gateway with (curl's `--cacert`). */
  caFile: string;
  /** A file holding the base URL. */
  urlFile: string;
}

/** How a client connects with a minted credential: what `--json` prints, the file holding the password, and the lines shown. */
interface DirectShown {
  json: DirectJson | MysqlDirectJson | HttpDirectJson;
  passwordFile: string;
  /** What that file holds, in words (the password, the base URL). */
  holds?: string;
  lines: string[];
}

/** `hoop connect --direct` of a PostgreSQL or MySQL connection: see the module documentation. */
export async function serveDirect(io: CliIo, o: DirectOptions, provider: ResolvedTokenProvider, name: string, say: (line: string) => void): Promise<void> {
  const endpoint = { gateway: provider.gateway, ...(provider.ca ? { ca: provider.ca } : {}) };
  const ask = o.ttl !== undefined ? { seconds: o.ttl } : {};
  const minted = await mintDirect(endpoint, (await provider.current()).token, name, ask);
  const files: string[] = [];
  try {
    const shown = await (minted.httpPath !== undefined ? httpShown : minted.mysqlPort !== undefined ? mysqlShown : postgresShown)(await runtimeDir(io.env), provider, minted, files);
    const { host, port } = shown.json;
    if (o.json) {
      io.stdout.write(`${JSON.stringify(shown.json)}\n`);
    } else {
      io.stdout.write(
        [
          `Direct to "${name}" at ${host}:${port}: your client talks TLS to the gateway itself, with no hoop on this machine in its path`,
          `(the gateway records the session; there is no record of the CLI's). Credential ${minted.id}, good for "${name}" only, until ${minted.expiresAt}${o.once ? '' : ' (renewed while this runs, revoked when it stops)'}; the ${shown.holds ?? 'password'} is in ${shown.passwordFile}.`,
          '',
          'Connect with:',
          ...shown.lines,
          o.once ? '' : 'Press Ctrl-C to stop.',
          '',
        ].join('\n'),
      );
    }
    if (o.once) {
      files.length = 0; // the client reads them after this exits
      return;
    }
    const stop = keepRenewed(provider, endpoint, minted, o.ttl, say, o.clock);
    try {
      await whenAborted(io.signal);
    } finally {
      stop();
      await revokeDirect(endpoint, (await provider.current()).token, minted.id).catch((err: unknown) =>
        say(`could not revoke direct credential ${minted.id}: ${describeError(err)}; it ends at ${minted.expiresAt}`),
      );
    }
  } finally {
    for (const f of files) await removeRunFile(f);
  }
}

/** What every `--json` answer says of the credential: where, as whom, its id and end. */
function credentialFields(minted: DirectCredentialView, host: string, port: number): DirectJsonBase {
  const { connection, user, password, database, id, expiresAt } = minted;
  return { connection, host, port, user, password, database, id, expiresAt };
}

/** A PostgreSQL client's way in: a PGPASSFILE, libpq's connection string and URI, verifying the gateway and binding the channel. */
async function postgresShown(dir: string, provider: ResolvedTokenProvider, minted: DirectCredentialView, files: string[]): Promise<DirectShown> {
  const name = minted.connection;
  const { host, port } = gatewayAddress(provider.gateway);
  const pgpassFile = await writePgpass({ dir, name: `${name}-direct`, entries: [{ host, port, password: minted.password }] });
  files.push(pgpassFile);
  const root = await directRootCert(provider.ca, dir, name, port);
  if (root.written) files.push(root.file);
  const sslrootcert = root.file;
  const conninfo = `host=${host} port=${port} user=${minted.user} dbname=${minted.database} sslmode=verify-full sslrootcert=${sslrootcert} channel_binding=require`;
  const uri = `${localUri({ connection: name, host, port, user: minted.user, database: minted.database, password: minted.password, sslrootcert })}&channel_binding=require`;
  const json: DirectJson = {
    ...credentialFields(minted, host, port),
    sslmode: 'verify-full',
    sslrootcert,
    channelBinding: 'require',
    pgpassFile,
    uri,
  };
  return { json, passwordFile: pgpassFile, lines: [`  PGPASSFILE=${shellQuote(pgpassFile)} psql ${shellQuote(conninfo)}`, '', `or export PGPASSFILE=${shellQuote(pgpassFile)} and use ${uri}`] };
}

/** A MySQL client's way in: an option file naming the gateway's MySQL port, the credential and the CA the client verifies the gateway with. */
async function mysqlShown(dir: string, provider: ResolvedTokenProvider, minted: DirectCredentialView, files: string[]): Promise<DirectShown> {
  const name = minted.connection;
  const host = gatewayAddress(provider.gateway).host;
  const port = minted.mysqlPort!;
  const root = await directRootCert(provider.ca, dir, name, port);
  if (root.written) files.push(root.file);
  const text = mysqlOptionFile({ host, port, password: minted.password, database: minted.database, sslCa: root.file, user: minted.user, about: `direct credential ${minted.id}` });
  const optionFile = await writeRunFile(dir, `${name}-direct-${port}`, '.my.cnf', text);
  files.push(optionFile);
  const json: MysqlDirectJson = { ...credentialFields(minted, host, port), sslCa: root.file, optionFile };
  return { json, passwordFile: optionFile, lines: [`  mysql --defaults-extra-file=${shellQuote(optionFile)}`, ''] };
}

/** An HTTP client's way in: the base URL at the gateway's port (its path holds the credential), in a file too, and the CA it verifies the gateway with. */
async function httpShown(dir: string, provider: ResolvedTokenProvider, minted: DirectCredentialView, files: string[]): Promise<DirectShown> {
  const name = minted.connection;
  const { host, port } = gatewayAddress(provider.gateway);
  const url = `${new URL(provider.gateway).origin}${minted.httpPath!}`;
  const root = await directRootCert(provider.ca, dir, name, port);
  if (root.written) files.push(root.file);
  const urlFile = await writeRunFile(dir, `${name}-direct-${port}`, '.url', `${url}\n`);
  files.push(urlFile);
  const { database: _none, ...base } = credentialFields(minted, host, port);
  const json: HttpDirectJson = { ...base, url, caFile: root.file, urlFile };
  const cacert = root.written ? ` --cacert ${shellQuote(root.file)}` : '';
  return {
    json,
    passwordFile: urlFile,
    holds: 'base URL',
    lines: [`  curl${cacert} ${shellQuote(`${url}/`)}PATH`, '', 'or give an API client that base URL (the path is the credential: keep it secret).', ''],
  };
}

/**
 * Renews the credential at half its life with the person's current sign-in, until stopped. A
 * run's credential is not renewed: it lives as long as the run.
 */
function keepRenewed(
  provider: ResolvedTokenProvider,
  endpoint: { gateway: string; ca?: Buffer },
  minted: DirectCredentialView,
  ttl: number | undefined,
  say: (line: string) => void,
  clock: Clock = realClock,
): () => void {
  if (provider.source === 'run') return () => {};
  let stop: (() => void) | undefined;
  const arm = (ms: number): void => {
    stop = clock.timer(ms, () => void renew());
  };
  const renew = async (): Promise<void> => {
    let next = 15_000;
    try {
      const expiresAt = Date.parse(await renewDirect(endpoint, (await provider.current()).token, minted.id, ttl !== undefined ? { seconds: ttl } : {}));
      next = Math.max(1000, (expiresAt - clock.now()) / 2);
    } catch (err) {
      say(`could not renew direct credential ${minted.id}: ${describeError(err)}; trying again in 15 s`);
    }
    if (stop !== undefined) arm(next);
  };
  arm(Math.max(1000, (Date.parse(minted.expiresAt) - clock.now()) / 2));
  return () => {
    stop?.();
    stop = undefined;
  };
}
