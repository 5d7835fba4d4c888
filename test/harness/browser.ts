/**
 * A headless "user" for the test OpenID provider (`test/harness/oidc.ts`): real HTTP requests with
 * node's fetch (`redirect: 'manual'`, every redirect followed by hand) and a cookie jar, filling
 * the provider's pages the way a person would — the login form (a username, no password), the
 * consent form, and the device flow's user-code and confirmation forms.
 *
 * {@link TestBrowser.authorize} starts at an authorization URL and ends at whatever the client's
 * redirect URI (the CLI's loopback listener) answered. {@link TestBrowser.approveDevice} enters a
 * device flow user code and signs in. A {@link TestBrowser} keeps its cookies, so a second
 * authorization with the same browser reuses the provider session (single sign-on: no login page,
 * the username is ignored); the module functions {@link authorize} and {@link approveDevice} use
 * a fresh browser each time.
 *
 * @see https://www.rfc-editor.org/rfc/rfc6749#section-4.1 (authorization code grant)
 * @see https://www.rfc-editor.org/rfc/rfc8628#section-3.3 (user interaction of the device grant)
 * @see https://www.rfc-editor.org/rfc/rfc6265 (cookies)
 */

/** What the last page of a browser run answered. */
export interface BrowserResult {
  /** The URL of the last response (for {@link TestBrowser.authorize}: the redirect URI with `code`/`state` or `error`). */
  finalUrl: string;
  status: number;
  body: string;
}

/** Options of {@link TestBrowser.authorize}. */
export interface AuthorizeOptions {
  /**
   * `false`: the user walks away at the consent page — the run ends there (the consent page is
   * the result) and the redirect URI is never called. Default `true`.
   */
  consent?: boolean;
  /** The user presses "Deny" on the consent page: the redirect URI gets `error=access_denied`. */
  deny?: boolean;
  /** What the user types in a password field of the login form (a provider that asks for one). */
  password?: string;
}

interface Cookie {
  name: string;
  value: string;
  origin: string;
  path: string;
  expires: number;
}

/** A parsed HTML form. */
interface Form {
  id: string | undefined;
  action: string;
  method: string;
  fields: Record<string, string>;
}

const MAX_REDIRECTS = 20;
const MAX_STEPS = 12;

function decodeEntities(text: string): string {
  return text.replace(/&(#x?[0-9a-f]+|amp|lt|gt|quot|apos);/gi, (_m, e: string) => {
    const lower = e.toLowerCase();
    if (lower === 'amp') return '&';
    if (lower === 'lt') return '<';
    if (lower === 'gt') return '>';
    if (lower === 'quot') return '"';
    if (lower === 'apos') return "'";
    return String.fromCodePoint(lower.startsWith('#x') ? parseInt(lower.slice(2), 16) : parseInt(lower.slice(1), 10));
  });
}

