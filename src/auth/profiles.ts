/**
 * Profiles: what the CLI remembers about each identity it logged in as at each gateway, one per
 * gateway origin and subject ({@link profileKey}), in `<config dir>/profiles.json` (mode 0600);
 * one of them is current. A profile holds no secret: tokens and the device private key live in a
 * {@link SecretStore}; the profile says which one and under which key ({@link secretsKeyOf}).
 *
 * An older hoop kept one profile per gateway, keyed by its origin, its secrets under that origin:
 * such a file is read as it is and rekeyed in memory (the secrets stay where they are, the profile
 * says so), and written back in the new shape by the next change.
 *
 * @see docs/internals.md (§3)
 */
import { realClock } from '../clock.js';
import { join } from 'node:path';
import * as z from 'zod';
import { ErrorCode, HoopError } from '../errors.js';
import { checkPrivateDir, readOptionalFile, writePrivateFile } from '../private-file.js';
import { nearestName } from '../suggest.js';

/**
 * Where a workload's token comes from; it is fetched again each time, never stored.
 * @see https://docs.github.com/en/actions/security-for-github-actions/security-hardening-your-deployments/about-security-hardening-with-openid-connect
 * @see https://kubernetes.io/docs/concepts/storage/projected-volumes/#serviceaccounttoken
 */
export type WorkloadSource = { kind: 'file'; path: string } | { kind: 'env'; variable: string } | { kind: 'github'; audience: string } | { kind: 'kubernetes'; path: string };

import type { TokenKind } from '../api/answers.js';

export type { TokenKind };

/** Where a profile's secrets are kept. @see https://www.npmjs.com/package/@napi-rs/keyring */
export type StoreKind = 'keychain' | 'file';

/**
 * What the CLI remembers about one gateway.
 * @see docs/internals.md (§3)
 */
export interface Profile {
  /** The gateway's base URL. */
  gateway: string;
  /** The OpenID provider (absent for a workload login to a gateway without `login`). */
  issuer?: string;
  clientId?: string;
  /** The provider's client secret of an installed app, where it requires one (Google); not a secret. */
  clientSecret?: string;
  scopes?: string[];
  /** RFC 8707 resource indicator sent with every grant. */
  resource?: string;
  tokenType: TokenKind;
  subject: string;
  email?: string;
  kind: 'user' | 'workload';
  store: StoreKind;
  /** Set for a workload login: where its token is fetched from. */
  workload?: WorkloadSource;
  /** The CA file trusted for the gateway (absolute path). */
  caFile?: string;
  deviceId?: string;
  fingerprint?: string;
  loggedInAt: string;
  /** When it was last made current (a login, `hoop profiles use`): the gateway's latest is used there. */
  selectedAt?: string;
  /** The key its secrets are kept under, when it is not its profile key (a profile an older hoop saved under the gateway origin). */
  secretsKey?: string;
}

/** The whole `profiles.json`. @see docs/internals.md (§3) */
export interface ProfilesFile {
  /** The key of the current profile. */
  current?: string;
  profiles: Record<string, Profile>;
  /** When the CLI said that tokens are kept in a file because no keychain answered. */
  fileStoreNoticeAt?: string;
}

const workloadSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('file'), path: z.string() }),
  z.object({ kind: z.literal('env'), variable: z.string() }),
  z.object({ kind: z.literal('github'), audience: z.string() }),
  z.object({ kind: z.literal('kubernetes'), path: z.string() }),
]);

const profileSchema = z.looseObject({
  gateway: z.string(),
  issuer: z.string().optional(),
  clientId: z.string().optional(),
  clientSecret: z.string().optional(),
  scopes: z.array(z.string()).optional(),
  resource: z.string().optional(),
  tokenType: z.enum(['access', 'id', 'any']).default('any'),
  subject: z.string(),
  email: z.string().optional(),
  kind: z.enum(['user', 'workload']),
  store: z.enum(['keychain', 'file']),
  workload: workloadSchema.optional(),
  caFile: z.string().optional(),
  deviceId: z.string().optional(),
  fingerprint: z.string().optional(),
  loggedInAt: z.string().default(() => new Date(0).toISOString()),
  selectedAt: z.string().optional(),
  secretsKey: z.string().optional(),
});

