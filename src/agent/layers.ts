/**
 * A contained run's layers: where the command's writes go instead of the person's tree (./gate.ts
 * applies them when it ends). Each place the command may write (its working directory, each
 * `--share`) gets one, in hoop's state directory, which every run has hidden:
 * `<state>/layers/<run id>/<n>/` holds, for a directory, the upper layer and work directory of an
 * overlay whose lower layer is the place (`upper/`, `work/`, and `merged/`, where it is mounted
 * before it is bound into the sandbox), and for a shared file a copy of it (`file`) bound in its
 * place. `layer.json` says what each place was (its real path, device and inode) and when and for
 * what the run began. A layer lives until its changes are applied or discarded (`hoop run apply`,
 * `hoop run discard`), whatever became of its run; the next hoop command after a `hoop run`
 * stopped before its command ended says once that its changes were kept ({@link tellLayersLeft}).
 *
 * The overlays are mounted by {@link LAYER_SCRIPT}, in a user and mount namespace of the run's own
 * (`unshare -U -r -m`, where the person is root and may mount an overlay: kernel overlayfs with
 * `userxattr`, Linux 5.11 and later), just before bubblewrap starts there: each place is opened
 * there, checked to be the directory the sandbox's layout found (device and inode), and given to
 * overlayfs by that descriptor.
 *
 * @see https://docs.kernel.org/filesystems/overlayfs.html
 * @see https://man7.org/linux/man-pages/man1/unshare.1.html
 */
import { spawn } from 'node:child_process';
import { constants, copyFileSync, type Dirent, lstatSync, type Stats, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as z from 'zod';
import { stateDir } from '../auth/paths.js';
import { writeFileAtomic } from '../durable-file.js';
import { ErrorCode, HoopError } from '../errors.js';
import { ensurePrivateDir } from '../private-file.js';
import type { FileId } from './descriptors.js';
import { removeTree } from './tree-at.js';

/** A place the command wrote through its layer: the place as it was when the run began. */
export interface LayerPlace extends FileId {
  path: string;
  dir: boolean;
}

const RUN_ID = /^run-[A-Za-z0-9_-]{1,64}$/;

/** `layer.json`: read back with this schema, as a file any process of the person's could have written. */
const LAYER_META = z.strictObject({
  run: z.string().regex(RUN_ID),
  /** When the command began (ms): a file of the person's changed after it is theirs, not the command's to overwrite. */
  startedAt: z.number(),
  places: z.array(z.strictObject({ path: z.string().startsWith('/'), dir: z.boolean(), dev: z.number(), ino: z.number() })).min(1),
  agent: z.string(),
  command: z.string(),
  cwd: z.string(),
  /** The `hoop run` that holds it, and when that process began (/proc's field 22: a pid is reused); 0 once it let go (its run ended, the layer kept). */
  pid: z.number().int(),
  pidStart: z.string(),
  /** Kept on purpose (`--apply never`, a review put off): nobody is told it was left. */
  kept: z.boolean(),
  /** Said to its person once that its `hoop run` ended without deciding it. */
  told: z.boolean().optional(),
  /** What the command could not change in its sandbox (read-only, hidden) inside its places: the gate refuses it too. */
  protectedPaths: z.array(z.string()),
  /** What the policy lets through the gate that it refuses otherwise (`runs.applyControls`), as the run began. */
  allowControls: z.array(z.string()),
  /** Whether the policy wants its changes reviewed before they apply (`runs.review`). */
  review: z.boolean(),
});
export type LayerMeta = z.infer<typeof LAYER_META>;

/** Where the layers of `env`'s person are kept. */
export function layersRoot(env: NodeJS.ProcessEnv): string {
  return join(stateDir(env), 'layers');
}

/** When process `pid` started (field 22 of /proc/<pid>/stat), or undefined when there is none (or only its exit status is left: a zombie). */
export function processStart(pid: number): string | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ');
    return fields?.[0] === 'Z' || fields?.[0] === 'X' ? undefined : fields?.[19];
  } catch {
    return undefined;
  }
}

/** One run's layers. */
export class Layer {
  readonly dir: string;
  readonly meta: LayerMeta;

  constructor(dir: string, meta: LayerMeta) {
    this.dir = dir;
    this.meta = meta;
  }

  /** Place `n`'s upper layer (a directory) or copy (a file). */
  upper(n: number): string {
    return join(this.dir, String(n), this.meta.places[n]!.dir ? 'upper' : 'file');
  }

  work(n: number): string {
    return join(this.dir, String(n), 'work');
  }

  merged(n: number): string {
    return join(this.dir, String(n), 'merged');
  }

  /** Whether the `hoop run` that made it still holds it: it runs, and has not let go. */
  held(): boolean {
    return this.meta.pid !== 0 && processStart(this.meta.pid) === this.meta.pidStart;
  }

