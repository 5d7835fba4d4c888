/**
 * A session's judge that judges relations through the catalog, for any SQL lane: with rules on
 * tables, each relation a statement names counts as the relations under it too, as the
 * connection's catalog says ({@link Relations}: on PostgreSQL src/postgres/gateway/relation-reads.ts,
 * a view's tables through other views, a table's rules, its partitions and parents; on MySQL
 * src/mysql/gateway/relations.ts, a view's tables). So `DELETE FROM v` over a table a rule guards
 * is that rule's, as the server would run it. What the catalog cannot tell is `*`, which every
 * rule on tables matches:
 * - a name it does not have (a temporary relation, one made in an open transaction); one this
 *   session made or redefined is what its statements named beside it too (a temporary view, or
 *   one not committed yet, is what it was made of), for the session's life;
 * - a name another session's open transaction may redefine (its DDL names it): the catalog shows
 *   the old definition, and a statement that waits on the new one's locks runs with it; it
 *   settles when that transaction ends (a DO block or CALL there is not held against others' names);
 * - in this session, any name after a DO block or CALL in its open transaction, and a name it
 *   renamed a relation to there.
 *
 * The names a message's statements hold are looked up before it is judged ({@link pending}), so
 * the judgment itself stays synchronous; what the lookups could not answer is `*`.
 */
import type { Analysis } from '../policy/sql/analyze.js';
import { REDEFINING_KINDS } from '../policy/touched.js';
import { bareName as bare, type CatalogChanges, ROWS_ELSEWHERE, WRITES_BEYOND } from '../policy/catalog-changes.js';
import type { SessionJudge, StatementVerdict } from './engine.js';

/** What a connection's catalog says of its relations, shared by its sessions. */
export interface Relations {
  /** What is under `name` (lower-case, as a statement names it): `[]` for a table, `['*']` for a name the catalog lacks; undefined when not known now. */
  under(name: string): readonly string[] | undefined;
  /** Looks up those of `names` not known now. */
  prefetch(names: readonly string[]): Promise<void>;
  /** Relations `names` (bare; `*`: any) may have been redefined: what is known of them goes. */
  changed(names: readonly string[]): void;
  /** What changed through the gateway, and what open transactions are redefining (others judge those names as anything until they end). */
  readonly changes: CatalogChanges;
}

/**
 * What a judgment read that can change: each catalog answer it asked for, and the versions of this
 * session's redefinitions and of the others' open ones. Judging the same facts again gives the same
 * verdict while {@link CatalogJudge.unchanged} says so.
 */
export interface CatalogReads {
  readonly answers: ReadonlyArray<readonly [string, readonly string[]]>;
  readonly own: number;
  readonly others: number;
}

/** A judge that judges relations as what is under them (src/policy/decide.ts's StatementJudge, with rules on tables). */
type JudgeUnder = SessionJudge & Required<Pick<SessionJudge, 'judgeUnder'>>;

const ANY = ['*'] as const;

/** Names this session made or redefined, kept. */
const MAX_OWN = 1000;

/** `judge` for one session, relations judged through `reads`' catalog (see the module documentation); it also tells `reads` of each redefinition (`analyze`: the lane's reading of SQL the judge was not given analysed). */
export class CatalogJudge implements SessionJudge {
  readonly #judge: SessionJudge;
  readonly #reads: Relations;
  /** The SQL's analysis when the engine did not make it (a text the judge parsed itself). */
  readonly #analyze: (sql: string) => Analysis;
  /** Whether relations are judged through the catalog: some rule names tables. */
  readonly #through: JudgeUnder | undefined;
  /** What this session made or redefined, by bare name: the other relations named beside it (the oldest go past {@link MAX_OWN}: the catalog's answer, or `*`, stands). */
  readonly #own = new Map<string, Set<string>>();
  /** This session's open transaction may redefine relations: other sessions judge them as anything until it ends. */
  #redefining = false;
  /** This session's open transaction ran code that may redefine anything (a DO block, a CALL). */
  #ownAny = false;
  /** Bare names this session's open transaction renamed a relation to. */
  readonly #renamed = new Set<string>();
  /** Changes with each change of what this session made or redefined ({@link #own}, {@link #ownAny}, {@link #renamed}). */
  #version = 0;
  /** The catalog's answers the judgment in progress asked for (undefined: not known, judged as any). */
  #asked: Array<readonly [string, readonly string[] | undefined]> = [];
  /** The versions the judgment in progress began with. */
  #began = { own: 0, others: 0 };