function attributes(tag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of tag.matchAll(/([\w.:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
    out[(m[1] ?? '').toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? '');
  }
  return out;
}

function parseForms(html: string, base: string): Form[] {
  const forms: Form[] = [];
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const attrs = attributes(m[1] ?? '');
    const fields: Record<string, string> = {};
    for (const input of (m[2] ?? '').matchAll(/<input\b([^>]*)>/gi)) {
      const a = attributes(input[1] ?? '');
      if (a.name !== undefined) fields[a.name] = a.value ?? '';
    }
    forms.push({ id: attrs.id, action: new URL(attrs.action ?? base, base).href, method: (attrs.method ?? 'get').toUpperCase(), fields });
  }
  return forms;
}

function snippet(body: string): string {
  const error = /id="op-error"[^>]*>([\s\S]*?)</.exec(body)?.[1];
  return decodeEntities(
    error ??
      body
        .replace(/<[^>]+>/g, ' ')
        .replace(/\s+/g, ' ')
        .trim()
        .slice(0, 200),
  );
}

/** A browser with its own cookie jar. */
export class TestBrowser {
  readonly #cookies: Cookie[] = [];

  /** Names of the cookies the jar holds for `url` right now. */
  cookieNames(url: string): string[] {
    return this.#matching(new URL(url)).map((c) => c.name);
  }

  /** Forgets every cookie: the next authorization signs in again. */
  clearCookies(): void {
    this.#cookies.length = 0;
  }

  /**
   * Opens an authorization URL, signs in as `username` (if the provider asks), consents, and
   * follows the redirect to the client's redirect URI; returns what that answered.
   * Throws if a provider page shows an error or the run never reaches a non-provider page.
   *
   * @see https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2 (authorization response)
   */
  async authorize(url: string, username: string, options: AuthorizeOptions = {}): Promise<BrowserResult> {
    const providerOrigin = new URL(url).origin;
    let page = await this.#navigate('GET', url);
    for (let step = 0; step < MAX_STEPS; step++) {
      if (new URL(page.finalUrl).origin !== providerOrigin) return page;
      const forms = parseForms(page.body, page.finalUrl);
      const login = forms.find((f) => f.id === 'login');
      const consent = forms.find((f) => f.id === 'consent');
      if (login) {
        page = await this.#submit(login, { username, ...(options.password !== undefined ? { password: options.password } : {}) });
      } else if (consent) {
        if (options.consent === false) return page;
        const deny = forms.find((f) => f.id === 'deny');
        if (options.deny && !deny) throw new Error('browser: the consent page has no deny form');
        page = await this.#submit(options.deny && deny ? deny : consent, {});
      } else {
        throw new Error(`browser: unexpected provider page at ${page.finalUrl} (HTTP ${page.status}): ${snippet(page.body)}`);
      }
    }
    throw new Error('browser: too many pages without reaching the redirect URI');
  }

  /**
   * Opens the device flow's verification URI, enters `userCode`, confirms, signs in as
   * `username` (if the provider asks) and consents. Resolves once the provider shows its success
   * page; throws with the page's message otherwise (a wrong or used code, an error).
   *
   * @see https://www.rfc-editor.org/rfc/rfc8628#section-3.3
   */
  async approveDevice(verificationUri: string, userCode: string, username: string): Promise<void> {
    let page = await this.#navigate('GET', verificationUri);
    let codeEntered = false;
    for (let step = 0; step < MAX_STEPS; step++) {
      if (page.body.includes('id="op-device-success"')) return;
      const forms = parseForms(page.body, page.finalUrl);
      const input = forms.find((f) => f.id === 'op.deviceInputForm');
      const confirm = forms.find((f) => f.id === 'op.deviceConfirmForm');
      const login = forms.find((f) => f.id === 'login');
      const consent = forms.find((f) => f.id === 'consent');
      if (input && !codeEntered) {
        codeEntered = true;
        page = await this.#submit(input, { user_code: userCode });
      } else if (confirm) {
        page = await this.#submit(confirm, {});
      } else if (login) {
        page = await this.#submit(login, { username });
      } else if (consent) {
        page = await this.#submit(consent, {});
      } else {
        throw new Error(`browser: device approval failed at ${page.finalUrl} (HTTP ${page.status}): ${snippet(page.body)}`);
      }
    }
    throw new Error('browser: too many pages without reaching the device success page');
  }

  async #submit(form: Form, values: Record<string, string>): Promise<BrowserResult> {
    const fields = new URLSearchParams({ ...form.fields, ...values });
    if (form.method === 'GET') {
      const target = new URL(form.action);
      for (const [k, v] of fields) target.searchParams.set(k, v);
      return this.#navigate('GET', target.href);
    }
    return this.#navigate('POST', form.action, fields.toString());
  }

  async #navigate(method: 'GET' | 'POST', url: string, body?: string): Promise<BrowserResult> {
    let target = new URL(url);
    let currentMethod = method;
    let currentBody = body;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const headers: Record<string, string> = {};
      const cookie = this.#matching(target)
        .map((c) => `${c.name}=${c.value}`)
        .join('; ');
      if (cookie) headers.cookie = cookie;
      if (currentBody !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
      const res = await fetch(target, { method: currentMethod, headers, body: currentBody, redirect: 'manual' });
      this.#store(target, res.headers.getSetCookie());
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        await res.arrayBuffer();
        target = new URL(location, target);
        if (res.status !== 307 && res.status !== 308) {
          currentMethod = 'GET';
          currentBody = undefined;
        }
        continue;
      }
      return { finalUrl: target.href, status: res.status, body: await res.text() };
    }
    throw new Error(`browser: more than ${MAX_REDIRECTS} redirects from ${url}`);
  }

  #matching(url: URL): Cookie[] {
    const now = Date.now();
    for (let i = this.#cookies.length - 1; i >= 0; i--) if ((this.#cookies[i]?.expires ?? 0) <= now) this.#cookies.splice(i, 1);
    return this.#cookies.filter((c) => c.origin === url.origin && (url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`)));
  }

  /** @see https://www.rfc-editor.org/rfc/rfc6265#section-5.2 */
  #store(url: URL, setCookies: string[]): void {
    for (const header of setCookies) {
      const [pair = '', ...attrs] = header.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path = url.pathname.slice(0, Math.max(1, url.pathname.lastIndexOf('/')));
      let expires = Infinity;
      for (const attr of attrs) {
        const i = attr.indexOf('=');
        const key = (i < 0 ? attr : attr.slice(0, i)).trim().toLowerCase();
        const val = i < 0 ? '' : attr.slice(i + 1).trim();
        if (key === 'path' && val.startsWith('/')) path = val;
        else if (key === 'max-age' && /^-?\d+$/.test(val)) expires = Date.now() + Number(val) * 1000;
        else if (key === 'expires' && expires === Infinity) {
          const t = Date.parse(val);
          if (!Number.isNaN(t)) expires = t;
        }
      }
      const existing = this.#cookies.findIndex((c) => c.name === name && c.origin === url.origin && c.path === path);
      if (existing >= 0) this.#cookies.splice(existing, 1);
      if (expires > Date.now()) this.#cookies.push({ name, value, origin: url.origin, path, expires });
    }
  }
}

/** {@link TestBrowser.authorize} in a fresh browser (no provider session). */
export function authorize(url: string, username: string, options?: AuthorizeOptions): Promise<BrowserResult> {
  return new TestBrowser().authorize(url, username, options);
}

/** {@link TestBrowser.approveDevice} in a fresh browser (no provider session). */
export function approveDevice(verificationUri: string, userCode: string, username: string): Promise<void> {
  return new TestBrowser().approveDevice(verificationUri, userCode, username);
}
