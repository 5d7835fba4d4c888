/**
 * A small least-recently-used cache over a `Map` (which keeps insertion order): a hit moves the
 * entry to the back, an insert past capacity drops the front.
 *
 * @see https://tc39.es/ecma262/#sec-map-objects (Map iteration follows insertion order)
 */
export class LruCache<K, V> {
  readonly #map = new Map<K, V>();

  /** @param capacity the most entries kept (at least 1). */
  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('LruCache capacity must be a positive integer');
  }

  /** The value for `key`, marking it most recently used; `undefined` when absent. */
  get(key: K): V | undefined {
    const value = this.#map.get(key);
    if (value === undefined) return undefined;
    this.#map.delete(key);
    this.#map.set(key, value);
    return value;
  }

  /** Stores `value` as the most recently used entry, evicting the least recently used one if full. */
  set(key: K, value: V): void {
    this.#map.delete(key);
    this.#map.set(key, value);
    if (this.#map.size > this.capacity) {
      const oldest = this.#map.keys().next();
      if (!oldest.done) this.#map.delete(oldest.value);
    }
  }

  /** How many entries are held. */
  get size(): number {
    return this.#map.size;
  }

  /** Drops every entry. */
  clear(): void {
    this.#map.clear();
  }
}
