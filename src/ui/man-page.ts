/**
 * hoop(1): the manual page, written from the same help text `--help` prints (commander's Help:
 * usage, description, arguments, options with their defaults and choices) and the same examples,
 * one section per command. The build writes it to man/hoop.1, which the package ships.
 */
import type { Command } from 'commander';

/** Text escaped for roff: backslashes, dashes, and a line that would read as a request. */
function roff(text: string): string {
  return text
    .replaceAll('\\', '\\e')
    .replaceAll('-', '\\-')
    .split('\n')
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join('\n');
}

/** One command's section: usage, description, arguments, options, examples. */
function section(cmd: Command, path: string, examples: (path: string) => ReadonlyArray<readonly [string, string]>): string[] {
  const help = cmd.createHelp();
  const out = [`.SS "${roff(help.commandUsage(cmd))}"`];
  out.push(roff(help.commandDescription(cmd)));
  const item = (term: string, text: string): void => {
    out.push('.TP', `\\fB${roff(term)}\\fR`, roff(text));
  };
  for (const a of help.visibleArguments(cmd)) item(help.argumentTerm(a), help.argumentDescription(a));
  for (const o of help.visibleOptions(cmd)) if (o.long !== '--help') item(help.optionTerm(o), help.optionDescription(o));
  const shown = examples(path);
  if (shown.length > 0) {
    out.push('.PP', 'Examples:', '.PP', '.nf', '.RS 4');
    for (const [what, line] of shown) out.push(roff(`# ${what}`), roff(`$ ${line}`), '');
    out.pop();
    out.push('.RE', '.fi');
  }
  return out;
}

/** The whole manual of `program` (hoop), every command in help order. */
export function manPage(program: Command, version: string, examples: (path: string) => ReadonlyArray<readonly [string, string]>): string {
  const lines = [
    `.TH HOOP 1 "" "hoop ${roff(version)}" "User Commands"`,
    '.SH NAME',
    `hoop \\- ${roff(program.description())}`,
    '.SH SYNOPSIS',
    '.B hoop',
    '\\fIcommand\\fR [\\fIoptions\\fR] [\\fIarguments\\fR]',
    '.SH DESCRIPTION',
    roff(
      "Every command takes --help; the sections below are what it prints. Exit codes: 0 done; 1 failed or refused (each command's help says more); 64 a usage error; 65 bad input data; 69 the gateway unavailable; 70 a bug in hoop; 77 not signed in, or the token refused; 78 a configuration error.",
    ),
    '.SH COMMANDS',
  ];
  const walk = (cmd: Command, words: string[]): void => {
    for (const sub of cmd.commands) {
      if ((sub as unknown as { _hidden?: boolean })._hidden || sub.name() === 'help') continue;
      const path = [...words, sub.name()];
      lines.push(...section(sub, path.join(' '), examples));
      walk(sub, path);
    }
  };
  walk(program, []);
  lines.push('.SH EXAMPLES', '.nf', '.RS 4');
  for (const [what, line] of examples('')) lines.push(roff(`# ${what}`), roff(`$ ${line}`), '');
  lines.pop();
  lines.push('.RE', '.fi', '.SH SEE ALSO', 'psql(1), ssh(1), git(1)', '');
  return lines.join('\n');
}
