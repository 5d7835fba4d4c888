/**
 * The connection entry shared by the gateway's configuration file and a policy bundle (which
 * leaves out `allow`): an upstream PostgreSQL server, the role the gateway signs in as, its
 * password as a secret reference, and TLS as libpq's `sslmode`.
 *
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNECT-SSLMODE
 */
import { z } from 'zod';
import { parseSecretRef, secretSchema, type SecretRef } from './secrets.js';
import { asRecord, nonEmpty, stringList, type Path, type Problem } from './yaml.js';

/**
 * One upstream PostgreSQL server the gateway can open sessions to.
 *
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS
 */
export interface ConnectionConfig {
  name: string;
  type: 'postgres';
  host: string;
  port: number;
  database: string;
  user: string;
  password: SecretRef;
  /** `mode` follows libpq's `sslmode` (default `prefer`, as in libpq). */
  tls: { mode: 'disable' | 'prefer' | 'require' | 'verify-full'; ca?: Buffer; caFile?: string; serverName?: string };
  /** Whether a cleartext password may be sent when the upstream link is not encrypted. */
  allowCleartextWithoutTls: boolean;
  /** Who may use it. `*` in `subjects` admits any authenticated identity; all empty admits nobody. */
  allow: { subjects: string[]; emails: string[]; groups: string[] };
}

export const CONNECTION_NAME = /^[a-z0-9][a-z0-9-_.]{0,62}$/;

export const port = (min: number) =>
  z
    .number({ error: 'must be a port number' })
    .int({ error: 'must be a whole number' })
    .min(min, { error: `must be from ${min} to 65535` })
    .max(65535, { error: `must be from ${min} to 65535` });

/**
 * The schema of one connection entry (shared with the policy bundle, which omits `allow`).
 *
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS
 */
export const connectionSchema = z.strictObject({
  name: z.string({ error: 'must be a name' }).regex(CONNECTION_NAME, {
    error: 'must be 1-63 characters of a-z, 0-9, "-", "_", "." starting with a letter or digit',
  }),
  type: z.literal('postgres', { error: 'must be postgres (the only type supported)' }),
  host: nonEmpty('a host name or address').refine((v) => !/\s/.test(v), { error: 'must not contain spaces' }),
  port: port(1).default(5432),
  database: nonEmpty('a database name'),
  user: nonEmpty('a user name'),
  password: secretSchema,
  tls: z
    .strictObject({
      mode: z.enum(['disable', 'prefer', 'require', 'verify-full'], { error: 'must be one of disable, prefer, require, verify-full' }).default('prefer'),
      ca: nonEmpty('a path to a PEM file').optional(),
      serverName: nonEmpty('a host name').optional(),
    })
    .default({ mode: 'prefer' }),
  allowCleartextWithoutTls: z.boolean({ error: 'must be true or false' }).default(false),
  allow: z
    .strictObject({ subjects: stringList, emails: stringList, groups: stringList })
    .default({ subjects: [], emails: [], groups: [] }),
});

/**
 * A connection entry as {@link connectionSchema} parses it; a policy bundle's entries have no `allow`.
 *
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS
 */
export type ConnectionEntry = Omit<z.output<typeof connectionSchema>, 'allow'> & { allow?: ConnectionConfig['allow'] };

/**
 * The {@link ConnectionConfig} of a validated entry, for the gateway configuration and a policy
 * bundle alike: the password reference parsed (a relative `${file:}` path against `baseDir`), the
 * CA as read (`data` absent when only its path is known), `allow` empty when the entry has none.
 *
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS
 */
export function normaliseConnection(entry: ConnectionEntry, baseDir: string, ca?: { file: string; data?: Buffer }): ConnectionConfig {
  return {
    name: entry.name,
    type: entry.type,
    host: entry.host,
    port: entry.port,
    database: entry.database,
    user: entry.user,
    password: parseSecretRef(entry.password, baseDir)!,
    tls: {
      mode: entry.tls.mode,
      ...(ca?.data ? { ca: ca.data } : {}),
      ...(ca ? { caFile: ca.file } : {}),
      ...(entry.tls.serverName !== undefined ? { serverName: entry.tls.serverName } : {}),
    },
    allowCleartextWithoutTls: entry.allowCleartextWithoutTls,
    allow: entry.allow ?? { subjects: [], emails: [], groups: [] },
  };
}

/**
 * The keys of a connection's `tls` (`tls` as written, at `path`) that `mode: disable` makes
 * meaningless, as problems located at the key.
 *
 * @see https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNECT-SSLMODE
 */
export function disabledTlsProblems(tls: unknown, path: Path): Problem[] {
  const t = asRecord(tls);
  if (t?.mode !== 'disable') return [];
  return (['ca', 'serverName'] as const)
    .filter((k) => t[k] !== undefined)
    .map((k) => ({ path: [...path, k], message: 'has no effect with mode: disable; remove it or choose another mode', atKey: true }));
}
