/**
 * What `hoop gateway init` writes for a first real gateway: a commented `gateway.yaml` for the
 * identity provider named, a starter policy repo, and what to register at the provider. Each
 * provider's settings are the ones docs/deployment.md explains (and test/e2e tests against tokens
 * shaped as that provider issues them).
 *
 * @see ../../docs/deployment.md
 * @see https://www.rfc-editor.org/rfc/rfc8252#section-7.3 (loopback redirect, any port)
 */
import { isIP } from 'node:net';

/** The identity providers `init` knows, `generic` for any other OpenID provider, and `dev`: `hoop gateway dev-idp` on this machine. */
export const IDPS = ['keycloak', 'entra', 'okta', 'google', 'generic', 'dev'] as const;
export type Idp = (typeof IDPS)[number];

/** How the gateway accepts one provider's tokens, and what the provider must be told. */
export interface IdpProfile {
  title: string;
  /** The issuer URL's shape, for `--issuer`'s help and errors. */
  issuerShape: string;
  tokenType: 'access' | 'id';
  accessTokenTypes?: Array<'at+jwt' | 'JWT' | 'none'>;
  /** The audience the gateway checks, from the client id and `--audience`. */
  audience: (clientId: string, audience: string) => string;
  groupsClaim: string;
  emailClaim?: string;
  /** Scopes `hoop login` asks for, from the client id. */
  scopes: (clientId: string) => string[];
  /** The client needs a secret the provider gives installed apps (not a secret). */
  clientSecret?: boolean;
  /** The provider compares the loopback redirect's port: hoop login listens on this one. */
  redirectPort?: number;
  /** More parameters of the authorization request. */
  authorizationParams?: Record<string, string>;
  /** The client id is the provider's (a GUID, `….apps.googleusercontent.com`): `--client-id` is needed. */
  needsClientId?: boolean;
  /** What to set at the provider, one line each (after the client, redirect and grants common to all). */
  register: (o: { clientId: string; audience: string }) => string[];
  /** The section of docs/deployment.md. */
  recipe: string;
}

const OIDC_SCOPES = ['openid', 'profile', 'email', 'offline_access'];

/** Each provider's profile; docs/deployment.md says why each setting is what it is. */
export const IDP_PROFILES: Record<Idp, IdpProfile> = {
  keycloak: {
    title: 'Keycloak',
    issuerShape: 'https://sso.example.com/realms/<realm>',
    tokenType: 'access',
    accessTokenTypes: ['at+jwt', 'JWT'],
    audience: (_c, audience) => audience,
    groupsClaim: 'groups',
    scopes: () => OIDC_SCOPES,
    register: ({ clientId, audience }) => [
      `Clients > Create client: OpenID Connect, client ID ${clientId}; Client authentication OFF (public); Standard flow ON; OAuth 2.0 Device Authorization Grant ON`,
      'Valid redirect URIs: http://127.0.0.1/callback (Keycloak takes any port of a 127.0.0.1 redirect); Advanced > Proof Key for Code Exchange Code Challenge Method: S256',
      `Client scopes > ${clientId}-dedicated > Add mapper: Audience, included custom audience "${audience}", add to access token`,
      `... > Add mapper: Group Membership, token claim name "groups", full group path OFF, add to access token`,
    ],
    recipe: 'keycloak',
  },
  entra: {
    title: 'Microsoft Entra ID',
    issuerShape: 'https://login.microsoftonline.com/<tenant id>/v2.0',
    tokenType: 'access',
    accessTokenTypes: ['at+jwt', 'JWT'],
    audience: (clientId) => clientId,
    groupsClaim: 'roles',
    emailClaim: 'preferred_username',
    scopes: (clientId) => [...OIDC_SCOPES, `api://${clientId}/access_as_user`],
    needsClientId: true,
    register: ({ clientId }) => [
      "App registrations > New registration (single tenant); Authentication > Add a platform: Mobile and desktop applications, redirect URI http://127.0.0.1/callback (Entra does not compare a loopback port; the manifest's replyUrlsWithType takes it if the portal will not); Allow public client flows: Yes",
      `Expose an API: Application ID URI api://${clientId}, scope access_as_user; Manifest: "requestedAccessTokenVersion": 2 (v2 access tokens, audience ${clientId})`,
      "App roles: one per group of hoop users (e.g. dba, engineers), assigned to users and groups in Enterprise applications: they arrive in the access token's roles claim",
    ],
    recipe: 'microsoft-entra-id',
  },
  okta: {
    title: 'Okta',
    issuerShape: 'https://<org>.okta.com/oauth2/default',
    tokenType: 'access',
    accessTokenTypes: ['at+jwt', 'JWT', 'none'],
    redirectPort: 18250,
    audience: (_c, audience) => audience,
    groupsClaim: 'groups',
    scopes: () => OIDC_SCOPES,
    register: ({ audience }) => [
      'Applications > Create App Integration: OIDC, Native Application; grant types Authorization Code, Refresh Token, Device Authorization; sign-in redirect URI http://127.0.0.1:18250/callback (Okta compares the port: hoop login listens on 18250, login.redirectPort); assign the people who use hoop',
      `Security > API > Authorization Servers > default: audience ${audience}; Claims > Add Claim "groups", include in access token, value type Groups, filter (e.g. matches regex .*)`,
      'Access Policies of that server: a rule that allows the app the Authorization Code, Refresh Token and Device Authorization grants',
    ],
    recipe: 'okta',
  },
  google: {
    title: 'Google',
    issuerShape: 'https://accounts.google.com',
    tokenType: 'id',
    audience: (clientId) => clientId,
    groupsClaim: 'hd',
    scopes: () => ['openid', 'profile', 'email'],
    authorizationParams: { access_type: 'offline', prompt: 'consent' },
    clientSecret: true,
    needsClientId: true,
    register: () => [
      'APIs & Services > Credentials > Create OAuth client ID: Desktop app (loopback redirects on any port need no registration); put its client secret in login.clientSecret (Google says a desktop client secret is not a secret)',
      'Google issues no groups: access rules name people by email, or the hosted domain (the hd claim, taken as the one group) by group',
    ],
    recipe: 'google',
  },
  generic: {
    title: 'an OpenID provider',
    issuerShape: 'https://login.example.com',
    tokenType: 'access',
    audience: (_c, audience) => audience,
    groupsClaim: 'groups',
    scopes: () => OIDC_SCOPES,
    // What hoop needs (nextSteps) is all there is to say of a provider hoop knows nothing more of.
    register: () => [],
    recipe: 'any-other-openid-provider',
  },
  dev: {
    title: "hoop's development identity provider",
    issuerShape: 'http://127.0.0.1:9000',
    tokenType: 'access',
    audience: (_c, audience) => audience,
    groupsClaim: 'groups',
    scopes: () => OIDC_SCOPES,
    // Nothing to register: it knows the CLI's client (hoop-cli) itself.
    register: () => [],
    recipe: 'a-development-identity-provider',
  },
};

