/**
 * Shell completion for hoop: the command tree as commander knows it, and the bash, zsh and fish
 * scripts `hoop completion SHELL` prints. Commands, options and choices are in the script itself (a
 * tab never starts node for them); connection names and session, review and alert ids are asked of
 * the gateway (`hoop completion --list KIND`) only where a command takes one; the identities logged
 * in (`profiles`) are read from this machine's profiles.
 */
import type { Command } from 'commander';

/** What a value is completed from: the gateway's names (asked when tab is pressed) or the file system. */
export type ValueKind = 'connections' | 'sessions' | 'reviews' | 'alerts' | 'profiles' | 'files';

/** The kinds `hoop completion --list` answers (profiles from this machine's logins, the others from the gateway). */
export const LISTED_KINDS = ['connections', 'sessions', 'reviews', 'alerts', 'profiles'] as const;

/** One option of a command: its spellings, and what its value is when it takes one. */
interface OptionSpec {
  names: string[];
  value: boolean;
  choices?: readonly string[];
  kind?: ValueKind;
}

/** One command of the tree, by its path of words after `hoop` ('' is hoop itself). */
interface CommandSpec {
  path: string;
  subcommands: string[];
  options: OptionSpec[];
  /** What its first positional argument is: names hoop can list, or choices. */
  args?: ValueKind | readonly string[];
}

/** The ids a command's `<id>` argument names, by its top-level command. */
const ID_KINDS: Record<string, ValueKind> = { sessions: 'sessions', review: 'reviews', alerts: 'alerts' };

function optionKind(long: string | undefined, flags: string): ValueKind | undefined {
  if (long === '--connection') return 'connections';
  const value = /<([^>]+)>/.exec(flags)?.[1] ?? '';
  return /file|dir|path/.test(value) ? 'files' : undefined;
}

function argKind(cmd: Command, top: string): ValueKind | readonly string[] | undefined {
  const arg = cmd.registeredArguments[0];
  if (arg?.argChoices) return arg.argChoices;
  const first = arg?.name();
  if (first === 'connection' || first === 'name') return 'connections';
  if (first === 'profile') return 'profiles';
  if (first === 'id') return ID_KINDS[top];
  return undefined;
}

/** The tree under `program`, each command once, hidden ones left out. */
export function completionTree(program: Command): CommandSpec[] {
  const specs: CommandSpec[] = [];
  const walk = (cmd: Command, words: string[]): void => {
    const visible = cmd.commands.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden);
    const options: OptionSpec[] = cmd.options
      .filter((o) => !o.hidden)
      .map((o) => {
        const kind = optionKind(o.long, o.flags);
        return {
          names: [o.long, o.short].filter((n): n is string => !!n),
          value: o.required || o.optional,
          ...(o.argChoices ? { choices: o.argChoices } : {}),
          ...(kind ? { kind } : {}),
        };
      });
    options.push({ names: ['--help', '-h'], value: false });
    const args = argKind(cmd, words[0] ?? '');
    specs.push({ path: words.join(' '), subcommands: visible.flatMap((c) => [c.name(), ...c.aliases()]), options, ...(args ? { args } : {}) });
    for (const c of visible) for (const name of [c.name(), ...c.aliases()]) walk(c, [...words, name]);
  };
  walk(program, []);
  return specs;
}

/** A value as the scripts spell it: `=a b c` for choices, else the kind. */
const valueWord = (v: ValueKind | readonly string[]): string => (typeof v === 'string' ? v : `=${v.join(' ')}`);

/** A word list quoted for a POSIX shell's single quotes. */
const sq = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

