/**
 * Alerts: the policy's `alerts:` rules evaluated over sliding windows of the gateway's events. A
 * rule counts one kind of event (`refused`: a statement or SSH command refused, by a rule or by a
 * review that did not approve it; `review-denied`: a reviewer's denial) per identity, per run or
 * per agent; at `count` within `within` it raises an alert: an `alert.raised` event on the audit
 * stream with its evidence (sessions, rules, reasons, times), a message to the rule's `notify`
 * targets, and with `suspend`, the end of the sessions it is about and the refusal of new ones
 * until a person of its `clearedBy` groups (else the auditors) clears it. One alert is open per
 * rule and subject at a time: what comes while it is open is added to it, not raised again.
 *
 * Raised alerts and the events counted are kept by an {@link AlertStore}: in the data directory
 * (`alerts.json`; the windows in memory), or with replicas in the PostgreSQL store
 * (./alerts-postgres.ts), where every replica counts into the same windows, one alert is open per
 * rule and subject whichever replica raises it, and a suspension raised on one replica ends the
 * sessions on every one. A suspension outlives a restart.
 *
 * @see https://www.rfc-editor.org/rfc/rfc5424 (severity of security events, for SIEMs)
 */
import { realClock } from '../../clock.js';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { writeFileAtomic } from '../../durable-file.js';
import { describeError, ErrorCode, HoopError } from '../../errors.js';
import type { Identity } from '../../identity.js';
import type { Logger } from '../../log.js';
import { readOptionalFile } from '../../private-file.js';
import { countedText, raisedAlertSchema, type AlertEvidence, type RaisedAlert } from '../../api/answers.js';
import { fileRecords } from '../../stored-record.js';
import { alertSubjectKey, alertWeightFor } from '../../policy/alert-match.js';
import type { AlertRule, Policy } from '../../policy/schema.js';
import type { GatewayEvents } from '../audit/events.js';
import { slackEscape, type WebhookSender } from '../reviews/review-notify.js';

/** Evidence kept per alert (the newest; the count says how many there were). */
const MAX_EVIDENCE = 50;
/** Windows kept at once (rule × subject); past it the oldest go. */
const MAX_WINDOWS = 50_000;
/** Cleared alerts are forgotten a week after. */
export const KEEP_CLEARED_MS = 7 * 86_400_000;

/** The event fields an alert reads (the audit stream's, ../audit/audit.ts). */
type EventFields = Record<string, unknown>;

/** The same key for an identity about to open a session, for each scope. */
function keysOf(identity: Identity, agent: string | undefined): string[] {
  const person = `${identity.issuer}\n${identity.subject}`;
  return [person, ...(identity.run ? [`${person}\nrun\n${identity.run.id}`] : []), ...(agent !== undefined ? [`${person}\nagent\n${agent}`] : [])];
}

/** The subject key of an alert (what its rule counted it against). */
export const keyOfAlert = (a: RaisedAlert): string => alertSubjectKey(a.per, a)!;

/** What an alert is about, for people. */
export function alertSubject(a: RaisedAlert): string {
  return a.per === 'run' ? `${a.subject}'s run ${a.run}` : a.per === 'agent' ? `${a.subject}'s agent ${a.agent}` : a.subject;
}

/** Where alerts and the events they count are kept (see the module documentation). */
export interface AlertStore {
  /** The alerts kept: open ones, and those cleared within a week. */
  load(): Promise<RaisedAlert[]>;
  /**
   * Counts `evidence` (weighing `weight`: 1, or the rows read) for `rule` and subject `key`: what
   * the events within `withinMs` weigh together (exactly, up to `need` at least), and the newest `max` of them.
   */
  count(rule: string, key: string, evidence: AlertEvidence, withinMs: number, need: number, max: number, weight?: number): Promise<{ count: number; evidence: AlertEvidence[] }>;
  /** Forgets what was counted for `rule` and `key` (an alert was raised of it). */
  reset(rule: string, key: string): Promise<void>;
  /** The alert open for `rule` and `key`, as kept. */
  openFor(rule: string, key: string): Promise<RaisedAlert | undefined>;
  /** Keeps a new open alert unless one is open for its rule and `key` already: whether it was kept. */
  open(alert: RaisedAlert, key: string): Promise<boolean>;
  /** Keeps a changed alert; with `onlyIfOpen`, only while the kept one is still open: whether it was kept. */
  save(alert: RaisedAlert, onlyIfOpen: boolean): Promise<boolean>;
  /** Called with each alert another replica raised or changed. */
  onChange(fn: (alert: RaisedAlert) => void): void;
}

