/**
 * An HTTP request's target, read once into the one form the gateway judges and forwards: what a
 * rule matches (the path's segments and the query's parameters, decoded) and what the upstream is
 * sent (the same segments and parameters, encoded one way) are the same thing, so no spelling of a
 * path reaches a route its rules did not judge.
 *
 * Only the origin form (`/path?query`) is taken. What servers read differently is refused, with
 * why, not guessed at: a `.` or `..` segment (as written or percent-encoded), an empty segment but
 * a trailing one (`//`), a percent-encoded `/` or `\`, a `\`, a NUL or any other control
 * character, a `;` in the path (Tomcat and Spring read `/admin;x/` as `/admin/`), a `%` not
 * followed by two hex digits, bytes that are not UTF-8, a segment that Unicode compatibility
 * folding (NFKC) turns into one of those, and a fragment. Every other percent
 * encoding is decoded, and the canonical form encodes exactly what is not an unreserved character
 * (RFC 3986 §2.3) or one of `!$&'()*+,=:@` in a segment. The query is read as HTML forms write it
 * (`+` is a space, as Express, Flask and Rails read it) and re-encoded with `%20`, so every server
 * reads the value that was judged. Letter case is kept as sent: a rule that refuses compares
 * case-folded as well (some servers route case-insensitively), which is the judge's business.
 *
 * @see https://www.rfc-editor.org/rfc/rfc9112#section-3.2 (request target)
 * @see https://www.rfc-editor.org/rfc/rfc3986#section-3.3 (path, segments)
 * @see https://url.spec.whatwg.org/#urlencoded-parsing (the query as forms write it)
 */

/** A target as judged and forwarded. */
export interface RequestTarget {
  /** The path's segments, decoded; a trailing `/` is a last empty segment. */
  segments: string[];
  /** The query's parameters in order, decoded (a name without `=` has the value ''). */
  query: Array<[string, string]>;
  /** The canonical form forwarded upstream: the segments, then `?` and the parameters when there are any. */
  canonical: string;
}

/** Why a target is refused. */
export interface TargetRefusal {
  refused: string;
}

/** Longest target taken (as servers' defaults: nginx 8 KiB for a whole request line). */
export const MAX_TARGET_LENGTH = 8192;

