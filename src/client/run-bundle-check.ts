/**
 * The `verify.sh` of a run's evidence bundle (./run-bundle.ts): a POSIX shell script that checks the
 * bundle with `sha256sum`, `ssh-keygen`, `jq` and `zcat` alone, as `hoop sessions verify <run-id>`
 * does with hoop: each record's chunks, signature and chain; that the run's record and the gateway
 * agree on the run's sessions, and that the bundle holds exactly those; and, per session, the cross-check of the CLI's record against the
 * gateway's (../recording/cross-check.ts): the statements sent (each Query and Parse with its SQL,
 * each Execute and FunctionCall) and the outcomes the client received (each command tag, error
 * SQLSTATE and ReadyForQuery status), in order, up to where a record cut short or the CLI's own
 * early check refused a statement ends (as the recording does, a ReadyForQuery that changes nothing
 * is no outcome). The records keep PostgreSQL's messages as they crossed (a gateway's of format 3 as
 * records, a CLI's as base64 `wire` events), which the script's jq decodes; SSH commands are
 * compared as multisets.
 *
 * @see https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
import { RECORDING_NAMESPACE } from '../recording/writer.js';

/** One record in the bundle: where, whose id it must name, its signed manifest, the principal that signed it. */
export interface RecordEntry {
  dir: string;
  id: string;
  manifest: string;
  signer: string;
  /** The session it records (absent: the run's own record). */
  session?: string;
  /** The CLI's record of the session (else the gateway's). */
  client?: boolean;
}

/**
 * The record kinds of a CLI's PostgreSQL messages (src/postgres/pipeline/recording/records.ts): one
 * whole client message (CLIENT), a Query or Parse too long to keep (CLIENT_LONG: its type, its
 * length little-endian, its name), one server message (SERVER), or either direction's bytes as they
 * came (RAW_CLIENT, RAW_SERVER: whole messages, in pieces).
 */
const CLIENT = 16;
const CLIENT_LONG = 17;
const SERVER = 20;
const RAW_CLIENT = 25;
const RAW_SERVER = 26;

/** jq: bytes from base64 (`b64`), and bytes read as UTF-8 (`utf8`). */
const BYTES_JQ = `
def b64: [explode[] | if . >= 65 and . <= 90 then . - 65 elif . >= 97 and . <= 122 then . - 71 elif . >= 48 and . <= 57 then . + 4 elif . == 43 then 62 elif . == 47 then 63 else empty end] as $v
  | [range(0; $v | length; 4) as $i | $v[$i:$i + 4] as $q | ($q[0] * 262144 + ($q[1] // 0) * 4096 + ($q[2] // 0) * 64 + ($q[3] // 0)) as $n
     | (($n / 65536) | floor), (if ($q | length) > 2 then (($n / 256) | floor) % 256 else empty end), (if ($q | length) > 3 then $n % 256 else empty end)];
def utf8: [foreach .[] as $b ({n: 0, cp: 0, out: null};
    if .n == 0 then
      if $b < 128 then {n: 0, cp: 0, out: $b} elif $b >= 240 then {n: 3, cp: ($b % 8), out: null}
      elif $b >= 224 then {n: 2, cp: ($b % 16), out: null} elif $b >= 192 then {n: 1, cp: ($b % 32), out: null}
      else {n: 0, cp: 0, out: 65533} end
    else {n: (.n - 1), cp: (.cp * 64 + ($b % 64)), out: null} | if .n == 0 then .out = .cp else . end end;
    .out // empty)] | implode;`;

/**
 * jq (-R, a chunk's records in base64 per input line): each record of a chunk of format 3
 * (src/recording/record-chunks.ts: kind u8, length u32 LE, time f64 LE, bytes) as an event: a whole
 * event (kind 1) as it is, any other as `{ t: "wire", k, bytes }`.
 */
const RECORDS_JQ = `${BYTES_JQ}
b64 | . as $b | ($b | length) as $len
| 0 | recurse(. + 13 + ($b[. + 1] + $b[. + 2] * 256 + $b[. + 3] * 65536 + $b[. + 4] * 16777216); . < $len)
| . as $i | if $i + 13 > $len then error("a record is cut short") else . end
| ($b[$i + 1] + $b[$i + 2] * 256 + $b[$i + 3] * 65536 + $b[$i + 4] * 16777216) as $n
| if $i + 13 + $n > $len then error("a record is cut short") else . end
| $b[$i + 13:$i + 13 + $n] as $bytes
| if $b[$i] == 1 then ($bytes | utf8 | fromjson | if type == "object" then . else error("an event that is not a JSON object") end)
  else {t: "wire", k: $b[$i], bytes: $bytes} end`;

