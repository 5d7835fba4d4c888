/** A policy with nothing in it (what `version: 1` alone loads to), with the parts a test sets. */
import type { Policy } from '../../src/policy/schema.js';

export function emptyPolicy(parts: Partial<Policy> = {}): Policy {
  return {
    connections: [],
    access: [],
    statements: { unparseable: 'deny', rules: [] },
    masking: { columns: [], names: [], detectors: [], derived: 'mask' },
    recording: { results: 'masked', rowCap: 1000, onFailure: 'close', auditors: [] },
    tests: [],
    ...parts,
  };
}