/** Characters a segment keeps unencoded: RFC 3986 unreserved, and the sub-delims and `:` `@` of a pchar but `;`. */
const SEGMENT_PLAIN = /[A-Za-z0-9\-._~!$&'()*+,=:@]/;
/** Characters a query name or value keeps unencoded (as a segment, less the `&`, `=` and `+` that delimit or mean a space). */
const QUERY_PLAIN = /[A-Za-z0-9\-._~!$'()*,:@/?]/;
/** What may stand in a target as sent: printable ASCII but space, `"`, `<`, `>`, `\`, `^`, `` ` ``, `{`, `|`, `}` and `#`. */
const TARGET_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/?%[\]]*$/;

const decoder = new TextDecoder('utf-8', { fatal: true });

/** Reads `target` (the request line's second word); see the module documentation. */
export function readTarget(target: string): RequestTarget | TargetRefusal {
  if (target.length > MAX_TARGET_LENGTH) return { refused: `the target is longer than ${MAX_TARGET_LENGTH} characters` };
  if (!target.startsWith('/')) return { refused: target === '*' ? 'the asterisk form (OPTIONS *) is not forwarded' : 'only a path is taken as the target (no scheme, host or authority form)' };
  if (!TARGET_CHARS.test(target)) return { refused: `the target holds ${describeChar(target.match(/[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%[\]]/)![0])}, which servers read differently` };
  const q = target.indexOf('?');
  const rawPath = q < 0 ? target : target.slice(0, q);
  const rawQuery = q < 0 ? '' : target.slice(q + 1);
  if (rawPath.includes(';')) return { refused: 'the path holds a `;` (servers such as Tomcat read `/a;x/b` as `/a/b`)' };
  const raw = rawPath.slice(1).split('/');
  const segments: string[] = [];
  for (let i = 0; i < raw.length; i++) {
    const decoded = decode(raw[i]!, false);
    if (typeof decoded !== 'string') return decoded;
    if (decoded === '' && i < raw.length - 1) return { refused: 'the path has an empty segment (`//`), which servers merge or keep differently' };
    if (decoded === '.' || decoded === '..') return { refused: `the path has a \`${decoded}\` segment (as written or encoded): send the path it stands for` };
    if (decoded.includes('/') || decoded.includes('\\')) return { refused: 'the path has an encoded `/` or `\\` in a segment, which servers read differently' };
    // Windows servers (IIS, ASP.NET) drop a segment's trailing dots and spaces: `/admin./x` and `/admin%20/x` are `/admin/x` there.
    if (/[. ]$/.test(decoded)) return { refused: 'the path has a segment ending in `.` or a space, which Windows servers drop (`/admin./x` is `/admin/x` there)' };
    // Servers that fold compatibility characters (IIS, some Java) read a fullwidth `．．` or `／` as `..` or `/`.
    const folded = decoded.normalize('NFKC');
    if (folded !== decoded && (folded === '.' || folded === '..' || /[/\\]/.test(folded))) return { refused: 'the path has a segment that Unicode folding makes a `.`, `..`, `/` or `\\`' };
    segments.push(decoded);
  }
  const query: Array<[string, string]> = [];
  if (rawQuery !== '') {
    for (const pair of rawQuery.split('&')) {
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      const name = decode(eq < 0 ? pair : pair.slice(0, eq), true);
      if (typeof name !== 'string') return name;
      const value = decode(eq < 0 ? '' : pair.slice(eq + 1), true);
      if (typeof value !== 'string') return value;
      query.push([name, value]);
    }
  }
  return { segments, query, canonical: canonicalTarget(segments, query) };
}

/** The target forwarded for `segments` and `query`: each character outside its plain set percent-encoded as UTF-8. */
export function canonicalTarget(segments: readonly string[], query: ReadonlyArray<readonly [string, string]>): string {
  const path = `/${segments.map((s) => encode(s, SEGMENT_PLAIN)).join('/')}`;
  return query.length === 0 ? path : `${path}?${query.map(([n, v]) => `${encode(n, QUERY_PLAIN)}=${encode(v, QUERY_PLAIN)}`).join('&')}`;
}

/** `text` percent-decoded (with `+` a space when `form`), or why it cannot be. */
function decode(text: string, form: boolean): string | TargetRefusal {
  const plus = form ? text.replaceAll('+', ' ') : text;
  if (!plus.includes('%')) return controlFree(plus);
  const bytes: number[] = [];
  for (let i = 0; i < plus.length; i++) {
    const c = plus.charCodeAt(i);
    if (c !== 0x25) {
      bytes.push(c);
      continue;
    }
    const hex = plus.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return { refused: 'the target has a `%` not followed by two hex digits' };
    bytes.push(Number.parseInt(hex, 16));
    i += 2;
  }
  let decoded: string;
  try {
    decoded = decoder.decode(Uint8Array.from(bytes));
  } catch {
    return { refused: 'the target percent-encodes bytes that are not UTF-8' };
  }
  return controlFree(decoded);
}

/** `text`, or a refusal when it holds a control character (NUL, CR, LF, DEL and the rest). */
function controlFree(text: string): string | TargetRefusal {
  const control = /[\u0000-\u001f\u007f-\u009f]/.exec(text);
  return control ? { refused: `the target holds ${describeChar(control[0])} (decoded), which servers read differently` } : text;
}

/** `text` with every character not matched by `plain` percent-encoded as UTF-8 (upper-case hex). */
function encode(text: string, plain: RegExp): string {
  let out = '';
  for (const ch of text) out += plain.test(ch) ? ch : [...Buffer.from(ch, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');
  return out;
}

/** A character as a refusal names it. */
function describeChar(ch: string): string {
  const code = ch.codePointAt(0)!;
  return code < 0x20 || code === 0x7f || (code >= 0x80 && code <= 0x9f) ? `the control character U+${code.toString(16).toUpperCase().padStart(4, '0')}` : `\`${ch}\``;
}
