/**
 * Who runs hoop in a test of containment: this process's own user and, when this process is root
 * (as CI runs), a user who is not (`HOOP_TEST_USER`, default `hoop-ci`, which `.ci/run` makes), so
 * that every contained run is tried as both. A person's files are made theirs ({@link givePerson}),
 * and hoop started as them ({@link spawnHoop}'s `as`).
 */
import { chownSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';

/** One person a test runs hoop as. */
export interface TestPerson {
  /** For test names: `root`, or the user's name. */
  label: string;
  uid: number;
  gid: number;
  home: string;
  /** Whether hoop runs as someone else than this process (spawned with this uid and gid). */
  other: boolean;
}

/** The user `name` as /etc/passwd says, if there is one. */
function passwd(name: string): { uid: number; gid: number; home: string } | undefined {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  if (!line) return undefined;
  const [, , uid, gid, , home] = line.split(':');
  return { uid: Number(uid), gid: Number(gid), home: home! };
}

/** This process's user, then (when it is root) the user who is not: see the module documentation. @throws when root and that user does not exist */
export function testPeople(): TestPerson[] {
  const me = userInfo();
  const self: TestPerson = { label: me.uid === 0 ? 'root' : me.username, uid: me.uid, gid: me.gid, home: me.homedir, other: false };
  if (me.uid !== 0) return [self];
  const name = process.env.HOOP_TEST_USER ?? 'hoop-ci';
  const user = passwd(name);
  if (!user) throw new Error(`containment is tried as root and as a user who is not: no user ${name} here (create it: useradd -m ${name}; .ci/run does, HOOP_TEST_USER names another)`);
  return [self, { label: `${name} (not root)`, ...user, other: true }];
}

/** Makes `path` and everything under it `person`'s. */
export function givePerson(person: TestPerson, path: string): void {
  if (!person.other) return;
  chownSync(path, person.uid, person.gid);
  if (!statSync(path).isDirectory()) return;
  for (const e of readdirSync(path, { withFileTypes: true })) if (!e.isSymbolicLink()) givePerson(person, join(path, e.name));
}

/** A directory of `person`'s own under `parent` (default: their home, which a contained command sees, unlike /tmp). */
export function personDir(person: TestPerson, prefix: string, parent = person.home): string {
  const dir = mkdtempSync(join(parent, prefix));
  givePerson(person, dir);
  return dir;
}
