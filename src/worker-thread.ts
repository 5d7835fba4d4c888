/**
 * Starting a worker thread whose module sits beside the caller's, from the built package or from
 * source.
 *
 * @see https://nodejs.org/api/worker_threads.html
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { setPriority } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker, workerData, type ResourceLimits } from 'node:worker_threads';
import type { Clock } from './clock.js';

/**
 * Runs a TypeScript module in a worker with tsx's require hook. Not its ESM loader: that one runs on
 * a loader thread that exits with the worker and takes the process with it (Node 20's hooks proxy
 * calls `process.exit` when its thread exits), which ended test processes at random.
 */
const FROM_SOURCE = "require('tsx/cjs/api').register(); require(require('node:url').fileURLToPath(require('node:worker_threads').workerData.url));";

/**
 * Starts the worker `name` (no extension) beside the module `from` (its `import.meta.url`): the
 * compiled `name.js`, or `name.ts` when `from` itself runs from source (tests, the dev stack). The
 * built package never takes the source path. `resourceLimits` caps the worker's heap (see
 * https://nodejs.org/api/worker_threads.html#worker_threadsresourcelimits).
 */
export function startWorker(from: string, name: string, resourceLimits?: ResourceLimits): Worker {
  const thread = new Int32Array(new SharedArrayBuffer(4));
  const options = { workerData: { url: siblingModule(from, name), thread }, ...(resourceLimits ? { resourceLimits } : {}) };
  const w = options.workerData.url.endsWith('.ts') ? new Worker(FROM_SOURCE, { eval: true, ...options }) : new Worker(new URL(options.workerData.url), options);
  threadIds.set(w, thread);
  return w;
}

/** Each worker {@link startWorker} started: its OS thread id once {@link announceThread} wrote it (0 until then, -1 where none can be read). */
const threadIds = new WeakMap<Worker, Int32Array>();

/** Called in a worker that {@link startWorker} started: tells its starter its OS thread id, so that {@link threadCpuMs} can read its CPU time. */
export function announceThread(): void {
  const thread = (workerData as { thread?: Int32Array } | null)?.thread;
  if (!thread) return;
  try {
    // `/proc/thread-self` is `<pid>/task/<tid>`.
    Atomics.store(thread, 0, Number(readlinkSync('/proc/thread-self').split('/').pop()));
  } catch {
    Atomics.store(thread, 0, -1);
  }
}

/**
 * The CPU time `worker` has used (ms): `'starting'` before it said its thread id, `undefined` where it
 * cannot be read (not Linux, a worker {@link startWorker} did not start).
 *
 * @see https://docs.kernel.org/scheduler/sched-stats.html (`/proc/<pid>/task/<tid>/schedstat`: time on the CPU, ns)
 */
export function threadCpuMs(worker: Worker): number | 'starting' | undefined {
  const tid = threadIds.get(worker)?.[0];
  if (tid === 0) return 'starting';
  if (tid === undefined || tid < 0) return undefined;
  try {
    return Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'latin1').split(' ')[0]) / 1e6;
  } catch {
    return undefined;
  }
}

/** The URL of the module `name` (no extension) beside the module `from`: `name.ts` when `from` runs from source, else `name.js`. */
export function siblingModule(from: string, name: string): string {
  return new URL(`./${name}.${from.endsWith('.ts') ? 'ts' : 'js'}`, from).href;
}

/**
 * Loads a module named by {@link siblingModule} in a worker that {@link startWorker} started: from
 * source through tsx's require hook (the only one such a worker has), else with `import()`.
 */
export async function loadSiblingModule<T>(url: string): Promise<T> {
  return url.endsWith('.ts') ? (createRequire(import.meta.url)(fileURLToPath(url)) as T) : ((await import(url)) as T);
}

/** The nice value of a worker that must give way to the threads that relay sessions. */
const BACKGROUND_NICE = 19;

/**
 * Gives the calling thread the lowest CPU priority, so that it gives way to the threads that relay
 * sessions (Linux sets it per thread; elsewhere the thread keeps the process's priority).
 *
 * @see https://man7.org/linux/man-pages/man2/setpriority.2.html (NOTES: per thread on Linux)
 */
export function lowerThreadPriority(): void {
  try {
    // `/proc/thread-self` is `<pid>/task/<tid>`; setpriority(2) on a thread id changes that thread alone.
    setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), BACKGROUND_NICE);
  } catch {
    /* not Linux */
  }
}

/** What a {@link LazyWorker}'s owner hears: each message, and the death of the worker it was using. */
export interface LazyWorkerEvents<Reply> {
  message(reply: Reply, worker: Worker): void;
  /** The worker failed or exited while in use (`why`: the error's message, or its exit code): what it held is lost; the next use starts another. */
  died(why: string): void;
}

/**
 * One worker started on first use and again after it dies, held by the process only while it has
 * work: the supervision the SQL analyser, the recording thread and the verifying thread share
 * (each keeps its own jobs).
 */
export class LazyWorker<Reply> {
  #worker: Worker | undefined;

  constructor(
    private readonly start: () => Worker,
    private readonly events: LazyWorkerEvents<Reply>,
  ) {}

