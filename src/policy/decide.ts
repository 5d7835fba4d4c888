/**
 * Statement decisions: what the policy's statement rules say about a SQL string sent by one
 * identity on one connection.
 *
 * The SQL is analysed on the PostgreSQL parse tree ({@link analyzeSql}); every statement of a
 * multi-statement string is judged on its own and the most restrictive outcome wins
 * (deny > review > allow; ties go to the earlier statement, then to the rule first in file
 * order). Before any rule, statements that would change how the server lexes later SQL are denied (rule
 * `parser-consistency`), read-only access denies statements that write, change the session's
 * privileges, or reach beyond the database's tables (rule `read-only-access`), and an access
 * with server timeouts denies statements that would raise them or could do so unseen (rule
 * `session-limit`); functions that read tables named in a string are denied when some rule names
 * tables (rule `unseen-read`), and with masking rules, as are values passed to a side channel or kept where masking cannot follow them, renames of masked columns and code hoop cannot follow
 * (rule `masking-side-channel`); with `masking.derived: deny`,
 * statements that return a value computed from a masked column are denied (rule
 * `masking-derived`); SQL the parser
 * rejects gets the policy's `unparseable` action (rule `unparseable`, deny by default). No matching rule means allow: whether the
 * identity may use the connection at all is decided by `access`, not here.
 *
 * What the parse tree cannot tell: whether a function has side effects (`SELECT f()` of a
 * volatile function may write, so read-only access also opens the upstream session with
 * `default_transaction_read_only=on`), what a DO block or function body does (reported as
 * `opaqueBody`; match `kinds: [do, create-function]`), what a prepared statement runs (the
 * caller judges PREPARE / Parse and applies that decision at EXECUTE / Bind), and which schema
 * an unqualified name resolves to (see `./sql/match.ts`).
 *
 * @see docs/internals.md (§2, §4)
 * @see https://www.postgresql.org/docs/17/sql-commands.html
 */
import { listNames } from '../glob.js';
import {
  BACKEND_SIGNAL_RULE,
  COMMENTS,
  DERIVED_RULE,
  type Denial,
  findFunction,
  LIMIT_RULE,
  lexingDenial,
  READ_ONLY_RULE,
  readOnlyRefusal,
  REPARENTS,
  RULED_RENAME_RULE,
  SIDE_CHANNEL_RULE,
  SIGNAL_FUNCTIONS,
  SQL_TEXT_FUNCTIONS,
  type StatementAt,
  UNPARSEABLE_RULE,
  UNSEEN_READ_FUNCTIONS,
  UNGUARDED_CODE_RULE,
  UNSEEN_READ_RULE,
  unmaskableRead,
} from './built-in-rules.js';
import { combineReviewDecisions, reviewSettingsFor } from './review-combine.js';
import {
  changesRows,
  copiesIn,
  endsFiringDeferred,
  opensBlockBefore,
  preparesWrite,
  tagCounts,
  unguardable,
  writesRows,
  WRITE_GUARD_RULE,
  WRITING_KINDS,
  type ChangedTable,
  type WriteGuard,
} from './write-limit.js';
import { analyzeSql, type Analysis, type StatementFacts } from './sql/analyze.js';
import { tablesTouched, type TablesTouchedBy } from './touched.js';
import { functionsMatch, tablesMatch } from './sql/match.js';
import { ShapeCache } from './sql/shape.js';
import { DerivedValueCheck } from './masking/derived.js';
import { STATISTICS_RELATIONS } from './masking/rules.js';
import { limitProblem, type SessionLimits } from './limits.js';
import { maskingFor, principalMatches } from './principal.js';
import type { AccessGrant } from './access.js';
import { ROLE_RULE, roleRefusal } from './database-access.js';
import { expandKind, type Action, type Policy, type ReviewSettings, type RowLimit, type StatementKind, type StatementRule, type Who } from './schema.js';
import { throughCatalog } from './through-catalog.js';

/**
 * The outcome of judging one SQL string.
 * @see https://www.postgresql.org/docs/17/errcodes-appendix.html (deny and review are sent as 42501)
 */
export interface Decision {
  action: Action;
  /** The rule that decided: a rule's name, `read-only-access` or `unparseable`; absent when no rule matched. */
  rule?: string;
  /** The deciding rule's message, for the client (never contains the SQL text). */
  message?: string;
  /** One sentence for humans and logs: which rule, on which statement, why. Never contains the SQL text. */
  reason: string;
  /** The 0-based index of the statement that decided, when one did. */
  statement?: number;
  /**
   * What the analysis found (empty when the SQL did not parse). Frozen. Absent when the decision
   * came from the shape cache (the text was not parsed): call `analyzeSql` if you need it then.
   */
  statements?: readonly StatementFacts[];
  /** The tables the SQL names, and of those the ones it writes to (see {@link tablesTouched}); kept with cached decisions. */
  touched?: TablesTouchedBy;
  /** Whether some statement passes values to a side channel (`pg_notify`, `set_config`: `StatementFacts.sideChannel`); kept with cached decisions, as texts of one shape call the same functions. */
  sideChannel?: boolean;
  /** For a `review` decision: how it is reviewed (absent when the policy names no reviewers for it: it is refused). */
  review?: ReviewSettings;
  /** For an `allow` decision on SQL that writes under a row limit: how the gateway counts and limits it. */
  guard?: WriteGuard;
}