/** See the module documentation. */
export class AlertMonitor {
  /** The alerts as this replica knows them (the store's, kept up to date by its changes). */
  readonly #alerts = new Map<string, RaisedAlert>();
  readonly #onSuspend: Array<(alert: RaisedAlert, matches: (identity: Identity, agent: string | undefined) => boolean) => void> = [];
  /** Events are counted one after the other (a window's count and its alert's raising are one step). */
  #counting: Promise<void> = Promise.resolve();
  /** Suspending alerts whose sessions this replica has ended. */
  readonly #suspended = new Set<string>();

  private constructor(
    private readonly store: AlertStore,
    private readonly policy: () => Policy | undefined,
    private readonly events: GatewayEvents,
    private readonly webhooks: WebhookSender,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  /** Loads the alerts `store` keeps and starts hearing `events`. */
  static async open(o: { store: AlertStore; policy: () => Policy | undefined; events: GatewayEvents; webhooks: WebhookSender; log: Logger; now?: () => number }): Promise<AlertMonitor> {
    const m = new AlertMonitor(o.store, o.policy, o.events, o.webhooks, o.log, o.now ?? realClock.now);
    for (const a of await o.store.load()) m.#alerts.set(a.id, a);
    o.store.onChange((a) => m.#changed(a));
    // Every statement's end is an event: without rules there is nothing to count, and it is not made.
    o.events.listen(
      (event, fields) => m.hear(event, fields),
      () => (o.policy()?.alerts?.length ?? 0) > 0,
    );
    return m;
  }

  /** Called for each suspending alert raised (here or on another replica), with a test of the sessions it is about (the admission ends them). */
  onSuspend(listener: (alert: RaisedAlert, matches: (identity: Identity, agent: string | undefined) => boolean) => void): void {
    this.#onSuspend.push(listener);
  }

  /** Counts an event for every rule that counts it (../../policy/alert-match.ts); raises what reaches its count. */
  hear(event: string, f: EventFields): void {
    const rules = this.policy()?.alerts;
    // Every statement's end comes here: without rules there is nothing to count.
    if (!rules || rules.length === 0) return;
    const at = new Date(this.now());
    for (const rule of rules) {
      const weight = alertWeightFor(rule, event, f, at);
      if (weight === 0) continue;
      const key = alertSubjectKey(rule.per, f);
      if (key === undefined) continue;
      const evidence: AlertEvidence = { at: at.toISOString(), ...pick(f) };
      this.#counting = this.#counting
        .then(() => this.#count(rule, key, f, evidence, weight))
        .catch((err: unknown) => this.log.error('alert.count-failed', { rule: rule.name, error: describeError(err) }));
    }
  }

  /** Resolves once the events heard so far are counted. */
  counted(): Promise<void> {
    return this.#counting;
  }

  async #count(rule: AlertRule, key: string, f: EventFields, evidence: AlertEvidence, weight: number): Promise<void> {
    const open = await this.store.openFor(rule.name, key);
    if (open) {
      open.count += weight;
      open.evidence = [...open.evidence, evidence].slice(-MAX_EVIDENCE);
      if (await this.store.save(open, true)) this.#alerts.set(open.id, open);
      // Raised on another replica and not heard of here yet: its suspension holds here from now.
      this.#suspend(open);
      return;
    }
    const window = await this.store.count(rule.name, key, evidence, rule.withinMs, rule.count, MAX_EVIDENCE, weight);
    if (window.count < rule.count) return;
    const a = this.#alertOf(rule, f, window);
    // Another replica may have raised it at the same moment: one alert is open per rule and subject.
    if (!(await this.store.open(a, key))) return;
    await this.store.reset(rule.name, key);
    this.#alerts.set(a.id, a);
    this.#announce(a, rule);
  }

  /** The open alert that suspends `identity` (coming as `agent`, if an agent), if one does. */
  suspension(identity: Identity, agent: string | undefined): RaisedAlert | undefined {
    const keys = new Set(keysOf(identity, agent));
    for (const a of this.#alerts.values()) if (a.state === 'open' && a.suspend && keys.has(keyOfAlert(a))) return a;
    return undefined;
  }

  /** The refusal of a new session (or of `act`) of a suspended identity: the alert, and who can clear it. */
  refusal(identity: Identity, agent: string | undefined, act?: string): HoopError | undefined {
    const a = this.suspension(identity, agent);
    if (!a) return undefined;
    const said = `${alertSubject(a)} is suspended by alert ${a.id} (${a.rule}: ${countedText(a)}), raised ${a.raisedAt}`;
    return new HoopError(ErrorCode.ACCESS_DENIED, act ? `${identity.subject} may not ${act}: ${said}` : `hoop: ${said}`, {
      hint: `a member of ${this.#clearers(a).join(', ') || 'the auditors'} can clear it: hoop alerts clear ${a.id} --reason "…"`,
    });
  }

  /** Alerts, newest first, that `identity` may see: every one for `everyone`, else those about them (and those they may clear). */
  list(identity: Identity, everyone: boolean, state?: RaisedAlert['state']): RaisedAlert[] {
    return [...this.#alerts.values()]
      .filter((a) => (everyone || this.mayClear(identity, a) || (a.subject === identity.subject && a.issuer === identity.issuer)) && (state === undefined || a.state === state))
      .sort((x, y) => y.raisedAt.localeCompare(x.raisedAt));
  }

  /** Whether `identity` may clear `a`: a member of its clearers, never the one it is about. */
  mayClear(identity: Identity, a: RaisedAlert): boolean {
    if (a.subject === identity.subject && a.issuer === identity.issuer) return false;
    const clearers = this.#clearers(a);
    return identity.groups.some((g) => clearers.includes(g));
  }

  /** Clears an open alert (a person of its clearers, with a reason); its suspension ends on every replica. */
  async clear(id: string, identity: Identity, reason: string): Promise<RaisedAlert> {
    const known = this.#alerts.get(id);
    if (!known) throw new HoopError(ErrorCode.USAGE, `no alert ${id}`, { hint: '`hoop alerts ls` lists them' });
    if (!this.mayClear(identity, known)) {
      const own = known.subject === identity.subject && known.issuer === identity.issuer;
      throw new HoopError(ErrorCode.ACCESS_DENIED, own ? `${identity.subject} may not clear an alert about themselves` : `${identity.subject} may not clear alert ${id}`, {
        hint: `a member of ${this.#clearers(known).join(', ') || 'the auditors'} can`,
      });
    }
    const a: RaisedAlert = {
      ...known,
      state: 'cleared',
      clearedAt: new Date(this.now()).toISOString(),
      clearer: { subject: identity.subject, issuer: identity.issuer, ...(identity.email !== undefined ? { email: identity.email } : {}) },
      clearReason: reason,
    };
    if (known.state !== 'open' || !(await this.store.save(a, true))) throw new HoopError(ErrorCode.USAGE, `alert ${id} was cleared already`, { hint: '`hoop alerts ls --state cleared` says by whom' });
    this.#alerts.set(a.id, a);
    this.events.emit('alert.cleared', { alert: a.id, rule: a.rule, subject: a.subject, issuer: a.issuer, clearer: a.clearer, reason });
    this.log.info('alert.cleared', { id: a.id, rule: a.rule, by: identity.subject });
    return a;
  }

  #clearers(a: RaisedAlert): string[] {
    return a.clearedBy.length > 0 ? a.clearedBy : (this.policy()?.recording.auditors ?? []);
  }

  #alertOf(rule: AlertRule, f: EventFields, window: { count: number; evidence: AlertEvidence[] }): RaisedAlert {
    return {
      id: `alert-${randomBytes(6).toString('hex')}`,
      rule: rule.name,
      event: rule.event,
      per: rule.per,
      subject: String(f.subject),
      issuer: String(f.issuer),
      ...(rule.per === 'run' ? { run: String(f.run) } : {}),
      ...(rule.per === 'agent' ? { agent: String(f.agent) } : {}),
      count: window.count,
      withinMs: rule.withinMs,
      evidence: window.evidence,
      raisedAt: new Date(this.now()).toISOString(),
      suspend: rule.suspend,
      clearedBy: rule.clearedBy,
      state: 'open',
    };
  }

  /** Says that `a` was raised here: the audit stream, the rule's targets, and the sessions it suspends. */
  #announce(a: RaisedAlert, rule: AlertRule): void {
    const { evidence, state: _s, event: counted, id: _i, ...head } = a;
    this.events.emit('alert.raised', { alert: a.id, counted, ...head, sessions: [...new Set(evidence.map((e) => e.session).filter(Boolean))], evidence });
    this.log.warn('alert.raised', { id: a.id, rule: a.rule, about: alertSubject(a), count: a.count, suspend: a.suspend });
    for (const target of rule.notify) this.webhooks.send(target, alertBody(a, target.format), { alert: a.id });
    this.#suspend(a);
  }

  /** An alert another replica raised or changed: known here, and its suspension applied here too. */
  #changed(a: RaisedAlert): void {
    this.#alerts.set(a.id, a);
    this.#suspend(a);
  }

