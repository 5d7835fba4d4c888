/** The hoop version, sent in `Hoop-Client-Version` / `Hoop-Gateway-Version` headers. */
export const VERSION = '0.1.0';

/** The commit the build was made from (scripts/build.mjs writes it in as `__HOOP_COMMIT__`), or empty where it was not built from a checkout. */
declare const __HOOP_COMMIT__: string | undefined;
export const COMMIT: string = typeof __HOOP_COMMIT__ === 'string' ? __HOOP_COMMIT__ : '';

/** What `hoop --version` prints: the version, and the commit it was built from. */
export const VERSION_LINE = COMMIT ? `${VERSION} (commit ${COMMIT})` : VERSION;