/**
 * What SQL touches ({@link tablesTouched}), with `*` among its tables when it calls a function
 * that reads tables named in a string ({@link UNSEEN_READ_FUNCTIONS}): what it reads cannot be told,
 * so every alert's and search's table matches it.
 */
/** What a decision keeps of its analysis, cached with it: the tables touched, and whether a side channel is used. */
function factsOf(analysis: Analysis): Pick<Decision, 'touched' | 'sideChannel'> {
  return { touched: touchedBy(analysis), sideChannel: analysis.ok && analysis.statements.some((s) => s.sideChannel !== undefined) };
}

function touchedBy(analysis: Analysis): TablesTouchedBy {
  const touched = tablesTouched(analysis);
  const unseen = analysis.ok && analysis.statements.some((st) => findFunction(st.functions, UNSEEN_READ_FUNCTIONS) !== undefined);
  return unseen ? { ...touched, tables: [...touched.tables, '*'] } : touched;
}

/** Options of a {@link StatementJudge}. */
export interface JudgeOptions {
  /** Decisions kept per judge (LRU); default 1000. */
  cacheSize?: number;
  /** SQL texts longer than this are judged every time and not cached; default 8192 characters. */
  maxCachedText?: number;
  /** Server timeouts of the access: a SET above them (or to 0, or from an expression) is refused. */
  limits?: SessionLimits;
  /** The access's row limit on every write (see {@link WriteGuard}). */
  rowLimit?: RowLimit;
  /** The database roles the access lets a session be: becoming any other (SET ROLE, SET SESSION AUTHORIZATION, set_config) is refused. */
  roles?: readonly string[];
  /** Statement rules this judge does not apply, by name (a runbook's `bypass`: the policy exempts its run). */
  exempt?: readonly string[];
  /** The lane reads which tables a write changed before it commits (PostgreSQL): with rules on tables, every write is judged again by them (see {@link WriteGuard.changed}). */
  changedTables?: boolean;
}

/** The judge's options of an access grant: its server timeouts, its row limit, the database roles it allows. */
export function judgeOptionsOf(grant: Pick<AccessGrant, 'limits' | 'rowLimit' | 'databaseAccess'>): JudgeOptions {
  return { limits: grant.limits, ...(grant.rowLimit ? { rowLimit: grant.rowLimit } : {}), ...(grant.databaseAccess ? { roles: grant.databaseAccess.roles } : {}) };
}

const RANK: Readonly<Record<Action, number>> = { allow: 0, review: 1, deny: 2 };

interface PreparedRule {
  rule: StatementRule;
  kinds?: ReadonlySet<StatementKind>;
}

/** Rules prepared once per policy snapshot (a rule never changes once loaded), shared by every session's judge. */
const PREPARED = new WeakMap<StatementRule, PreparedRule>();

function prepareRule(rule: StatementRule): PreparedRule {
  let prepared = PREPARED.get(rule);
  if (!prepared) {
    prepared = Object.freeze({ rule, ...(rule.match.kinds ? { kinds: new Set(rule.match.kinds.flatMap((k) => expandKind(k))) } : {}) });
    PREPARED.set(rule, prepared);
  }
  return prepared;
}

/**
 * Judges SQL for one (policy, identity, connection, access mode). Rules that name other
 * connections, subjects or groups are dropped up front. Decisions are cached by exact SQL text
 * and, for plain queries and DML, by shape: a text that differs from a judged one only in
 * numeric literals (`... WHERE aid = 4711` / `= 99`) gets its decision without being parsed,
 * once the parse tree has shown that every replaced digit run was a numeric constant.
 * Requires `await loadSqlParser()` once before the first {@link StatementJudge.judge}.
 * @see docs/internals.md (§4)
 */
export class StatementJudge {
  readonly #rules: PreparedRule[];
  readonly #unparseable: Action;
  readonly #policy: Policy;
  readonly #mode: 'read-only' | 'read-write';
  readonly #connection: string;
  readonly #cache: ShapeCache<Decision>;
  /** Decisions of analyses callers made (see {@link judge}), while the analysis lives. */
  #byAnalysis = new WeakMap<Analysis, Decision>();
  readonly #derived: DerivedValueCheck | undefined;
  /** The session's own backend process (see {@link ownBackend}). */
  #ownPid: number | undefined;
  /** Masked values by reference, for side channels (whenever masking has column or name rules). */
  readonly #masked: DerivedValueCheck | undefined;
  readonly #limits: SessionLimits;
  readonly #roles: readonly string[] | undefined;
  /** Some rule for this identity names tables: SQL that reads tables unseen is refused (see {@link UNSEEN_READ_RULE}). */
  readonly #tableRules: boolean;
  readonly #rowLimit: RowLimit | undefined;
  /** Some row limit may apply (the access's, or a rule's). */
  readonly #limitsRows: boolean;
  /** Writes are judged again by the tables the server says they changed (rules on tables, on a lane that can tell). */
  readonly #checksChanged: boolean;

