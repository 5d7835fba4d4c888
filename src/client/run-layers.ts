/**
 * Runs' changes kept on this machine (../agent/layers.ts): `hoop run ls` lists them, `hoop run
 * diff` shows them as the gate would apply them, `hoop run apply` applies them through the gate
 * (./run-gate.ts), `hoop run discard` drops them. A layer whose `hoop run` still runs is its own:
 * only listed.
 */
import { layerChanges } from '../agent/gate.js';
import { type Layer, listLayers, readLayer } from '../agent/layers.js';
import { ErrorCode, HoopError } from '../errors.js';
import type { CliIo } from '../io.js';
import { paintedTable, palette, printJson } from '../ui/output.js';
import { changeDiff } from './change-diff.js';
import { lineSafe } from '../ui/terminal-safe.js';
import { settleLayer } from './run-gate.js';

/** A kept layer's state: its `hoop run` still runs, it was kept on purpose, or its `hoop run` stopped first. */
function stateOf(layer: Layer): 'running' | 'kept' | 'left' {
  return layer.held() ? 'running' : layer.meta.kept ? 'kept' : 'left';
}

/** Run `id`'s layer, unless its `hoop run` still holds it. @throws HoopError USAGE */
function settledLater(io: CliIo, id: string): Layer {
  const layer = readLayer(io.env, id);
  if (layer.held()) {
    throw new HoopError(ErrorCode.USAGE, `run ${id} is still running: its hoop run (pid ${layer.meta.pid}) settles its changes when its command ends`, {
      hint: 'wait for it to end, or stop it (its changes are then kept)',
    });
  }
  return layer;
}

/** `hoop run ls`: the runs whose changes are kept here. */
export function listRunLayers(io: CliIo, o: { json?: boolean }): void {
  const layers = listLayers(io.env);
  const rows = layers.map((l) => ({
    run: l.meta.run,
    startedAt: new Date(l.meta.startedAt).toISOString(),
    agent: l.meta.agent,
    state: stateOf(l),
    command: l.meta.command,
    places: l.meta.places.map((p) => p.path),
  }));
  if (o.json) return printJson(io, { runs: rows });
  if (rows.length === 0) return void io.stdout.write('no run has changes kept on this machine\n');
  io.stdout.write(
    paintedTable(io, [
      ['RUN', 'BEGAN', 'AGENT', 'STATE', 'IN', 'COMMAND'],
      ...rows.map((r) => [r.run, r.startedAt.slice(0, 16).replace('T', ' '), r.agent, r.state, lineSafe(r.places.join(', ')), lineSafe(r.command)]),
    ]),
  );
}

/** `hoop run diff <id>`: run `id`'s changes as the gate would apply them, the refused ones headed by why. */
export async function diffRunLayer(io: CliIo, id: string): Promise<void> {
  const layer = settledLater(io, id);
  const changes = await layerChanges(layer, io.env);
  const paint = palette(io);
  for (const c of changes) io.stdout.write(changeDiff(c, { cwd: io.cwd, paint }).text);
  if (changes.length === 0) io.stderr.write(`hoop: run ${id} changed nothing that is still to apply\n`);
}

/** `hoop run apply <id>`: applies run `id`'s kept changes through the gate (`review`: shown first, applied as accepted; `force`: over the person's own changes since). */
export async function applyRunLayer(io: CliIo, id: string, o: { review?: boolean; force?: boolean; quiet?: boolean }): Promise<void> {
  const layer = settledLater(io, id);
  const say = (line: string): void => void io.stderr.write(`hoop: ${line}\n`);
  await settleLayer(io, layer, o.review ? { how: 'review' } : { how: 'apply' }, { say, quiet: o.quiet === true, force: o.force === true });
}

/** `hoop run discard <id>`: drops run `id`'s kept changes. */
export function discardRunLayer(io: CliIo, id: string): void {
  settledLater(io, id).remove();
  io.stderr.write(`hoop: run ${id}: its changes were discarded\n`);
}
