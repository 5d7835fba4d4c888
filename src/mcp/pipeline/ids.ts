/**
 * The requests one side sent the other through the gateway, each under an id the gateway gave it:
 * a counter never reused in the session, so an answer is matched to the request it truly answers,
 * never to a later one its sender gave the same id (a cancelled call's late answer is no `ping`'s).
 */
import { idKey, type JsonRpcId } from '../wire/json-rpc.js';

/** A request in flight: its sender's id, and what the relay keeps of it. */
export interface Sent<T> {
  /** The gateway's id for it, the one its receiver sees. */
  ours: number;
  /** The id its sender gave it. */
  theirs: JsonRpcId;
  value: T;
}

/** See the module documentation. */
export class GatewayIds<T> {
  #next = 1;
  readonly #byOurs = new Map<number, Sent<T>>();
  readonly #byTheirs = new Map<string, Sent<T>>();

  /** Requests in flight. */
  get size(): number {
    return this.#byOurs.size;
  }

  /** The request in flight its sender calls `theirs`. */
  ofTheirs(theirs: JsonRpcId): Sent<T> | undefined {
    return this.#byTheirs.get(idKey(theirs));
  }

  /** The request in flight the gateway calls `ours` (an answer's id). */
  ofOurs(ours: JsonRpcId): Sent<T> | undefined {
    return typeof ours === 'number' ? this.#byOurs.get(ours) : undefined;
  }

  /** A new id of the gateway's, for a request it may forward. */
  next(): number {
    return this.#next++;
  }

  /** Takes the sender's request `theirs` in flight under the gateway's id `ours` (of {@link GatewayIds.next}). */
  add(ours: number, theirs: JsonRpcId, value: T): Sent<T> {
    const sent = { ours, theirs, value };
    this.#byOurs.set(sent.ours, sent);
    this.#byTheirs.set(idKey(theirs), sent);
    return sent;
  }

  /** The request is answered or cancelled: its id is free to its sender, and the gateway's is never used again. */
  delete(sent: Sent<T>): void {
    this.#byOurs.delete(sent.ours);
    this.#byTheirs.delete(idKey(sent.theirs));
  }

  /** Every request in flight. */
  values(): IterableIterator<Sent<T>> {
    return this.#byOurs.values();
  }

  clear(): void {
    this.#byOurs.clear();
    this.#byTheirs.clear();
  }
}
