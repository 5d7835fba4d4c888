/**
 * The webhook sender (src/gateway/reviews/review-notify.ts) that reviews and alerts notify through: a
 * storm of events reaches one target at most ten times a minute in full, then as one summary
 * saying how many were held back; other targets are not held back by it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PER_TARGET_PER_MINUTE, WebhookSender } from '../../src/gateway/reviews/review-notify.js';
import { createLogger } from '../../src/log.js';
import { eventually } from '../harness/wait.js';
import { webhookReceiver, type WebhookReceiver } from '../harness/webhook-receiver.js';

let target: WebhookReceiver;

beforeAll(async () => {
  target = await webhookReceiver();
});
afterAll(() => target.close());

describe('webhook sender', () => {
  it('sends a target ten messages a minute, then one summary of what it held back; another target is not held back', async () => {
    let now = 1_000_000;
    const sender = new WebhookSender({ log: createLogger({ level: 'error', sink: { write: () => undefined } }), resolveUrl: async (u) => u, now: () => now });
    const storm = { url: `${target.base}/storm`, format: 'json' as const };
    const quiet = { url: `${target.base}/quiet`, format: 'json' as const };
    for (let i = 0; i < 25; i++) sender.send(storm, { event: 'alert.raised', i }, { i });
    sender.send(quiet, { event: 'alert.raised', i: 'q' }, {});
    await sender.settled();
    expect(target.received.filter((r) => r.path === '/storm').map((r) => r.body.i)).toEqual(Array.from({ length: PER_TARGET_PER_MINUTE }, (_, i) => i));
    expect(target.received.filter((r) => r.path === '/quiet')).toHaveLength(1);
    // The minute is over: the next message is preceded by the summary of the 15 held back.
    now += 61_000;
    sender.send(storm, { event: 'alert.raised', i: 'next' }, {});
    await eventually(() => expect(target.received.filter((r) => r.path === '/storm')).toHaveLength(PER_TARGET_PER_MINUTE + 2));
    const after = target.received.filter((r) => r.path === '/storm').slice(PER_TARGET_PER_MINUTE);
    expect(after).toContainEqual({ path: '/storm', body: expect.objectContaining({ event: 'notifications.held', count: 15 }) });
    expect(after).toContainEqual({ path: '/storm', body: { event: 'alert.raised', i: 'next' } });
    sender.close();
  });
});
