/**
 * What a JSON body's masking does to each value (./json-stream.ts), by the policy's masking rules,
 * as an MCP result is masked (src/mcp/pipeline/masking.ts): a field whose name a `names` rule
 * matches is masked whole by its strategy (`null` where it says NULL); every other string, every
 * key, and every number read as the digits of its value, by the detectors, and again as a reader of
 * the text reads it where that differs (escapes and character references decoded, hex runs).
 */
import { jsonText } from '../../json-number.js';
import { integerDigits } from '../../policy/masking/detectors.js';
import type { MaskingRules } from '../../policy/masking/rules.js';
import { readableView } from '../../policy/masking/values.js';
import type { ScalarTransform } from './json-stream.js';

/** The transforms of a JSON body's values and keys under `rules`; `report` hears what masked one. */
export function jsonMasking(rules: MaskingRules, report?: (by: 'name' | 'detector') => void): { value: ScalarTransform; key: (name: string) => string | undefined } {
  /** `text` with what the detectors find masked, as written and as read; undefined when they find nothing. */
  const detected = (text: string): string | undefined => {
    const out = rules.maskText(text);
    const read = readableView(out.text);
    const again = read === out.text ? undefined : rules.maskText(read);
    if (!out.changed && !again?.changed) return undefined;
    report?.('detector');
    return again?.changed ? again.text : out.text;
  };
  return {
    value: (path, value) => {
      const name = path.at(-1);
      const strategy = typeof name === 'string' && value !== null ? rules.forName(name) : undefined;
      if (strategy) {
        report?.('name');
        return rules.apply(typeof value === 'string' ? value : jsonText(value), strategy, true);
      }
      if (typeof value === 'string') return detected(value);
      if (typeof value !== 'number') return undefined;
      // A number as the digits of its value, as its reader gets them (`4111111111111111e0` is a card).
      const text = jsonText(value);
      const digits = /[.eE]/.test(text) ? integerDigits(text.replace(/^-/, '')) : undefined;
      return detected(digits === undefined ? text : `${text.startsWith('-') ? '-' : ''}${digits}`);
    },
    key: (name) => detected(name),
  };
}