/** jq: what one record says happened, as `{ statements, outcomes, ssh, cut }` (decoding the PostgreSQL messages a record keeps as they crossed). */
const SIDE_JQ = String.raw`${BYTES_JQ}
def cstr($i): (.[$i:] | index([0])) as $z | [(.[$i:$i + $z] | utf8), ($i + $z + 1)];
def int32($i): .[$i] * 16777216 + .[$i + 1] * 65536 + .[$i + 2] * 256 + .[$i + 3];
def client_step: .[0] as $t | .[5:] as $b
  | if $t == 81 then {t: "query", sql: ($b | cstr(0)[0]), n: ($b | length)}
    elif $t == 80 then ($b | cstr(0)[1]) as $i | {t: "parse", sql: ($b | cstr($i)[0]), n: ($b | length)}
    elif $t == 69 then {t: "execute"} elif $t == 70 then {t: "function-call"} else empty end;
def fields($i): if (.[$i] // 0) == 0 then empty else cstr($i + 1) as [$s, $n] | [.[$i], $s], fields($n) end;
# A server message's outcome, if it is one; a ReadyForQuery is one only when the transaction status changed.
def server_step($m): $m[0] as $t | $m[5:] as $b
  | if $t == 67 or $t == 73 or $t == 115 then .outcomes += ["complete \(if $t == 67 then ($b | cstr(0)[0]) elif $t == 73 then "(empty query)" else "(portal suspended)" end)"]
    elif $t == 69 then .outcomes += ["error \([$b | fields(0) | select(.[0] == 67) | .[1]][0] // "")"]
    elif $t == 90 then (if $b[0] != .status then .outcomes += ["ready \([$b[0]] | implode)"] else . end) | .status = $b[0]
    else . end;
def messages: if length >= 5 and length >= 1 + int32(1) then .[0:1 + int32(1)], (.[1 + int32(1):] | messages) else empty end;
def rest: if length >= 5 and length >= 1 + int32(1) then .[1 + int32(1):] | rest else . end;
def bytes: .bytes // (.b | b64);
reduce inputs as $e ({statements: [], outcomes: [], ssh: [], c: [], s: [], status: 73, stopped: false, after: 0};
  if .stopped then (if $e.t == "wire" and ($e.k == ${CLIENT} or $e.k == ${CLIENT_LONG}) then .after += 1 else . end)
  elif $e.t == "wire" and $e.k == ${CLIENT} then .statements += [$e | bytes | client_step]
  elif $e.t == "wire" and $e.k == ${CLIENT_LONG} then ($e | bytes) as $m
    | .statements += [{t: (if $m[0] == 81 then "query" else "parse" end), sql: "(\($m[1] + $m[2] * 256 + $m[3] * 65536 + $m[4] * 16777216) bytes, not recorded)"}]
  elif $e.t == "wire" and $e.k == ${SERVER} then server_step($e | bytes)
  elif $e.t == "wire" and $e.k == ${RAW_CLIENT} then .c += ($e | bytes) | .statements += [.c | messages | client_step] | .c |= rest
  elif $e.t == "wire" and $e.k == ${RAW_SERVER} then .s += ($e | bytes) | reduce (.s | messages) as $m (.; server_step($m)) | .s |= rest
  elif $e.t == "decision" then .stopped = true | .statements |= .[:-1] | .outcomes |= .[:-1]
  elif ($e.t | IN("query", "parse")) then .statements += [{t: $e.t, sql: $e.sql}]
  elif ($e.t | IN("execute", "function-call")) then .statements += [{t: $e.t}]
  elif ($e.t | IN("complete", "result")) then .outcomes += ["complete \($e.tag // "")"]
  elif $e.t == "error" then .outcomes += ["error \($e.code // "")"]
  elif $e.t == "ready" then .outcomes += ["ready \($e.status // "")"]
  elif ($e.t | IN("ssh-exec", "ssh-shell", "ssh-sftp-start")) then .ssh += ["\($e.t) \($e.command // "")"]
  else . end)
| {statements, outcomes, ssh: (.ssh | sort), stopped, after}`;

