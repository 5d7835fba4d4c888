/**
 * The listings, as a stage (./stages.ts): `tools/list`, `resources/list` and `prompts/list`
 * answered with only what the session's policy could allow.
 */
import type { McpAsk } from '../../policy/mcp.js';
import type { SessionMcp } from '../../session/engine.js';
import type { InFlight, McpStage } from './stages.js';

/** Listings filtered by what the policy shows: the answer's list, and the kind and name of each item. */
const LISTINGS: Record<string, { list: string; kind: McpAsk['kind']; key: string }> = {
  'tools/list': { list: 'tools', kind: 'tool', key: 'name' },
  'resources/list': { list: 'resources', kind: 'resource', key: 'uri' },
  'prompts/list': { list: 'prompts', kind: 'prompt', key: 'name' },
};

/** See the module documentation. */
export class McpListings implements McpStage {
  readonly #mcp: SessionMcp;

  constructor(mcp: SessionMcp) {
    this.#mcp = mcp;
  }

  toAgent(raw: Record<string, unknown>, flight: InFlight | undefined): Record<string, unknown> {
    const listing = flight && Object.hasOwn(LISTINGS, flight.method) ? LISTINGS[flight.method] : undefined;
    const result = raw.result;
    if (!listing || 'error' in raw || typeof result !== 'object' || result === null) return raw;
    const items = (result as Record<string, unknown>)[listing.list];
    if (!Array.isArray(items)) return raw;
    const shown = items.filter((item: unknown) => {
      const name = (item as Record<string, unknown> | null)?.[listing.key];
      return typeof name === 'string' && this.#mcp.shows(listing.kind, name);
    });
    return shown.length === items.length ? raw : { ...raw, result: { ...result, [listing.list]: shown } };
  }
}
