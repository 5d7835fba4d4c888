/**
 * Seeded random choices for generated tests: the same sequence for the same seed, so that a
 * failure reproduces from the seed it prints.
 */

/** mulberry32: a small PRNG with a fixed sequence per seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random choices from one seeded sequence. */
export class Random {
  readonly #r: () => number;

  constructor(seed: number) {
    this.#r = prng(seed);
  }

  int(n: number): number {
    return Math.floor(this.#r() * n);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

/** The value types generated schemas use. */
export type GeneratedType = 'int' | 'text' | 'num' | 'date' | 'bool';

/** A random value of `type` as an SQL literal (PostgreSQL's and MariaDB's alike), sometimes NULL; integers fall among the ids of `rows` rows (joins meet). */
export function sqlLiteral(r: Random, type: GeneratedType, rows: number): string {
  if (r.int(8) === 0) return 'NULL';
  switch (type) {
    case 'int':
      return String(1 + r.int(rows));
    case 'text':
      return `'${r.pick(['ab', 'Zed', 'x y', 'ñu', '42', ''])}${r.int(9)}'`;
    case 'num':
      return (r.int(100_000) / 4).toFixed(2);
    case 'date':
      return `'20${10 + r.int(20)}-0${1 + r.int(9)}-1${r.int(9)}'`;
    case 'bool':
      return r.pick(['TRUE', 'FALSE']);
  }
}
