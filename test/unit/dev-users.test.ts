/** The development provider's users: passwords kept as scrypt hashes, a users file read as every configuration is. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { devUsersYaml, hashPassword, passwordMatches, readDevUsers } from '../../src/demo/dev-users.js';

describe('a dev user', () => {
  it('signs in with their password only; a hash of another form matches nothing', () => {
    const hash = hashPassword('s3cret');
    expect(hash).not.toContain('s3cret');
    expect(passwordMatches(hash, 's3cret')).toBe(true);
    expect(passwordMatches(hash, 's3cret ')).toBe(false);
    for (const odd of ['scrypt:abc:def', 'scrypt::', 'plain', 'bcrypt:a:b']) expect(passwordMatches(odd, 's3cret'), odd).toBe(false);
  });

  it('is read from the file init writes; a file with a password in the clear is refused at its line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hoop-dev-users-'));
    writeFileSync(join(dir, 'ok.yaml'), devUsersYaml('admin', 'pw', ['dba']));
    const users = await readDevUsers(join(dir, 'ok.yaml'));
    expect(users.admin).toMatchObject({ name: 'admin', groups: ['dba'], email: 'admin@localhost' });
    expect(passwordMatches(users.admin!.password, 'pw')).toBe(true);
    writeFileSync(join(dir, 'clear.yaml'), 'users:\n  admin:\n    password: hunter2\n');
    await expect(readDevUsers(join(dir, 'clear.yaml'))).rejects.toThrow(/clear\.yaml:3:\d+: users\.admin\.password: must be a scrypt hash/);
  });
});