  /** Some row limit may apply to this session's writes (the access's, or a rule's). */
  get limitsRows(): boolean {
    return this.#limitsRows;
  }

  constructor(policy: Policy, who: Who, connection: string, mode: 'read-only' | 'read-write', options: JudgeOptions = {}) {
    this.#connection = connection;
    this.#policy = policy;
    this.#mode = mode;
    this.#unparseable = policy.statements.unparseable;
    this.#rules = policy.statements.rules.filter((r) => appliesTo(r, who, connection) && !options.exempt?.includes(r.name)).map(prepareRule);
    this.#tableRules = this.#rules.some((r) => (r.rule.match.tables?.length ?? 0) > 0);
    this.#cache = new ShapeCache(options.cacheSize ?? 1000, options.maxCachedText ?? 8192);
    this.#limits = options.limits ?? {};
    this.#roles = options.roles;
    this.#rowLimit = options.rowLimit;
    this.#limitsRows = this.#rowLimit !== undefined || this.#rules.some((r) => r.rule.maxAffectedRows !== undefined);
    this.#checksChanged = this.#tableRules && options.changedTables === true;
    // What this principal sees masked: entries for other principals leave its values alone.
    const masking = maskingFor(policy.masking, who.principal);
    const masked = new DerivedValueCheck(masking);
    this.#masked = masked.active ? masked : undefined;
    this.#derived = masking.derived === 'deny' ? this.#masked : undefined;
  }

  /** The session's own backend process id: a signal function naming it by number reaches no one else. */
  ownBackend(pid: number): void {
    this.#ownPid = pid;
    this.#cache.clear();
    this.#byAnalysis = new WeakMap();
  }

  /** How many decisions are cached (by exact text, and by shape). */
  get cacheSize(): number {
    return this.#cache.size;
  }

