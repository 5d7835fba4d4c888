import { describe, expect, it } from 'vitest';
import { SentSecrets } from '../../src/policy/sql/sent-secrets.js';
import { redactionMarker } from '../../src/policy/sql/redact.js';

const KEY = 'k';
const marker = (v: string): string => redactionMarker(v, KEY);

describe('what the client sent that its record redacts, where the server repeats it', () => {
  it("redacts a bound value and a typed literal's value wherever an error repeats them, longest first", () => {
    const sent = new SentSecrets(KEY);
    expect(sent.any).toBe(false);
    sent.value('uniq-secret-1');
    const sql = "alter role r password 'It''s-secret'";
    const at = sql.indexOf("'It");
    sent.statement(sql, [[at, sql.length]]);
    expect(sent.redact('Key (password)=(uniq-secret-1) already exists.')).toBe(`Key (password)=(${marker('uniq-secret-1')}) already exists.`);
    // The server repeats the value, its doubled quote one character.
    expect(sent.redact("value It's-secret here")).toBe(`value ${marker("'It''s-secret'")} here`);
    // Short values (under 4 characters) would mark common words: not looked for.
    sent.value('abc');
    expect(sent.redact('abc')).toBe('abc');
  });

  it('remembers the last 512 pieces (a pipelined batch), the oldest forgotten first', () => {
    const sent = new SentSecrets(KEY);
    for (let i = 0; i < 600; i++) sent.value(`secret-${i}-x`);
    expect(sent.redact('secret-599-x')).toBe(marker('secret-599-x'));
    expect(sent.redact('secret-88-x')).toBe(marker('secret-88-x'));
    expect(sent.redact('secret-87-x')).toBe('secret-87-x');
  });

  it("during a COPY FROM, records what quotes its rows as one marker, and the message's quoted values as theirs", () => {
    const sent = new SentSecrets(KEY);
    sent.copying = true;
    expect(sent.any).toBe(true);
    expect(sent.field('D', 'Failing row contains (a, copy-secret).')).toBe(marker('Failing row contains (a, copy-secret).'));
    expect(sent.field('W', 'COPY creds, line 1: "a\tcopy-secret"')).toBe(marker('COPY creds, line 1: "a\tcopy-secret"'));
    expect(sent.field('M', 'invalid input syntax for type integer: "copy-secret"')).toBe(`invalid input syntax for type integer: "${marker('copy-secret')}"`);
    expect(sent.field('C', '23514')).toBe('23514');
    sent.copying = false;
    expect(sent.field('D', 'Failing row contains (a, b).')).toBe('Failing row contains (a, b).');
  });
});
