#!/usr/bin/env node
// Thin launcher: the only place that calls process.exit. Everything else lives in dist/cli.js.
import { main } from '../dist/cli.js';
import { FORWARDED_SIGNALS } from '../dist/io.js';

// A reader that went away (`hoop … | head`): end quietly, as Unix tools do when SIGPIPE ends them (128 + 13).
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(141);
  throw err;
});
process.stderr.on('error', () => {});

/** Resolves once everything written to `stream` went out: a pipe is written asynchronously, and process.exit drops what is still queued. */
const drained = (stream) =>
  new Promise((resolve) => {
    if (stream.destroyed || stream.writableEnded) return resolve();
    stream.write('', () => resolve());
  });

const controller = new AbortController();
let interrupts = 0;
/** Set while a command (`hoop run`) hands the signals on to its child. */
let taker;
/** The signals that stop a command cleanly (a closed terminal's SIGHUP among them); the rest keep their default. */
const STOPPING = ['SIGINT', 'SIGTERM', 'SIGHUP'];
for (const signal of STOPPING) {
  process.on(signal, () => {
    if (taker) return taker(signal);
    interrupts += 1;
    if (interrupts > 1) process.exit(130);
    controller.abort(signal);
  });
}

const code = await main(process.argv.slice(2), {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  cwd: process.cwd(),
  signal: controller.signal,
  whenOrphaned() {
    // The process that started hoop is gone when hoop's parent changes (npx, killed, does not hand its SIGTERM on).
    const parent = process.ppid;
    return new Promise((resolve) => {
      const timer = setInterval(() => {
        if (process.ppid === parent) return;
        clearInterval(timer);
        resolve();
      }, 500);
      timer.unref();
    });
  },
  takeSignals(listener) {
    taker = listener;
    const others = FORWARDED_SIGNALS.filter((s) => !STOPPING.includes(s)).map((s) => {
      const handler = () => listener(s);
      process.on(s, handler);
      return () => process.off(s, handler);
    });
    return () => {
      taker = undefined;
      for (const give of others) give();
    };
  },
});
await Promise.all([drained(process.stdout), drained(process.stderr)]);
process.exit(code);
