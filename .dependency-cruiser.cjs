/**
 * hoop's layers, enforced by `npm run lint` (dependency-cruiser over src/). Each room of src/ has a
 * rank; a module may import only from its own room or a room of lower rank, so the arrows point one
 * way and no cycle can form. docs/architecture.md (section 0) draws the same picture.
 *
 * @see https://github.com/sverweij/dependency-cruiser/blob/main/doc/rules-reference.md
 */
const LAYERS = [
  // 0 — the base: small modules every room may use (errors, logging, files, text).
  // 1 — the configuration's parts, and the PostgreSQL wire codec (message codes, readers, writers).
  { rank: 0, name: 'base', path: '^src/[^/]+\\.tsx?$', except: '^src/cli\\.ts$' },
  { rank: 1, name: 'config', path: '^src/config/' },
  { rank: 1, name: 'pg-wire', path: '^src/postgres/wire/' },
  // 2 — libraries: the policy (rules, SQL analysis, masking rules), recordings, the tunnel's transport.
  { rank: 2, name: 'policy', path: '^src/policy/' },
  { rank: 2, name: 'recording', path: '^src/recording/' },
  { rank: 2, name: 'tunnel', path: '^src/tunnel/' },
  // 3 — the CLI's identity: logins, tokens, the gateway API client.
  { rank: 3, name: 'auth', path: '^src/auth/' },
  // 4 — the session contract between the gateway and a protocol engine.
  { rank: 4, name: 'session', path: '^src/session/' },
  // 5 — protocol engines.
  { rank: 5, name: 'postgres', path: '^src/postgres/(?!wire/)' },
  { rank: 5, name: 'ssh', path: '^src/ssh/' },
  // 6 — what people see (ink components, transcripts, tables).
  { rank: 6, name: 'ui', path: '^src/ui/' },
  // 7 — the gateway and the agent's containment.
  { rank: 7, name: 'gateway', path: '^src/gateway/' },
  { rank: 7, name: 'agent', path: '^src/agent/' },
  // 8 — the demo's stack (run by `hoop demo`).
  { rank: 8, name: 'demo', path: '^src/demo/' },
  // 9 — the CLI's commands, then its entry.
  { rank: 9, name: 'commands', path: '^src/commands/' },
  { rank: 10, name: 'cli', path: '^src/cli\\.ts$' },
];

/** For each room, the rooms it may not import: those of its rank or above (rooms of one rank do not import each other). */
const upward = LAYERS.filter((from) => LAYERS.some((to) => to !== from && to.rank >= from.rank)).map((from) => ({
  name: `layer-${from.name}`,
  comment: `${from.name} (rank ${from.rank}) imports only from its own room or from lower ranks`,
  severity: 'error',
  from: { path: from.path, ...(from.except ? { pathNot: from.except } : {}) },
  to: {
    path: LAYERS.filter((to) => to !== from && to.rank >= from.rank)
      .map((to) => `(${to.path})`)
      .join('|'),
  },
}));

module.exports = {
  forbidden: [
    { name: 'no-circular', comment: 'no import cycle, of modules or of rooms', severity: 'error', from: {}, to: { circular: true } },
    { name: 'not-to-test', comment: 'production code never imports tests', severity: 'error', from: { path: '^src/' }, to: { path: '^test/' } },
    { name: 'not-to-dev-dependencies', comment: 'production code uses runtime dependencies only', severity: 'error', from: { path: '^src/' }, to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] } },
    ...upward,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};
