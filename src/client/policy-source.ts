/**
 * Where `hoop policy` reads a bundle from, and how the gateway validates one.
 *
 * - **What the user is editing.** `--dir DIR`, a local config repo (`--repo PATH` or
 *   `$HOOP_POLICY_REPO` naming a checkout with a working tree), or the current directory: its
 *   working tree, said as such (with the commit it is on and how many files differ from it). A git
 *   URL, a bare repo, or a ref asked for (`--ref`, `$HOOP_POLICY_REF`): that ref's commit, pulled
 *   with the gateway's rules.
 * - **The gateway's validation.** `GET /v1/policy` says which secret references the gateway admits
 *   (`policy.allowedSecrets`), whether it wants signed commits, and which commit it refused last;
 *   the bundle is loaded with the same allow-list, so a policy the gateway would refuse fails here
 *   with the same `file:line:col` problems, before it is committed and after.
 *
 * @see ../policy/git-js.ts (workTreeState: the tree is read without the git program)
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { getPolicyStatus } from '../api-client/policy.js';
import type { PolicyStatus } from '../api/answers.js';
import { configDir } from '../auth/paths.js';
import { parseSecretPatterns } from '../config/secrets.js';
import { describeError, ErrorCode, HoopError } from '../errors.js';
import type { CliIo } from '../io.js';
import { createLogger, levelFromEnv } from '../log.js';
import { loadPolicyDir } from '../policy/load.js';
import { workTreeState } from '../policy/git-js.js';
import { cliPolicyWorkDir, PolicyRepo } from '../policy/repo.js';
import { looksLikeGitUrl } from '../config/repo-path.js';
import type { Policy } from '../policy/schema.js';
import { commandTokenProvider, type GatewayFlags } from './client-config.js';

/** The flags that name a bundle. */
export interface SourceOptions {
  dir?: string;
  repo?: string;
  ref?: string;
  allowedSigners?: string;
}

/** A loaded bundle and what it is: a working tree (its directory and git state) or a pulled commit. */
export interface LoadedSource {
  policy: Policy;
  /** The directory or repo, as `show` names it. */
  source: string;
  /** A sentence: what was read (`the working tree of DIR (on 1a2b3c4d5e6f, 2 files changed)`, `commit … of REPO`). */
  what: string;
  /** For a working tree in git: its HEAD and whether it differs from it. */
  tree?: { dir: string; head?: string; changed: number };
  /** For a pulled ref: why its newest commit was refused (an older accepted one was read instead). */
  refused?: string;
}

/** A working tree's HEAD and how many of its policy files differ from it (read without the git program: see {@link workTreeState}). */
async function treeState(dir: string): Promise<{ head?: string; changed: number }> {
  return (await workTreeState(dir)) ?? { changed: 0 };
}

/** The sentence that says which working tree was read. */
function treeWhat(dir: string, state: { head?: string; changed: number }): string {
  const on = state.head ? `on ${state.head.slice(0, 12)}` : 'no commit yet';
  return `the working tree of ${dir} (${on}${state.changed > 0 ? `, ${state.changed} file${state.changed === 1 ? '' : 's'} changed` : ', unchanged'})`;
}

/** Opens the CLI's copy of a config repo (fetching it), with the gateway's rules (and its `allowedSecrets`, when known). */
async function openRepo(io: CliIo, remote: string, isUrl: boolean, opts: SourceOptions, allowedSecrets?: readonly string[]): Promise<PolicyRepo> {
  const signers = opts.allowedSigners ?? io.env.HOOP_POLICY_ALLOWED_SIGNERS?.trim();
  return PolicyRepo.open({
    ...(isUrl ? { url: remote } : { path: remote }),
    ref: opts.ref ?? (io.env.HOOP_POLICY_REF?.trim() || 'main'),
    workDir: cliPolicyWorkDir(configDir(io.env, io.cwd), remote),
    ...(signers ? { allowedSignersFile: resolve(io.cwd, signers) } : {}),
    log: createLogger({ level: levelFromEnv(io.env, 'warn'), sink: io.stderr }),
    env: io.env,
    ...(allowedSecrets ? { checkSecrets: true, allowedSecrets, resolveSecrets: false } : { checkSecrets: false }),
  });
}

/**
 * Pulls `repo`'s ref (fetching it) and says when its newest commit was refused and an older one is
 * used: the repo, and that refusal.
 */
export async function pullSource(io: CliIo, repo: string, opts: SourceOptions, allowedSecrets?: readonly string[]): Promise<{ pr: PolicyRepo; refused?: string }> {
  const isUrl = looksLikeGitUrl(repo);
  const pr = await openRepo(io, isUrl ? repo : resolve(io.cwd, repo), isUrl, opts, allowedSecrets);
  const last = pr.lastRefresh();
  if (last?.error && last.candidate !== pr.commit) {
    io.stderr.write(`hoop: warning: the ref's newest commit was refused; keeping the last accepted one\n  ${last.error.replace(/\n/g, '\n  ')}\n`);
    return { pr, refused: last.error };
  }
  return { pr };
}

