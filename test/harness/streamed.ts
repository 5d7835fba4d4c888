/** `text`'s bytes cut at `cuts` (byte offsets, ascending): the pieces a stream's rewriter is pushed. */
function pieces(text: string, cuts: readonly number[]): Buffer[] {
  const bytes = Buffer.from(text, 'utf8');
  let at = 0;
  return [...cuts, bytes.length].map((cut) => {
    const piece = bytes.subarray(at, cut);
    at = cut;
    return piece;
  });
}

/** What a rewriter of a stream (`push` each piece as it comes, then `end`) makes of `text` cut at `cuts` (byte offsets, ascending). */
export function streamedThrough(s: { push(chunk: Buffer): Buffer; end(): Buffer }, text: string, cuts: readonly number[] = []): string {
  return Buffer.concat([...pieces(text, cuts).map((p) => s.push(p)), s.end()]).toString('utf8');
}

/** {@link streamedThrough} of a rewriter whose `push` may wait (a Promise). */
export async function streamedThroughAsync(s: { push(chunk: Buffer): Buffer | Promise<Buffer>; end(): Buffer }, text: string, cuts: readonly number[] = []): Promise<string> {
  const out: Buffer[] = [];
  for (const p of pieces(text, cuts)) out.push(await s.push(p));
  out.push(s.end());
  return Buffer.concat(out).toString('utf8');
}
