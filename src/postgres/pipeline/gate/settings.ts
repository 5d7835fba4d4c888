/**
 * The server settings the statement gate relies on, as the server reports them (ParameterStatus):
 * under `standard_conforming_strings` off, or a client encoding whose characters can hold a
 * backslash byte, SQL would lex differently at the gateway and at the server (see
 * `lexingSafeSetting`); for read-only access, `default_transaction_read_only` off undoes the
 * access. A session whose server reports such a value must end.
 *
 * @see https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-ASYNC
 * @see https://www.postgresql.org/docs/current/runtime-config-compatible.html#GUC-STANDARD-CONFORMING-STRINGS
 * @see https://www.postgresql.org/docs/current/runtime-config-client.html#GUC-DEFAULT-TRANSACTION-READ-ONLY
 */
import { lexingSafeSetting, utf8Encoding } from '../../../policy/sql/lexing.js';

/** Longest ParameterStatus body the gate reads; the settings it watches report short values. */
const MAX_PARAMETER_STATUS = 1024;

/**
 * The setting named by a ParameterStatus body (`name\0value\0`) when its value undoes what the
 * gateway's checks rely on (see {@link unsafeSettingValue}). Undefined for anything else.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PARAMETERSTATUS
 */
export function unsafeParameter(body: Buffer, readOnly = false, masked?: MaskedValues): string | undefined {
  const end = body.indexOf(0);
  if (end < 0) return undefined;
  const name = body.toString('latin1', 0, end).toLowerCase();
  const valueEnd = body.indexOf(0, end + 1);
  const value = body.toString('latin1', end + 1, valueEnd < 0 ? body.length : valueEnd);
  return unsafeSettingValue(name, value, readOnly, masked) ? name : undefined;
}

/**
 * True when the server reporting `name = value` undoes what the gateway's checks rely on: a
 * setting under which SQL would lex differently at the gateway and at the server
 * (`standard_conforming_strings` off, a client encoding whose characters can hold a backslash
 * byte: see {@link lexingSafeSetting}), for read-only access `default_transaction_read_only`
 * off (reported by PostgreSQL 14 and later), and where values are `masked` a client encoding
 * in which they are not UTF-8 (see {@link utf8Encoding}).
 */
export function unsafeSettingValue(name: string, value: string, readOnly = false, masked?: MaskedValues): boolean {
  const lower = name.toLowerCase();
  if (readOnly && lower === 'default_transaction_read_only' && value.trim().toLowerCase() !== 'on') return true;
  if (masked && lower === 'client_encoding' && !utf8Encoding(value, masked.serverUtf8)) return true;
  return !lexingSafeSetting(name, value);
}

/** A session whose values are masked, which its client must read in UTF-8: whether its database's encoding is UTF-8. */
export interface MaskedValues {
  serverUtf8: boolean;
}

/** Whether the server's settings (its startup ParameterStatus) say its database's encoding is UTF-8. */
export function serverUtf8(params: ReadonlyArray<readonly [string, string]>): boolean {
  return params.some(([name, value]) => name.toLowerCase() === 'server_encoding' && utf8Encoding(value));
}

/** One session's watch on the server's ParameterStatus messages: the first unsafe setting, reported once. */
export class SettingsWatch {
  readonly #readOnly: boolean;
  readonly #masked: MaskedValues | undefined;
  readonly #onUnsafeSetting: ((setting: string) => void) | undefined;
  #unsafeSetting: string | undefined;

  /** `readOnly`: the session's access is read-only (the server turning it off ends the session); `masked`: its values are masked (UTF-8 only). */
  constructor(readOnly: boolean, masked: MaskedValues | undefined, onUnsafeSetting: ((setting: string) => void) | undefined) {
    this.#readOnly = readOnly;
    this.#masked = masked;
    this.#onUnsafeSetting = onUnsafeSetting;
  }

  /** The first setting the server reported with an unsafe value (see {@link unsafeParameter}), if any. */
  get unsafeSetting(): string | undefined {
    return this.#unsafeSetting;
  }

  /** Checks a ParameterStatus body (a long one is not read); reports the first unsafe setting once. */
  check(body: Buffer): void {
    if (body.length > MAX_PARAMETER_STATUS) return;
    const setting = unsafeParameter(body, this.#readOnly, this.#masked);
    if (setting === undefined || this.#unsafeSetting !== undefined) return;
    this.#unsafeSetting = setting;
    this.#onUnsafeSetting?.(setting);
  }
}