/** The `case` functions bash and zsh share: subcommands, options, valued options, choices and kinds by command path. */
function posixTables(tree: CommandSpec[]): string {
  const lines: string[] = [];
  const fn = (name: string, arms: Array<[string, string]>): void => {
    lines.push(`${name}() {`, '  case "$1" in');
    for (const [pattern, body] of arms) lines.push(`    ${pattern}) ${body}; return 0 ;;`);
    lines.push('  esac', '  return 1', '}');
  };
  fn(
    '_hoop_subs',
    tree.filter((c) => c.subcommands.length > 0).map((c) => [sq(c.path), `echo ${sq(c.subcommands.join(' '))}`]),
  );
  fn(
    '_hoop_opts',
    tree.map((c) => [sq(c.path), `echo ${sq(c.options.flatMap((o) => o.names.filter((n) => n.startsWith('--'))).join(' '))}`]),
  );
  const valued = tree.flatMap((c) => c.options.filter((o) => o.value).flatMap((o) => o.names.map((n) => `${c.path}|${n}`)));
  fn('_hoop_valued', valued.length > 0 ? [[valued.map(sq).join('|'), ':']] : []);
  fn(
    '_hoop_value',
    tree.flatMap((c) =>
      c.options.filter((o) => o.value && (o.choices || o.kind)).map((o): [string, string] => [o.names.map((n) => sq(`${c.path}|${n}`)).join('|'), `echo ${sq(valueWord(o.choices ?? o.kind!))}`]),
    ),
  );
  fn(
    '_hoop_args',
    tree.filter((c) => c.args).map((c) => [sq(c.path), `echo ${sq(valueWord(c.args!))}`]),
  );
  return lines.join('\n');
}

/**
 * Walks the words before the cursor (a POSIX function both shells run): sets `_hoop_path` to the
 * command they name and `_hoop_stop` when `--` ended hoop's own words.
 */
const POSIX_WALK = `_hoop_walk() {
  _hoop_path='' _hoop_stop='' _hoop_skip=''
  for _hoop_w in "$@"; do
    if [ -n "$_hoop_skip" ]; then _hoop_skip=''; continue; fi
    case "$_hoop_w" in
      --) _hoop_stop=1; return ;;
      --*=*) continue ;;
      -*) _hoop_valued "$_hoop_path|$_hoop_w" && _hoop_skip=1; continue ;;
    esac
    case " $(_hoop_subs "$_hoop_path") " in
      *" $_hoop_w "*) _hoop_path="\${_hoop_path:+$_hoop_path }$_hoop_w" ;;
    esac
  done
}

# What a value is: choices (=a b), "files", or a kind the gateway lists (asked of hoop itself).
_hoop_offer() {
  case "$2" in
    '='*) echo "\${2#=}" | tr ' ' '\\n' ;;
    files) echo files ;;
    *) "$1" completion --list "$2" 2>/dev/null ;;
  esac
  return 0
}

# The words to offer for the word being typed (one per line); "files" when file names are.
_hoop_candidates() {
  if [ -n "$_hoop_stop" ]; then echo files; return 0; fi
  if _hoop_valued "$_hoop_path|$2"; then
    _hoop_v=$(_hoop_value "$_hoop_path|$2") && _hoop_offer "$1" "$_hoop_v"
    return 0
  fi
  case "$3" in
    -*) _hoop_opts "$_hoop_path" | tr ' ' '\\n'; return 0 ;;
  esac
  if _hoop_s=$(_hoop_subs "$_hoop_path"); then echo "$_hoop_s" | tr ' ' '\\n'; return 0; fi
  _hoop_a=$(_hoop_args "$_hoop_path") && _hoop_offer "$1" "$_hoop_a"
  return 0
}`;

/** `hoop completion bash`: `source <(hoop completion bash)`, or save it under bash-completion's directory. */
export function bashScript(tree: CommandSpec[]): string {
  return `# hoop completion for bash: source <(hoop completion bash)
${posixTables(tree)}
${POSIX_WALK}
_hoop_complete() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]} line
  _hoop_walk "\${COMP_WORDS[@]:1:COMP_CWORD-1}"
  COMPREPLY=()
  while IFS= read -r line; do
    if [ "$line" = files ]; then compopt -o default 2>/dev/null; COMPREPLY=(); return 0; fi
    [[ $line == "$cur"* ]] && COMPREPLY+=("$line")
  done < <(_hoop_candidates "\${COMP_WORDS[0]}" "$prev" "$cur")
}
complete -F _hoop_complete hoop
`;
}