  /**
   * The decision for `sql` (one Query message's text, one Parse's query, ...); `analyzed` is its
   * analysis when the caller already made it (a long text: then `sql` is not read).
   * @see https://www.postgresql.org/docs/17/protocol-flow.html#PROTOCOL-FLOW-MULTI-STATEMENT
   */
  judge(sql: string, analyzed?: Analysis): Decision {
    if (analyzed) {
      // A text the caller analysed itself (a long one; MySQL's, whose analyses it caches by text and shape): decided once per analysis.
      const source = analyzed.ok ? (analyzed.sameShapeAs ?? analyzed) : analyzed;
      const known = this.#byAnalysis.get(source);
      if (known) return known;
      const decision = Object.freeze({ ...this.#decideAnalysis(source), ...factsOf(source) });
      this.#byAnalysis.set(source, decision);
      return decision;
    }
    const hit = this.#cache.get(sql);
    if (hit) return hit;
    const analysis = analyzeSql(sql);
    const decision = Object.freeze({ ...this.#decideAnalysis(analysis), ...factsOf(analysis) });
    const { statements: _omitted, ...shared } = decision;
    this.#cache.set(sql, analysis, decision, Object.freeze(shared));
    return decision;
  }

  /** Some rule for this identity names tables: a gateway that can look relations up judges them through the catalog ({@link judgeUnder}). */
  get tableRules(): boolean {
    return this.#tableRules;
  }

  /**
   * The decision for `sql` with each relation its statements name judged as the relations under
   * it too: `under(name)` says which (a view's tables through other views, a table's rules,
   * partitions and parents; `*`, which every rule on tables matches, for a name the caller cannot
   * tell). Not cached: what is under a name changes with the catalog.
   */
  judgeUnder(sql: string, analyzed: Analysis | undefined, under: (name: string) => readonly string[]): Decision {
    const plain = this.judge(sql, analyzed);
    // Most texts name only plain tables: their cached decision stands, unparsed.
    if (!plain.touched?.tables.some((t) => under(t).length > 0)) return plain;
    const analysis = analyzed ?? analyzeSql(sql);
    if (!analysis.ok) return plain;
    const widened = throughCatalog(analysis.statements, under);
    if (!widened) return plain;
    const { statements, unknown } = widened;
    const decision = this.#decideAnalysis({ ...analysis, statements });
    if (unknown.size === 0 || decision.action === 'allow') return Object.freeze({ ...decision, ...factsOf(analysis) });
    const why = `${[...unknown].join(', ')} ${unknown.size > 1 ? 'are' : 'is'} judged as any table (the gateway cannot see what is under it in the database's catalog: made or changed in a transaction still open, or temporary; or its rows are another table's, a foreign or MERGE table)`;
    const said = { reason: `${decision.reason}; ${why}`, ...(decision.message !== undefined ? { message: `${decision.message}; ${why}` } : {}) };
    return Object.freeze({ ...decision, ...said, ...factsOf(analysis) });
  }

  #decideAnalysis(analysis: Analysis): Decision {
    if (!analysis.ok) {
      const action = this.#unparseable;
      const review = action === 'review' ? reviewSettingsFor(this.#policy, this.#connection) : undefined;
      return {
        action,
        ...(review ? { review } : {}),
        rule: UNPARSEABLE_RULE,
        message: `the statement could not be parsed as ${analysis.parser ?? 'PostgreSQL'} SQL (${analysis.error})`,
        reason: `the ${analysis.parser ?? 'PostgreSQL'} parser rejected the SQL (${analysis.error}); the policy's "unparseable" setting is ${action}`,
        statements: [],
      };
    }
    const statements = analysis.statements;
    if (statements.length === 0) return { action: 'allow', reason: 'no statement to judge (empty or comments only)', statements };
    let best: Decision | undefined;
    statements.forEach((facts, i) => {
      const d = this.#judgeStatement(facts, i, statements);
      if (!best || RANK[d.action] > RANK[best.action]) best = d;
      // Two statements under review rules: one review must satisfy both.
      else if (d.action === 'review' && best.action === 'review') best = combineReviewDecisions(best, d);
    });
    return best!.action === 'allow' && (this.#limitsRows || this.#checksChanged) ? this.#guard(best!, statements) : best!;
  }

  /**
   * An allowed text's write guard: its row limit, if a write of it has one (the strictest of the
   * access's and of the allow rules that match each guarded statement), and with rules on tables
   * the check of the tables the server says its writes changed. A text the guard cannot count or
   * check as written is refused (rule {@link WRITE_GUARD_RULE}): a transaction statement other
   * than a BEGIN before the first guarded write (it would commit or undo part of what is
   * counted), or a COPY FROM STDIN beside it (its data would wait behind the held results).
   */
  #guard(allowed: Decision, statements: readonly StatementFacts[]): Decision {
    let limit: RowLimit | undefined;
    const guarded: number[] = [];
    let tagged = true;
    let prepared = 0;
    let checked = -1;
    /** The first statement guarded or checked. */
    let first = -1;
    statements.forEach((facts, i) => {
      if (checked < 0 && this.#checksChanged && writesRows(facts)) checked = i;
      if (first < 0 && checked === i) first = i;
      const preparing = preparesWrite(facts);
      if (!changesRows(facts) && !preparing) return;
      const own = this.#limitOf(facts, statements.length > 1);
      if (!own) return;
      guarded.push(i);
      if (first < 0) first = i;
      if (preparing) prepared++;
      if (!tagCounts(facts)) tagged = false;
      if (!limit || own.maxRows < limit.maxRows || (own.maxRows === limit.maxRows && own.overLimit === 'deny')) limit = own;
    });
    // A text that writes nothing itself (a PREPARE only stores) but ends the block settles its deferred triggers.
    if (checked < 0 && this.#checksChanged && statements.some(endsFiringDeferred)) return { ...allowed, guard: this.#settling() };
    if (!limit && checked < 0) return allowed;
    const review = limit?.overLimit === 'review' ? reviewSettingsFor(this.#policy, this.#connection, this.#rules.find((r) => r.rule.name === limit!.rule)?.rule.review) : undefined;
    // A PREPARE runs nothing: the gate applies its limit where an EXECUTE runs it (counted by statistics).
    if (limit && prepared === guarded.length && checked < 0)
      return { ...allowed, guard: { ...limit, count: 'stats', statements: [], opensBlock: false, prepared: true, ...(review ? { review } : {}) } };
    const own = limit ?? { maxRows: Number.POSITIVE_INFINITY, overLimit: 'deny', rule: WRITE_GUARD_RULE };
    const problem = unguardable(statements, first, own);
    if (problem !== undefined) return { action: 'deny', rule: WRITE_GUARD_RULE, message: problem, reason: problem, statements };
    const changed = checked < 0 ? undefined : (tables: readonly ChangedTable[]) => this.#changedRefusal(tables, limit?.rule, guarded.length);
    const guard: WriteGuard = {
      ...own,
      count: tagged ? 'tag' : 'stats',
      statements: guarded,
      opensBlock: opensBlockBefore(statements, first),
      ...(statements.length === 1 && copiesIn(statements[0]!) ? { copyIn: true as const } : {}),
      ...(review ? { review } : {}),
      ...(changed ? { changed } : {}),
    };
    return { ...allowed, guard };
  }

  /** The guard of a text that ends a transaction block, with rules on tables: what its deferred triggers change is judged before it runs (see `WriteGuard.settles`). */
  #settling(): WriteGuard {
    const changed = (tables: readonly ChangedTable[]): { rule: string; reason: string } | undefined => this.#changedRefusal(tables, undefined, 0);
    return { maxRows: Number.POSITIVE_INFINITY, overLimit: 'deny', rule: WRITE_GUARD_RULE, count: 'stats', statements: [], opensBlock: false, settles: true, changed };
  }

  /** The strictest row limit on one write: the access's, or a matching allow rule's. */
  #limitOf(facts: StatementFacts, multiStatement: boolean): RowLimit | undefined {
    let own = this.#rowLimit;
    for (const prepared of this.#rules) {
      const rule = prepared.rule;
      if (rule.maxAffectedRows === undefined || (own && own.maxRows <= rule.maxAffectedRows) || !matches(prepared, facts, multiStatement)) continue;
      own = { maxRows: rule.maxAffectedRows, overLimit: rule.overLimit ?? 'deny', rule: rule.name };
    }
    return own;
  }

  /**
   * Why an allowed write is refused now that the server says what it did to `tables`: each
   * table's change judged as a statement of its own, of the kinds the server counted on it, on it
   * and its ancestors, by the rules that name tables. One that denies it or holds it for review
   * refuses it; a row limit counts that table's updated and deleted rows (`applied`, the limit the
   * guard counts each of the text's `writes` by, as many times as there are: a trigger of the table's
   * own cannot write past it). The judgment saw other relations than ran (one replaced since), or a
   * rule, trigger or key's action wrote beyond the text.
   */
  #changedRefusal(tables: readonly ChangedTable[], applied: string | undefined, writes: number): { rule: string; reason: string } | undefined {
    for (const t of tables) {
      const kinds: StatementKind[] = [
        ...(t.inserted > 0 ? ['insert' as const] : []),
        ...(t.updated > 0 ? ['update' as const] : []),
        ...(t.deleted > 0 ? ['delete' as const] : []),
        ...(t.truncated ? ['truncate' as const] : []),
      ];
      const facts: RuleFacts = { kinds, tables: [t.name, ...t.ancestors], functions: [], missingWhere: false, cteDml: false };
      const did = `the write ${kinds.map((k) => (k === 'insert' ? 'inserted' : k === 'truncate' ? 'truncated or remade' : `${k}d`)).join(', ')} rows of ${t.name}`;
      let winner: PreparedRule | undefined;
      for (const prepared of this.#rules) {
        const { match, action, maxAffectedRows, name } = prepared.rule;
        if (!match.tables || !matches(prepared, facts, false)) continue;
        if (action !== 'allow' && (!winner || RANK[action] > RANK[winner.rule.action])) winner = prepared;
        const rows = t.updated + t.deleted;
        const limit = maxAffectedRows === undefined ? undefined : name === applied ? maxAffectedRows * Math.max(1, writes) : maxAffectedRows;
        if (action === 'allow' && limit !== undefined && rows > limit && matches(prepared, { ...facts, kinds: kinds.filter((k) => k !== 'insert') }, false))
          return { rule: name, reason: `${did}: ${rows} changed, over the limit of ${limit} (rule "${name}")` };
      }
      if (winner)
        return {
          rule: winner.rule.name,
          reason: `${did}, which rule "${winner.rule.name}" ${winner.rule.action === 'deny' ? 'denies' : 'holds for review'}${winner.rule.message ? ` (${winner.rule.message})` : ''}`,
        };
    }
    return undefined;
  }

  /** The decision for one statement: a built-in rule's denial, else what the policy's statement rules say (denying, where they do not, what masking could not follow). */
  #judgeStatement(facts: StatementFacts, index: number, all: readonly StatementFacts[]): Decision {
    const at: StatementAt = { facts, index, all, where: all.length > 1 ? `statement ${index + 1} of ${all.length}` : 'the statement', what: describe(facts) };
    const denial = this.#builtInDenial(at);
    if (denial) return { action: 'deny', ...denial, statement: index, statements: all };
    const decided = this.#ruleDecision(at);
    // What masking could not follow is refused whatever allows it; a rule of the policy's own that denies it names itself.
    const moved = decided.action === 'deny' ? undefined : this.#maskedMoveDenial(at);
    return moved ? { action: 'deny', ...moved, statement: index, statements: all } : decided;
  }

  /**
   * The first built-in rule that denies the statement, whatever the policy's rules say, in this order: it would change how the
   * server lexes later SQL, read-only access, the database roles the access allows, the access's server timeouts, a masked value
   * passed to a side channel or kept where masking cannot follow it, a read of tables named in a string (with rules on tables), a read masking cannot trace (with
   * masking), a value derived from a masked column (`masking.derived: deny`), a signal to another backend.
   */
  #builtInDenial(at: StatementAt): Denial | undefined {
    return (
      lexingDenial(at) ??
      this.#readOnlyDenial(at) ??
      this.#roleDenial(at) ??
      this.#sessionLimitDenial(at) ??
      this.#sideChannelDenial(at) ??
      this.#unseenReadDenial(at) ??
      this.#ruledRenameDenial(at) ??
      this.#unguardedCodeDenial(at) ??
      this.#unmaskableDenial(at) ??
      this.#derivedDenial(at) ??
      this.#backendSignalDenial(at)
    );
  }

  /** Under read-only access, what needs more than read access (see {@link readOnlyRefusal}). */
  #readOnlyDenial({ facts, where, what }: StatementAt): Denial | undefined {
    const refused = this.#mode === 'read-only' ? readOnlyRefusal(facts) : undefined;
    if (refused === undefined) return undefined;
    return {
      rule: READ_ONLY_RULE,
      message: `read-only access to "${this.#connection}" does not allow ${refused}`,
      reason: `${where} (${what}) needs more than read access (${refused}) but access to "${this.#connection}" is read-only`,
    };
  }

  /** Becoming a database role the access does not allow. */
  #roleDenial({ facts, where, what }: StatementAt): Denial | undefined {
    const role = this.#roles ? roleRefusal(facts, this.#roles) : undefined;
    if (role === undefined) return undefined;
    const allowed = this.#roles!.map((r) => `"${r}"`).join(', ');
    return {
      rule: ROLE_RULE,
      message: `access to "${this.#connection}" lets a session be ${allowed} only, not ${role}`,
      reason: `${where} (${what}) would make the session ${role}, which access to "${this.#connection}" does not allow (${allowed})`,
    };
  }