  /** Ends the sessions a suspending open alert is about, once per alert on this replica. */
  #suspend(a: RaisedAlert): void {
    if (!a.suspend || a.state !== 'open' || this.#suspended.has(a.id)) return;
    this.#suspended.add(a.id);
    const key = keyOfAlert(a);
    const matches = (identity: Identity, agent: string | undefined): boolean => keysOf(identity, agent).includes(key);
    // Not inside the event that raised it (a session's own refusal): its sessions end once that is handled.
    setImmediate(() => {
      for (const l of this.#onSuspend) l(a, matches);
    });
  }
}

/** Alerts in the data directory (`alerts.json`); the windows in memory (see the module documentation). */
export class FileAlertStore implements AlertStore {
  readonly #file: string;
  readonly #alerts = new Map<string, RaisedAlert>();
  /** A save is queued and has not started. */
  #dirty = false;
  /** The events counted (their times and weights, no more than reach what the rule needs) and the newest evidence, per rule and subject key, oldest first. */
  readonly #windows = new Map<string, { hits: Array<{ t: number; w: number }>; evidence: AlertEvidence[] }>();
  #writing: Promise<void> = Promise.resolve();

  constructor(
    dataDir: string,
    private readonly log: Logger,
    private readonly now: () => number = realClock.now,
  ) {
    this.#file = join(dataDir, 'alerts.json');
  }

