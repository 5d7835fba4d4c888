/**
 * Secrets a client binds as parameters, kept out of recordings as those it types into SQL are
 * (src/policy/sql/redact.ts): the values of parameters its statement takes as secrets
 * (`pgp_sym_encrypt($1, $2)`, `set api_token = $1`), and what the session's detectors find in any
 * text parameter (a card number bound to an INSERT), each recorded as its keyed hash, in text.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BIND
 */
import { type RedactOptions, redactDetected, redactionMarker, secretParameters } from '../../../policy/sql/redact.js';
import { bindParameterSpans } from '../../wire/frontend-messages.js';

/** Most sessions prepare no statement with a secret parameter: the map stays empty. */
const NONE: readonly number[] = [];

/** Follows which parameters of each prepared statement are secrets, and redacts Binds by it: one per recording. */
export class BindSecrets {
  readonly #redact: RedactOptions;
  /** Statement name -> its secret parameters (1 first); only statements that have some (a name is parsed again only once closed, so a Parse replaces its entry). */
  readonly #secret = new Map<string, readonly number[]>();

  constructor(redact: RedactOptions) {
    this.#redact = redact;
  }

  /** A Parse of `sql` as statement `name` (its SQL unread when too long: no parameter is known secret by its place). */
  parsed(name: string, sql: string | undefined): void {
    const params = sql === undefined ? NONE : secretParameters(sql, 'postgres');
    if (params.length > 0) this.#secret.set(name, params);
    else this.#secret.delete(name);
  }

  /** Bind message `raw` (header included) of `statement` as it is recorded: the same bytes, or with its secret values replaced. */
  bind(raw: Buffer, statement: string): Buffer {
    const secret = this.#secret.get(statement) ?? NONE;
    const detecting = (this.#redact.detectors?.length ?? 0) > 0;
    if (secret.length === 0 && !detecting) return raw;
    const body = raw.subarray(5);
    const spans = bindParameterSpans(body);
    if (!spans) return raw;
    let changed = false;
    const values = spans.map((p, i): { format: number; bytes: Buffer } | null => {
      if (!p) return null;
      const bytes = body.subarray(p.start, p.end);
      if (secret.includes(i + 1)) {
        changed = true;
        return { format: 0, bytes: Buffer.from(redactionMarker(bytes.toString(p.format === 1 ? 'base64' : 'utf8'), this.#redact.key)) };
      }
      if (p.format === 0 && detecting) {
        const r = redactDetected(bytes.toString('utf8'), this.#redact);
        if (r.redacted) {
          changed = true;
          return { format: 0, bytes: Buffer.from(r.text) };
        }
      }
      return { format: p.format, bytes };
    });
    return changed ? rebuilt(body, values) : raw;
  }
}

/** A Bind with `body`'s names and result formats, and `values` with a format code each. */
function rebuilt(body: Buffer, values: ReadonlyArray<{ format: number; bytes: Buffer } | null>): Buffer {
  const namesEnd = body.indexOf(0, body.indexOf(0) + 1) + 1;
  // Past the parameters as the client sent them: the result formats stay as they were.
  let at = namesEnd;
  at += 2 + 2 * body.readUInt16BE(at);
  const n = body.readUInt16BE(at);
  at += 2;
  for (let i = 0; i < n; i++) at += 4 + Math.max(0, body.readInt32BE(at));
  const head = Buffer.alloc(2 + 2 * values.length + 2);
  head.writeUInt16BE(values.length, 0);
  values.forEach((v, i) => head.writeUInt16BE(v?.format ?? 0, 2 + 2 * i));
  head.writeUInt16BE(values.length, 2 + 2 * values.length);
  const parts: Buffer[] = [body.subarray(0, namesEnd), head];
  for (const v of values) {
    const len = Buffer.alloc(4);
    len.writeInt32BE(v ? v.bytes.length : -1);
    parts.push(len);
    if (v) parts.push(v.bytes);
  }
  parts.push(body.subarray(at));
  const out = Buffer.concat([Buffer.alloc(5), ...parts]);
  out[0] = 0x42;
  out.writeUInt32BE(out.length - 1, 1);
  return out;
}
