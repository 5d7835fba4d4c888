/**
 * A session's judge that judges relations through the catalog: with rules on tables, each
 * relation a statement names counts as the relations under it too, as the connection's catalog
 * says (./relation-reads.ts: a view's tables through other views, a table's rules, its partitions
 * and parents). So `DELETE FROM v` over a table a rule guards is that rule's, as the server would
 * run it. What the catalog cannot tell is `*`, which every rule on tables matches:
 * - a name it does not have (a temporary relation, one made in an open transaction); one this
 *   session made or redefined is what its statements named beside it too (a temporary view, or
 *   one not committed yet, is what it was made of), for the session's life;
 * - a name another session's open transaction may redefine (its DDL names it, or a DO block or
 *   CALL may redefine anything): the catalog shows the old definition, and a statement that waits
 *   on the new one's locks runs with it; it settles when that transaction ends.
 *
 * The names a message's statements hold are looked up before it is judged ({@link pending}), so
 * the judgment itself stays synchronous; what the lookups could not answer is `*`.
 */
import { analyzeSql, type Analysis } from '../../policy/sql/analyze.js';
import { REDEFINING_KINDS } from '../../policy/touched.js';
import type { SessionJudge, StatementVerdict } from '../../session/engine.js';
import { bareName as bare, type RelationReads } from './relation-reads.js';

/** A judge that judges relations as what is under them (src/policy/decide.ts's StatementJudge, with rules on tables). */
type JudgeUnder = SessionJudge & Required<Pick<SessionJudge, 'judgeUnder'>>;

const ANY = ['*'] as const;
/** Names this session made or redefined, kept. */
const MAX_OWN = 1000;

/** `judge` for one session, relations judged through `reads`' catalog (see the module documentation); it also tells `reads` of each redefinition. */
export class CatalogJudge implements SessionJudge {
  readonly #judge: SessionJudge;
  readonly #reads: RelationReads;
  /** Whether relations are judged through the catalog: some rule names tables. */
  readonly #through: JudgeUnder | undefined;
  /** What this session made or redefined, by bare name: the other relations named beside it (the oldest go past {@link MAX_OWN}: the catalog's answer, or `*`, stands). */
  readonly #own = new Map<string, Set<string>>();
  /** This session's open transaction may redefine relations: other sessions judge them as anything until it ends. */
  #redefining = false;
  /** This session's open transaction ran code that may redefine anything (a DO block, a CALL). */
  #ownAny = false;

  constructor(judge: SessionJudge, reads: RelationReads) {
    this.#judge = judge;
    this.#reads = reads;
    this.#through = judge.tableRules && judge.judgeUnder ? (judge as JudgeUnder) : undefined;
  }

  get limitsRows(): boolean | undefined {
    return this.#judge.limitsRows;
  }

  ownBackend(pid: number): void {
    this.#judge.ownBackend?.(pid);
  }

  judge(sql: string, analysis?: Analysis): StatementVerdict {
    const verdict = this.#through ? this.#through.judgeUnder(sql, analysis, this.#under) : this.#judge.judge(sql, analysis);
    if (verdict.touched?.redefines && verdict.action !== 'deny') this.#redefines(sql, analysis);
    return verdict;
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
      for (const t of tables) if (relation(t) && this.#reads.under(t) === undefined) missing.push(t);
    }
    return missing.length > 0 ? this.#reads.prefetch(missing) : undefined;
  }

  /** The session's transaction ended (its server idle outside a transaction block), or the session did: what it redefined settles. */
  ended(): void {
    if (!this.#redefining) return;
    this.#redefining = false;
    this.#ownAny = false;
    this.#reads.redefined(this);
  }

  readonly #under = (name: string): readonly string[] => {
    if (!relation(name)) return [];
    const b = bare(name);
    if (this.#ownAny || this.#reads.inFlux(b, this)) return ANY;
    const catalog = this.#reads.under(name) ?? ANY;
    const own = this.#own.get(b);
    if (!own) return catalog;
    // Made or redefined here (perhaps not committed, or temporary): what its statements named, and what the catalog has (if it has it).
    return catalog.includes('*') ? [...own] : [...own, ...catalog];
  };

  /** Notes that this session made or changed `name` beside `others`. */
  #note(name: string, others: readonly string[]): void {
    const made = this.#own.get(name) ?? new Set<string>();
    for (const other of others) made.add(other);
    this.#own.delete(name);
    this.#own.set(name, made);
    if (this.#own.size > MAX_OWN) this.#own.delete(this.#own.keys().next().value!);
  }

  /** Notes what `sql`, which may redefine relations, names: this session's later statements read it so, and others' as anything until its transaction ends. */
  #redefines(sql: string, analysis: Analysis | undefined): void {
    const a = analysis ?? analyzeSql(sql);
    const names: string[] = [];
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
        // A relation renamed here may be anything under its new name (what was under the old one is not followed).
        if (st.ddl?.kind === 'renamed') {
          this.#note(st.ddl.relation.relation.toLowerCase(), ANY);
          names.push(st.ddl.relation.relation.toLowerCase());
        }
      }
    }
    this.#redefining = true;
    this.#reads.changed(this.#ownAny ? ANY : names);
    this.#reads.redefining(this, this.#ownAny ? ANY : names);
  }
}

/** Whether a name a statement holds is a relation the catalog may have (not a function, nor a schema's every table). */
function relation(name: string): boolean {
  return name !== '*' && !name.endsWith('()') && !name.endsWith('.*');
}
