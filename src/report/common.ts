/**
 * What every command's report shares: the renderers a command hands to
 * emit() (table, Markdown, JUnit; --json is the report itself), number
 * formatting, and one JUnit XML writer.
 */

import Table from 'cli-table3';
import type { DeviceInfo } from '../backend/types.js';
import { toolVersion } from '../util/env.js';
import type { OutputComparison } from '../verify/compare.js';

/** The first fields of every report: which document, which tool, where it ran. */
export interface ReportHead<S extends string> {
  schema: S;
  tool: { name: 'moe-kernels'; version: string };
  backend: string;
  device: DeviceInfo;
}

export function reportHead<S extends string>(schema: S, backend: string, device: DeviceInfo): ReportHead<S> {
  return { schema, tool: { name: 'moe-kernels', version: toolVersion() }, backend, device };
}

/** The renderers of one command's report. */
export interface Renderers<R> {
  /** The human report (tables, fitted to `view.width`). */
  table(report: R, view: TableView): string;
  /** Markdown for CI step summaries. */
  markdown(report: R): string;
  /** JUnit XML for CI test views. */
  junit(report: R): string;
}

/** A figure with 4 significant digits, or in exponent form when tiny or huge; '-' for none. */
export const fmt = (v: number | null, digits = 3): string => {
  if (v === null) return '-';
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  if (Math.abs(v) >= 1e-3 && Math.abs(v) < 1e4) return v.toPrecision(digits + 1);
  return v.toExponential(digits - 1);
};

/** Microseconds from nanoseconds, two decimals under 10 µs. */
export const us = (ns: number): string => (ns / 1000).toFixed(ns < 10_000 ? 2 : 1);