/** jq (with $g and $c slurped, $gcut and $ccut): the differences between the gateway's and the CLI's accounts, one per line. */
const COMPARE_JQ = String.raw`
# The gateway's text with its redaction markers (a secret written down hashed) as a pattern the CLI's, which holds what was typed, must match.
def unredacted($g; $c): [$g | splits("\\[redacted(:[0-9a-f]{8})?\\]")] as $p
  | ($p | length) > 1 and ($c | test("^" + ($p | map(gsub("(?<x>[\\\\^$.|?*+()\\[\\]{}])"; "\\\(.x)")) | join(".*")) + "$"; "s"));
def same($x; $y): if ($x | type) == "string" then $x == $y
  else $x.t == $y.t and ($x.sql == $y.sql or unredacted($x.sql // ""; $y.sql // "") or (($x.sql // "") | test("^\\(\\d+ bytes, not recorded\\)$") and ($x.sql | ltrimstr("(") | split(" ")[0] | tonumber) == $y.n)) end;
def shown: if type == "object" then del(.n) else . end | tojson;
def seq($what; $a; $b; $gcut; $ccut):
  ([$a, $b] | map(length) | min) as $n
  | ([range(0; $n) | select(same($a[.]; $b[.]) | not) | "\($what) \(. + 1): the gateway recorded \($a[.] | shown), the CLI \($b[.] | shown)"] | .[0:10][]),
    (if ($a | length) > $n and ($ccut | not) then "\($what) \($n + 1): the CLI's record ends here, the gateway's goes on with \($a[$n] | shown)"
     elif ($b | length) > $n and ($gcut | not) then "\($what) \($n + 1): the gateway's record ends here, the CLI's goes on with \($b[$n] | shown)" else empty end);
$g[0] as $g | $c[0] as $c | ($ccut or $c.stopped) as $ccut
| (if $c.stopped then "~compared up to the CLI's own refusal of its statement \($c.statements | length + 1) (it never reached the gateway): \([($g.statements | length) - ($c.statements | length), 0] | max) later statement(s) of the gateway's record and \($c.after) of the CLI's not compared"
   elif $gcut or $ccut then "~compared up to where a record was cut short" else empty end),
  seq("statement"; $g.statements; $c.statements; $gcut; $ccut),
  seq("outcome"; $g.outcomes; $c.outcomes; $gcut; $ccut),
  (if $g.ssh != $c.ssh and ($gcut or $ccut | not) then "SSH commands: the gateway recorded \($g.ssh | tojson), the CLI \($c.ssh | tojson)" else empty end)`;