/**
 * The bundle the flags name (see the module documentation), validated with `allowedSecrets` when
 * given (the gateway's list).
 *
 * @throws PolicyInvalidError with every problem; HoopError USAGE for flags that do not go together
 */
export async function loadSource(io: CliIo, opts: SourceOptions, allowedSecrets?: readonly string[]): Promise<LoadedSource> {
  if (opts.dir !== undefined && opts.repo !== undefined) throw new HoopError(ErrorCode.USAGE, 'give --dir or --repo, not both');
  const repo = opts.dir === undefined ? (opts.repo ?? (io.env.HOOP_POLICY_REPO?.trim() || undefined)) : undefined;
  // A ref asked for (--ref, $HOOP_POLICY_REF) is pulled; without one, a local checkout is read as it is being edited.
  const refAsked = opts.ref ?? (io.env.HOOP_POLICY_REF?.trim() || undefined);
  const checkout = repo !== undefined && !looksLikeGitUrl(repo) && refAsked === undefined && existsSync(join(resolve(io.cwd, repo), '.git')) ? resolve(io.cwd, repo) : undefined;
  if (repo !== undefined && checkout === undefined) {
    const { pr, refused } = await pullSource(io, repo, opts, allowedSecrets);
    return { policy: pr.current(), source: repo, ...(refused ? { refused } : {}), what: `commit ${pr.commit.slice(0, 12)} of ${repo} (${opts.ref ?? (io.env.HOOP_POLICY_REF?.trim() || 'main')})` };
  }
  if (opts.ref !== undefined || (opts.allowedSigners !== undefined && checkout === undefined)) {
    throw new HoopError(ErrorCode.USAGE, `${opts.ref !== undefined ? '--ref' : '--allowed-signers'} applies to a pulled config repo, not to --dir or the current directory`, {
      hint: 'pass --repo URL (or set HOOP_POLICY_REPO and leave out --dir)',
    });
  }
  const dir = checkout ?? resolve(io.cwd, opts.dir ?? '.');
  // A directory that holds no policy at all is not a policy repo with a mistake in it: say which it is, and what to pass.
  if (!existsSync(join(dir, 'hoop.yaml')) && !existsSync(join(dir, 'policy')))
    throw new HoopError(ErrorCode.USAGE, `${dir} is not a policy repo: it has no hoop.yaml and no policy/ directory`, {
      hint: "run it in your policy repo's checkout, or pass --dir PATH (a checkout) or --repo URL (set HOOP_POLICY_REPO to make it the default)",
    });
  const state = await treeState(dir);
  const policy = await loadPolicyDir(dir, undefined, allowedSecrets ? { allowedSecrets: parseSecretPatterns(allowedSecrets) } : {});
  return { policy, source: dir, what: treeWhat(dir, state), tree: { dir, ...state } };
}

/** What the gateway says of its policy, or why it could not be asked. */
export type GatewayPolicy = { status: PolicyStatus; gateway: string } | { unknown: string };

/** Asks the gateway (`--gateway`, `$HOOP_GATEWAY`, the login) how it validates a policy; never throws. */
export async function gatewayPolicy(io: CliIo, flags: GatewayFlags): Promise<GatewayPolicy> {
  try {
    const provider = await commandTokenProvider(io, flags);
    try {
      return { status: await getPolicyStatus({ gateway: provider.gateway, ...(provider.ca ? { ca: provider.ca } : {}) }, (await provider.current()).token), gateway: provider.origin };
    } finally {
      provider.close();
    }
  } catch (err) {
    return { unknown: describeError(err) };
  }
}

/** The lines that say how the bundle relates to what the gateway runs, and the refusal that fails the test (if any). */
export function againstGateway(loaded: LoadedSource, gw: GatewayPolicy): { notes: string[]; refusal?: string[] } {
  if ('unknown' in gw) return { notes: [`not checked against a gateway (${gw.unknown}): secret references were checked for form only`] };
  const s = gw.status;
  const notes = [`validated as ${gw.gateway} validates a commit (policy.allowedSecrets: ${s.allowedSecrets.join(', ') || 'none'})`];
  if (s.signedCommitsOnly) notes.push('the gateway applies only commits signed by its allowed signers: sign yours (git commit -S)');
  for (const u of s.unavailable) notes.push(`the gateway cannot open "${u.connection}" (commit ${s.commit.slice(0, 12)}): ${u.lacks.join('; ')}`);
  const head = loaded.tree?.head ?? loaded.policy.commit;
  if (head && s.refused?.commit === head && (loaded.tree?.changed ?? 0) === 0) {
    return { notes, refusal: [`the gateway refused commit ${head.slice(0, 12)} (the one read here) at ${s.refused.at}:`, ...s.refused.problems.map((p) => `  ${p}`)] };
  }
  if (head && head !== s.commit) notes.push(`the gateway runs commit ${s.commit.slice(0, 12)}, not ${head.slice(0, 12)}`);
  return { notes };
}