/** Text safe inside Markdown inline code and list items. */
export const mdText = (s: string): string => s.replace(/`/g, "'");

/** The worst figures of the float outputs: the lowest cosine, the highest max_abs and rel_max_abs (null when there are none). */
export function floatWorst(outputs: OutputComparison[]): { cosine: number | null; maxAbs: number | null; relMaxAbs: number | null } {
  const f = outputs.filter((o) => o.kind === 'float');
  if (f.length === 0) return { cosine: null, maxAbs: null, relMaxAbs: null };
  return {
    cosine: Math.min(...f.map((o) => o.cosine ?? 0)),
    maxAbs: Math.max(...f.map((o) => o.maxAbs ?? 0)),
    relMaxAbs: Math.max(...f.map((o) => o.relMaxAbs ?? 0)),
  };
}

/** A cosine as tables show it: six decimals, '-' for none. */
export const cosineCell = (v: number | null): string => (v === null ? '-' : v.toFixed(6));

/** Where a failing output went furthest wrong: "worst at [i]: got g, expected e" (null when it has no such element). */
export function worstAt(c: OutputComparison): string | null {
  const w = c.worst ?? c.firstViolation;
  return w ? `worst at [${w.index}]: got ${w.got}, expected ${w.expected}` : null;
}

/** A fitted table's lines (fitTable) for `view`: the table, then the heads of the columns it dropped, if any. */
export function fittedTable(columns: Column[], rows: string[][], view: TableView): string[] {
  const { text, dropped } = fitTable(columns, rows, view.width, view.color);
  return dropped.length > 0 ? [text, ...wrapText(`(not shown at this width: ${dropped.join(', ')}; see --json)`, view.wrapWidth, ' ')] : [text];
}

const xmlEscape = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');

export interface JunitOutcome {
  message: string;
  type: string;
  text: string;
}

export interface JunitCase {
  name: string;
  seconds: number;
  failure?: JunitOutcome;
  error?: JunitOutcome;
  /** Why the case did not run. */
  skipped?: string;
  /** Text for the testcase's <system-out> (e.g. which kernel ran). */
  output?: string;
}

export interface JunitSuite {
  name: string;
  properties: [string, string | number][];
  cases: JunitCase[];
}

/** JUnit XML: a testsuite per suite (testcases classed `moe.<suite>`), counts summed from the cases. */
export function renderJunitXml(name: string, seconds: number, suites: JunitSuite[]): string {
  const count = (cs: JunitCase[]) => ({
    tests: cs.length,
    failures: cs.filter((c) => c.failure).length,
    errors: cs.filter((c) => c.error).length,
    skipped: cs.filter((c) => c.skipped !== undefined).length,
  });
  const attrs = (n: ReturnType<typeof count>, s: number): string =>
    `tests="${n.tests}" failures="${n.failures}" errors="${n.errors}" skipped="${n.skipped}" time="${s.toFixed(3)}"`;
  const all = count(suites.flatMap((s) => s.cases));
  const lines = ['<?xml version="1.0" encoding="UTF-8"?>', `<testsuites name="${xmlEscape(name)}" ${attrs(all, seconds)}>`];
  for (const suite of suites) {
    const t = suite.cases.reduce((a, c) => a + c.seconds, 0);
    lines.push(`  <testsuite name="${xmlEscape(suite.name)}" ${attrs(count(suite.cases), t)}>`);
    lines.push('    <properties>');
    for (const [k, v] of suite.properties) lines.push(`      <property name="${xmlEscape(k)}" value="${xmlEscape(String(v))}"/>`);
    lines.push('    </properties>');
    for (const c of suite.cases) {
      lines.push(`    <testcase classname="moe.${xmlEscape(suite.name)}" name="${xmlEscape(c.name)}" time="${c.seconds.toFixed(3)}">`);
      for (const [tag, o] of [['failure', c.failure], ['error', c.error]] as const) {
        if (o) lines.push(`      <${tag} message="${xmlEscape(o.message)}" type="${xmlEscape(o.type)}">${xmlEscape(o.text)}</${tag}>`);
      }
      if (c.skipped !== undefined) lines.push(`      <skipped message="${xmlEscape(c.skipped)}"/>`);
      if (c.output !== undefined) lines.push(`      <system-out>${xmlEscape(c.output)}</system-out>`);
      lines.push('    </testcase>');
    }
    lines.push('  </testsuite>');
  }
  lines.push('</testsuites>');
  return lines.join('\n') + '\n';
}

/** How the human report is drawn: colour, the columns it may take, every case or a summary. */
export interface TableView {
  color: boolean;
  /** Columns available to tables (terminalWidth()). */
  width: number;
  /**
   * Where long text (failure messages, repro commands) wraps: the terminal's
   * width when known, else Infinity (logs keep each message on one line).
   */
  wrapWidth: number;
  /** Every case, not only the per-kernel summary and the failures. */
  verbose: boolean;
}

/** A column of a fitted table. */
export interface Column {
  head: string;
  /** Which columns go first when the table is too wide: the highest number first; 0 is never dropped. */
  drop: number;
  /** Whether the column's text may wrap onto several lines (else it keeps its width). */
  wrap?: boolean;
  align?: 'left' | 'right';
}

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g;
/** Columns a string takes on a terminal (colour codes take none). */
export const visibleWidth = (s: string): number => Math.max(0, ...s.replace(ANSI, '').split('\n').map((l) => [...l].length));
const longestWord = (s: string): number => Math.max(0, ...s.replace(ANSI, '').split(/\s+/).map((w) => [...w].length));

/**
 * A table that fits `width` columns: wrappable columns shrink to their longest
 * word first, then whole columns are dropped, highest `drop` first, until it
 * fits (what is dropped stays in --json). Rows have no separators between
 * them. Returns the table text and the heads of the dropped columns.
 */
export function fitTable(columns: Column[], rows: string[][], width: number, color: boolean): { text: string; dropped: string[] } {
  let keep = columns.map((_, i) => i);
  const natural = columns.map((c, i) => Math.max(visibleWidth(c.head), ...rows.map((r) => visibleWidth(r[i] ?? ''))));
  const least = columns.map((c, i) => (c.wrap ? Math.max(visibleWidth(c.head), Math.min(natural[i] as number, Math.max(8, ...rows.map((r) => longestWord(r[i] ?? ''))))) : (natural[i] as number)));
  // each column: its text plus one space each side and one border; plus the last border
  const total = (idx: number[], w: number[]): number => idx.reduce((a, i) => a + (w[i] as number) + 3, 1);
  const widths = [...natural];
  const shrink = (): boolean => {
    let over = total(keep, widths) - width;
    if (over <= 0) return true;
    // take from the widest wrappable columns first
    for (;;) {
      const cand = keep.filter((i) => columns[i]?.wrap && (widths[i] as number) > (least[i] as number));
      if (cand.length === 0 || over <= 0) break;
      cand.sort((a, b) => (widths[b] as number) - (widths[a] as number));
      const i = cand[0] as number;
      widths[i] = (widths[i] as number) - 1;
      over--;
    }
    return over <= 0;
  };
  const dropped: string[] = [];
  while (!shrink()) {
    const droppable = keep.filter((i) => (columns[i]?.drop ?? 0) > 0);
    if (droppable.length === 0) break;
    droppable.sort((a, b) => (columns[b]?.drop as number) - (columns[a]?.drop as number) || b - a);
    const out = droppable[0] as number;
    dropped.push(columns[out]?.head ?? '');
    keep = keep.filter((i) => i !== out);
  }
  // the room a dropped column left goes back to the wrapped columns, the most squeezed first
  if (dropped.length > 0) {
    for (let spare = width - total(keep, widths); spare > 0; spare--) {
      const cand = keep.filter((i) => columns[i]?.wrap && (widths[i] as number) < (natural[i] as number));
      if (cand.length === 0) break;
      cand.sort((a, b) => (natural[b] as number) - (widths[b] as number) - ((natural[a] as number) - (widths[a] as number)));
      const i = cand[0] as number;
      widths[i] = (widths[i] as number) + 1;
    }
  }
  const table = new Table({
    head: keep.map((i) => columns[i]?.head ?? ''),
    colWidths: keep.map((i) => (widths[i] as number) + 2),
    colAligns: keep.map((i) => columns[i]?.align ?? 'left'),
    wordWrap: true,
    wrapOnWordBoundary: true,
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
    style: { head: color ? ['cyan'] : [], border: color ? ['grey'] : [] },
  });
  for (const r of rows) table.push(keep.map((i) => r[i] ?? ''));
  const lines = table.toString().split('\n');
  // a rule under the (one-line) head row: the top border with its corners turned into joints
  const top = lines[0] ?? '';
  const rule = top.replace('┌', '├').replace('┐', '┤').replace(/┬/g, '┼');
  if (lines.length > 2) lines.splice(2, 0, rule);
  return { text: lines.join('\n'), dropped };
}

/**
 * Text wrapped to `width` columns at spaces, every line after the first
 * indented by `indent` (a word longer than a line is cut).
 */
export function wrapText(text: string, width: number, indent = ''): string[] {
  const len = (x: string): number => [...x].length;
  const out: string[] = [];
  for (const para of text.split('\n')) {
    let line = out.length === 0 ? '' : indent;
    let empty = true;
    for (let word of para.split(' ')) {
      for (;;) {
        const sep = empty ? '' : ' ';
        if (len(line) + len(sep) + len(word) <= width) {
          line += sep + word;
          empty = false;
          break;
        }
        if (!empty) {
          out.push(line);
          line = indent;
          empty = true;
          continue;
        }
        const room = Math.max(1, width - len(line));
        out.push(line + [...word].slice(0, room).join(''));
        line = indent;
        word = [...word].slice(room).join('');
        if (word === '') break;
      }
    }
    if (!empty) out.push(line);
  }
  return out;
}
