/**
 * The gateway's files in its data directory read back with their schemas (src/stored-record.ts):
 * a line or an entry of another shape (a field the gateway acts on of the wrong type) is skipped
 * with a warning naming the file and the line, and every other record is kept; a field a newer
 * gateway added is kept as it is.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileAlertStore } from '../../src/gateway/alerts/alerts.js';
import { FileDirectStore } from '../../src/gateway/credentials/direct-credentials.js';
import { ClientRecords } from '../../src/gateway/records/client-records.js';
import { FileSessionArchive } from '../../src/gateway/records/recordings.js';
import { FileReviewStore } from '../../src/gateway/reviews/reviews.js';
import { FileRunStore } from '../../src/gateway/runs/runs.js';
import { ErrorCode, HoopError } from '../../src/errors.js';
import { loggedLines, storedAlert, storedClientState, storedDirect, storedReview, storedRun, storedSummary } from '../harness/stored-records.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hoop-stored-records-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const jsonLines = (values: unknown[]): string => values.map((v) => `${JSON.stringify(v)}\n`).join('');

/** The warnings of skipped records in `lines`: file, line or entry, and the message. */
const skippedIn = (lines: Array<Record<string, unknown>>) => lines.filter((l) => l.event === 'store.record-skipped');

describe('files of the data directory, read back with their schemas', () => {
  it('reviews.jsonl: a line whose approvals is not a number is skipped, said with its line; the others are kept, a field a newer gateway added too', async () => {
    const file = join(dir, 'reviews.jsonl');
    const [a, b, c] = ['rv-000000000000000a', 'rv-000000000000000b', 'rv-000000000000000c'];
    await writeFile(file, jsonLines([storedReview(a), { ...storedReview(b), approvals: 'two' }, { ...storedReview(c), addedLater: { by: 'a newer gateway' } }]));
    const { log, lines } = loggedLines();
    const loaded = await new FileReviewStore(dir, log).load();
    expect(loaded.map((s) => s.review.id)).toEqual([a, c]);
    expect(loaded[1]!.review).toMatchObject({ addedLater: { by: 'a newer gateway' } });
    const [warned] = skippedIn(lines);
    expect(warned).toMatchObject({ level: 'warn', file, line: 2 });
    expect(warned!.message).toMatch(/reviews\.jsonl, line 2: not a review .*approvals/);
  });

  it('alerts.json: an entry whose state is unknown is skipped, said with its entry; the others are kept', async () => {
    const file = join(dir, 'alerts.json');
    await writeFile(file, JSON.stringify([storedAlert('alert-1'), { ...storedAlert('alert-2'), state: 'snoozed' }, storedAlert('alert-3')]));
    const { log, lines } = loggedLines();
    const loaded = await new FileAlertStore(dir, log).load();
    expect(loaded.map((a) => a.id)).toEqual(['alert-1', 'alert-3']);
    expect(skippedIn(lines)).toEqual([expect.objectContaining({ file, entry: 2, message: expect.stringMatching(/alerts\.json, entry 2: not an alert .*state/) })]);
  });

  it("runs.json: a run whose token's digest is a number is skipped, said; the others are kept and found by their digests", async () => {
    const file = join(dir, 'runs.json');
    const [a, b] = [storedRun('run-aaaaaaaaaaaaaaaa', 'a'), storedRun('run-bbbbbbbbbbbbbbbb', 'b')];
    await writeFile(file, JSON.stringify([a, { ...storedRun('run-cccccccccccccccc', 'c'), tokenHash: 42 }, b]));
    const { log, lines } = loggedLines();
    const store = await FileRunStore.open(dir, log);
    expect(await store.get(a.id)).toMatchObject({ id: a.id });
    expect(await store.find('run', b.tokenHash)).toMatchObject({ id: b.id });
    expect(await store.get('run-cccccccccccccccc')).toBeUndefined();
    expect(skippedIn(lines)).toEqual([expect.objectContaining({ file, entry: 2, message: expect.stringMatching(/not a run .*tokenHash/) })]);
    await store.close();
  });

  it('direct-credentials.json: a credential whose expiry is not a time is skipped, said; the others are kept', async () => {
    const file = join(dir, 'direct-credentials.json');
    const [a, b] = ['dc_aaaaaaaaaaaaaaaaaaaaaa', 'dc_bbbbbbbbbbbbbbbbbbbbbb'];
    await writeFile(file, JSON.stringify([{ ...storedDirect(a), expiresAt: 'tomorrow' }, storedDirect(b)]));
    const { log, lines } = loggedLines();
    const store = await FileDirectStore.open(dir, log);
    expect(await store.get(a)).toBeUndefined();
    expect(await store.get(b)).toMatchObject({ id: b, connection: 'app' });
    expect(skippedIn(lines)).toEqual([expect.objectContaining({ file, entry: 1, message: expect.stringMatching(/not a direct credential .*expiresAt/) })]);
    await store.close();
  });

  it('a file of one JSON array that is not one is refused whole, never read as none', async () => {
    await writeFile(join(dir, 'runs.json'), '{"runs": []}');
    const err = await FileRunStore.open(dir, loggedLines().log).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HoopError);
    expect(err).toMatchObject({ code: ErrorCode.CONFIG_INVALID, message: expect.stringContaining('runs.json is not a JSON array') });
  });

  it("a CLI's record.json whose owner is not a text (or that names another record) is skipped, said; the other records are kept", async () => {
    const sessions = join(dir, 'client-records', 'sessions');
    const states = {
      'session-good': storedClientState('sessions', 'session-good'),
      'session-bad1': { ...storedClientState('sessions', 'session-bad1'), subject: 7 },
      'session-bad2': storedClientState('sessions', 'session-else'),
    };
    for (const [id, state] of Object.entries(states)) {
      await mkdir(join(sessions, id), { recursive: true });
      await writeFile(join(sessions, id, 'record.json'), `${JSON.stringify(state)}\n`);
    }
    const { log, lines } = loggedLines();
    const records = await ClientRecords.open(dir, log, undefined, { reserveBytes: 0 });
    expect([...(await records.states('sessions', Object.keys(states))).keys()]).toEqual(['session-good']);
    expect(skippedIn(lines).map((l) => [l.file, l.problem])).toEqual(
      expect.arrayContaining([
        [join(sessions, 'session-bad1', 'record.json'), expect.stringContaining('subject')],
        [join(sessions, 'session-bad2', 'record.json'), 'it names record sessions/session-else'],
      ]),
    );
  });

  it('sessions.jsonl: a line whose recording state is unknown is skipped, said with its line; the sessions before and after it are listed', async () => {
    const file = join(dir, 'sessions.jsonl');
    await writeFile(file, jsonLines([storedSummary('session-one'), { ...storedSummary('session-two'), recording: 5 }, storedSummary('session-three')]));
    const { log, lines } = loggedLines();
    const archive = new FileSessionArchive(dir, log);
    expect((await archive.sessions()).map((s) => s.id)).toEqual(['session-three', 'session-one']);
    // Lines appended later are numbered on from the ones read.
    await writeFile(file, `${await readFile(file, 'utf8')}{"id":"session-four"}\n`);
    expect((await archive.sessions()).map((s) => s.id)).toEqual(['session-three', 'session-one']);
    expect(skippedIn(lines).map((l) => [l.file, l.line])).toEqual([
      [file, 2],
      [file, 4],
    ]);
    await archive.close();
  });
});
