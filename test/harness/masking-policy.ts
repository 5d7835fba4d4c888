/** The masking policy the masking tests share: a `customers` table with sensitive columns. */
import type { MaskingPolicyLike } from '../../src/policy/masking/rules.js';

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
