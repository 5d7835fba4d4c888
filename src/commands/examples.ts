/**
 * The examples every command's `--help` ends with (and the manual shows), by command path: a
 * comment saying what it does, then the command line as typed. A test runs through every command
 * and checks each example names that command and only options it has.
 */
import type { Command } from 'commander';

/** Each command's examples: [what it does, the command line]. */
export const EXAMPLES: Readonly<Record<string, ReadonlyArray<readonly [string, string]>>> = {
  '': [
    ['try all of hoop on this machine', 'hoop demo'],
    ['sign in, then reach a database through the gateway', 'hoop login --gateway https://hoop.acme.example:8443 && hoop connect prod-db'],
  ],
  demo: [
    ['start the demo and keep it running (Ctrl-C stops it)', 'hoop demo'],
    ['start it afresh in a directory of your choice', 'hoop demo --dir ~/hoop-demo --fresh'],
    ['the scripted tour, for a terminal recording or CI', 'hoop demo --script'],
  ],
  login: [
    ['sign in through the browser', 'hoop login --gateway https://hoop.acme.example:8443'],
    ['on a machine without a browser', 'hoop login --device'],
    ['a CI job with its workload identity', 'hoop login --id-token-file /var/run/secrets/tokens/hoop'],
  ],
  whoami: [
    ['who the gateway takes you for', 'hoop whoami'],
    ['the same as JSON, for a script', 'hoop whoami --json'],
  ],
  logout: [
    ['forget the tokens of the current identity', 'hoop logout'],
    ['forget those of another identity logged in here', 'hoop logout bob@acme.example'],
    ['forget every identity at every gateway', 'hoop logout --all'],
  ],
  profiles: [
    ['the identities logged in, the current one marked *', 'hoop profiles'],
    ['be another of them', 'hoop profiles use bob@acme.example'],
  ],
  'profiles ls': [
    ['the identities logged in, the current one marked *', 'hoop profiles ls'],
    ['their subjects alone, one per line', "hoop profiles ls --jq '.profiles[].subject'"],
  ],
  'profiles use': [
    ['be another identity logged in here', 'hoop profiles use bob@acme.example'],
    ['the one at a given gateway, where it is logged in at several', 'hoop profiles use bob --gateway https://hoop.acme.example:8443'],
  ],
  connections: [
    ['what you may reach', 'hoop connections'],
    ['their names alone, one per line', "hoop connections --jq '.connections[].name'"],
  ],
  connect: [
    ['a local port for psql, pgcli or your IDE', 'hoop connect prod-db'],
    ['a fixed port, for a tool that remembers it', 'hoop connect prod-db --port 5433'],
    ['a short-lived credential straight to the gateway, no local port', 'hoop connect prod-db --direct --ttl 15m'],
  ],
  'run ls': [['the runs whose changes are kept here', 'hoop run ls']],
  'run diff': [["a kept run's changes, as the gate would apply them", 'hoop run diff run-1a2b3c']],
  'run apply': [
    ["apply a kept run's changes through the gate", 'hoop run apply run-1a2b3c'],
    ['choose which, file by file', 'hoop run apply run-1a2b3c --review'],
  ],
  'run discard': [["drop a kept run's changes", 'hoop run discard run-1a2b3c']],
  run: [
    ['an agent whose only way to the database is the gateway', 'hoop run --connect prod-db --agent claude -- claude'],
    ['a CI job, with what it was asked to do recorded', 'hoop run -c prod-db --agent ci --prompt "nightly report" -- ./report.sh'],
    ["see the agent's changes as a diff when it ends, and apply what you accept", 'hoop run --review -c prod-db -- claude'],
    ['an agent that may only run the runbooks the policy gives it', 'hoop run --runbooks-only --agent claude -- claude'],
  ],
  exec: [
    ['run one statement and print its rows', 'hoop exec prod-db -c "select count(*) from orders"'],
    ['a file of statements, each row as JSON', 'hoop exec prod-db -f report.sql --json'],
  ],
  mcp: [
    ['database tools for an MCP client (its stdio server)', 'hoop mcp --connect prod-db'],
    ['one MCP connection of the gateway, as the stdio server', 'hoop mcp --connection files'],
  ],
  'mcp config': [
    ["add hoop to Claude Code's project configuration", 'hoop mcp config --client claude-code --write'],
    ["print Cursor's configuration for two connections", 'hoop mcp config --client cursor -c prod-db -c files'],
  ],
  sessions: [
    ['your sessions of the last hour', 'hoop sessions ls --since 1h'],
    ['replay your newest one', 'hoop sessions replay last'],
  ],
  'sessions ls': [
    ['your sessions of the last hour', 'hoop sessions ls --since 1h'],
    ['who read the cards table this week (an auditor)', 'hoop sessions ls --table cards --since 1w'],
    ["an agent's run, and what it was refused", 'hoop sessions ls --run run-1a2b3c --denied'],
  ],
  'sessions show': [
    ['your newest ended session: who, what, when', 'hoop sessions show last'],
    ['as JSON', 'hoop sessions show ses-1a2b3c --json'],
  ],
  'sessions verify': [
    ["check a recording against the gateway's keys", 'hoop sessions verify ses-1a2b3c'],
    ['check a copy on disk, with the key you trust', 'hoop sessions verify --file ./ses-1a2b3c --key "ssh-ed25519 AAAA…"'],
  ],
  'sessions replay': [
    ['watch a session as it happened, twice as fast', 'hoop sessions replay ses-1a2b3c --speed 2'],
    ['print the whole transcript at once', 'hoop sessions replay last --no-tty'],
  ],
  'sessions export': [
    ['the events as JSON lines, for a SIEM', 'hoop sessions export ses-1a2b3c --format jsonl > session.jsonl'],
    ['a terminal recording asciinema plays', 'hoop sessions export last --format asciicast > session.cast'],
  ],
  review: [
    ['what waits for your decision', 'hoop review ls'],
    ['decide as they come, in a live inbox', 'hoop review watch'],
  ],
  'review ls': [
    ['what waits for your decision', 'hoop review ls'],
    ['everything decided or not', 'hoop review ls --state all'],
  ],
  'review show': [
    ['read a held statement in full', 'hoop review show rv-1a2b3c'],
    ['wait for the decision on your own request', 'hoop review show rv-1a2b3c --wait 600'],
  ],
  'review approve': [['let a held statement run', 'hoop review approve rv-1a2b3c --reason "ticket OPS-42"']],
  'review deny': [['refuse it, saying why', 'hoop review deny rv-1a2b3c --reason "not during the freeze"']],
  'review watch': [
    ['a live inbox: approve or deny from the terminal', 'hoop review watch'],
    ['each new review as a JSON line, for a bot', 'hoop review watch --json'],
  ],
  request: [['ask for an hour of write access, and wait', 'hoop request prod-db --for 1h --mode read-write --reason "fix OPS-42" --wait']],
  alerts: [
    ['the open alerts', 'hoop alerts ls'],
    ['clear one once dealt with', 'hoop alerts clear alert-1a2b3c --reason "expected: migration"'],
  ],
  'alerts ls': [
    ['the open alerts', 'hoop alerts ls'],
    ['every alert, as JSON', 'hoop alerts ls --state all --json'],
  ],
  'alerts show': [['what raised an alert, and its sessions', 'hoop alerts show alert-1a2b3c']],
  'alerts clear': [['clear an alert, saying why', 'hoop alerts clear alert-1a2b3c --reason "expected: migration"']],
  runbook: [
    ['the runbooks you may run', 'hoop runbook ls'],
    ['what one does, and takes', 'hoop runbook show refund-order'],
    ['run it with its parameters', 'hoop runbook run refund-order -p order_id=42 -p cents=500'],
  ],
  'runbook ls': [['the runbooks you may run, as JSON', 'hoop runbook ls --json']],
  'runbook show': [['what a runbook does: its parameters and steps', 'hoop runbook show refund-order']],
  'runbook run': [
    ['run one; wait for its reviewer if it has one', 'hoop runbook run refund-order -p order_id=42 -p cents=500'],
    ['from a script: the run as JSON, a review id (exit 4) rather than a wait', 'hoop runbook run refund-order -p order_id=42 -p cents=500 --json --no-wait'],
  ],
  policy: [
    ['test the config repo you are in before you push', 'hoop policy test'],
    ['why a statement would be refused', 'hoop policy check --connection prod-db "delete from orders"'],
  ],
  'policy show': [
    ['every rule of the config repo here', 'hoop policy show'],
    ["the rules of the repo's main branch", 'hoop policy show --repo git@github.com:acme/hoop-config.git --ref main'],
  ],
  'policy pull': [['fetch the config repo and check its signatures', 'hoop policy pull --repo git@github.com:acme/hoop-config.git --allowed-signers signers']],
  'policy test': [
    ['validate the bundle here and run its test cases', 'hoop policy test'],
    ['without asking the gateway', 'hoop policy test --dir ./hoop-config --offline'],
  ],
  'policy check': [
    ['the decision for a statement, and the rule behind it', 'hoop policy check --connection prod-db "update orders set paid = true"'],
    ['as an agent of a run would be judged', 'hoop policy check --connection prod-db --as ci --via run --agent claude "drop table orders"'],
  ],
  'policy status': [['the commit the gateway runs, and what it refused', 'hoop policy status']],
  'policy schema': [
    ["the bundle's JSON schema, for your editor", 'hoop policy schema > policy.schema.json'],
    ["the test cases' schema", 'hoop policy schema --tests'],
  ],
  gateway: [
    ['run the gateway', 'hoop gateway --config /etc/hoop/gateway.yaml'],
    ['write a first configuration', 'hoop gateway init --url https://hoop.acme.example:8443 --issuer https://acme.okta.com'],
  ],
  'gateway init': [
    [
      'a gateway for Okta, with a first connection',
      'hoop gateway init --url https://hoop.acme.example:8443 --issuer https://acme.okta.com --client-id 0oa1b2c3 --connection prod-db=postgres://hoop@db.internal/app',
    ],
    ['a gateway to try on this machine, with a development identity provider', 'hoop gateway init --url https://127.0.0.1:8443 --idp dev --dir hoop-trial'],
  ],
  'gateway dev-idp': [['the development identity provider, for the users init --idp dev wrote', 'hoop gateway dev-idp --users dev-users.yaml']],
  'gateway migrate': [['bring the shared store to this version before replicas start', 'hoop gateway migrate --config /etc/hoop/gateway.yaml']],
  'gateway status': [['is the gateway configured here healthy', 'hoop gateway status --config /etc/hoop/gateway.yaml']],
  completion: [
    ['completion in this bash', 'source <(hoop completion bash)'],
    ['for every zsh', 'hoop completion zsh > "${fpath[1]}/_hoop"'],
    ['for fish', 'hoop completion fish > ~/.config/fish/completions/hoop.fish'],
  ],
};

/** The path of words after `hoop` that names `cmd`. */
export function commandPath(cmd: Command): string {
  const words: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) words.unshift(c.name());
  return words.join(' ');
}

/** The text of a command's examples, as `--help` ends. */
export function examplesText(path: string): string {
  const examples = EXAMPLES[path] ?? [];
  return examples.map(([what, line]) => `  # ${what}\n  $ ${line}`).join('\n\n');
}

/** Adds its examples to the help of `program` and of every command under it. */
export function withExamples(program: Command): Command {
  const add = (cmd: Command): void => {
    const text = examplesText(commandPath(cmd));
    if (text) cmd.addHelpText('after', `\nExamples:\n${text}\n`);
    for (const sub of cmd.commands) add(sub);
  };
  add(program);
  return program;
}