  /** Writes `layer.json` again with `change` made. */
  async update(change: Partial<LayerMeta>): Promise<Layer> {
    const meta = { ...this.meta, ...change };
    await writeFileAtomic(join(this.dir, 'layer.json'), `${JSON.stringify(meta)}\n`, this.dir);
    return new Layer(this.dir, meta);
  }

  /** Removes the layer and everything in it (what the command made unlistable, or thousands of levels deep, included). */
  remove(): void {
    removeTree(this.dir);
  }
}

/**
 * Makes the layers of run `meta.run` over `meta.places`: the directories of each directory's
 * overlay, a copy of each file (shared by reflink where the file system can).
 */
export async function makeLayer(env: NodeJS.ProcessEnv, meta: LayerMeta): Promise<Layer> {
  const root = layersRoot(env);
  await ensurePrivateDir(root);
  const dir = join(root, meta.run);
  mkdirSync(dir, { mode: 0o700 });
  const layer = new Layer(dir, LAYER_META.parse(meta));
  meta.places.forEach((place, n) => {
    mkdirSync(join(dir, String(n)), { mode: 0o700 });
    if (place.dir) for (const d of [layer.upper(n), layer.work(n), layer.merged(n)]) mkdirSync(d, { mode: 0o700 });
    else copyFileSync(place.path, layer.upper(n), constants.COPYFILE_FICLONE);
  });
  return layer.update({});
}

/** The layer of run `run`. @throws HoopError USAGE when there is none (naming those there are) */
export function readLayer(env: NodeJS.ProcessEnv, run: string): Layer {
  const found = RUN_ID.test(run) ? listLayers(env).find((l) => l.meta.run === run) : undefined;
  if (found) return found;
  const kept = listLayers(env).map((l) => l.meta.run);
  throw new HoopError(ErrorCode.USAGE, `no run ${run} has changes kept on this machine`, {
    hint: kept.length
      ? `\`hoop run ls\` lists those that have: ${kept.slice(0, 5).join(', ')}${kept.length > 5 ? ', …' : ''}`
      : 'a run keeps its changes until they are applied or discarded; none has any now',
  });
}

/** Every layer kept, the oldest first; one whose `layer.json` is not hoop's is left out. */
export function listLayers(env: NodeJS.ProcessEnv): Layer[] {
  const root = layersRoot(env);
  let entries: Dirent[];
  try {
    entries = readdirSync(root, { withFileTypes: true });
  } catch {
    return [];
  }
  const layers: Layer[] = [];
  for (const e of entries) {
    if (!e.isDirectory() || !RUN_ID.test(e.name)) continue;
    try {
      const meta = LAYER_META.parse(JSON.parse(readFileSync(join(root, e.name, 'layer.json'), 'utf8')));
      if (meta.run === e.name) layers.push(new Layer(join(root, e.name), meta));
    } catch {
      /* not a layer hoop made */
    }
  }
  return layers.sort((a, b) => a.meta.startedAt - b.meta.startedAt);
}

/** Whether `path` is where a layer's upper layer holds a deletion: a character device 0:0. */
export function isWhiteout(s: { isCharacterDevice(): boolean; rdev: number }): boolean {
  return s.isCharacterDevice() && s.rdev === 0;
}

/** Each entry under directory `dir` with its path, not through links and without recursion (a directory it cannot list is passed over). */
export function* entriesUnder(dir: string): Generator<{ path: string; entry: Dirent }> {
  const dirs = [dir];
  for (let d = dirs.pop(); d !== undefined; d = dirs.pop()) {
    let entries: Dirent[] = [];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const entry of entries) {
      const path = join(d, entry.name);
      yield { path, entry };
      if (entry.isDirectory()) dirs.push(path);
    }
  }
}

/** `path`'s lstat, or undefined when there is nothing there. */
export function lstatOr(path: string): Stats | undefined {
  try {
    return lstatSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined; // a file on the way (ENOTDIR), or one that may not be looked into
  }
}

/** Whether `path` is a directory (a link to one is not). */
export function isDir(path: string): boolean {
  return lstatOr(path)?.isDirectory() === true;
}

/** Where the system's own programs are (`stat`, `mount`, `xargs`), whatever the command's PATH holds (a machine with only node on it). */
const SYSTEM_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * The mounts before bubblewrap starts, run by `/bin/sh -c` in the run's user and mount namespace
 * (`unshare -U -r -m`): `$1` layers, then each layer's lower directory, its `dev:ino`, upper,
 * work and mount point; then bubblewrap and its arguments. Each layer is mounted with its lower
 * directory opened there and checked, and handed to overlayfs by descriptor; the mount point of
 * layer `i` is then open on descriptor `3 + i` for bubblewrap's `--bind-fd` (a POSIX shell names
 * descriptors 0 to 9: seven layers at most). A failure says `hoop:` and why, and exits 125.
 */
