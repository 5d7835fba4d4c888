/**
 * A contained run's routes to the APIs of its HTTP connections: the run's egress proxy hands a
 * connection to an API's own host and port here (../agent/egress-proxy.ts), so that an agent that
 * calls the API by its real name reaches it through the gateway (the credential the gateway adds,
 * its policy), not around it. An https API's TLS ends here, with a certificate for its name from a
 * CA made for the run alone, which the command trusts beside those it trusted (`NODE_EXTRA_CA_CERTS`,
 * and a bundle of all in `SSL_CERT_FILE`, `CURL_CA_BUNDLE`, `REQUESTS_CA_BUNDLE`); its requests
 * then go to the connection's port as a routed client (../http/local/port.ts). Two connections on
 * one host and port cannot both be routed: the run is refused.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { createSecureContext, type SecureContext, TLSSocket } from 'node:tls';
import type { EgressRoute } from '../agent/egress-proxy.js';
import { ErrorCode, HoopError } from '../errors.js';
import type { HttpPort } from '../http/local/port.js';
import { normalHost } from '../policy/egress.js';
import { writeRunFile } from '../runtime-files.js';
import { mintCertificate } from '../x509.js';

/** Where Linux distributions keep the system's CA bundle. */
const SYSTEM_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/cert.pem'];

/** A run's routes to its APIs, and the variables that make its command trust the run's CA. */
export interface ApiRoutes {
  routes: (host: string, port: number) => EgressRoute | undefined;
  env: NodeJS.ProcessEnv;
}

/** The routes of `ports` (those that know their API's URL); see the module documentation. */
export async function httpRoutes(ports: readonly HttpPort[], runDir: string, env: NodeJS.ProcessEnv): Promise<ApiRoutes> {
  const byAddress = new Map<string, { port: HttpPort; https: boolean; host: string }>();
  for (const p of ports) {
    if (!p.upstream) continue;
    const u = new URL(p.upstream);
    const host = normalHost(u.hostname.replace(/^\[|\]$/g, ''));
    const address = `${host}:${u.port || (u.protocol === 'https:' ? 443 : 80)}`;
    const taken = byAddress.get(address);
    // A connection is told by its host and port before its first request: two on one would have one's requests go to the other.
    if (taken)
      throw new HoopError(ErrorCode.USAGE, `"${taken.port.connection}" and "${p.connection}" are APIs on one host and port (${address}): a run cannot route the host's requests to both`, {
        hint: 'name one of them in this run (hoop run --connect), and reach the other by its <NAME>_URL in another',
      });
    byAddress.set(address, { port: p, https: u.protocol === 'https:', host });
  }
  const ca = [...byAddress.values()].some((r) => r.https) ? mintCertificate({ commonName: 'hoop run: the routes to its APIs', ca: true, validDays: 7 }) : undefined;
  const contexts = new Map<string, SecureContext>();
  const contextFor = (host: string): SecureContext => {
    let ctx = contexts.get(host);
    if (!ctx) {
      const leaf = mintCertificate({ commonName: host, altNames: [host], issuer: ca!, validDays: 7 });
      ctx = createSecureContext({ cert: leaf.cert, key: leaf.key, minVersion: 'TLSv1.2' });
      contexts.set(host, ctx);
    }
    return ctx;
  };
  const trust: NodeJS.ProcessEnv = {};
  if (ca) {
    // Every CA the command was told to trust stays trusted (a company's, for a proxy that inspects TLS): the run's is added to them.
    const read = (f: string | undefined): string => (f !== undefined && existsSync(f) ? `${readFileSync(f, 'utf8')}\n` : '');
    const given = [...new Set([env.SSL_CERT_FILE, env.CURL_CA_BUNDLE, env.REQUESTS_CA_BUNDLE, env.NODE_EXTRA_CA_CERTS].filter((f): f is string => f !== undefined))];
    const system = env.SSL_CERT_FILE ?? SYSTEM_BUNDLES.find((f) => existsSync(f));
    const extra = await writeRunFile(runDir, 'api-routes-ca', '.pem', `${read(env.NODE_EXTRA_CA_CERTS)}${ca.cert}`);
    const bundle = await writeRunFile(runDir, 'api-routes-bundle', '.pem', `${[...new Set([system, ...given])].map(read).join('')}${ca.cert}`);
    Object.assign(trust, { NODE_EXTRA_CA_CERTS: extra, SSL_CERT_FILE: bundle, CURL_CA_BUNDLE: bundle, REQUESTS_CA_BUNDLE: bundle });
  }
  const routes = (host: string, port: number): EgressRoute | undefined => {
    const r = byAddress.get(`${normalHost(host)}:${port}`);
    if (!r) return undefined;
    if (!r.https) return (client, first) => r.port.route(client, first);
    return (client, first) => {
      const tls = new TLSSocket(withFirst(client, first), { isServer: true, secureContext: contextFor(r.host) });
      tls.on('error', () => client.destroy());
      r.port.route(tls, Buffer.alloc(0));
    };
  };
  return { routes, env: trust };
}

/** `client` as a stream that gives `first` (bytes read from it already) before the rest. */
function withFirst(client: Socket, first: Buffer): Duplex {
  const joined = new Duplex({
    read: () => void client.resume(),
    write: (chunk: Buffer, _encoding, done) => void client.write(chunk, done),
    final: (done) => void client.end(done),
    destroy: (err, done) => {
      client.destroy();
      done(err);
    },
  });
  if (first.length > 0) joined.push(first);
  client.on('data', (d: Buffer) => {
    if (!joined.push(d)) client.pause();
  });
  client.once('end', () => joined.push(null));
  client.once('close', () => joined.destroy());
  client.resume();
  return joined;
}
