/** The masking policy the masking tests share: a `customers` table with sensitive columns. */
import type { MaskingPolicyLike } from '../../src/policy/masking/rules.js';
import type { MaskStrategy } from '../../src/policy/masking/strategies.js';
import type { CopyOptions } from '../../src/postgres/pipeline/masking/copy-out.js';
import type { ColumnJudge, StatementHints } from '../../src/postgres/pipeline/masking/judging.js';

/**
 * Column rules on `public.customers` (email redacted, card_number last4, balance hashed), a name
 * rule for SSN-like columns, and the card, email and SSN detectors; `key` for `hash`.
 */
export function customersMaskingPolicy(key: string): MaskingPolicyLike {
  return {
    key,
    columns: [
      { table: 'public.customers', column: 'email', strategy: 'redact' },
      { table: 'public.customers', column: 'card_number', strategy: 'last4' },
      { table: 'public.customers', column: 'balance', strategy: 'hash' },
    ],
    names: [{ pattern: '^(ssn|social_security)', strategy: 'last4' }],
    detectors: [
      { detector: 'payment-card', strategy: 'last4' },
      { detector: 'email', strategy: 'hash' },
      { detector: 'us-ssn', strategy: 'redact' },
    ],
  };
}

/** A statement whose computed columns come from no masked column, and one whose come from code hoop cannot read. */
export const EXACT: StatementHints = { statements: [{ lineage: { branches: [], reads: [], relations: [] } }] };

/** A COPY TO STDOUT with these format options, its columns as the judge says. */
export function copyHints(copy: CopyOptions): StatementHints {
  return { statements: [{ lineage: { branches: [], reads: [], relations: [] }, copy }] };
}
export const MASK: StatementHints = { statements: [{ opaque: 'a test' }] };

/**
 * A judge for tests that drive a ResultMasker without the masking stage: an opaque statement's
 * columns masked, any other's exact; a COPY's columns (which have no names) by `copy()`.
 */
export function testJudge(copy: () => ReadonlyArray<MaskStrategy | undefined> = () => []): ColumnJudge {
  return {
    columns: (fields, positions, statement) => positions.map((i) => ('opaque' in statement ? 'redact' : fields[i]!.name === '' ? copy()[i] : undefined)),
    quotes: (statement) => 'opaque' in statement,
  };
}