/** Where `hoop gateway dev-idp` listens unless told otherwise. */
export const DEV_IDP_ISSUER = 'http://127.0.0.1:9000';

/** A first connection, from `NAME=postgres://user@host:port/database?sslmode=...`. */
export interface FirstConnection {
  name: string;
  host: string;
  port: number;
  database: string;
  user: string;
  tlsMode: 'disable' | 'prefer' | 'require' | 'verify-full';
  /** The variable its password is read from on the gateway's host. */
  passwordVariable: string;
}

/** What `init` was told. */
export interface InitChoices {
  url: URL;
  /** Where it listens, when told (else {@link listenOf} the URL). */
  listen?: string;
  idp: Idp;
  issuer: string;
  clientId: string;
  /** The provider's secret of an installed app's client, where it requires one (Google). */
  clientSecret?: string;
  audience: string;
  /** Absolute paths. */
  tls: { cert: string; key: string };
  dataDir: string;
  policyRepo: string;
  /** People of this group may use every connection, read-only. */
  group: string;
  connection?: FirstConnection;
}

/**
 * The listen address for a gateway people reach at `url`: the address it names (`127.0.0.1`,
 * `[::1]`; `localhost` is 127.0.0.1), so a trial on a loopback URL is reached from this machine
 * alone; for a host name, every interface (the name is this machine's); its port.
 */
export function listenOf(url: URL): string {
  const port = url.port || '443';
  const host = url.hostname;
  if (host === 'localhost') return `127.0.0.1:${port}`;
  if (isIP(host.replace(/^\[|\]$/g, '')) !== 0) return `${host}:${port}`;
  return `0.0.0.0:${port}`;
}

/**
 * A YAML string scalar, always double-quoted (a JSON string is one): a plain `true`, `null`,
 * `1e3` or `a # b` would be read as something else.
 *
 * @see https://yaml.org/spec/1.2.2/#731-double-quoted-style
 */
function q(v: string): string {
  return JSON.stringify(v);
}

/** A YAML line with its comment in the column the file's comments share. */
function commented(text: string, comment: string): string {
  return `${text.padEnd(36)}  # ${comment}`;
}

