/**
 * Profiles: what the CLI remembers about each gateway it logged in to, one per gateway origin,
 * in `<config dir>/profiles.json` (mode 0600). A profile holds no secret: tokens and the device
 * private key live in a {@link SecretStore}; the profile says which one.
 *
 * @see docs/architecture.md (§3)
 */
import { join } from 'node:path';
import { z } from 'zod';
import { ErrorCode, HoopError } from '../errors.js';
import { checkPrivateDir, readOptionalFile, writePrivateFile } from '../private-file.js';

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
 * @see docs/architecture.md (§3)
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
}

/** The whole `profiles.json`. @see docs/architecture.md (§3) */
export interface ProfilesFile {
  /** Origin of the current gateway. */
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
});

const fileSchema = z.looseObject({
  current: z.string().optional(),
  profiles: z.record(z.string(), profileSchema).default({}),
  fileStoreNoticeAt: z.string().optional(),
});

/**
 * Reads and writes `profiles.json` in a configuration directory. Every change is a
 * read-modify-write of the whole file, replaced atomically.
 * @see docs/architecture.md (§3)
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
    return parsed.data as ProfilesFile;
  }

  /** The profile of gateway `origin`. */
  async get(origin: string): Promise<Profile | undefined> {
    return (await this.read()).profiles[origin];
  }

  /** The current profile and its origin. */
  async current(): Promise<{ origin: string; profile: Profile } | undefined> {
    const file = await this.read();
    const origin = file.current;
    const profile = origin === undefined ? undefined : file.profiles[origin];
    return origin !== undefined && profile ? { origin, profile } : undefined;
  }

  /** Applies `change` to the file and writes it back. */
  async update(change: (file: ProfilesFile) => void): Promise<ProfilesFile> {
    const file = await this.read();
    change(file);
    await writePrivateFile(this.file, `${JSON.stringify(file, null, 2)}\n`);
    return file;
  }

  /** Saves the profile of `origin` and makes it current. */
  async put(origin: string, profile: Profile): Promise<void> {
    await this.update((file) => {
      file.profiles[origin] = profile;
      file.current = origin;
    });
  }

  /** Changes some fields of an existing profile (no-op when it is gone). */
  async patch(origin: string, fields: Partial<Profile>): Promise<void> {
    await this.update((file) => {
      const profile = file.profiles[origin];
      if (profile) file.profiles[origin] = { ...profile, ...fields };
    });
  }

  /** Forgets the profile of `origin`; another profile becomes current if it was. */
  async remove(origin: string): Promise<void> {
    await this.update((file) => {
      delete file.profiles[origin];
      if (file.current === origin) {
        const next = Object.keys(file.profiles)[0];
        if (next === undefined) delete file.current;
        else file.current = next;
      }
    });
  }

  #damaged(why: string): HoopError {
    return new HoopError(ErrorCode.CONFIG_INVALID, `cannot read ${this.file}: ${why}`, {
      hint: `fix or delete ${this.file}, then run \`hoop login\` again`,
    });
  }
}
