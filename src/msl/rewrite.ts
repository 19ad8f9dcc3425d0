/**
 * Applies edits (replacements of source ranges) to the user's source, keeping
 * its line structure: an edit whose replaced text spans lines is followed by
 * as many line breaks as it removed, so every line after it keeps its number
 * (inside a preprocessor directive the breaks are escaped with `\`).
 */

export type Render = (start: number, end: number) => string;

export interface Edit {
  start: number;
  end: number;
  inPp: boolean;
  /** The replacement, or a function of a renderer of sub-ranges (nested edits applied). */
  text: string | ((render: Render) => string);
}

const countNewlines = (s: string): number => {
  let n = 0;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) === 10) n++;
  return n;
};

export function applyEdits(source: string, edits: Edit[]): string {
  // By start; at one start, insertions (empty ranges) before the edit that replaces text there.
  const sorted = [...edits].sort((a, b) => a.start - b.start || Number(a.end > a.start) - Number(b.end > b.start) || b.end - a.end);
  const render = (from: number, to: number, keepLines: boolean): string => {
    let out = '';
    let cur = from;
    // first edit starting at or after `from` (edits are sorted by start)
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid].start < from) lo = mid + 1;
      else hi = mid;
    }
    for (let k = lo; k < sorted.length; k++) {
      const e = sorted[k];
      if (e.start >= to) break;
      if (e.start < cur || e.end > to) continue; // nested in an edit already applied, or crossing `to`
      out += source.slice(cur, e.start);
      let text = typeof e.text === 'string' ? e.text : e.text((a, b) => render(a, b, false));
      if (keepLines) {
        const missing = countNewlines(source.slice(e.start, e.end)) - countNewlines(text);
        if (missing > 0) text += (e.inPp ? ' \\\n' : '\n').repeat(missing);
      }
      out += text;
      cur = e.end;
    }
    return out + source.slice(cur, to);
  };
  return render(0, source.length, true);
}
