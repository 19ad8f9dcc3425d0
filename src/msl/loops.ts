/**
 * Loops of kernel code, for the watchdog's cooperative stop: each `for`,
 * `while` and `do` loop gets a poll of the abort flag in its condition, so
 * that it runs at every back-edge. The poll counts iterations in a counter of
 * its own (declared in a block opened around the loop) and reads the flag
 * every MOE_LOOP_POLL_EVERY iterations; a loop that sees it set stops the
 * kernel and reports the loop's `.metal` line (each compat header defines
 * MOE_LOOP_POLL).
 *
 *   for (init; cond; inc) body   →  { unsigned c = 0u; for (init; MOE_LOOP_POLL(c, L) && (cond); inc) body }
 *   while (cond) body            →  { unsigned c = 0u; while (MOE_LOOP_POLL(c, L) && (cond)) body }
 *   do body while (cond);        →  { unsigned c = 0u; do body while (MOE_LOOP_POLL(c, L) && (cond)); }
 *
 * Only insertions: the source keeps its text and its lines. Not instrumented
 * (the watchdog's other means stand): loops written inside macros, range-for
 * loops, conditions that declare a variable, `goto` loops, and a loop right
 * after a preprocessor conditional block that also holds a #pragma.
 */
import type { PpLine, Token } from './lexer.js';
import type { Edit } from './rewrite.js';

export interface LoopSite {
  kind: 'for' | 'while' | 'do';
  /** The loop keyword's line (of the .metal file). */
  line: number;
  /** Where the block around the loop opens and closes (offsets). */
  open: number;
  close: number;
  /** The condition's range; empty (start === end) for `for (init;; inc)`. */
  cond: [number, number];
}

const DECL_START = /^(const|constexpr|auto|unsigned|signed|int|uint|short|long|char|bool|float|half|size_t|thread|device|constant)$/;

/**
 * The loops among `toks` (brackets matched in `match`: index of the partner
 * of each bracket, -1 otherwise). `pp`: the preprocessor lines (a loop right
 * after a #pragma gets its block opened before the pragma).
 */