export const LAYER_SCRIPT = `n=$1; shift; i=0
fail() { echo "hoop: $1" >&2; exit 125; }
sys() { PATH=${SYSTEM_PATH}:$PATH "$@"; }
while [ "$i" -lt "$n" ]; do
  exec 9<"$1" 8<"$3" 7<"$4" || fail "cannot open $1"
  [ "$(sys stat -L -c %d:%i /proc/self/fd/9)" = "$2" ] || fail "$1 changed while the run began (another directory stands at its name now): nothing was mounted"
  err=$(sys mount -t overlay overlay -o lowerdir=/proc/self/fd/9,upperdir=/proc/self/fd/8,workdir=/proc/self/fd/7,userxattr "$5" 2>&1) || fail "cannot give the command a layer of its own over $1 here: \${err:-mount failed}"
  exec 9<&- 8<&- 7<&-
  eval "exec $((3 + i))<\\"\\$5\\""
  shift 5; i=$((i + 1))
done
exec "$@"`;

/** Most directories one run's command writes through layers (the descriptors {@link LAYER_SCRIPT} can name). */
export const MAX_DIR_LAYERS = 7;

/** The arguments of `unshare` that run {@link LAYER_SCRIPT} for `layer`, then `command` (bubblewrap and its arguments). */
export function layerLaunch(layer: Layer | undefined, command: readonly string[]): string[] {
  const dirs = layer?.meta.places.flatMap((p, n) => (p.dir ? [n] : [])) ?? [];
  if (dirs.length > MAX_DIR_LAYERS) {
    throw new HoopError(ErrorCode.USAGE, `hoop run gives its command at most ${MAX_DIR_LAYERS} directories of its own to write; this run has ${dirs.length}`, {
      hint: 'share fewer directories (--share), or a directory that holds them',
    });
  }
  const places = dirs.flatMap((n) => {
    const p = layer!.meta.places[n]!;
    return [p.path, `${p.dev}:${p.ino}`, layer!.upper(n), layer!.work(n), layer!.merged(n)];
  });
  return ['-U', '-r', '-m', '--', '/bin/sh', '-c', LAYER_SCRIPT, 'hoop-layers', String(dirs.length), ...places, ...command];
}

/**
 * Which of `paths` (relative to directory place `n`) exist in the layer's merged view (the place
 * with the layer over it, read-only), as the kernel's overlayfs says: for each, true or false.
 * Resolves at once when there are none.
 */
export async function existInMerged(layer: Layer, n: number, paths: readonly string[]): Promise<boolean[]> {
  if (paths.length === 0) return [];
  const place = layer.meta.places[n]!;
  const view = join(layer.dir, String(n), 'view');
  mkdirSync(view, { recursive: true, mode: 0o700 });
  const script = `exec 9<"$1" 8<"$3" || exit 125
[ "$(stat -L -c %d:%i /proc/self/fd/9)" = "$2" ] || { echo "$1 is another directory now" >&2; exit 125; }
err=$(mount -t overlay overlay -o ro,lowerdir=/proc/self/fd/8:/proc/self/fd/9,userxattr "$4" 2>&1) || { echo "$err" >&2; exit 125; }
cd "$4" && xargs -0 -r sh -c 'for p; do if [ -e "$p" ] || [ -L "$p" ]; then printf 1; else printf 0; fi; done' sh`;
  const child = spawn('unshare', ['-U', '-r', '-m', '--', '/bin/sh', '-c', script, 'hoop-view', place.path, `${place.dev}:${place.ino}`, layer.upper(n), view], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { PATH: SYSTEM_PATH },
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  child.stdin.end(Buffer.concat(paths.map((p) => Buffer.from(`./${p}\0`))));
  const code = await new Promise<number | null>((resolve) => {
    child.on('error', () => resolve(-1));
    child.on('close', resolve);
  });
  const said = Buffer.concat(out).toString('latin1');
  if (code !== 0 || said.length !== paths.length) {
    throw new HoopError(ErrorCode.CONFIG_INVALID, `hoop cannot read the layer of ${place.path}: ${Buffer.concat(err).toString('utf8').trim() || `the view ended with ${code}`}`, {
      hint: 'nothing was applied; `hoop run discard` removes the layer',
    });
  }
  return [...said].map((c) => c === '1');
}

/** The size of `path` as a file, or 0. */
export function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** Says once of each layer whose `hoop run` stopped before its command ended that it is kept, and how to settle it. */
export async function tellLayersLeft(env: NodeJS.ProcessEnv, say: (line: string) => void): Promise<void> {
  for (const layer of listLayers(env)) {
    if (layer.meta.kept || layer.meta.told || layer.held()) continue;
    const id = layer.meta.run;
    say(
      `run ${id}'s hoop run stopped before its command ended: what the command changed is kept, not applied: \`hoop run diff ${id}\` shows it, \`hoop run apply ${id}\` applies it, \`hoop run discard ${id}\` drops it`,
    );
    await layer.update({ told: true });
  }
}
