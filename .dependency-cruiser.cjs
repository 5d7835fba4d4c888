/**
 * hoop's layers, enforced by `npm run lint` (dependency-cruiser over src/). Each room of src/ has a
 * rank; a module may import only from its own room or a room of lower rank, so the arrows point one
 * way and no cycle can form. docs/architecture.md (section 0) draws the same picture.
 *
 * @see https://github.com/sverweij/dependency-cruiser/blob/main/doc/rules-reference.md
 */
const LAYERS = [
  // 0 — the base: small modules every room may use (errors, logging, files, text).
  // 1 — the configuration's parts, the gateway API's contract (paths, bodies, answers, the status of each error code),
  //     and the PostgreSQL wire codec (message codes, readers, writers, the one small client).
  { rank: 0, name: 'base', path: '^src/[^/]+\\.tsx?$', except: '^src/cli\\.ts$' },
  { rank: 1, name: 'config', path: '^src/config/' },
  { rank: 1, name: 'api', path: '^src/api/' },
  { rank: 1, name: 'pg-wire', path: '^src/postgres/wire/' },
  // 2 — libraries: the policy (rules, SQL analysis, masking rules), recordings, the tunnel's transport.
  { rank: 2, name: 'policy', path: '^src/policy/' },
  { rank: 2, name: 'recording', path: '^src/recording/' },
  { rank: 2, name: 'tunnel', path: '^src/tunnel/' },
  // 3 — the CLI's identity: logins, tokens, the gateway API client.
  { rank: 3, name: 'auth', path: '^src/auth/' },
  // 4 — the session contract between the gateway and a protocol engine.
  { rank: 4, name: 'session', path: '^src/session/' },
  // 5 — what both ends of a protocol share: PostgreSQL's pipeline (the stage contract, the relay's
  //     paths, startup, the stages), SSH's keys and terminal replay.
  { rank: 5, name: 'pg-pipeline', path: '^src/postgres/pipeline/' },
  { rank: 5, name: 'ssh-common', path: '^src/ssh/common/' },
  // 6 — each protocol's two ends, which never import each other: the CLI's local side, the gateway's engine.
  { rank: 6, name: 'pg-local', path: '^src/postgres/local/' },
  { rank: 6, name: 'pg-gateway', path: '^src/postgres/gateway/' },
  { rank: 6, name: 'ssh-local', path: '^src/ssh/local/' },
  { rank: 6, name: 'ssh-gateway', path: '^src/ssh/gateway/' },
  // 7 — what people see (ink components, transcripts, tables).
  { rank: 7, name: 'ui', path: '^src/ui/' },
  // 8 — the gateway and the agent's containment.
  { rank: 8, name: 'gateway', path: '^src/gateway/' },
  { rank: 8, name: 'agent', path: '^src/agent/' },
  // 9 — the demo's stack (run by `hoop demo`).
  { rank: 9, name: 'demo', path: '^src/demo/' },
  // 10 — the CLI's runtime: local ports, early checks, its records, bundles and the policy lab.
  { rank: 10, name: 'client', path: '^src/client/' },
  // 11 — the CLI's commands, each a thin declaration, then its entry.
  { rank: 11, name: 'commands', path: '^src/commands/' },
  { rank: 12, name: 'cli', path: '^src/cli\\.ts$' },
];

/** Every room's modules: a module of src/ outside all of them would escape the ranks. */
const ROOMS = LAYERS.map((room) => `(${room.path})`).join('|');

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
    { name: 'in-a-room', comment: 'every module of src/ is in a room of LAYERS, so the ranks reach it', severity: 'error', from: { path: '^src/', pathNot: ROOMS }, to: {} },
    { name: 'to-a-room', comment: 'every module of src/ that is imported is in a room of LAYERS', severity: 'error', from: { path: '^src/' }, to: { path: '^src/', pathNot: ROOMS } },
    ...upward,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};
