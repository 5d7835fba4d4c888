/**
 * A text-format column value as JSON: numbers, booleans and JSON documents as themselves where
 * the JSON says exactly what the server sent, anything else as the text (a masked value, a
 * `numeric` wider than a double, `NaN`, an `int8` past 2^53). What `hoop exec --json` prints and
 * `hoop mcp` answers.
 *
 * @see https://www.postgresql.org/docs/current/datatype-numeric.html
 * @see https://www.rfc-editor.org/rfc/rfc8259#section-6 (numbers: interoperable within IEEE 754 doubles)
 */

/** Type OIDs of the built-in types read here (`pg_type.oid`, fixed in PostgreSQL's catalog). */
const BOOL = 16;
const INT8 = 20;
const INT2 = 21;
const INT4 = 23;
const OID = 26;
const JSON_TYPE = 114;
const FLOAT4 = 700;
const FLOAT8 = 701;
const NUMERIC = 1700;
const JSONB = 3802;

/** A number that reads back as the same text (`1.50` and `1e3` do not: they stay text). */
function exactNumber(v: string): number | string {
  const n = Number(v);
  return Number.isFinite(n) && String(n) === v ? n : v;
}

/** `v` (text format, as the server sent it; null for NULL) of a column of type `typeOid`, as JSON. */
export function jsonValue(v: string | null, typeOid: number): unknown {
  if (v === null) return null;
  switch (typeOid) {
    case BOOL:
      return v === 't' ? true : v === 'f' ? false : v;
    case INT2:
    case INT4:
    case OID:
    case INT8:
    case FLOAT4:
    case FLOAT8:
    case NUMERIC:
      return exactNumber(v);
    case JSON_TYPE:
    case JSONB:
      try {
        return JSON.parse(v) as unknown;
      } catch {
        return v; // masked, or not JSON as the type says: the text as it came
      }
    default:
      return v;
  }
}