  /** A setting past the access's server timeouts; with any timeout limited, code the gateway cannot read (it could change one unseen). */
  #sessionLimitDenial({ facts, where, what }: StatementAt): Denial | undefined {
    for (const { name, value } of facts.settings) {
      const problem = name !== undefined ? limitProblem(this.#limits, name, value) : undefined;
      if (problem !== undefined) return { rule: LIMIT_RULE, message: problem, reason: `${where} (${what}) sets ${name}: ${problem}` };
    }
    const limited = Object.keys(this.#limits).filter((n) => this.#limits[n as keyof SessionLimits] !== undefined);
    const unseen =
      limited.length > 0 ? (facts.opaqueBody ? 'a body the gateway cannot read (a DO block, or a function body given as a string)' : findFunction(facts.functions, SQL_TEXT_FUNCTIONS)) : undefined;
    if (unseen === undefined) return undefined;
    const runs = facts.opaqueBody ? unseen : `${unseen}(), which runs SQL given as text,`;
    const message = `${limited.join(', ')} ${limited.length > 1 ? 'are' : 'is'} limited for this access, and ${runs} could change ${limited.length > 1 ? 'them' : 'it'} unseen`;
    return { rule: LIMIT_RULE, message, reason: `${where} (${what}): ${message}` };
  }

  /** A value computed from a masked column sent or kept where masking cannot follow it (a NOTIFY payload, a reported setting, stored rows, a large object). */
  #sideChannelDenial({ facts, where, what }: StatementAt): Denial | undefined {
    const side = this.#masked?.sideChannel(facts);
    if (side === undefined || !facts.sideChannel) return undefined;
    return {
      rule: SIDE_CHANNEL_RULE,
      message: `a value computed from ${side} cannot go to ${facts.sideChannel.name}: ${facts.sideChannel.where}`,
      reason: `${where} (${what}) sends a value computed from ${side} to ${facts.sideChannel.name}`,
    };
  }

