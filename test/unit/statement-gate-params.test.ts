/**
 * The statement gate's watch over the server's ParameterStatus messages: a setting under which
 * the server would read SQL differently from the gateway's parser is reported once, wherever the
 * server's stream is split, and the bytes pass unchanged.
 */
import { describe, expect, it } from 'vitest';
import type { SessionJudge } from '../../src/session/engine.js';
import { serverUtf8, StatementGate, unsafeParameter, unsafeSettingValue } from '../../src/postgres/pipeline/statement-gate.js';
import { parameterStatus, readyForQuery } from '../../src/postgres/wire/messages.js';
import { MessageReader } from '../../src/postgres/wire/reader.js';
import { BackendPath } from '../../src/postgres/pipeline/relay.js';
import { through } from '../harness/relay.js';

/** A CommandComplete ('C') message. */
function commandComplete(tag: string): Buffer {
  const body = Buffer.from(`${tag}\0`);
  const header = Buffer.from([0x43, 0, 0, 0, 0]);
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

const allowAll: SessionJudge = { judge: () => ({ action: 'allow', reason: 'test' }) };

describe('unsafeSettingValue / unsafeParameter', () => {
  it('flags standard_conforming_strings other than on and backslash-unsafe encodings only', () => {
    expect(unsafeSettingValue('standard_conforming_strings', 'on')).toBe(false);
    expect(unsafeSettingValue('Standard_Conforming_Strings', 'off')).toBe(true);
    expect(unsafeSettingValue('client_encoding', 'UTF8')).toBe(false);
    expect(unsafeSettingValue('client_encoding', 'LATIN1')).toBe(false);
    expect(unsafeSettingValue('client_encoding', 'SJIS')).toBe(true);
    expect(unsafeSettingValue('client_encoding', 'gb18030')).toBe(true);
    expect(unsafeSettingValue('client_encoding', 'Shift_JIS')).toBe(true);
    expect(unsafeSettingValue('application_name', 'off')).toBe(false);
    // An allow-list: every encoding whose characters can hold a backslash byte, under any alias.
    for (const e of ['SHIFT_JIS_2004', 'shift-jis-2004', 'ShiftJIS2004', 'windows932', 'WIN936', 'windows949', 'win950', 'BIG5', 'GBK', 'UHC', 'JOHAB', 'mskanji', 'no-such-encoding']) {
      expect(unsafeSettingValue('client_encoding', e), e).toBe(true);
    }
    for (const e of ['UTF8', 'unicode', 'SQL_ASCII', 'LATIN9', 'ISO-8859-15', 'WIN1252', 'windows-1251', 'KOI8-R', 'EUC_JP', 'EUC_JIS_2004', 'MULE_INTERNAL']) {
      expect(unsafeSettingValue('client_encoding', e), e).toBe(false);
    }
    // Read-only access relies on the server's own read-only default.
    expect(unsafeSettingValue('default_transaction_read_only', 'off', true)).toBe(true);
    expect(unsafeSettingValue('default_transaction_read_only', 'off')).toBe(false);
    expect(unsafeParameter(Buffer.from('default_transaction_read_only\0off\0'), true)).toBe('default_transaction_read_only');
    expect(unsafeParameter(Buffer.from('default_transaction_read_only\0on\0'), true)).toBeUndefined();
    expect(unsafeParameter(Buffer.from('standard_conforming_strings\0off\0'))).toBe('standard_conforming_strings');
    expect(unsafeParameter(Buffer.from('TimeZone\0UTC\0'))).toBeUndefined();
    expect(unsafeParameter(Buffer.from('no terminator'))).toBeUndefined();
  });

  it('where values are masked, flags every client encoding in which they are not UTF-8: the detectors read UTF-8 (the seventeenth attack: WIN1252 passed 4111–1111–1111–1111 whole)', () => {
    const utf8Server = { serverUtf8: true };
    const latin1Server = { serverUtf8: false };
    for (const e of ['LATIN1', 'WIN1252', 'windows-1250', 'KOI8R', 'EUC_JP', 'default']) expect(unsafeSettingValue('client_encoding', e, false, utf8Server), e).toBe(true);
    for (const e of ['UTF8', 'utf-8', 'Unicode', 'SQL_ASCII']) expect(unsafeSettingValue('client_encoding', e, false, utf8Server), e).toBe(false);
    // SQL_ASCII sends the bytes as stored: UTF-8 only from a UTF-8 database (psql on a terminal in the C locale asks for it).
    expect(unsafeSettingValue('client_encoding', 'SQL_ASCII', false, latin1Server)).toBe(true);
    expect(unsafeSettingValue('client_encoding', 'UTF8', false, latin1Server)).toBe(false);
    expect(unsafeParameter(Buffer.from('client_encoding\0LATIN1\0'), false, utf8Server)).toBe('client_encoding');
    expect(unsafeParameter(Buffer.from('client_encoding\0LATIN1\0'))).toBeUndefined();
    expect(serverUtf8([['server_encoding', 'UTF8']])).toBe(true);
    expect(serverUtf8([['server_encoding', 'LATIN1']])).toBe(false);
  });
});

describe('StatementGate.backend and ParameterStatus', () => {
  const stream = Buffer.concat([
    commandComplete('DO'),
    parameterStatus('application_name', 'psql'),
    parameterStatus('standard_conforming_strings', 'off'),
    parameterStatus('client_encoding', 'SJIS'),
    readyForQuery('I'),
  ]);

  it('reports the first unsafe setting once at every split point, bytes unchanged', async () => {
    for (let a = 0; a <= stream.length; a++) {
      for (const b of [a, Math.min(stream.length, a + 1), Math.min(stream.length, a + 7)]) {
        const seen: string[] = [];
        const gate = new StatementGate(allowAll, { onUnsafeSetting: (s) => seen.push(s) });
        const out = await through(new BackendPath({ reader: new MessageReader({ side: 'backend' }), gate }).step, stream, [a, b]);
        expect(out.equals(stream)).toBe(true);
        expect(seen).toEqual(['standard_conforming_strings']);
        expect(gate.unsafeSetting).toBe('standard_conforming_strings');
      }
    }
  });

  it('says nothing for safe values, and ignores oversized ParameterStatus bodies', async () => {
    const gate = new StatementGate(allowAll);
    const stream = Buffer.concat([parameterStatus('standard_conforming_strings', 'on'), parameterStatus('client_encoding', 'UTF8'), parameterStatus('x', 'y'.repeat(5000))]);
    await through(new BackendPath({ reader: new MessageReader({ side: 'backend' }), gate }).step, stream);
    expect(gate.unsafeSetting).toBeUndefined();
  });
});
