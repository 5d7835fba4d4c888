// Writes man/hoop.1 from the built CLI's help text and examples (npm run build runs it last: scripts/build.mjs).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { programOf } from '../dist/commands/index.js';
import { EXAMPLES } from '../dist/commands/examples.js';
import { manPage } from '../dist/ui/man-page.js';
import { VERSION } from '../dist/version.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const io = { stdout: process.stdout, stderr: process.stderr, env: {}, cwd: root, signal: new AbortController().signal };
const program = await programOf(io, async () => 0);
mkdirSync(join(root, 'man'), { recursive: true });
writeFileSync(join(root, 'man', 'hoop.1'), manPage(program, VERSION, (path) => EXAMPLES[path] ?? []));