const fileSchema = z.looseObject({
  current: z.string().optional(),
  profiles: z.record(z.string(), profileSchema).default({}),
  fileStoreNoticeAt: z.string().optional(),
});

/** A profile with its key and its gateway's origin. */
export interface KeyedProfile {
  key: string;
  origin: string;
  profile: Profile;
}

/** The key of `subject`'s profile at the gateway of origin `origin`: `<origin>#<subject>` (an origin has no `#`). */
export function profileKey(origin: string, subject: string): string {
  return `${origin}#${subject}`;
}

/** The origin of the profile's gateway (its gateway as saved, when that is no URL). */
export function originOf(profile: Profile): string {
  return URL.canParse(profile.gateway) ? new URL(profile.gateway).origin : profile.gateway;
}

/** The key of the profile: its gateway's origin and its subject. */
export function keyOf(profile: Profile): string {
  return profileKey(originOf(profile), profile.subject);
}

/** The key the profile's secrets are kept under in its store. */
export function secretsKeyOf(profile: Profile): string {
  return profile.secretsKey ?? keyOf(profile);
}

/** The file with every profile under its own key (an older hoop's, keyed by origin, rekeyed; its secrets left where they are). */
function rekeyed(file: ProfilesFile): ProfilesFile {
  const profiles: Record<string, Profile> = {};
  let current: string | undefined;
  for (const [key, profile] of Object.entries(file.profiles)) {
    const own = keyOf(profile);
    if (profiles[own] === undefined || key === file.current) profiles[own] = own === key ? profile : { ...profile, secretsKey: profile.secretsKey ?? key };
    if (key === file.current) current = own;
  }
  const out: ProfilesFile = { ...file, profiles };
  delete out.current;
  if (current !== undefined) out.current = current;
  return out;
}

/** The profile of key `key` in `file`, with its key and origin. */
function keyed(file: ProfilesFile, key: string | undefined): KeyedProfile | undefined {
  const profile = key === undefined ? undefined : file.profiles[key];
  return key !== undefined && profile ? { key, origin: originOf(profile), profile } : undefined;
}

/** Makes the profile of key `key` current in `file`, noting when. */
function select(file: ProfilesFile, key: string): void {
  file.current = key;
  file.profiles[key] = { ...file.profiles[key]!, selectedAt: new Date(realClock.now()).toISOString() };
}

/** When the profile was last made current (else logged in). */
const lastSelected = (p: Profile): string => p.selectedAt ?? p.loggedInAt;

/** The key of the profile of `file` last made current, among those `keep` keeps. */
export function latestKey(file: ProfilesFile, keep: (p: Profile) => boolean = () => true): string | undefined {
  const keys = Object.keys(file.profiles).filter((k) => keep(file.profiles[k]!));
  return keys.sort((a, b) => lastSelected(file.profiles[b]!).localeCompare(lastSelected(file.profiles[a]!)))[0];
}

/** The profile of `file` used at the gateway of origin `origin`: the current one when it is there, else the one there last made current. */
export function profileAt(file: ProfilesFile, origin: string): KeyedProfile | undefined {
  const current = keyed(file, file.current);
  return current?.origin === origin
    ? current
    : keyed(
        file,
        latestKey(file, (p) => originOf(p) === origin),
      );
}

/** Whether `name` names `profile` (of key `key`): its key, its subject, or its email (case ignored). */
function names(name: string, key: string, profile: Profile): boolean {
  return name === key || name === profile.subject || (profile.email !== undefined && name.toLowerCase() === profile.email.toLowerCase());
}

/**
 * The profile of `file` that `name` (a subject, an email or a profile key) names, at the gateway of
 * origin `origin` when one is given. @throws HoopError (usage) when none or several do
 */
