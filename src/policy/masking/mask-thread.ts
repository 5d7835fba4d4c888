/**
 * The worker thread of {@link maskAhead} (./mask-ahead.ts): masks each text it is handed with the
 * content detectors it is told of, and hands back the result (nothing when that fails: the text is
 * then masked on the event loop).
 *
 * @see https://nodejs.org/api/worker_threads.html#workerparentport
 */
import { parentPort } from 'node:worker_threads';
import { announceThread } from '../../worker-thread.js';
import { type Detection, MaskingRules } from './rules.js';

announceThread();

/** The rules of each detection told, made once (sessions of one policy share them). */
const made = new Map<string, MaskingRules>();

function rulesOf(d: Detection): MaskingRules {
  const id = JSON.stringify(d);
  let rules = made.get(id);
  if (!rules) {
    if (made.size > 64) made.clear();
    made.set(id, (rules = new MaskingRules({ detectors: d.detectors.map(([detector, strategy]) => ({ detector, strategy })) }, d.key)));
  }
  return rules;
}

parentPort!.on('message', (m: { text: string; detection: Detection }) => {
  try {
    parentPort!.postMessage({ masked: rulesOf(m.detection).maskText(m.text) });
  } catch {
    parentPort!.postMessage({ masked: undefined });
  }
});
