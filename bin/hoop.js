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
for (const signal of ['SIGINT', 'SIGTERM']) {
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
  takeSignals(listener) {
    taker = listener;
    const others = FORWARDED_SIGNALS.filter((s) => s !== 'SIGINT' && s !== 'SIGTERM').map((s) => {
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