/** Quotes `text` for the shell, in single quotes. */
const q = (text: string): string => `'${text.replaceAll("'", `'\\''`)}'`;

/** The script for the records of run `runId` (see the module documentation). */
export function verifyScript(runId: string, records: readonly RecordEntry[]): string {
  const sessions = [...new Set(records.flatMap((r) => (r.session ? [r.session] : [])))];
  const lines = [
    '#!/bin/sh',
    `# Checks the evidence of hoop run ${runId} with standard tools alone: sha256sum, ssh-keygen (OpenSSH 8.2+), jq, zcat.`,
    "# Exit 0: every record verifies, the gateway's recordings and the run's record whole (with --accept-truncated, up to a checkpoint),",
    '# the run and the gateway agree on its sessions, and each CLI record agrees with the gateway.',
    'accept=0; [ "$1" = --accept-truncated ] && accept=1',
    'cd "$(dirname "$0")" || exit 2',
    'for tool in sha256sum ssh-keygen jq zcat base64 tr awk sed; do command -v "$tool" >/dev/null 2>&1 || { echo "verify.sh needs $tool"; exit 2; }; done',
    'failed=0',
    'fail() { echo "FAIL $*"; failed=1; }',
    '# events DIR MANIFEST: the events of a record, one per line, in order (each chunk after its first line, which names the chunk;',
    '# a chunk of records read by jq from base64).',
    `events() { while read -r sum name; do case "$name" in records-*) zcat "$1/$name" | tail -n +2 | base64 | tr -d "\\n" | jq -R -c ${q(RECORDS_JQ)} ;; *) zcat "$1/$name" | tail -n +2 ;; esac; done < "$1/$2"; }`,
    '# record DIR ID MANIFEST SIGNER WHOLE: every chunk as the signed manifest says, each following the one before, of recording ID;',
    '# WHOLE=1: complete, as hoop sessions verify requires (what came after a checkpoint is not evidence).',
    '# extras DIR MANIFEST SIGNER STATE: every file of DIR is the manifest, its signature, a chunk it names, or a checkpoint whose whole',
    '# lines begin it (its signature, if there, verifying), as hoop sessions verify requires; short of complete, a chunk or checkpoint',
    '# numbered after what the manifest signs was written after it, and is no evidence. A record is read through its manifest, never a glob.',
    'extras() {',
    '  n=$(wc -l < "$1/$2")',
    '  for f in "$1"/* "$1"/.[!.]* "$1"/..?*; do',
    '    { [ -e "$f" ] || [ -L "$f" ]; } || continue; b=${f##*/}',
    '    { [ "$b" = "$2" ] || [ "$b" = "$2.sig" ]; } && continue',
    `    B=$b awk '$2 == ENVIRON["B"] { found = 1 } END { exit !found }' "$1/$2" && continue`,
    '    c=${b%.sig}',
    '    case "$c" in checkpoint-[0-9][0-9][0-9][0-9][0-9][0-9].SHA256SUMS)',
    '      [ -f "$1/$c" ] && [ "$(head -n "$(wc -l < "$1/$c")" "$1/$2" | sha256sum)" = "$(sha256sum < "$1/$c")" ] \\',
    `        && { [ ! -e "$1/$c.sig" ] || ssh-keygen -Y verify -f allowed_signers -I "$3" -n ${RECORDING_NAMESPACE} -s "$1/$c.sig" < "$1/$c" >/dev/null 2>&1; } && continue ;;`,
    '    esac',
    '    k=; case "$b" in events-[0-9]*|records-[0-9]*|checkpoint-[0-9]*) k=$(printf %s "$b" | sed -n \'s/^[a-z]*-\\([0-9]\\{6\\}\\)\\..*/\\1/p\') ;; esac',
    '    if [ "$4" != complete ] && [ -n "$k" ] && [ "$((1$k - 1000000))" -gt "$n" ]; then printf \'     %s: written after %s, no evidence\\n\' "$f" "$2"; continue; fi',
    '    fail "$f: not named by $2: no part of the recording"',
    '  done',
    '}',
    'record() {',
    '  ( cd "$1" && sha256sum --quiet --strict -c "$3" ) || { fail "$1: a file does not match $3"; return; }',
    `  ssh-keygen -Y verify -f allowed_signers -I "$4" -n ${RECORDING_NAMESPACE} -s "$1/$3.sig" < "$1/$3" >/dev/null || { fail "$1: $3 is not signed by $4"; return; }`,
    '  prev=0000000000000000000000000000000000000000000000000000000000000000; seq=0; last=',
    '  while read -r sum name; do',
    '    seq=$((seq + 1)); last=$name',
    '    zcat "$1/$name" | head -n 1 | jq -e --arg id "$2" --arg prev "$prev" --argjson seq "$seq" \'.t == "chunk" and .recording == $id and .prev == $prev and .seq == $seq\' >/dev/null \\',
    '      || { fail "$1/$name: not chunk $seq of recording $2 after the chunk before"; return; }',
    `    case "$name" in records-*) zcat "$1/$name" | tail -n +2 | base64 | tr -d "\\n" | jq -R -c ${q(RECORDS_JQ)} >/dev/null 2>&1 \\`,
    '      || { fail "$1/$name: holds a record cut short, or an event that is no JSON object"; return; } ;; esac',
    '    prev=$sum',
    '  done < "$1/$3"',
    '  # Complete only as the signed content says: a recording of format 2 or later ends with its seal, naming how many chunks it has',
    '  # (its last event; `read` empties $name at the end of its input, and jq -n reads no input as null).',
    '  state="cut short at $3"',
    '  if [ "$3" = SHA256SUMS ] && [ -n "$last" ]; then',
    '    if zcat "$1/$last" | head -n 1 | jq -n -e \'input | (.v // 1) < 2\' >/dev/null || events "$1" "$3" | tail -n 1 | jq -n -e --argjson n "$seq" \'input | .t == "sealed" and .chunks == $n\' >/dev/null; then state=complete',
    '    else state="cut short: its final manifest signs no seal of its end"; fi',
    '  fi',
    '  extras "$1" "$3" "$4" "$state"',
    '  if [ "$state" != complete ] && [ "$5" = 1 ] && [ "$accept" = 0 ]; then fail "$1: recording $2 is $state: what came after is not evidence (verify.sh --accept-truncated accepts what it holds)"; return; fi',
    '  echo "ok   $1: recording $2, signed by $4, $seq chunk(s), $state"',
    '}',
    `side() { events "$1" "$2" | jq -n -c ${q(SIDE_JQ)}; }`,
    '# crosscheck SESSION GATEWAY_MANIFEST CLI_MANIFEST',
    'crosscheck() {',
    '  g=$(mktemp) c=$(mktemp)',
    '  side "sessions/$1/gateway" "$2" > "$g" && side "sessions/$1/client" "$3" > "$c" || { fail "session $1: a record cannot be read"; rm -f "$g" "$c"; return; }',
    '  gcut=true; [ "$2" = SHA256SUMS ] && gcut=false; ccut=true; [ "$3" = SHA256SUMS ] && ccut=false',
    `  diffs=$(jq -n -r --slurpfile g "$g" --slurpfile c "$c" --argjson gcut "$gcut" --argjson ccut "$ccut" ${q(COMPARE_JQ)})`,
    "  part=$(printf '%s\\n' \"$diffs\" | sed -n 's/^~/; /p'); diffs=$(printf '%s\\n' \"$diffs\" | sed '/^~/d')",
    '  # printf, never echo: what the records hold (SQL text) is printed as it is, its escapes uninterpreted.',
    '  if [ -n "$diffs" ]; then fail "session $1: the records DIFFER:"; printf \'%s\\n\' "$diffs" | sed "s/^/       /"',
    "  else printf '%s\\n' \"ok   session $1: the gateway's and the CLI's records agree on $(jq '.statements | length' \"$c\") statement(s) and $(jq '.outcomes | length' \"$c\") outcome(s)$part\"; fi",
    '  rm -f "$g" "$c"',
    '}',
    '',
    ...records.map((r) => `record ${q(r.dir)} ${q(r.id)} ${q(r.manifest)} ${q(r.signer)} ${r.client ? 0 : 1}`),
    '',
    "# The sessions the run's record (the CLI's word) names, against the sessions the gateway recorded for the run.",
    `named=$(events run ${q(records.find((r) => r.dir === 'run')!.manifest)} | jq -r 'select(.t == "session") | .id' | sort -u)`,
    `here=$(printf '%s\\n' ${sessions.map(q).join(' ')} | sed '/^$/d' | sort -u)`,
    '[ "$named" = "$here" ] && echo "ok   run: its record names the $(echo "$here" | sed \'/^$/d\' | wc -l) session(s) the gateway recorded" \\',
    '  || fail "run: its record names sessions [$(echo $named)], the gateway recorded [$(echo $here)]"',
    "# The exact set: the run's record, the sessions it names and nothing else (another run's session added is no part of this run).",
    'disk=$(ls -A sessions 2>/dev/null | sort -u)',
    '[ "$disk" = "$named" ] || fail "the bundle holds sessions [$(echo $disk)], the run\'s record names [$(echo $named)]"',
    'for f in * .[!.]* ..?*; do [ -e "$f" ] || [ -L "$f" ] || continue; case "$f" in README.txt|verify.sh|allowed_signers|run|sessions) ;; *) fail "$f: no part of a run\'s bundle" ;; esac; done',
    // Each session's directory: its index entry and the records exported of it, nothing else (a client/ the export did not write is no evidence).
    'exact() { d=$1; shift; have=$(ls -A "$d" 2>/dev/null | sort | tr \'\\n\' \' \'); want=$(printf \'%s\\n\' "$@" | sort | tr \'\\n\' \' \'); [ "$have" = "$want" ] || fail "$d holds [$have], where the bundle holds [$want]"; }',
    ...sessions.map((id) => `exact ${q(`sessions/${id}`)} session.json ${records.flatMap((r) => (r.session === id ? [q(r.dir.slice(r.dir.lastIndexOf('/') + 1))] : [])).join(' ')}`),
    ...records
      .filter((r) => r.session && !r.client)
      .map(
        (r) =>
          `events ${q(r.dir)} ${q(r.manifest)} | jq -e -s --arg run ${q(runId)} 'map(select(.t == "start"))[0].runId == $run' >/dev/null || fail ${q(`session ${r.session}: the gateway's recording does not name run ${runId}`)}`,
      ),
    '',
    ...records.filter((r) => r.client).map((r) => `crosscheck ${q(r.session!)} ${q(records.find((g) => g.session === r.session && !g.client)!.manifest)} ${q(r.manifest)}`),
    '',
    '[ "$failed" = 0 ] && echo "verified: every record of the run" || echo "NOT verified: see FAIL above"',
    'exit "$failed"',
    '',
  ];
  return lines.join('\n');
}