/** The commented `gateway.yaml`. */
export function gatewayYaml(c: InitChoices, now: Date): string {
  const p = IDP_PROFILES[c.idp];
  const audience = p.audience(c.clientId, c.audience);
  const lines = [
    `# The hoop gateway's configuration, written by hoop gateway init on ${now.toISOString().slice(0, 10)} for ${c.url.origin}.`,
    '# Start it: hoop gateway --config <this file>. Every setting: docs/deployment.md ("The gateway").',
    '',
    commented(`listen: ${JSON.stringify(c.listen ?? listenOf(c.url))}`, `where people, agents and CI jobs reach it (${c.url.origin})`),
    commented('tls:', 'a certificate for the name people use'),
    `  cert: ${q(c.tls.cert)}`,
    `  key: ${q(c.tls.key)}`,
    commented(`dataDir: ${q(c.dataDir)}`, 'the recording spool, signing keys, devices, reviews'),
    '',
    commented('login:', `what hoop login signs people in with (${p.title})`),
    `  issuer: ${q(c.issuer)}`,
    commented(`  clientId: ${q(c.clientId)}`, 'the public client registered for hoop (PKCE)'),
    ...(c.clientSecret !== undefined ? [commented(`  clientSecret: ${q(c.clientSecret)}`, 'Google requires it of installed apps; it is not a secret')] : []),
    ...(p.scopes(c.clientId).join(' ') !== OIDC_SCOPES.join(' ') ? [`  scopes: [${p.scopes(c.clientId).map(q).join(', ')}]`] : []),
    ...(p.redirectPort ? [commented(`  redirectPort: ${p.redirectPort}`, `${p.title} compares the redirect's port: the one registered`)] : []),
    ...(p.authorizationParams
      ? [
          commented(
            `  authorizationParams: { ${Object.entries(p.authorizationParams)
              .map(([k, v]) => `${k}: ${q(v)}`)
              .join(', ')} }`,
            'a refresh token, where offline_access is refused',
          ),
        ]
      : []),
    commented('issuers:', 'whose tokens the gateway accepts'),
    `  - issuer: ${q(c.issuer)}`,
    `    audience: ${q(audience)}`,
    p.tokenType === 'id' ? commented('    tokenType: id', 'no JWT access tokens there: the ID token issued to this client') : '    tokenType: access',
    ...(p.accessTokenTypes ? [commented(`    accessTokenTypes: [${p.accessTokenTypes.join(', ')}]`, `what ${p.title} marks its access tokens with`)] : []),
    `    groupsClaim: ${q(p.groupsClaim)}`,
    ...(p.emailClaim ? [`    emailClaim: ${q(p.emailClaim)}`] : []),
    '',
    commented('policy:', 'connections, who may use them, rules, masking: a git repo'),
    `  repo: ${q(c.policyRepo)}`,
    '  ref: main',
    commented('  allowedSecrets:', 'the secret references the policy may use'),
    '    - "${env:HOOP_DB_*}"',
    '  pullIntervalSeconds: 60',
    '  # allowedSigners: /etc/hoop/allowed_signers   (apply only commits SSH-signed by these keys: recommended)',
    '',
    commented('audit:', 'session starts and ends, refusals, reviews: JSON lines (docs/audit.md)'),
    `  file: ${q(`${c.dataDir}/audit.jsonl`)}`,
    '',
  ];
  return lines.join('\n');
}