export function findProfile(file: ProfilesFile, name: string, origin?: string): KeyedProfile {
  const inScope = Object.keys(file.profiles).filter((k) => origin === undefined || originOf(file.profiles[k]!) === origin);
  const found = inScope.filter((k) => names(name, k, file.profiles[k]!)).map((k) => keyed(file, k)!);
  if (found.length === 1) return found[0]!;
  const where = origin === undefined ? '' : ` at ${origin}`;
  if (found.length > 1) {
    throw new HoopError(ErrorCode.USAGE, `"${name}" names ${found.length} profiles${where}: ${found.map((f) => `${f.profile.subject} at ${f.origin}`).join(', ')}`, {
      hint: `pass --gateway, or name one by its key: ${found.map((f) => f.key).join(', ')}`,
    });
  }
  const known = inScope.flatMap((k) => [file.profiles[k]!.subject, ...(file.profiles[k]!.email ? [file.profiles[k]!.email!] : [])]);
  const near = nearestName(name, known);
  throw new HoopError(ErrorCode.USAGE, `no profile "${name}"${where}${near ? `: did you mean "${near}"?` : ''}`, {
    hint: '`hoop profiles ls` lists the identities logged in; `hoop login --gateway URL` adds one',
  });
}

/**
 * Reads and writes `profiles.json` in a configuration directory. Every change is a
 * read-modify-write of the whole file, replaced atomically.
 * @see docs/internals.md (§3)
 */
export class ProfileStore {
  /** The `profiles.json` path. */
  readonly file: string;

  constructor(readonly dir: string) {
    this.file = join(dir, 'profiles.json');
  }

  /** The whole file (empty when missing). Throws HoopError(CONFIG_INVALID) when it is damaged. */
  async read(): Promise<ProfilesFile> {
    // A profile names the gateway tokens go to: read only from a directory that is the user's own.
    await checkPrivateDir(this.dir);
    const text = await readOptionalFile(this.file);
    if (text === undefined || text.trim() === '') return { profiles: {} };
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      throw this.#damaged('it is not valid JSON');
    }
    const parsed = fileSchema.safeParse(raw);
    if (!parsed.success) throw this.#damaged(parsed.error.issues[0]?.message ?? 'unexpected content');
    return rekeyed(parsed.data as ProfilesFile);
  }

  /** The profile of key `key`. */
  async get(key: string): Promise<Profile | undefined> {
    return (await this.read()).profiles[key];
  }

  /** The current profile. */
  async current(): Promise<KeyedProfile | undefined> {
    const file = await this.read();
    return keyed(file, file.current);
  }

  /** The profile used at the gateway of origin `origin` ({@link profileAt}). */
  async atGateway(origin: string): Promise<KeyedProfile | undefined> {
    return profileAt(await this.read(), origin);
  }

  /** Applies `change` to the file and writes it back. */
  async update(change: (file: ProfilesFile) => void): Promise<ProfilesFile> {
    const file = await this.read();
    change(file);
    await writePrivateFile(this.file, `${JSON.stringify(file, null, 2)}\n`);
    return file;
  }

  /** Saves `profile` under its key and makes it current; resolves its key. */
  async put(profile: Profile): Promise<string> {
    const key = keyOf(profile);
    await this.update((file) => {
      file.profiles[key] = profile;
      select(file, key);
    });
    return key;
  }

  /** Makes the profile of key `key` current (no-op when it is gone). */
  async use(key: string): Promise<void> {
    await this.update((file) => {
      if (file.profiles[key]) select(file, key);
    });
  }

  /** Changes some fields of an existing profile (no-op when it is gone). */
  async patch(key: string, fields: Partial<Profile>): Promise<void> {
    await this.update((file) => {
      const profile = file.profiles[key];
      if (profile) file.profiles[key] = { ...profile, ...fields };
    });
  }

  /** Forgets the profile of key `key`; if it was current, the one last made current before it becomes current. */
  async remove(key: string): Promise<void> {
    await this.update((file) => {
      delete file.profiles[key];
      if (file.current !== key) return;
      const next = latestKey(file);
      if (next === undefined) delete file.current;
      else file.current = next;
    });
  }

  #damaged(why: string): HoopError {
    return new HoopError(ErrorCode.CONFIG_INVALID, `cannot read ${this.file}: ${why}`, {
      hint: `fix or delete ${this.file}, then run \`hoop login\` again`,
    });
  }
}