  /** With masking, what would take a masked value from under its rule: a rename, or code whose reads and writes hoop does not follow. */
  #maskedMoveDenial({ facts, where, what }: StatementAt): Denial | undefined {
    const moves = this.#masked?.moves(facts);
    if (moves === undefined) return undefined;
    return {
      rule: SIDE_CHANNEL_RULE,
      message: `with masking rules on this connection, ${moves} is refused: masking could not follow the values it masks through it`,
      reason: `${where} (${what}) is ${moves}, which masking could not follow`,
    };
  }

  /** With rules on tables, code whose writes the write guard would not count (see {@link UNGUARDED_CODE_RULE}). */
  #unguardedCodeDenial(at: StatementAt): Denial | undefined {
    const { facts, where, what } = at;
    if (!this.#tableRules || facts.kinds[0] === undefined || !['do', 'create-function'].includes(facts.kinds[0])) return undefined;
    const writes = facts.kinds.find((k) => WRITING_KINDS.has(k));
    if ((!facts.opaqueBody && writes === undefined) || this.#allowsCode(at)) return undefined;
    const code = facts.kinds[0] === 'do' ? 'a DO block' : facts.opaqueBody ? 'a function or procedure whose body is a string' : `a function or procedure whose body writes (${writes})`;
    const why = facts.opaqueBody
      ? 'runs code the gateway cannot read (it could write, or rename a table the rules name, unseen)'
      : 'writes when it is called, where the gateway does not count what it changed';
    return {
      rule: UNGUARDED_CODE_RULE,
      message: `with rules on tables, ${code} is refused: it ${why}; an allow rule naming kinds [${facts.kinds[0]}] lets it`,
      reason: `${where} (${what}) makes ${code}, whose writes the rules on tables cannot judge`,
    };
  }

  /** An allow rule that matches the statement and names its kind of code (`do`, `create-function`) itself, not by a group such as `ddl`. */
  #allowsCode({ facts, all }: StatementAt): boolean {
    return this.#rules.some(
      (p) => p.rule.action === 'allow' && facts.kinds.some((k) => (k === 'do' || k === 'create-function') && p.rule.match.kinds?.includes(k)) && matches(p, facts, all.length > 1),
    );
  }

  /** With rules on tables, a function that reads tables named in a string (see {@link UNSEEN_READ_RULE}). */
  #unseenReadDenial({ facts, where, what }: StatementAt): Denial | undefined {
    if (!this.#tableRules) return undefined;
    // The planner's statistics hold values of any table's columns (most common values, histogram bounds); masking masks them.
    const statistics = this.#masked ? undefined : (facts.reads ?? []).find((t) => STATISTICS_RELATIONS.has(t.replace(/^pg_catalog\./, '')));
    if (statistics !== undefined)
      return {
        rule: UNSEEN_READ_RULE,
        message: `${statistics} holds values of any table's columns, which the gateway cannot judge; the policy has rules on tables`,
        reason: `${where} (${what}) reads ${statistics}, whose values come from tables the rules on tables cannot see`,
      };
    const unseenRead = findFunction(facts.functions, UNSEEN_READ_FUNCTIONS);
    if (unseenRead === undefined) return undefined;
    return {
      rule: UNSEEN_READ_RULE,
      message: `${unseenRead}() reads tables named in a string, which the gateway cannot judge; the policy has rules on tables`,
      reason: `${where} (${what}) calls ${unseenRead}(), whose tables the rules on tables cannot see`,
    };
  }

  /**
   * With rules on tables, a rename of a table a rule names (from or to its name, or its schema moved)
   * or of a schema: the rules name tables by name, and the write guard judges what a write changed by
   * the names the tables have then, so under another name in an open block a trigger's write would
   * reach it unjudged (the fifth attack on the write guard).
   */
  #ruledRenameDenial({ facts, where, what }: StatementAt): Denial | undefined {
    const ddl = facts.ddl;
    // A partition detached or attached, an inheritance dropped or added: what a write reaches is judged by its table's ancestors then.
    const reparented = ddl?.kind === 'altered' && REPARENTS.test((facts.text ?? '').replace(COMMENTS, ' '));
    if (!this.#tableRules || (ddl?.kind !== 'renamed' && ddl?.kind !== 'schema' && !reparented)) return undefined;
    const names = ddl.kind === 'schema' ? ['*'] : reparented ? [...facts.tables] : [ddl.was, ddl.relation].flatMap((r) => (r ? [r.schema ? `${r.schema}.${r.relation}` : r.relation] : []));
    const ruled = this.#rules.find((p) => p.rule.match.tables && (names.includes('*') || tablesMatch(p.rule.match.tables, names)));
    if (!ruled) return undefined;
    const subject = ddl.kind === 'schema' ? 'a schema' : reparented ? `the partitions or inheritance of ${names.join(', ')}` : `table ${names[0]}`;
    return {
      rule: RULED_RENAME_RULE,
      message: `the rules on tables name tables by name: ${subject} keeps its name through hoop (rule "${ruled.rule.name}" names ${ddl.kind === 'schema' ? 'tables' : 'it'})`,
      reason: `${where} (${what}) renames ${subject}, and rule "${ruled.rule.name}" names tables by the names a rename changes`,
    };
  }

  /** With masking, a read whose values masking cannot trace to their columns (see {@link unmaskableRead}). */
  #unmaskableDenial({ facts, where, what }: StatementAt): Denial | undefined {
    const unmaskable = this.#masked ? unmaskableRead(facts) : undefined;
    if (unmaskable === undefined) return undefined;
    return {
      rule: SIDE_CHANNEL_RULE,
      message: `${unmaskable} returns column values masking cannot trace to their columns; with masking rules on this connection it is refused`,
      reason: `${where} (${what}) reads through ${unmaskable}, whose values masking cannot trace`,
    };
  }

  /** With `masking.derived: deny`, a value computed from a masked column returned. */
  #derivedDenial({ facts, where, what }: StatementAt): Denial | undefined {
    const derived = this.#derived?.find(facts);
    if (derived === undefined) return undefined;
    return {
      rule: DERIVED_RULE,
      message: `a value computed from ${derived} cannot be returned (masking.derived is deny); select masked columns as they are to get them masked`,
      reason: `${where} (${what}) returns a value computed from ${derived}, and masking.derived is deny`,
    };
  }

  /** A signal to a backend other than the session's own, unless an allow rule names the function (see {@link BACKEND_SIGNAL_RULE}). */
  #backendSignalDenial({ facts, all, where, what }: StatementAt): Denial | undefined {
    const signal = facts.functions.find((f) => SIGNAL_FUNCTIONS.has(f.slice(f.lastIndexOf('.') + 1)));
    // One's own backend may be signalled (`pg_cancel_backend(pg_backend_pid())`, or its pid): no other session is reached.
    const ownOnly = facts.signals?.every((t) => t === 'own' || (this.#ownPid !== undefined && t === this.#ownPid)) === true;
    if (
      signal === undefined ||
      ownOnly ||
      this.#rules.some((p) => p.rule.action === 'allow' && p.rule.match.functions && functionsMatch(p.rule.match.functions, [signal]) && matches(p, facts, all.length > 1))
    ) {
      return undefined;
    }
    return {
      rule: BACKEND_SIGNAL_RULE,
      message: `${signal}() is refused: every identity shares the gateway's database role, so it could end or cancel someone else's session`,
      reason: `${where} (${what}) calls ${signal}(), which no allow rule names`,
    };
  }

  /**
   * What the policy's statement rules say: the most restrictive rule that matches (the first in file order among equals; a
   * deny ends the search), reviewed under every review rule that matched when a review wins; allowed by default when none does.
   */
  #ruleDecision(at: StatementAt): Decision {
    let winner: PreparedRule | undefined;
    /** Every review rule that matched, when a review wins: its review must satisfy them all. */
    const reviews: StatementRule[] = [];
    for (const prepared of this.#rules) {
      if (!matches(prepared, at.facts, at.all.length > 1)) continue;
      if (prepared.rule.action === 'review') reviews.push(prepared.rule);
      if (!winner || RANK[prepared.rule.action] > RANK[winner.rule.action]) winner = prepared;
      if (winner.rule.action === 'deny') break;
    }
    if (!winner) {
      return { action: 'allow', reason: `no statement rule matched ${at.where} (${at.what}); allowed by default`, statements: at.all };
    }
    if (winner.rule.action !== 'review') return this.#ruleMatched(winner.rule, at);
    return reviews.map((rule) => this.#ruleMatched(rule, at)).reduce((a, b) => combineReviewDecisions(a, b));
  }

  /** The decision of `rule`, which matched the statement (with its review settings, for a review rule). */
  #ruleMatched(rule: StatementRule, { index, all, where, what }: StatementAt): Decision {
    const review = rule.action === 'review' ? reviewSettingsFor(this.#policy, this.#connection, rule.review) : undefined;
    return {
      action: rule.action,
      ...(review ? { review } : {}),
      rule: rule.name,
      ...(rule.message !== undefined ? { message: rule.message } : {}),
      reason: `rule "${rule.name}" (${rule.action}) matched ${where} (${what})${rule.message ? `: ${rule.message}` : ''}`,
      statement: index,
      statements: all,
    };
  }
}

