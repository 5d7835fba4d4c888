/**
 * Runs each project's longest files first, by the seconds they took in a whole run
 * (test/durations.json): a clean clone has no timings of vitest's own, and by size alone the
 * slowest files (some of them short) started last and ended the suite alone.
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** Seconds a whole run took for each file that takes a few or more; the rest after them, as vitest orders them. */
const durations = JSON.parse(readFileSync(new URL('../durations.json', import.meta.url), 'utf8')) as Record<string, number>;

/** vitest's order (projects one after another), each project's known files longest first. */
export class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const ordered = await super.sort(files);
    const seconds = (f: TestSpecification): number => durations[relative(this.ctx.config.root, f.moduleId)] ?? 0;
    const project = new Map(ordered.map((f, i) => [f.project.name, i]));
    // Array.prototype.sort is stable: files of equal weight keep vitest's order.
    return ordered.sort((a, b) => project.get(a.project.name)! - project.get(b.project.name)! || seconds(b) - seconds(a));
  }
}
