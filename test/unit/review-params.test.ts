/** What a reviewer is shown of a Bind's parameters (src/postgres/pipeline/gate/review-display.ts): no two values show alike. */
import { describe, expect, it } from 'vitest';
import { reviewParams } from '../../src/postgres/pipeline/gate/review-display.js';

/** A Bind's body: unnamed portal and statement, one format per value, the values, no result formats. */
function bindBody(values: Array<{ bytes: Buffer; format: 0 | 1 }>): Buffer {
  const int16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
  const int32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeInt32BE(n);
    return b;
  };
  return Buffer.concat([Buffer.from('\0\0'), int16(values.length), ...values.map((v) => int16(v.format)), int16(values.length), ...values.flatMap((v) => [int32(v.bytes.length), v.bytes]), int16(0)]);
}

describe("a Bind's parameters as a reviewer sees them", () => {
  it('show a binary value and a text that spells its hex apart (the thirteenth attack: both showed \\x61646d696e)', () => {
    const binary = reviewParams(bindBody([{ bytes: Buffer.from('admin'), format: 1 }]));
    const typed = reviewParams(bindBody([{ bytes: Buffer.from('\\x61646d696e'), format: 0 }]));
    expect(binary).toEqual({ params: ['\\x61646d696e'] });
    expect(typed).toEqual({ params: ['\\\\x61646d696e'] });
    expect(reviewParams(bindBody([{ bytes: Buffer.from('plain text'), format: 0 }]))).toEqual({ params: ['plain text'] });
  });
});
