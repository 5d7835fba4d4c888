import { describe, expect, it } from 'vitest';
import { SentSecrets } from '../../src/policy/sql/sent-secrets.js';
import { redactionMarker } from '../../src/policy/sql/redact.js';

const KEY = 'k';
const marker = (v: string): string => redactionMarker(v, KEY);

describe('what the server says once the client sent a secret', () => {
  it('is recorded as it came until then; after, each field that may quote a value is one marker, whatever spelling the value took', () => {
    const sent = new SentSecrets(KEY);
    expect(sent.tainted).toBe(false);
    expect(sent.field('M', 'duplicate key value violates unique constraint "creds_password_key"')).toBe('duplicate key value violates unique constraint "creds_password_key"');
    sent.taint();
    // Joined parts, a folded case, hex, a trigger's RAISE: no match of the text sent would find these.
    for (const [code, text] of [
      ['D', 'Key (password)=(ContSecAlpha77) already exists.'],
      ['D', 'Key (lower(token))=(lowerseczeta) already exists.'],
      ['D', 'Key (password)=(\\x4279746561) already exists.'],
      ['M', 'row (r,"Raise""SecMu")'],
      ['H', 'the value was UniSecBeta88'],
      ['W', 'COPY creds2, line 1: "a\tcopy-secret"'],
      ['q', "select 'x'"],
      // PL/pgSQL's RAISE … USING fills the names with any text (a helper's attack).
      ['t', 'trig-secret-4411'],
      ['s', 'do-secret-4412'],
      ['n', 'creds_password_key'],
    ])
      expect(sent.field(code!, text!)).toBe(marker(text!));
    // What the server alone writes stays: severity, SQLSTATE, position, its source file, line and routine.
    for (const [code, text] of [
      ['S', 'ERROR'],
      ['C', '23505'],
      ['P', '12'],
      ['F', 'nbtinsert.c'],
      ['R', '_bt_check_unique'],
    ])
      expect(sent.field(code!, text!)).toBe(text);
    expect(sent.text('NotifySecIota')).toBe(marker('NotifySecIota'));
  });
});
