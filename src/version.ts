/** The hoop version, sent in `Hoop-Client-Version` / `Hoop-Gateway-Version` headers. */
export const VERSION = '0.1.0';
