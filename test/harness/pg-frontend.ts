/**
 * Builders of PostgreSQL frontend messages for tests that drive the extended protocol by hand.
 * A part is a C string (string), an Int16 (number: -32,768 to 65,535, written as its 16 bits, so a
 * count above 32,767 goes out as PostgreSQL reads it) or raw bytes (Buffer).
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */

/** A typed message whose body is `parts`, with its length field filled in. */
export function frontendMessage(type: string, ...parts: Array<Buffer | string | number>): Buffer {
  const body = Buffer.concat(
    parts.map((p) => {
      if (typeof p === 'number') {
        const b = Buffer.alloc(2);
        b.writeUInt16BE(p & 0xffff);
        return b;
      }
      return typeof p === 'string' ? Buffer.from(`${p}\0`) : p;
    }),
  );
  const header = Buffer.alloc(5);
  header.write(type, 0, 'latin1');
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

/** A big-endian Int32. */
export function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

/** Parse of `sql` as statement `name`, no parameter types. */
export const parse = (name: string, sql: string): Buffer => frontendMessage('P', name, sql, 0);
/** Bind of `stmt` to `portal`, no parameters, every result column in `format`. */
export const bind = (portal: string, stmt: string, format: 0 | 1 = 0): Buffer => (format === 0 ? frontendMessage('B', portal, stmt, 0, 0, 0) : frontendMessage('B', portal, stmt, 0, 0, 1, format));
/** Execute of `portal`, at most `maxRows` rows (0: all). */
export const execute = (portal: string, maxRows = 0): Buffer => frontendMessage('E', portal, int32(maxRows));
/** Describe of a portal. */
export const describePortal = (portal: string): Buffer => frontendMessage('D', Buffer.from('P'), portal);
/** Close of a statement (`S`) or portal (`P`). */
export const close = (kind: 'S' | 'P', name: string): Buffer => frontendMessage('C', Buffer.from(kind), name);
export const sync = (): Buffer => frontendMessage('S');
export const flush = (): Buffer => frontendMessage('H');
