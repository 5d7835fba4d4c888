/**
 * The raw parse tree as typed values: libpg-query's JSON output (PostgreSQL 17's raw parse tree)
 * described by the node types of `@pgsql/types` (which libpg-query re-exports), and the few
 * readers every analysis module uses to take it apart.
 *
 * A node is an object with one key, its type, around its fields (`{ "RangeVar": { ... } }`);
 * {@link unwrap} turns it into a `[tag, body]` pair whose tag narrows the body's type. Fields
 * declared with a concrete struct type are written bare (see `node-fields.ts`), and the types say
 * so (`SelectStmt.larg` is a `SelectStmt`, `InsertStmt.relation` a `RangeVar`).
 *
 * @see https://github.com/pganalyze/libpg_query (JSON output of the raw parse tree, PostgreSQL 17)
 * @see https://github.com/postgres/postgres/blob/REL_17_STABLE/src/include/nodes/parsenodes.h
 */
import type { ColumnRef, Node, RangeVar, SelectStmt } from 'libpg-query';

/** The name of a node type (`SelectStmt`, `RangeVar`, `A_Const`, ...): a key of {@link Node}. */
export type NodeTag = Node extends infer N ? (N extends unknown ? keyof N : never) : never;

/** The fields of the node type named `K`. */
export type NodeOf<K extends NodeTag> = Extract<Node, Record<K, unknown>>[K];

/** A node as a `[tag, body]` pair: comparing the tag narrows the body. */
export type Tagged = { [K in NodeTag]: readonly [K, NodeOf<K>] }[NodeTag];

/** The pairs of the node types named in `K`. */
export type TaggedOf<K extends NodeTag> = Extract<Tagged, readonly [K, unknown]>;

/** What {@link unwrap} returns for a value that is not a node (absent, a list, a bare struct). */
export type NotANode = readonly [undefined, Readonly<Record<string, never>>];

/** The statements that write rows. */
export type WriteTag = 'InsertStmt' | 'UpdateStmt' | 'DeleteStmt' | 'MergeStmt';

/** The statements that are queries with a WITH clause, a target list and row sources. */
export type QueryTag = 'SelectStmt' | WriteTag;

/**
 * A node as a `[tag, body]` pair, or `[undefined, {}]` when the value is not a node. The tag is
 * read off the JSON: the pairing with the body's type is asserted here, once, not checked (a
 * node type `@pgsql/types` did not know would fall through every switch to a generic walk).
 */
export function unwrap(node: unknown): Tagged | NotANode {
  if (node && typeof node === 'object' && !Array.isArray(node)) {
    const keys = Object.keys(node);
    if (keys.length === 1 && /^[A-Z]/.test(keys[0]!)) {
      const inner = (node as Record<string, unknown>)[keys[0]!];
      return [keys[0], inner && typeof inner === 'object' ? inner : {}] as Tagged;
    }
  }
  return [undefined, {}];
}

/** A node as a `[tag, body]` pair; undefined when the value is not a node. */
export function tagged(node: unknown): Tagged | undefined {
  const pair = unwrap(node);
  return pair[0] === undefined ? undefined : pair;
}

/** The body of a node of type `tag`; undefined when the value is another node or none. */
export function nodeAs<K extends NodeTag>(node: unknown, tag: K): NodeOf<K> | undefined {
  const [type, body] = unwrap(node);
  // A generic tag does not narrow the pair: the comparison is the check.
  return type === tag ? (body as NodeOf<K>) : undefined;
}

/** A list field's items (an absent list is empty). */
export function list<T>(v: readonly T[] | undefined): readonly T[] {
  return Array.isArray(v) ? v : [];
}

/** The `sval`s of a list of String nodes (a qualified name). */
export function names(v: readonly Node[] | undefined): string[] {
  const out: string[] = [];
  for (const item of list(v)) {
    const sval = nodeAs(item, 'String')?.sval;
    if (typeof sval === 'string') out.push(sval);
  }
  return out;
}

/** Whether a SELECT is a set operation (UNION, INTERSECT, EXCEPT) of two others. */
export function isSetOperation(select: SelectStmt): boolean {
  return typeof select.op === 'string' && select.op !== 'SETOP_NONE';
}

/**
 * A bare struct that is a RangeVar (one a field holds without the node wrapper that
 * `node-fields.ts` does not list), told by its `relname`: the generic walks meet every field of
 * every node as plain JSON, which no node type describes.
 */
export function bareRangeVar(value: object): RangeVar | undefined {
  return typeof (value as { relname?: unknown }).relname === 'string' ? (value as RangeVar) : undefined;
}

/** A parse tree as JSON without the `location` fields (which depend on where the text starts). */
export function treeKey(node: unknown): string {
  return JSON.stringify(node, (key, value: unknown) => (key === 'location' ? undefined : value));
}

/**
 * A DefElem's boolean value as PostgreSQL's defGetBoolean reads it (absent = true).
 * @see https://github.com/postgres/postgres/blob/REL_17_STABLE/src/backend/commands/define.c
 */
export function defElemTrue(arg: Node | undefined): boolean {
  if (arg === undefined) return true;
  const [type, body] = unwrap(arg);
  switch (type) {
    case 'A_Const':
      // An A_Const holds one of ival / boolval / sval (protobuf leaves a zero out: `ival: {}` is 0).
      if (body.ival !== undefined) return (body.ival.ival ?? 0) !== 0;
      if (body.boolval !== undefined) return body.boolval.boolval === true;
      return wordTrue(body.sval?.sval);
    case 'Integer':
      return (body.ival ?? 0) !== 0;
    case 'Boolean':
      return body.boolval === true;
    case 'String':
      return wordTrue(body.sval);
    default:
      return true;
  }
}

/** A boolean option's word: anything but a prefix of false / off / no, or 0, is true. */
function wordTrue(word: string | undefined): boolean {
  return !['false', 'off', 'no', '0', 'of', 'fa', 'f', 'n'].includes(String(word).toLowerCase());
}

/** A ColumnRef as written, lower-case: `a`, `a.b`, `a.*`, `*`. */
export function columnRefText(ref: ColumnRef): string {
  return list(ref.fields)
    .map((f) => {
      const [type, body] = unwrap(f);
      if (type === 'A_Star') return '*';
      return (type === 'String' && typeof body.sval === 'string' ? body.sval : '?').toLowerCase();
    })
    .join('.');
}
