/**
 * The file store's sessions index: appends committed in groups (every line whole, in the file,
 * once each), reads that take only what was appended since (a line still being written is left
 * for the next read), deletions that mark, and a file that shrank read again whole.
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sessionSummarySchema, type SessionSummary } from '../../src/api/answers.js';
import { SessionIndexFile } from '../../src/gateway/records/session-index-file.js';
import { silentLogger } from '../../src/log.js';
import { storedSummary } from '../harness/stored-records.js';

const dir = mkdtempSync(join(tmpdir(), 'hoop-session-index-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const summary = storedSummary;
const indexOf = (file: string): SessionIndexFile<SessionSummary> => new SessionIndexFile(file, sessionSummarySchema, silentLogger);

describe('SessionIndexFile', () => {
  it('takes many appends at once, each line whole and once, each durable when it resolves', async () => {
    const file = join(dir, 'a.jsonl');
    const index = indexOf(file);
    await Promise.all(Array.from({ length: 300 }, (_, i) => index.append(summary(`session-${i}`))));
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(300);
    expect(new Set(lines.map((l) => (JSON.parse(l) as { id: string }).id)).size).toBe(300);
    expect((await index.sessions()).map((s) => s.id)).toEqual(Array.from({ length: 300 }, (_, i) => `session-${i}`));
    await index.close();
  });

  it('reads what another writer appended, only whole lines, and marks deletions', async () => {
    const file = join(dir, 'b.jsonl');
    const index = indexOf(file);
    expect(await index.sessions()).toEqual([]);
    await index.append(summary('session-one'));
    expect(await index.session('session-one')).toMatchObject({ id: 'session-one', recording: 'complete' });
    const two = JSON.stringify(summary('session-two'));
    appendFileSync(file, two.slice(0, 10)); // a line being written
    expect((await index.sessions()).map((s) => s.id)).toEqual(['session-one']);
    appendFileSync(file, `${two.slice(10)}\n`);
    expect((await index.sessions()).map((s) => s.id)).toEqual(['session-one', 'session-two']);
    await index.append({ id: 'session-one', deleted: new Date().toISOString() });
    expect(await index.session('session-one')).toMatchObject({ recording: 'deleted' });
    appendFileSync(file, 'not json, a line a crash cut\n');
    expect((await index.sessions()).map((s) => s.id)).toEqual(['session-one', 'session-two']);
    // Replaced by a shorter file (restored from a backup): read again from the start.
    writeFileSync(file, `${JSON.stringify(summary('session-three'))}\n`);
    expect((await index.sessions()).map((s) => s.id)).toEqual(['session-three']);
    await index.close();
  });
});
