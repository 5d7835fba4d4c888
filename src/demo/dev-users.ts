/**
 * The people of `hoop gateway dev-idp`, the development identity provider: a YAML file of users,
 * each with a password hash (scrypt), groups and an email. `hoop gateway init --idp dev` writes one
 * with a first user and prints that user's password once.
 *
 * @see https://www.rfc-editor.org/rfc/rfc7914 (scrypt)
 */
import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as z from 'zod';
import { locatedProblems, readYamlWith, syntaxProblems } from '../config/yaml.js';
import { ErrorCode, HoopError } from '../errors.js';

const SCRYPT = { N: 16_384, r: 8, p: 1 } as const;

/** `scrypt:<salt>:<hash>` (base64url) of `password`. */
export function hashPassword(password: string): string {
  const salt = randomBytes(16);
  return `scrypt:${salt.toString('base64url')}:${scryptSync(password, salt, 32, SCRYPT).toString('base64url')}`;
}

/** Whether `password` is the one `stored` hashes (in constant time for a hash of the right form). */
export function passwordMatches(stored: string, password: string): boolean {
  const [kind, salt, hash] = stored.split(':');
  if (kind !== 'scrypt' || !salt || !hash) return false;
  const want = Buffer.from(hash, 'base64url');
  if (want.length !== 32) return false;
  return timingSafeEqual(want, scryptSync(password, Buffer.from(salt, 'base64url'), 32, SCRYPT));
}

const usersSchema = z.strictObject({
  users: z.record(
    z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, { error: 'a user name is lowercase letters, digits, . _ -' }),
    z.strictObject({
      password: z.string().startsWith('scrypt:', { error: 'must be a scrypt hash (hoop gateway init --idp dev writes one)' }),
      groups: z.array(z.string()).default([]),
      email: z.string().optional(),
    }),
  ),
});

/** The users of `file`, as the provider's accounts. @throws HoopError CONFIG_INVALID */
export async function readDevUsers(file: string): Promise<Record<string, { name: string; groups: string[]; email: string; password: string }>> {
  const read = readYamlWith(await readFile(file, 'utf8'), usersSchema);
  if ('problems' in read) throw new HoopError(ErrorCode.CONFIG_INVALID, syntaxProblems(file, read.problems).join('\n'));
  if ('invalid' in read) throw new HoopError(ErrorCode.CONFIG_INVALID, locatedProblems(file, read.invalid, read.locator).join('\n'));
  return Object.fromEntries(Object.entries(read.data.users).map(([name, u]) => [name, { name, groups: u.groups, email: u.email ?? `${name}@localhost`, password: u.password }]));
}

/** The text of a users file with one user. */
export function devUsersYaml(user: string, password: string, groups: string[]): string {
  return `# The people of hoop's development identity provider (hoop gateway dev-idp --users <this file>).
# For trying hoop on one machine: it listens on 127.0.0.1 only. Not for production.
users:
  ${user}:
    password: ${JSON.stringify(hashPassword(password))}
    groups: [${groups.map((g) => JSON.stringify(g)).join(', ')}]
`;
}