/** Whether a rule's identity and connection conditions hold for this judge (fixed per judge). */
function appliesTo(rule: StatementRule, who: Who, connection: string): boolean {
  const m = rule.match;
  if (m.connections && !listNames(m.connections, connection)) return false;
  if (m.subjects && !listNames(m.subjects, who.subject)) return false;
  if (m.groups && !who.groups.some((g) => m.groups!.includes(g))) return false;
  return principalMatches(m, who.principal);
}

/** What a rule's match reads of a statement. */
type RuleFacts = Pick<StatementFacts, 'kinds' | 'tables' | 'reads' | 'functions' | 'missingWhere' | 'cteDml' | 'copy'>;

function matches(prepared: PreparedRule, facts: RuleFacts, multiStatement: boolean): boolean {
  const m = prepared.rule.match;
  // A deny or review of reading tables (`select`) matches by what a statement reads, of any kind: COPY … TO, an UPDATE's RETURNING,
  // INSERT … SELECT, a subquery (not a writable CTE's target, nor SELECT INTO's); its other kinds, by the tables they name.
  if (prepared.kinds?.has('select') && prepared.rule.action !== 'allow' && m.tables && facts.reads && !facts.kinds.some((k) => k !== 'select' && prepared.kinds!.has(k))) {
    return facts.reads.length > 0 && matchesRest(prepared, { ...facts, tables: facts.reads }, multiStatement);
  }
  if (prepared.kinds && !facts.kinds.some((k) => prepared.kinds!.has(k))) return false;
  return matchesRest(prepared, facts, multiStatement);
}