  constructor(judge: SessionJudge, reads: Relations, analyze: (sql: string) => Analysis) {
    this.#judge = judge;
    this.#reads = reads;
    this.#analyze = analyze;
    this.#through = judge.tableRules && judge.judgeUnder ? (judge as JudgeUnder) : undefined;
  }

  get limitsRows(): boolean | undefined {
    return this.#judge.limitsRows;
  }

  ownBackend(pid: number): void {
    this.#judge.ownBackend?.(pid);
  }

  judge(sql: string, analysis?: Analysis): StatementVerdict {
    this.#asked = [];
    this.#began = { own: this.#version, others: this.#reads.changes.version };
    if (!this.#through) {
      const verdict = this.#judge.judge(sql, analysis);
      if (verdict.touched?.redefines && verdict.action !== 'deny') this.#redefines(sql, analysis);
      return verdict;
    }
    // What the text redefines is noted first: its later statements run with it (`CREATE OR REPLACE VIEW v …; DELETE FROM v`).
    if (this.#judge.judge(sql, analysis).touched?.redefines) this.#redefines(sql, analysis);
    return this.#through.judgeUnder(sql, analysis, this.#under);
  }

  /** What the last {@link judge} read that can change; undefined when it read an answer not known (a lookup is due) or redefined something. */
  lastReads(): CatalogReads | undefined {
    if (this.#began.own !== this.#version || this.#asked.some(([, a]) => a === undefined)) return undefined;
    return { answers: this.#asked as ReadonlyArray<readonly [string, readonly string[]]>, ...this.#began };
  }

  /** Whether judging again would read what `reads` holds: the same answers (by identity: an answer that expired or changed is another), and no redefinition since. */
  unchanged(reads: CatalogReads): boolean {
    if (reads.own !== this.#version || reads.others !== this.#reads.changes.version) return false;
    for (const [name, answer] of reads.answers) if (this.#reads.under(name) !== answer) return false;
    return true;
  }

  /** Looks up the relations `texts` name that are not known now (undefined: none is missing); a message's judgment waits for it. */
  pending(texts: ReadonlyArray<string | Analysis>): Promise<void> | undefined {
    if (!this.#through) return undefined;
    const missing: string[] = [];
    for (const text of texts) {
      let tables: readonly string[];
      try {
        tables = (typeof text === 'string' ? this.#judge.judge(text) : this.#judge.judge('', text)).touched?.tables ?? [];
      } catch {
        continue; // the judgment refuses it
      }
      for (const t of tables) this.#missing(t, missing, new Set());
    }
    return missing.length > 0 ? this.#reads.prefetch(missing) : undefined;
  }

  /** Adds `name` to `missing` when the catalog's answer for it is not known now, and what this session made it of, likewise. */
  #missing(name: string, missing: string[], seen: Set<string>): void {
    if (!relation(name) || seen.has(name)) return;
    seen.add(name);
    if (this.#reads.under(name) === undefined) missing.push(name);
    for (const other of this.#own.get(bare(name)) ?? []) this.#missing(other, missing, seen);
  }

  /** The session's transaction ended (its server idle outside a transaction block), or the session did: what it redefined settles. */
  ended(): void {
    if (!this.#redefining) return;
    this.#redefining = false;
    this.#ownAny = false;
    this.#renamed.clear();
    this.#version++;
    const names = this.#reads.changes.redefined(this);
    if (names) this.#reads.changed(names);
  }

  readonly #under = (name: string): readonly string[] => {
    const out = new Set<string>();
    this.#collect(name, out, true, new Set());
    return [...out];
  };

  /**
   * Adds what is under `name` to `out`: `ask`ing the catalog for a name a statement gives, or one
   * this session made something of (a name within the catalog's answer has its own there), and,
   * at any depth, what this session made of a name, and `*` for a name in flux.
   */
  #collect(name: string, out: Set<string>, ask: boolean, seen: Set<string>): void {
    // A relation whose (quoted) name reads as a function's is not looked up as one.
    if (name.endsWith('()')) return void out.add('*');
    if (!relation(name) || seen.has(name)) return;
    seen.add(name);
    const b = bare(name);
    if (this.#ownAny || this.#renamed.has(b) || this.#reads.changes.inFlux(b, this)) return void out.add('*');
    const own = this.#own.get(b);
    const catalog = ask ? this.#reads.under(name) : undefined;
    if (ask) this.#asked.push([name, catalog]);
    // Rows that are another's are any table's, whatever this session made of the name.
    if (catalog?.includes(ROWS_ELSEWHERE)) return void out.add('*');
    // Made or redefined here (perhaps not committed, or temporary): what its statements named, and what the catalog has (if it has it).
    const under = own ? [...own, ...(catalog && !catalog.includes('*') ? catalog : [])] : ask ? (catalog ?? ANY) : [];
    for (const u of under) {
      if (u === ROWS_ELSEWHERE) out.add('*');
      else if (u === '*' || u === WRITES_BEYOND) out.add(u);
      else if (!seen.has(u)) {
        out.add(u);
        this.#collect(u, out, own?.has(u) === true, seen);
      }
    }
  }

  /** Notes that this session made or changed `name` beside `others`. */
  #note(name: string, others: readonly string[]): void {
    const made = this.#own.get(name) ?? new Set<string>();
    for (const other of others) made.add(other);
    this.#own.delete(name);
    this.#own.set(name, made);
    this.#version++;
    if (this.#own.size > MAX_OWN) this.#own.delete(this.#own.keys().next().value!);
  }

  /** Notes what `sql`, which may redefine relations, names: this session's later statements read it so, and others' as anything until its transaction ends. */
  #redefines(sql: string, analysis: Analysis | undefined): void {
    const a = analysis ?? this.#analyze(sql);
    const names: string[] = [];
    this.#version++;
    if (!a.ok) this.#ownAny = true;
    else {
      for (const st of a.statements) {
        if (!st.kinds.some((k) => REDEFINING_KINDS.has(k))) continue;
        if (st.kinds.includes('do') || st.kinds.includes('call') || st.opaqueBody) this.#ownAny = true;
        const tables = st.tables.filter(relation);
        for (const t of tables) {
          this.#note(
            bare(t),
            tables.filter((other) => other !== t),
          );
          names.push(bare(t));
        }
        // A relation renamed here may be anything under its new name until its transaction ends (then the catalog has it).
        if (st.ddl?.kind === 'renamed') {
          this.#renamed.add(st.ddl.relation.relation.toLowerCase());
          names.push(st.ddl.relation.relation.toLowerCase());
        }
      }
    }
    this.#redefining = true;
    this.#reads.changed(this.#ownAny ? ANY : names);
    // Code the gateway cannot read (a DO block, a CALL) is not held against other sessions' names: one idle transaction would refuse them all.
    this.#reads.changes.redefining(this, names);
  }
}

/** Whether a name a statement holds is a relation the catalog may have (not a function, nor a schema's every table). */
function relation(name: string): boolean {
  return name !== '*' && !name.endsWith('()') && !name.endsWith('.*');
}
