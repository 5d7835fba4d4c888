/** What a rewriter of a stream (`push` each piece as it comes, then `end`) makes of `text` cut at `cuts` (byte offsets, ascending). */
export function streamedThrough(s: { push(chunk: Buffer): Buffer; end(): Buffer }, text: string, cuts: readonly number[] = []): string {
  const bytes = Buffer.from(text, 'utf8');
  const out: Buffer[] = [];
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    out.push(s.push(bytes.subarray(at, cut)));
    at = cut;
  }
  out.push(s.end());
  return Buffer.concat(out).toString('utf8');
}

/** {@link streamedThrough} of a rewriter whose `push` may wait (a Promise). */
export async function streamedThroughAsync(s: { push(chunk: Buffer): Buffer | Promise<Buffer>; end(): Buffer }, text: string, cuts: readonly number[] = []): Promise<string> {
  const bytes = Buffer.from(text, 'utf8');
  const out: Buffer[] = [];
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    out.push(await s.push(bytes.subarray(at, cut)));
    at = cut;
  }
  out.push(s.end());
  return Buffer.concat(out).toString('utf8');
}