  async load(): Promise<RaisedAlert[]> {
    const text = await readOptionalFile(this.#file);
    const cutoff = this.now() - KEEP_CLEARED_MS;
    // An entry that is not an alert is skipped, said; the others are kept.
    for (const a of text ? fileRecords(raisedAlertSchema, text, 'alert', this.#file, this.log) : [])
      if (a.state === 'open' || Date.parse(a.clearedAt ?? a.raisedAt) > cutoff) this.#alerts.set(a.id, a);
    return [...this.#alerts.values()];
  }

  async count(rule: string, key: string, evidence: AlertEvidence, withinMs: number, need: number, max: number, weight = 1): Promise<{ count: number; evidence: AlertEvidence[] }> {
    const since = this.now() - withinMs;
    const k = `${rule}\n${key}`;
    const w = this.#windows.get(k) ?? { hits: [], evidence: [] };
    // The events within the window, the newest that together reach what the rule needs (more never raise it sooner); evidence, the newest few.
    const hits = [...w.hits.filter((h) => h.t > since), { t: Date.parse(evidence.at), w: weight }];
    let total = hits.reduce((n, h) => n + h.w, 0);
    while (hits.length > 1 && total - hits[0]!.w >= need) total -= hits.shift()!.w;
    const kept = [...w.evidence.filter((e) => Date.parse(e.at) > since), evidence].slice(-max);
    this.#windows.delete(k); // re-inserted last: the map's order is least recently counted first
    this.#windows.set(k, { hits, evidence: kept });
    if (this.#windows.size > MAX_WINDOWS) this.#windows.delete(this.#windows.keys().next().value!);
    return { count: total, evidence: kept };
  }

  async reset(rule: string, key: string): Promise<void> {
    this.#windows.delete(`${rule}\n${key}`);
  }

  async openFor(rule: string, key: string): Promise<RaisedAlert | undefined> {
    for (const a of this.#alerts.values()) if (a.state === 'open' && a.rule === rule && keyOfAlert(a) === key) return { ...a };
    return undefined;
  }

  async open(alert: RaisedAlert, key: string): Promise<boolean> {
    if (await this.openFor(alert.rule, key)) return false;
    this.#alerts.set(alert.id, alert);
    this.#save();
    return true;
  }

  async save(alert: RaisedAlert, onlyIfOpen: boolean): Promise<boolean> {
    if (onlyIfOpen && this.#alerts.get(alert.id)?.state !== 'open') return false;
    this.#alerts.set(alert.id, alert);
    this.#save();
    return true;
  }

  onChange(): void {
    // One gateway: every change is its own.
  }

  /** Waits for what is being written. */
  flushed(): Promise<void> {
    return this.#writing;
  }

  /** Writes the alerts (cleared ones past a week dropped); saves asked for while one is written become one. */
  #save(): void {
    if (this.#dirty) return;
    this.#dirty = true;
    this.#writing = this.#writing
      .then(() => {
        this.#dirty = false;
        const cutoff = this.now() - KEEP_CLEARED_MS;
        for (const [id, a] of this.#alerts) if (a.state === 'cleared' && Date.parse(a.clearedAt ?? a.raisedAt) < cutoff) this.#alerts.delete(id);
        return writeFileAtomic(this.#file, JSON.stringify([...this.#alerts.values()]), join(this.#file, '..'));
      })
      .catch((err: unknown) => this.log.error('alert.save-failed', { error: describeError(err) }));
  }
}

/** The evidence an event gives. */
function pick(f: EventFields): Omit<AlertEvidence, 'at'> {
  const out: Omit<AlertEvidence, 'at'> = {};
  for (const k of ['session', 'connection', 'rule', 'reason', 'review', 'by'] as const) if (typeof f[k] === 'string') out[k] = (f[k] as string).slice(0, 500);
  if (typeof f.rows === 'number') out.rows = f.rows;
  if (Array.isArray(f.tables)) out.tables = f.tables.slice(0, 20).map((t) => String(t).slice(0, 200));
  if (typeof f.host === 'string' && typeof f.port === 'number') out.destination = `${f.host.slice(0, 255)}:${f.port}`;
  return out;
}

/** A notification's body: generic JSON, or Slack's. */
function alertBody(a: RaisedAlert, format: 'json' | 'slack'): Record<string, unknown> {
  if (format === 'json') return { event: 'alert.raised', alert: a, clear: `hoop alerts clear ${a.id} --reason "…"` };
  const e = slackEscape;
  const text = `:rotating_light: alert ${a.id} (${e(a.rule)}): ${e(alertSubject(a))} had ${countedText(a)} within ${Math.round(a.withinMs / 1000)} s${a.suspend ? '; suspended until cleared' : ''}`;
  return {
    text,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: `clear: \`hoop alerts clear ${a.id} --reason "…"\`` }] },
    ],
  };
}