export function findLoops(toks: Token[], match: Int32Array, pp: PpLine[]): LoopSite[] {
  const text = (i: number): string => (i >= 0 && i < toks.length ? toks[i].text : '');
  const loops: LoopSite[] = [];
  const doWhile = new Set<number>();

  /** Index of the last token of the statement that starts at token i (-1: cannot tell). */
  const stmtEnd = (i: number, depth = 0): number => {
    if (i >= toks.length || depth > 200) return -1;
    const t = text(i);
    if (t === '{') return match[i];
    if (t === 'if') {
      let p = i + 1;
      if (text(p) === 'constexpr') p++;
      if (text(p) !== '(' || match[p] < 0) return -1;
      const e = stmtEnd(match[p] + 1, depth + 1);
      if (e < 0) return -1;
      return text(e + 1) === 'else' ? stmtEnd(e + 2, depth + 1) : e;
    }
    if (t === 'for' || t === 'while' || t === 'switch') {
      if (text(i + 1) !== '(' || match[i + 1] < 0) return -1;
      return stmtEnd(match[i + 1] + 1, depth + 1);
    }
    if (t === 'do') {
      const e = stmtEnd(i + 1, depth + 1);
      if (e < 0 || text(e + 1) !== 'while' || text(e + 2) !== '(' || match[e + 2] < 0) return -1;
      const semi = match[e + 2] + 1;
      return text(semi) === ';' ? semi : -1;
    }
    if (t === 'case' || t === 'default' || (toks[i].kind === 'ident' && text(i + 1) === ':')) {
      for (let j = i + 1; j < toks.length; j++) {
        const x = text(j);
        if (x === '(' || x === '[' || x === '{') j = match[j] < 0 ? j : match[j];
        else if (x === ':') return stmtEnd(j + 1, depth + 1);
        else if (x === ';' || x === '}') return -1;
      }
      return -1;
    }
    for (let j = i; j < toks.length; j++) {
      const x = text(j);
      if (x === '(' || x === '[' || x === '{') {
        if (match[j] < 0) return -1;
        j = match[j];
      } else if (x === ';') return j;
      else if (x === '}' || x === ')' || x === ']') return -1;
    }
    return -1;
  };

  /** Where the block opens: at the loop, or before the #pragma lines right above it. */
  const openAt = (k: number): number | null => {
    const start = toks[k].start;
    const prevEnd = k > 0 ? toks[k - 1].end : 0;
    const between = pp.filter((p) => p.start >= prevEnd && p.end <= start);
    if (between.length === 0) return start;
    if (between.every((p) => p.directive === 'pragma')) return prevEnd;
    // other directives in between: open at the loop unless a pragma sits right above it
    return between[between.length - 1].directive === 'pragma' ? null : start;
  };

  /** A condition that declares a variable (`while (uint x = f())`): left alone. */
  const declares = (a: number, b: number): boolean =>
    b - a >= 3 && toks[a].kind === 'ident' && DECL_START.test(text(a)) && text(a + 1) !== '(' && text(a + 1) !== ')';

  for (let k = 0; k < toks.length; k++) {
    const t = text(k);
    if (t !== 'do' || doWhile.has(k)) continue;
    const e = stmtEnd(k + 1);
    if (e < 0 || text(e + 1) !== 'while') continue;
    doWhile.add(e + 1);
  }
  for (let k = 0; k < toks.length; k++) {
    const t = text(k);
    if (t !== 'for' && t !== 'while' && t !== 'do') continue;
    if (t === 'while' && doWhile.has(k)) continue;
    const open = openAt(k);
    if (open === null) continue;
    if (t === 'do') {
      const e = stmtEnd(k);
      if (e < 0) continue;
      // e is the `;` after `while (cond)`; its `(` is match[e - 1]
      const lp = match[e - 1];
      if (lp < 0 || lp + 1 >= e - 1 || declares(lp + 1, e - 1)) continue;
      loops.push({ kind: 'do', line: toks[k].line, open, close: toks[e].end, cond: [toks[lp + 1].start, toks[e - 2].end] });
      continue;
    }
    const lp = k + 1;
    if (text(lp) !== '(' || match[lp] < 0) continue;
    const rp = match[lp];
    const e = stmtEnd(rp + 1);
    if (e < 0) continue;
    if (t === 'while') {
      if (rp === lp + 1 || declares(lp + 1, rp)) continue;
      loops.push({ kind: 'while', line: toks[k].line, open, close: toks[e].end, cond: [toks[lp + 1].start, toks[rp - 1].end] });
      continue;
    }
    // for: the two `;` at depth 0 inside the parentheses (none: a range-for)
    const semis: number[] = [];
    for (let j = lp + 1; j < rp; j++) {
      const x = text(j);
      if (x === '(' || x === '[' || x === '{') j = match[j] < 0 ? j : match[j];
      else if (x === ';') semis.push(j);
    }
    if (semis.length !== 2) continue;
    const [s1, s2] = semis as [number, number];
    const cond: [number, number] = s2 === s1 + 1 ? [toks[s1].end, toks[s1].end] : [toks[s1 + 1].start, toks[s2 - 1].end];
    if (s2 > s1 + 1 && declares(s1 + 1, s2)) continue;
    loops.push({ kind: 'for', line: toks[k].line, open, close: toks[e].end, cond });
  }
  return loops;
}

/** The insertions that instrument the loops (the same text for every emitter: each header defines MOE_LOOP_POLL). */
export function loopEdits(loops: LoopSite[]): Edit[] {
  const edits: Edit[] = [];
  loops.forEach((l, i) => {
    const c = `__moe_loop${i}`;
    const poll = `MOE_LOOP_POLL(${c}, ${l.line})`;
    edits.push({ start: l.open, end: l.open, inPp: false, text: `{ unsigned ${c} = 0u; ` });
    if (l.cond[0] === l.cond[1]) {
      edits.push({ start: l.cond[0], end: l.cond[0], inPp: false, text: ` ${poll}` });
    } else {
      edits.push({ start: l.cond[0], end: l.cond[0], inPp: false, text: `${poll} && (` });
      edits.push({ start: l.cond[1], end: l.cond[1], inPp: false, text: ')' });
    }
    edits.push({ start: l.close, end: l.close, inPp: false, text: ' }' });
  });
  return edits;
}