  /** The running worker, started when there is none. */
  get worker(): Worker {
    if (this.#worker) return this.#worker;
    const w = this.start();
    this.#worker = w;
    w.on('message', (reply: Reply) => this.events.message(reply, w));
    const died = (why: string): void => {
      if (this.#worker !== w) return;
      this.#worker = undefined;
      this.events.died(why);
    };
    w.on('error', (err: Error) => died(err.message));
    w.on('exit', (code: number) => died(`exit code ${code}`));
    return w;
  }

  /** The worker, when one runs. */
  get running(): Worker | undefined {
    return this.#worker;
  }

  /** Holds the process while there is work (`true`), lets it exit while there is none. */
  busy(working: boolean): void {
    if (working) this.#worker?.ref();
    else this.#worker?.unref();
  }

  /** Ends the worker without telling `died` (what it held is the owner's to settle); the next use starts another. */
  async retire(worker = this.#worker): Promise<void> {
    if (worker && this.#worker === worker) this.#worker = undefined;
    await worker?.terminate();
  }
}

/**
 * A {@link LazyWorker} handed one message at a time, each answered by the reply that follows it; a
 * message the worker died holding is answered by `lost(why)`. Messages are taken in turn by owner
 * (round robin), each owner's in arrival order: one owner's many messages wait behind one of each
 * other owner's, not the other way round.
 */
export class WorkerQueue<Message, Reply> {
  readonly #worker: LazyWorker<Reply>;
  /** Each owner's waiting messages, the owners in the order they are served. */
  readonly #queues = new Map<string, Array<{ message: Message; resolve: (reply: Reply) => void }>>();
  #current: ((reply: Reply) => void) | undefined;
  /** Whose message the worker was handed last. */
  #served: string | undefined;
  readonly #lost: (why: string) => Reply;
  readonly #deadline: WorkerDeadline | undefined;
  #cancelDeadline: (() => void) | undefined;

  /** `deadline`: a message the worker spends longer on is answered `lost` and the worker ended, so one message holds the others back no longer. */
  constructor(start: () => Worker, lost: (why: string) => Reply, deadline?: WorkerDeadline) {
    this.#lost = lost;
    this.#deadline = deadline;
    this.#worker = new LazyWorker<Reply>(start, { message: (reply) => this.#answer(reply), died: (why) => this.#answer(lost(why)) });
  }

  #answer(reply: Reply): void {
    this.#cancelDeadline?.();
    this.#cancelDeadline = undefined;
    const resolve = this.#current;
    this.#current = undefined;
    resolve?.(reply);
    this.#next();
  }

  /** The worker's reply to `message` of `owner`, once it is its turn. */
  ask(message: Message, owner = ''): Promise<Reply> {
    return new Promise((resolve) => {
      const queue = this.#queues.get(owner);
      if (queue) queue.push({ message, resolve });
      else this.#queues.set(owner, [{ message, resolve }]);
      this.#next();
    });
  }

  /** Hands the next owner's next message to the worker (started when needed); the worker holds the process only while it works. */
  #next(): void {
    if (this.#current) return;
    if (this.#queues.size === 0) {
      this.#worker.busy(false);
      return;
    }
    // The first owner waiting, but the one served last while another waits.
    const owners = [...this.#queues.keys()];
    const owner = owners.find((o) => o !== this.#served) ?? owners[0]!;
    const queue = this.#queues.get(owner)!;
    const job = queue.shift()!;
    // Served: to the back of the line, with what it has left.
    this.#queues.delete(owner);
    if (queue.length > 0) this.#queues.set(owner, queue);
    this.#served = owner;
    const w = this.#worker.worker;
    this.#worker.busy(true);
    this.#current = job.resolve;
    w.postMessage(job.message);
    if (this.#deadline) this.#watch(w, this.#deadline);
  }

  /**
   * Ends the job `w` holds once it has used `ms` of the worker's CPU time (its wall time where that
   * cannot be read), or {@link WALL_TIMES} that in wall time: a thread the machine starves, or one
   * still starting, has not spent its time on the line.
   */
  #watch(w: Worker, { ms, clock, cpu = threadCpuMs }: WorkerDeadline): void {
    const at = cpu(w);
    const from = typeof at === 'number' ? at : 0;
    const end = clock.now() + ms * WALL_TIMES;
    const arm = (wait: number): void => {
      this.#cancelDeadline = clock.timer(wait, () => {
        const now = cpu(w);
        const left = Math.min(now === 'starting' ? ms : now === undefined ? 0 : ms - (now - from), end - clock.now());
        if (left > 0) return arm(left);
        void this.#worker.retire(w);
        this.#answer(this.#lost(`it took more than ${ms / 1000} s`));
      });
    };
    arm(ms);
  }
}

/** How long a {@link WorkerQueue}'s worker may spend on one message: `ms` of its CPU time (read by `cpu`, {@link threadCpuMs} unless a test says), on `clock`. */
export interface WorkerDeadline {
  ms: number;
  clock: Clock;
  cpu?: (w: Worker) => number | 'starting' | undefined;
}

/** A job's deadline in wall time, as a multiple of its CPU time. */
export const WALL_TIMES = 6;
