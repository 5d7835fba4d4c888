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
  //     and the PostgreSQL and MySQL wire codecs (message codes, readers, writers, the one small client of each).
  { rank: 0, name: 'base', path: '^src/[^/]+\\.tsx?$', except: '^src/cli\\.ts$' },
  { rank: 1, name: 'config', path: '^src/config/' },
  { rank: 1, name: 'api', path: '^src/api/' },
  { rank: 1, name: 'pg-wire', path: '^src/postgres/wire/' },
  { rank: 1, name: 'mysql-wire', path: '^src/mysql/wire/' },
  { rank: 1, name: 'mcp-wire', path: '^src/mcp/wire/' },
  { rank: 1, name: 'http-wire', path: '^src/http/wire/' },
  // 2 — libraries: the policy (rules, SQL analysis, masking rules), recordings, the tunnel's transport.
  { rank: 2, name: 'policy', path: '^src/policy/' },
  { rank: 2, name: 'recording', path: '^src/recording/' },
  { rank: 2, name: 'tunnel', path: '^src/tunnel/' },
  // 3 — the gateway API's client: one request helper (TLS, keep-alive, errors) and a module per area of the API
  //     (identity, connections, direct credentials, sessions, the CLI's records, reviews, runs, alerts, policy).
  { rank: 3, name: 'api-client', path: '^src/api-client/' },
  // 4 — the CLI's identity (logins, tokens, device key; over the API client), and the session contract between
  //     the gateway and a protocol engine.
  { rank: 4, name: 'auth', path: '^src/auth/' },
  { rank: 4, name: 'session', path: '^src/session/' },
  // 5 — what both ends of a protocol share: PostgreSQL's pipeline (the stage contract, the relay's
  //     paths, startup, the stages), SSH's keys and terminal replay.
  { rank: 5, name: 'pg-pipeline', path: '^src/postgres/pipeline/' },
  { rank: 5, name: 'ssh-common', path: '^src/ssh/common/' },
  { rank: 5, name: 'mysql-pipeline', path: '^src/mysql/pipeline/' },
  { rank: 5, name: 'mcp-pipeline', path: '^src/mcp/pipeline/' },
  { rank: 5, name: 'http-pipeline', path: '^src/http/pipeline/' },
  // 6 — each protocol's two ends, which never import each other: the CLI's local side, the gateway's engine.
  { rank: 6, name: 'pg-local', path: '^src/postgres/local/' },
  { rank: 6, name: 'pg-gateway', path: '^src/postgres/gateway/' },
  { rank: 6, name: 'ssh-local', path: '^src/ssh/local/' },
  { rank: 6, name: 'ssh-gateway', path: '^src/ssh/gateway/' },
  { rank: 6, name: 'mysql-local', path: '^src/mysql/local/' },
  { rank: 6, name: 'mysql-gateway', path: '^src/mysql/gateway/' },
  { rank: 6, name: 'mcp-gateway', path: '^src/mcp/gateway/' },
  { rank: 6, name: 'http-local', path: '^src/http/local/' },
  { rank: 6, name: 'http-gateway', path: '^src/http/gateway/' },
  // 6 — what every lane registers once: the decoders of its recordings' records (the gateway's and the CLI's readers).
  { rank: 6, name: 'lanes', path: '^src/lanes/' },
  // 7 — what people see (ink components, transcripts, tables).
  { rank: 7, name: 'ui', path: '^src/ui/' },
  // 8 to 19 — the gateway by domain, and the agent's containment (which never imports the gateway, nor it the agent):
  //   8  the front door (PROXY headers, the per-address guard, the first bytes), the state store, the agent;
  //   9  the audit stream and the gateway's events; 10 its configuration (and the policy repo's source);
  //   11 who is calling (tokens, access); 12 HTTP errors and answers, this replica among the others;
  //   13 runs; 14 reviews, direct credentials; 15 alerts, recordings and the session index;
  //   16 the parts built from all of those; 17 live sessions and their admission; 18 the API; 19 the server (its routes, its Upgrades, its workers).
  { rank: 8, name: 'gw-front', path: '^src/gateway/front/' },
  { rank: 8, name: 'gw-store', path: '^src/gateway/store/' },
  { rank: 8, name: 'agent', path: '^src/agent/' },
  { rank: 9, name: 'gw-audit', path: '^src/gateway/audit/' },
  { rank: 10, name: 'gw-config', path: '^src/gateway/config/' },
  { rank: 11, name: 'gw-identity', path: '^src/gateway/identity/' },
  { rank: 12, name: 'gw-http', path: '^src/gateway/http/' },
  { rank: 12, name: 'gw-replicas', path: '^src/gateway/replicas/' },
  { rank: 13, name: 'gw-runs', path: '^src/gateway/runs/' },
  { rank: 14, name: 'gw-reviews', path: '^src/gateway/reviews/' },
  { rank: 14, name: 'gw-credentials', path: '^src/gateway/credentials/' },
  { rank: 15, name: 'gw-alerts', path: '^src/gateway/alerts/' },
  { rank: 15, name: 'gw-records', path: '^src/gateway/records/' },
  { rank: 16, name: 'gw-parts', path: '^src/gateway/parts/' },
  { rank: 17, name: 'gw-sessions', path: '^src/gateway/sessions/' },
  { rank: 18, name: 'gw-api', path: '^src/gateway/api/' },
  { rank: 19, name: 'gateway', path: '^src/gateway/[^/]+\\.ts$' },
  // 20 — the demo's stack (run by `hoop demo`).
  { rank: 20, name: 'demo', path: '^src/demo/' },
  // 21 — the CLI's runtime: local ports, early checks, its records, bundles and the policy lab.
  { rank: 21, name: 'client', path: '^src/client/' },
  // 22 — the CLI's commands, each a thin declaration, then its entry.
  { rank: 22, name: 'commands', path: '^src/commands/' },
  { rank: 23, name: 'cli', path: '^src/cli\\.ts$' },
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
    { name: 'gateway-not-to-agent', comment: "the gateway never imports the agent's containment", severity: 'error', from: { path: '^src/gateway/' }, to: { path: '^src/agent/' } },
    { name: 'agent-not-to-gateway', comment: "the agent's containment never imports the gateway", severity: 'error', from: { path: '^src/agent/' }, to: { path: '^src/gateway/' } },
    { name: 'not-to-test', comment: 'production code never imports tests', severity: 'error', from: { path: '^src/' }, to: { path: '^test/' } },
    {
      name: 'not-to-dev-dependencies',
      comment:
        'production code uses what the package installs, or a library the build bundles (scripts/build.mjs checks that dist/ needs nothing else): ink, React and ssh2 through their vendor modules only; the AWS SDK is an optional peer',
      severity: 'error',
      from: { path: '^src/', pathNot: '-vendor\\.ts$' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only', 'npm-peer'], pathNot: 'node_modules/(zod|jose|openid-client|commander|yaml|diff|execa|@modelcontextprotocol/sdk)/' },
    },
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
