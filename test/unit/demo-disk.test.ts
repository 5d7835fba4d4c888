/** The demo's disk verdict: refused under the recording floor, a warning under twice it, silence above. */
import { describe, expect, it } from 'vitest';
import { DEMO_RECORDING_FLOOR, diskVerdict } from '../../src/demo/disk.js';

const MiB = 1024 ** 2;

describe('diskVerdict', () => {
  it('refuses under the floor with exit 74 and a hint naming --dir', () => {
    expect(() => diskVerdict('/d', DEMO_RECORDING_FLOOR - 1)).toThrow(expect.objectContaining({ exitCode: 74, hint: expect.stringContaining('--dir') }));
  });
  it('warns under twice the floor, and is silent above it', () => {
    expect(diskVerdict('/d', DEMO_RECORDING_FLOOR)).toBe('the disk of /d has 256 MiB free: the gateway refuses new sessions once it is under 256 MiB');
    expect(diskVerdict('/d', 2 * DEMO_RECORDING_FLOOR - MiB)).toContain('511 MiB free');
    expect(diskVerdict('/d', 2 * DEMO_RECORDING_FLOOR)).toBeUndefined();
  });
});
