/**
 * `hoop gateway dev-idp`: an OpenID provider for trying a real gateway on one machine, with the
 * users of a file (dev-users.ts) who sign in with a password. The demo's provider (issuer.ts): the
 * CLI's public client with PKCE and refresh tokens, JWT access tokens for the gateway's audience
 * with the users' groups. It listens on 127.0.0.1 only, over plain HTTP: not for production.
 */
import { whenAborted } from '../io.js';
import { readDevUsers } from './dev-users.js';
import { startDemoIssuer } from './issuer.js';

/** Options of {@link serveDevIdp}. */
export interface DevIdpOptions {
  usersFile: string;
  port: number;
  /** The `aud` of its access tokens: the gateway's `issuers:` entry checks it. */
  audience: string;
  say: (line: string) => void;
  signal: AbortSignal;
}

/** Runs the provider until `signal` aborts. @throws HoopError CONFIG_INVALID for a bad users file */
export async function serveDevIdp(o: DevIdpOptions): Promise<void> {
  const accounts = await readDevUsers(o.usersFile);
  const issuer = await startDemoIssuer({ accounts, audience: o.audience, resource: 'urn:hoop:gateway', port: o.port, title: "Sign in to hoop's development identity provider" });
  const names = Object.keys(accounts);
  o.say(
    `development identity provider at ${issuer.issuer} (${names.length} user${names.length === 1 ? '' : 's'}: ${names.join(', ')}); for trying hoop on this machine, not for production. Ctrl-C stops it.`,
  );
  try {
    await whenAborted(o.signal);
  } finally {
    await issuer.close();
  }
}
