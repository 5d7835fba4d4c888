/**
 * The one door to the ssh2 library. The build bundles ssh2 with the code that imports it (scripts/build.mjs),
 * so the package installs neither it nor the install scripts of its optional native parts (npm asks
 * a newcomer to allow them); ssh2 then uses Node's own crypto, as it does when those scripts do not
 * run. Code imports ssh2's values from here; its types from 'ssh2'.
 *
 * @see https://github.com/mscdex/ssh2#readme
 */
import ssh2 from 'ssh2';

export default ssh2;
