/** A session's recording as a user exports it, for tests of every protocol. */
import { expect } from 'vitest';
import type { HoopStack } from './stack.js';
import { eventually } from './wait.js';

/** The events of session `id`'s recording (`hoop sessions export --format jsonl`, as alice), once it is complete. */
export async function recordingEvents(stack: HoopStack, id: string): Promise<Array<Record<string, unknown>>> {
  const token = await stack.token('alice');
  return eventually(
    async () => {
      const r = await stack.run(['sessions', 'export', id, '--format', 'jsonl', '--gateway', stack.gateway.url, '--ca-file', stack.pki.caFile], { HOOP_TOKEN: token });
      expect(r.code, r.stderr).toBe(0);
      const lines = r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.some((e) => e.t === 'end')).toBe(true);
      return lines;
    },
    { timeout: 60_000, interval: 200 },
  );
}