/** `hoop completion zsh`: save it as `_hoop` on $fpath, or `source <(hoop completion zsh)` after compinit. */
export function zshScript(tree: CommandSpec[]): string {
  return `#compdef hoop
# hoop completion for zsh: source <(hoop completion zsh) after compinit, or save as _hoop on $fpath
${posixTables(tree)}
${POSIX_WALK}
_hoop() {
  local -a found
  local line
  _hoop_walk "\${(@)words[2,CURRENT-1]}"
  for line in "\${(@f)$(_hoop_candidates "\${words[1]}" "\${words[CURRENT-1]}" "\${words[CURRENT]}")}"; do
    [[ $line == files ]] && { _files; return; }
    [[ -n $line ]] && found+=("$line")
  done
  compadd -a found
}
if [ "$funcstack[1]" = _hoop ]; then _hoop "$@"; else compdef _hoop hoop; fi
`;
}

/** `hoop completion fish`: `hoop completion fish | source`, or save it under ~/.config/fish/completions/hoop.fish. */
export function fishScript(tree: CommandSpec[]): string {
  const q = (s: string): string => `'${s.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
  const sw = (name: string, arms: Array<[string[], string]>): string =>
    [`function ${name}`, '  switch $argv[1]', ...arms.map(([ps, body]) => `    case ${ps.map(q).join(' ')}\n      ${body}`), "    case '*'", '      return 1', '  end', 'end'].join('\n');
  const valued = tree.flatMap((c) => c.options.filter((o) => o.value).flatMap((o) => o.names.map((n) => `${c.path}|${n}`)));
  return `# hoop completion for fish: hoop completion fish | source
${sw(
  '__hoop_subs',
  tree.filter((c) => c.subcommands.length > 0).map((c) => [[c.path], `string split ' ' -- ${q(c.subcommands.join(' '))}`]),
)}
${sw(
  '__hoop_opts',
  tree.map((c) => [[c.path], `string split ' ' -- ${q(c.options.flatMap((o) => o.names.filter((n) => n.startsWith('--'))).join(' '))}`]),
)}
${sw('__hoop_valued', valued.length > 0 ? [[valued, 'return 0']] : [])}
${sw(
  '__hoop_value',
  tree.flatMap((c) => c.options.filter((o) => o.value && (o.choices || o.kind)).map((o): [string[], string] => [o.names.map((n) => `${c.path}|${n}`), `echo ${q(valueWord(o.choices ?? o.kind!))}`])),
)}
${sw(
  '__hoop_args',
  tree.filter((c) => c.args).map((c) => [[c.path], `echo ${q(valueWord(c.args!))}`]),
)}
function __hoop_offer
  switch $argv[2]
    case '=*'
      string split ' ' -- (string sub -s 2 -- $argv[2])
    case files
      __fish_complete_path (commandline -ct)
    case '*'
      $argv[1] completion --list $argv[2] 2>/dev/null
  end
end
function __hoop_complete
  set -l words (commandline -opc)
  set -l prev $words[-1]
  set -l path ''
  set -l skip ''
  for w in $words[2..-1]
    if test -n "$skip"; set skip ''; continue; end
    switch $w
      case '--'
        __fish_complete_path (commandline -ct); return
      case '--*=*'
        continue
      case '-*'
        __hoop_valued "$path|$w"; and set skip 1
        continue
    end
    if contains -- $w (__hoop_subs "$path")
      set path (string trim -- "$path $w")
    end
  end
  if __hoop_valued "$path|$prev"
    set -l v (__hoop_value "$path|$prev"); and __hoop_offer $words[1] $v
    return 0
  end
  switch (commandline -ct)
    case '-*'
      __hoop_opts "$path"; return 0
  end
  __hoop_subs "$path"; and return 0
  set -l a (__hoop_args "$path"); and __hoop_offer $words[1] $a
  return 0
end
complete -c hoop -f -a '(__hoop_complete)'
`;
}
