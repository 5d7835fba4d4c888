/**
 * Secrets a client binds as parameters, kept out of recordings as those it types into SQL are
 * (src/policy/sql/redact.ts): the values of parameters its statement takes as secrets
 * (`pgp_sym_encrypt($1, $2)`, `set api_token = $1`), and what the session's detectors find in any
 * text parameter (a card number bound to an INSERT), each recorded as its keyed hash, in text.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BIND
 */
import { isSecretParam, type RedactOptions, redactDetected, redactionMarker, type SecretParams, secretParameters } from '../../../policy/sql/redact.js';
import { bindParameterSpans } from '../../wire/frontend-messages.js';
import { binaryText } from '../../../policy/masking/binary-text.js';
import type { SentSecrets } from '../../../policy/sql/sent-secrets.js';

/** A Bind's parameter type as hoop reads its bytes: not known (the Parse may name none). */
const UNKNOWN_TYPE = 0;

/** SQL `PREPARE name [(types)] AS`: the statement's name (quoted or not). @see https://www.postgresql.org/docs/current/sql-prepare.html */
const SQL_PREPARE = /^\s*prepare\s+("(?:[^"]|"")+"|[A-Za-z_][\w$]*)\s*(?:\([^)]*\))?\s*as\s/i;

/** Most sessions prepare no statement with a secret parameter: the map stays empty. */
const NONE: readonly number[] = [];

/** Follows which parameters of each prepared statement are secrets, and redacts Binds by it: one per recording. */
export class BindSecrets {
  readonly #redact: RedactOptions;
  /** Told when a value is redacted: what the server says after it may repeat it. */
  readonly #sent: SentSecrets | undefined;
  /** Statement name -> its secret parameters (1 first); only statements that have some. */
  readonly #secret = new Map<string, SecretParams>();
  /** Every statement name it saw prepared: a Bind of another (one prepared where hoop could not read it) has every value taken as a secret. */
  readonly #known = new Set<string>();

  constructor(redact: RedactOptions, sent?: SentSecrets) {
    this.#redact = redact;
    this.#sent = sent;
  }

  /**
   * A Parse of `sql` as statement `name` (or SQL `PREPARE name AS sql`): its SQL unread (too long)
   * makes every parameter a secret. A named statement parsed again keeps what was secret before too:
   * the server refuses a name in use, and keeps the first.
   */
  parsed(name: string, sql: string | undefined): void {
    const params = sql === undefined ? 'all' : secretParameters(sql, 'postgres');
    const before = name === '' ? NONE : (this.#secret.get(name) ?? NONE);
    const both: SecretParams = params === 'all' || before === 'all' ? 'all' : [...new Set([...before, ...params])];
    this.#known.add(name);
    if (both === 'all' || both.length > 0) this.#secret.set(name, both);
    else this.#secret.delete(name);
  }

  /** A Query's `sql`: `PREPARE name AS …` prepares a statement a Bind may name. */
  query(sql: string): void {
    const prepared = SQL_PREPARE.exec(sql);
    if (!prepared) return;
    const quoted = prepared[1]!.startsWith('"');
    const name = quoted ? prepared[1]!.slice(1, -1).replaceAll('""', '"') : prepared[1]!.toLowerCase();
    this.parsed(name, sql.slice(prepared[0].length));
  }

  /** The texts the detectors will read in Bind message `raw` of `statement` as {@link bind} records it: for the worker to redact ahead when it is long. */
  texts(raw: Buffer, statement: string): string[] {
    const secret = this.#secret.get(statement) ?? (statement === '' || this.#known.has(statement) ? NONE : 'all');
    const body = raw.subarray(5);
    const spans = this.#redact.detectors?.length ? bindParameterSpans(body) : undefined;
    return (spans ?? []).flatMap((p, i) => (p && !isSecretParam(secret, i + 1) ? [detectedText(body.subarray(p.start, p.end), p.format)] : []));
  }

  /** Bind message `raw` (header included) of `statement` as it is recorded: the same bytes, or with its secret values replaced. */
  bind(raw: Buffer, statement: string): Buffer {
    const secret = this.#secret.get(statement) ?? (statement === '' || this.#known.has(statement) ? NONE : 'all');
    const detecting = (this.#redact.detectors?.length ?? 0) > 0;
    if (secret !== 'all' && secret.length === 0 && !detecting) return raw;
    const body = raw.subarray(5);
    const spans = bindParameterSpans(body);
    // One it cannot read (the server refuses it): its names alone, no value of it written down.
    if (!spans) this.#sent?.taint();
    if (!spans) return body.indexOf(0, body.indexOf(0) + 1) < 0 ? raw.subarray(0, 5) : rebuilt(body, [], true);
    let changed = false;
    const values = spans.map((p, i): { format: number; bytes: Buffer } | null => {
      if (!p) return null;
      const bytes = body.subarray(p.start, p.end);
      if (isSecretParam(secret, i + 1)) {
        changed = true;
        this.#sent?.taint();
        return { format: 0, bytes: Buffer.from(redactionMarker(bytes.toString(p.format === 1 ? 'base64' : 'utf8'), this.#redact.key)) };
      }
      if (detecting) {
        const r = redactDetected(detectedText(bytes, p.format), this.#redact);
        if (r.redacted) {
          changed = true;
          this.#sent?.taint();
          return { format: 0, bytes: Buffer.from(p.format === 0 ? r.text : redactionMarker(bytes.toString('base64'), this.#redact.key)) };
        }
      }
      return { format: p.format, bytes };
    });
    return changed ? rebuilt(body, values) : raw;
  }
}

/** What the detectors read of a bound value: binary text is UTF-8 as text is (Npgsql binds everything binary); other binary bytes are read every way they may carry a number (an int8, a numeric, a range's bounds). */
function detectedText(bytes: Buffer, format: number): string {
  return format === 0 ? bytes.toString('utf8') : binaryText(bytes, UNKNOWN_TYPE);
}

/** A Bind with `body`'s names and result formats, and `values` with a format code each. */
function rebuilt(body: Buffer, values: ReadonlyArray<{ format: number; bytes: Buffer } | null>, unread = false): Buffer {
  const namesEnd = body.indexOf(0, body.indexOf(0) + 1) + 1;
  // Past the parameters as the client sent them: the result formats stay as they were (none of a Bind it could not read).
  let at = namesEnd;
  if (!unread) {
    at += 2 + 2 * body.readUInt16BE(at);
    const n = body.readUInt16BE(at);
    at += 2;
    for (let i = 0; i < n; i++) at += 4 + Math.max(0, body.readInt32BE(at));
  }
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
  parts.push(unread ? Buffer.alloc(2) : body.subarray(at));
  const out = Buffer.concat([Buffer.alloc(5), ...parts]);
  out[0] = 0x42;
  out.writeUInt32BE(out.length - 1, 1);
  return out;
}