/** The rest of a rule's match, its kinds matched. */
function matchesRest(prepared: PreparedRule, facts: RuleFacts, multiStatement: boolean): boolean {
  const m = prepared.rule.match;
  // `*`: a relation judged through the catalog that it cannot tell (see StatementJudge.judgeUnder) may be any table.
  if (m.tables && !facts.tables.includes('*') && !tablesMatch(m.tables, facts.tables)) return false;
  if (m.functions && !functionsMatch(m.functions, facts.functions)) return false;
  if (m.missingWhere && !facts.missingWhere) return false;
  if (m.cteDml && !facts.cteDml) return false;
  if (m.multiStatement && !multiStatement) return false;
  if (m.copyTarget && !(facts.copy && m.copyTarget.includes(facts.copy.target))) return false;
  return true;
}

function describe(facts: StatementFacts): string {
  const parts = [facts.kinds.join('+')];
  if (facts.tables.length > 0) parts.push(`on ${facts.tables.slice(0, 5).join(', ')}${facts.tables.length > 5 ? ', ...' : ''}`);
  if (facts.functions.length > 0) parts.push(`calling ${facts.functions.slice(0, 5).join(', ')}${facts.functions.length > 5 ? ', ...' : ''}`);
  if (facts.missingWhere) parts.push('that may reach every row (no WHERE that restricts it)');
  if (facts.cteDml) parts.push('with DML in a WITH');
  if (facts.program) parts.push('with PROGRAM');
  else if (facts.copy?.target === 'file') parts.push('with a server file');
  if (facts.readWrite) parts.push('asking for read-write transactions');
  if (facts.opaqueBody) parts.push('with an opaque body');
  return parts.join(' ');
}