/** The starter policy repo's files. */
export function starterPolicy(c: InitChoices): Record<string, string> {
  const conn = c.connection;
  const connections = conn
    ? [
        'connections:',
        `  - name: ${q(conn.name)}`,
        '    type: postgres',
        `    host: ${q(conn.host)}`,
        `    port: ${conn.port}`,
        `    database: ${q(conn.database)}`,
        `    user: ${q(conn.user)}`,
        commented(`    password: \${env:${conn.passwordVariable}}`, "set on the gateway's host only; nobody else ever sees it"),
        `    tls: { mode: ${conn.tlsMode} }`,
      ]
    : [
        commented('connections: []', 'e.g.:'),
        '#  - name: prod-db',
        '#    type: postgres',
        '#    host: db.internal',
        '#    database: app',
        '#    user: hoop_gateway',
        '#    password: ${env:HOOP_DB_PROD_DB_PASSWORD}',
        '#    tls: { mode: verify-full }',
      ];
  const hoopYaml = [
    '# The policy hoop enforces: which connections it serves, who may use them, what they may run and',
    '# see. Check an edit with `hoop policy test` (it validates as the gateway will); the gateway',
    '# applies each commit on main within a minute. Every section: docs/policy.md ("The policy repo").',
    'version: 1',
    '',
    ...connections,
    '',
    commented('access:', 'nobody gets in unless a rule admits them'),
    `  - { name: people, groups: [${q(c.group)}], connections: ["*"], mode: read-only }`,
    commented(`  - { name: admins, groups: [${q(`${c.group}-admins`)}], connections: ["*"], mode: read-write }`, 'who may write: still under the statement rules below'),
    '',
    'statements:',
    '  unparseable: deny',
    '  rules:',
    '    - { name: no-drop-or-truncate, match: { kinds: [drop, truncate] }, action: deny, message: "dropping or emptying tables is not allowed through hoop" }',
    '    - { name: no-unseen-code, match: { kinds: [do, call, create-function] }, action: deny, message: "code hoop cannot read (DO, CALL, new functions) is not allowed" }',
    '',
    'masking:',
    '  names:',
    '    - { pattern: "password|passwd|pwd|secret|token|api_?key|access_?key|private_?key|credential|salt", strategy: redact }   # password_hash, apiKey, auth_token…',
    '  detectors:',
    '    - { detector: payment-card, strategy: last4 }',
    '    - { detector: email, strategy: redact }',
    '',
  ].join('\n');
  const tests = conn
    ? [
        'version: 1',
        'tests:',
        `  - { name: people read, as: { subject: someone, groups: [${q(c.group)}] }, connection: ${q(conn.name)}, sql: "select 1", expect: allow }`,
        `  - { name: people do not write, as: { subject: someone, groups: [${q(c.group)}] }, connection: ${q(conn.name)}, sql: "delete from t where id = 1", expect: deny, rule: read-only-access }`,
        `  - { name: nobody drops tables (admins neither), as: { subject: someone, groups: [${q(`${c.group}-admins`)}] }, connection: ${q(conn.name)}, sql: "drop table t", expect: deny, rule: no-drop-or-truncate }`,
        `  - { name: admins write, as: { subject: someone, groups: [${q(`${c.group}-admins`)}] }, connection: ${q(conn.name)}, sql: "delete from t where id = 1", expect: allow }`,
        `  - { name: strangers get nothing, as: { subject: stranger }, connection: ${q(conn.name)}, sql: "select 1", expect: deny }`,
        '',
      ].join('\n')
    : undefined;
  return { 'hoop.yaml': hoopYaml, ...(tests ? { 'policy/tests/starter.yaml': tests } : {}) };
}

/** What to register at the provider, and what comes next, as `init` prints it. */
export function nextSteps(c: InitChoices, files: { config: string; ca?: string; devUsers?: { file: string; user: string; password: string } }): string[] {
  const p = IDP_PROFILES[c.idp];
  const audience = p.audience(c.clientId, c.audience);
  const steps = p.register({ clientId: c.clientId, audience });
  const dev = files.devUsers;
  const provider = dev
    ? [
        '',
        `Start the development identity provider (docs/deployment.md#${p.recipe}); it listens on 127.0.0.1 only, for trying hoop, not for production:`,
        `  hoop gateway dev-idp --users ${dev.file} --port ${new URL(c.issuer).port || '80'}`,
        `  it signs in ${dev.user} (password: ${dev.password}, said only here), in the group ${c.group}`,
      ]
    : [];
  if (dev) {
    return [
      ...provider,
      '',
      'Then:',
      ...(c.connection ? [`  export ${c.connection.passwordVariable}=…          # the database password, on this host only`] : []),
      `  hoop gateway --config ${files.config}`,
      `  hoop login --gateway ${c.url.origin}${files.ca ? ` --ca-file ${files.ca}` : ''}   # as ${dev.user}, then hoop connect ${c.connection?.name ?? '<connection>'}`,
    ];
  }
  return [
    '',
    `Register hoop at ${p.title} (docs/deployment.md#${p.recipe}):`,
    `  client       ${c.clientId}: public (no client secret${p.clientSecret ? ' of its own; Google gives desktop apps one, which is not secret' : ''}), PKCE S256`,
    p.redirectPort
      ? `  redirect     http://127.0.0.1:${p.redirectPort}/callback (${p.title} compares the port)`
      : '  redirect     http://127.0.0.1/callback, on any port (hoop login listens on 127.0.0.1, RFC 8252 section 7.3)',
    '  grants       authorization code, refresh token, device code (hoop login --device)',
    `  scopes       ${p.scopes(c.clientId).join(' ')}`,
    `  tokens       ${p.tokenType === 'access' ? `access tokens for the audience ${audience}` : `ID tokens (audience ${audience})`}, groups in the ${p.groupsClaim} claim`,
    ...(steps.length > 0 ? [`  in ${p.title}'s console:`, ...steps.map((l) => `  - ${l}`)] : []),
    '',
    'Then:',
    ...(c.connection
      ? [`  export ${c.connection.passwordVariable}=…          # the database password, on this host only`]
      : [`  add a connection to ${c.policyRepo}/hoop.yaml and commit (hoop policy test --dir ${c.policyRepo} checks it)`]),
    `  hoop gateway --config ${files.config}`,
    `  and people: hoop login --gateway ${c.url.origin}${files.ca ? ` --ca-file ${files.ca}` : ''}, then hoop connect ${c.connection?.name ?? '<connection>'}`,
  ];
}
