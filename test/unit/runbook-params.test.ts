/**
 * A runbook's typed parameters (src/policy/runbook-params.ts): declarations read and checked, each
 * type's one reading of a value, every refusal naming its parameter, and generated hostile values
 * (SQL and shell metacharacters, Unicode tricks, huge and wrongly typed values) that are either
 * refused or handed on exactly as given, never changed.
 */
import { describe, expect, it } from 'vitest';
import { type ParamSpec, paramsSchema, RunbookParamError, RunbookParams } from '../../src/policy/runbook-params.js';
import { Random } from '../harness/random.js';

/** The parameters `decls` declare, or the schema's messages. */
function declare(decls: unknown): RunbookParams {
  return new RunbookParams(paramsSchema.parse(decls));
}
function problems(decls: unknown): string[] {
  const r = paramsSchema.safeParse(decls);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

const refund = declare({
  order_id: { type: 'integer', min: 1 },
  amount: { type: 'integer', min: 1, max: 10000, description: 'cents' },
  reason: { type: 'string', pattern: '[a-z ]{1,80}', default: 'customer request' },
  kind: { type: 'enum', values: ['full', 'partial'] },
  customer: { type: 'uuid', required: false },
  since: { type: 'date', required: false },
});

/** The refusal checking `given` as text meets, or undefined when it passes. */
function refusal(params: RunbookParams, given: Array<[string, unknown]>, from: 'text' | 'json' = 'text'): RunbookParamError | undefined {
  try {
    params.check(given, from);
    return undefined;
  } catch (err) {
    if (!(err instanceof RunbookParamError)) throw err;
    return err;
  }
}

const base: Array<[string, string]> = [
  ['order_id', '42'],
  ['amount', '500'],
  ['kind', 'full'],
];

describe('declarations', () => {
  it('reads each type, with defaults checked against their own type', () => {
    expect(refund.specs.map((s) => [s.name, s.type, s.required])).toEqual([
      ['order_id', 'integer', true],
      ['amount', 'integer', true],
      ['reason', 'string', true],
      ['kind', 'enum', true],
      ['customer', 'uuid', false],
      ['since', 'date', false],
    ]);
    expect(refund.specs.find((s) => s.name === 'reason')?.default).toEqual({ type: 'string', text: 'customer request' });
  });

  it('refuses what a runbook author could get wrong, saying where', () => {
    expect(problems({ x: { type: 'string', pattern: '(?=a)b' } })[0]).toMatch(/^x: pattern is not a regular expression hoop runs/);
    expect(problems({ x: { type: 'integer', min: 5, max: 1 } })).toEqual(['x: min 5 is more than max 1']);
    expect(problems({ x: { type: 'integer', default: 0, min: 1 } })[0]).toMatch(/^x: default: parameter x: is less than 1/);
    expect(problems({ x: { type: 'enum', values: ['a', 'a'] } })[0]).toMatch(/twice/);
    expect(problems({ x: { type: 'date', default: '2023-02-29' } })[0]).toMatch(/default: .*not a day/);
    expect(problems({ x: { type: 'float' } })[0]).toMatch(/type must be one of string, integer, enum, uuid, date/);
    expect(problems({ x: { type: 'uuid', pattern: 'a' } })[0]).toMatch(/pattern/);
    expect(problems({ 'Order-Id': { type: 'uuid' } })[0]).toMatch(/lower-case letters/);
    expect(problems({ x: { type: 'string', maxLength: 1_000_000 } }).length).toBe(1);
  });
});

describe('values', () => {
  it('hands on each value in its one canonical text', () => {
    const v = refund.check([...base, ['customer', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'], ['since', '2024-02-29']], 'text');
    expect(Object.fromEntries([...v].map(([k, x]) => [k, x.text]))).toEqual({
      order_id: '42',
      amount: '500',
      kind: 'full',
      customer: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
      since: '2024-02-29',
      reason: 'customer request',
    });
  });

  it('refuses each integer spelled another way, and one out of range, naming the parameter', () => {
    for (const bad of ['+1', '01', ' 1', '1 ', '1e3', '0x10', '1.0', '-0', '١', '１', '', '9223372036854775808', '99999999999999999999999']) {
      const err = refusal(refund, [['order_id', bad], ...base.slice(1)]);
      expect(err?.param, bad).toBe('order_id');
      expect(err?.message).toMatch(/^parameter order_id: /);
      expect(err?.exitCode).toBe(65);
    }
    expect(refusal(refund, [['amount', '10001'], base[0]!, base[2]!])?.message).toBe('parameter amount: is more than 10000');
    expect(refusal(refund, [['amount', '0'], base[0]!, base[2]!])?.message).toBe('parameter amount: is less than 1');
  });

  it('reads dates of the calendar and uuids in their one form', () => {
    const day = (d: string): string | undefined => refusal(refund, [...base, ['since', d]])?.message;
    for (const ok of ['2000-02-29', '2024-02-29', '0001-01-01', '9999-12-31']) expect(day(ok), ok).toBeUndefined();
    for (const bad of ['1900-02-29', '2023-02-29', '2024-13-01', '2024-04-31', '0000-01-01', '2024-1-01', '2024-01-01T00:00', '２０２４-01-01']) expect(day(bad), bad).toMatch(/since: is not a day/);
    for (const bad of ['a0eebc999c0b4ef8bb6d6bb9bd380a11', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g']) {
      expect(refusal(refund, [...base, ['customer', bad]])?.param).toBe('customer');
    }
  });

  it('takes an enum value exactly as declared', () => {
    for (const bad of ['Full', 'full ', 'ful', 'full\u200b']) expect(refusal(refund, [['kind', bad], base[0]!, base[1]!])?.param, bad).toBe('kind');
  });

  it('refuses strings with what a reviewer would not see, and matches a pattern whole', () => {
    const reason = (s: string): string | undefined => refusal(refund, [...base, ['reason', s]])?.message;
    expect(reason('late delivery')).toBeUndefined();
    for (const bad of ['late\u202edelivery', 'late\u200bdelivery', 'late\u0000', 'late\ndelivery', 'a\ud800', 'a\u2028b', '\ufeffa', 'late delivery; drop table orders', "late' or '1'='1"]) {
      expect(reason(bad), JSON.stringify(bad)).toMatch(/^parameter reason: /);
    }
    const long = declare({ s: { type: 'string', maxLength: 3 } });
    expect(long.check([['s', '😀😀😀']], 'text').get('s')?.text).toBe('😀😀😀');
    expect(refusal(long, [['s', 'abcd']])?.message).toBe('parameter s: 4 characters, more than its 3');
  });

  it('refuses a parameter unknown, given twice, without a value, or missing; fills in defaults', () => {
    expect(refusal(refund, [...base, ['orderid', '1']])?.message).toBe('parameter orderid: the runbook has no such parameter');
    expect(refusal(refund, [...base, ['kind', 'partial']])?.message).toBe('parameter kind: given twice');
    expect(refusal(refund, [...base.slice(1), ['order_id', undefined]])?.message).toBe('parameter order_id: given without a value');
    expect(refusal(refund, base.slice(1))?.message).toBe('parameter order_id: is required');
    expect(refund.check(base, 'text').has('since')).toBe(false);
  });

  it('takes JSON as its types say: an integer as a number, the rest as strings', () => {
    const json: Array<[string, unknown]> = [
      ['order_id', 42],
      ['amount', 500],
      ['kind', 'full'],
    ];
    expect(refund.check(json, 'json').get('order_id')?.text).toBe('42');
    for (const bad of ['42', 42.5, 2 ** 53, null, [42], { n: 42 }, true]) expect(refusal(refund, [['order_id', bad], ...json.slice(1)], 'json')?.param).toBe('order_id');
    for (const bad of [1, null, ['full'], false]) expect(refusal(refund, [['kind', bad], ...json.slice(0, 2)], 'json')?.param).toBe('kind');
  });

  it('matches a pattern in time linear in the value', () => {
    const p = declare({ s: { type: 'string', pattern: '(a+)+b', maxLength: 65536 } });
    const t0 = performance.now();
    expect(refusal(p, [['s', `${'a'.repeat(60_000)}c`]])?.param).toBe('s');
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  it('describes itself as an MCP tool input schema', () => {
    const schema = refund.jsonSchema();
    expect(schema.required).toEqual(['order_id', 'amount', 'kind']);
    expect(schema.additionalProperties).toBe(false);
    expect(schema.properties.amount).toEqual({ type: 'integer', minimum: 1, maximum: 10000, description: 'cents' });
    expect(schema.properties.reason).toEqual({ type: 'string', maxLength: 256, pattern: '^(?:[a-z ]{1,80})$', default: 'customer request' });
    expect(schema.properties.kind).toEqual({ type: 'string', enum: ['full', 'partial'] });
    expect(schema.properties.customer).toEqual({ type: 'string', format: 'uuid' });
  });
});

/** Pieces hostile values are made of: SQL and shell metacharacters, quotes, Unicode tricks, digits of other scripts. */
const PIECES = [
  "'",
  '"',
  ';',
  '--',
  '/*',
  '$1',
  '$$',
  '\\',
  '`',
  '$(id)',
  '|',
  '&&',
  '>',
  '\n',
  '\r',
  '\t',
  '\u0000',
  ' ',
  'drop table orders',
  ' or 1=1',
  '\u202e',
  '\u200b',
  '\u00a0',
  '\ufeff',
  'é',
  'é',
  '١',
  '１',
  '😀',
  '\ud800',
  '\udc00',
  'a',
  'z',
  '0',
  '9',
  '-',
  '+',
  'e',
  '.',
];

describe('generated hostile values', () => {
  const specs: ParamSpec[] = paramsSchema.parse({
    s: { type: 'string', maxLength: 40 },
    p: { type: 'string', pattern: '[a-z0-9 -]+' },
    n: { type: 'integer', min: -1000, max: 1000 },
    e: { type: 'enum', values: ['full', 'partial'] },
    u: { type: 'uuid' },
    d: { type: 'date' },
  });
  const params = new RunbookParams(specs.map((s) => ({ ...s, required: false })));

  it('each is refused naming its parameter, or handed on exactly as given', () => {
    const r = new Random(77);
    for (let i = 0; i < 4000; i++) {
      const value = Array.from({ length: 1 + r.int(6) }, () => r.pick(PIECES)).join('');
      for (const name of ['s', 'p', 'n', 'e', 'u', 'd']) {
        let got: string | undefined;
        try {
          got = params.check([[name, value]], 'text').get(name)?.text;
        } catch (err) {
          expect(err, `${name} ${JSON.stringify(value)}`).toBeInstanceOf(RunbookParamError);
          expect((err as RunbookParamError).param).toBe(name);
          continue;
        }
        // Taken: the very text given (an integer in its one spelling, which is the text given).
        expect(got, `${name} ${JSON.stringify(value)}`).toBe(value);
        if (name !== 's') expect(value).toMatch(/^[a-z0-9 -]*$/);
        expect(value).not.toMatch(/[\u0000-\u001f\u007f\u200b\u202e\ufeff]/);
      }
    }
  });
});
