/** Reports of `moe verify`: table, JSON document (docs/verify-report.schema.json), JUnit XML, Markdown. */
import Table from 'cli-table3';
import type { CaseResult } from '../harness/run.js';
import type { OutputComparison } from '../verify/compare.js';
import { fmt, mdText, renderJunitXml, type JunitCase, type Renderers, type ReportHead } from './common.js';

export const VERIFY_SCHEMA = 'moe-kernels/verify-report@1';

export interface VerifyReport extends ReportHead<typeof VERIFY_SCHEMA> {
  seed: number;
  startedAt: string;
  durationMs: number;
  /** skipped: cases not run because the device lacks a feature (never counted as passed or failed). */
  summary: { cases: number; passed: number; failed: number; errors: number; skipped: number; kernels: number };
  kernels: { name: string; entry: string; shader: string; sourceHash: string; math: string; status: KernelStatus; spec?: string; manifest?: string }[];
  cases: CaseResult[];
  /** The binding manifest (--manifest) and its shader, as the manifest names it. */
  manifest?: { file: string; shader: string };
  /** Entries of the manifest without a spec: compiled, not verified. */
  compiledOnly?: { entry: string; shader: string; note?: string; error?: string }[];
}

/** The manifest lines of a report: which manifest bound which shader, and the entries compiled only. */
function manifestLines(report: VerifyReport): string[] {
  if (!report.manifest) return [];
  const out = [`manifest: ${report.manifest.file} (shader ${report.manifest.shader})`];
  for (const c of report.compiledOnly ?? []) {
    out.push(c.error ? `compile FAILED (no spec in the manifest): ${c.entry}: ${c.error}` : `compiled only (no spec in the manifest): ${c.entry}${c.note ? ` — ${c.note}` : ''}`);
  }
  return out;
}

export type KernelStatus = 'PASS' | 'FAIL' | 'SKIP';

/** A kernel's verdict: SKIP when every case was skipped, PASS when every case that ran passed, else FAIL. */
export function kernelStatus(rows: CaseResult[]): KernelStatus {
  if (rows.length > 0 && rows.every((r) => r.status === 'SKIP')) return 'SKIP';
  return rows.every((r) => r.status === 'PASS' || r.status === 'SKIP') ? 'PASS' : 'FAIL';
}

function cosineText(o: OutputComparison[]): string {
  const f = o.filter((x) => x.kind === 'float');
  if (f.length === 0) return '-';
  return Math.min(...f.map((x) => x.cosine ?? 0)).toFixed(6);
}

function worst<K extends 'maxAbs' | 'relMaxAbs'>(o: OutputComparison[], k: K): number | null {
  const vals = o.filter((x) => x.kind === 'float').map((x) => x[k] ?? 0);
  return vals.length === 0 ? null : Math.max(...vals);
}

/** Lines explaining a failing or erroring case: the worst element, counts, and the repro command. */
export function failureLines(r: CaseResult): string[] {
  const lines: string[] = [];
  if (r.status === 'SKIP') return [`skipped: ${r.skipReason ?? 'unknown reason'}`];
  if (r.status === 'ERROR') lines.push(`error: ${r.error ?? 'unknown'}`);
  for (const o of r.outputs) {
    if (o.pass) continue;
    const w = o.worst ?? o.firstViolation;
    const at = w ? ` worst at [${w.index}]: got ${w.got}, expected ${w.expected}` : '';
    lines.push(`${o.name}: ${o.failure};${at}`);
  }
  lines.push(`reproduce: ${r.repro}`);
  return lines;
}

export function renderTable(results: CaseResult[], color: boolean): string {
  const paint = (s: string, code: number): string => (color ? `\u001b[${code}m${s}\u001b[0m` : s);
  const out: string[] = [];
  const byKernel = new Map<string, CaseResult[]>();
  for (const r of results) {
    const list = byKernel.get(r.kernel) ?? [];
    list.push(r);
    byKernel.set(r.kernel, list);
  }
  for (const [kernel, rows] of byKernel) {
    const table = new Table({
      head: ['shape', 'inputs', 'cosine', 'max_abs', 'rel_max_abs', 'status'],
      style: { head: color ? ['cyan'] : [], border: color ? ['grey'] : [] },
    });
    for (const r of rows) {
      const status = r.status === 'PASS' ? paint('PASS', 32) : r.status === 'SKIP' ? paint('SKIP', 33) : paint(r.status, 31);
      table.push([r.shape, r.inputSet, cosineText(r.outputs), fmt(worst(r.outputs, 'maxAbs')), fmt(worst(r.outputs, 'relMaxAbs')), status]);
      if (r.status !== 'PASS') {
        table.push([{ colSpan: 6, content: failureLines(r).join('\n') }]);
      }
    }
    const passed = rows.filter((r) => r.status === 'PASS').length;
    const skipped = rows.filter((r) => r.status === 'SKIP').length;
    out.push(`${kernel} (${rows[0]?.entry}): ${passed}/${rows.length} PASS${skipped > 0 ? `, ${skipped} SKIP` : ''}`);
    out.push(table.toString());
  }
  return out.join('\n');
}

export function summaryLine(results: CaseResult[], ms: number): string {
  const passed = results.filter((r) => r.status === 'PASS').length;
  const failed = results.filter((r) => r.status === 'FAIL').length;
  const errors = results.filter((r) => r.status === 'ERROR').length;
  const skipped = results.filter((r) => r.status === 'SKIP').length;
  const kernels = new Set(results.map((r) => r.kernel)).size;
  // Nothing that ran failed: PASS; nothing ran at all: SKIP (exit 0 either way, and never counted as passed).
  const verdict = failed + errors > 0 ? 'FAIL' : passed === 0 && skipped > 0 ? 'SKIP' : 'PASS';
  const skipText = skipped > 0 ? `, ${skipped} skipped` : '';
  return `${verdict}: ${passed} passed, ${failed} failed, ${errors} errors${skipText} — ${results.length} cases of ${kernels} kernel(s) in ${(ms / 1000).toFixed(2)} s`;
}

/** JUnit XML: one testsuite per kernel, one testcase per kernel × case. */
export function renderJunit(report: VerifyReport): string {
  const byKernel = new Map<string, CaseResult[]>();
  for (const r of report.cases) byKernel.set(r.kernel, [...(byKernel.get(r.kernel) ?? []), r]);
  const properties: [string, string | number][] = [['backend', report.backend], ['device', report.device.name], ['seed', report.seed]];
  if (report.manifest) properties.push(['manifest', report.manifest.file], ['shader', report.manifest.shader]);
  const suites = [...byKernel].map(([kernel, rows]) => ({
    name: kernel,
    properties,
    cases: rows.map((r): JunitCase => {
      const c: JunitCase = { name: `${r.shape} inputs=${r.inputSet}`, seconds: r.ms / 1000 };
      const text = failureLines(r).join('\n');
      if (r.status === 'FAIL') {
        const message = r.outputs.filter((o) => !o.pass).map((o) => `${o.name}: ${o.failure}`).join('; ');
        c.failure = { message, type: 'tolerance', text };
      } else if (r.status === 'ERROR') {
        c.error = { message: r.error ?? '', type: 'runtime', text };
      } else if (r.status === 'SKIP') {
        c.skipped = r.skipReason ?? '';
      }
      return c;
    }),
  }));
  return renderJunitXml('moe verify', report.durationMs / 1000, suites);
}

/** Markdown for CI step summaries. */
export function renderMarkdown(report: VerifyReport): string {
  const s = report.summary;
  const ok = s.failed + s.errors === 0;
  const verdict = !ok ? '❌ FAIL' : s.passed === 0 && s.skipped > 0 ? '⏭️ SKIP' : '✅ PASS';
  const skipText = s.skipped > 0 ? ` (${s.skipped} skipped: never counted as passed)` : '';
  const lines = [
    `## moe verify: ${verdict}`,
    '',
    `${s.passed}/${s.cases} cases passed${skipText} on **${report.backend}** (${report.device.name}), seed ${report.seed}, moe-kernels ${report.tool.version}.`,
    ...manifestLines(report).flatMap((l) => ['', mdText(l)]),
    '',
    '| kernel | entry | cases | passed | status |',
    '|---|---|---:|---:|---|',
  ];
  for (const k of report.kernels) {
    const rows = report.cases.filter((r) => r.kernel === k.name);
    const p = rows.filter((r) => r.status === 'PASS').length;
    const icon = k.status === 'PASS' ? '✅' : k.status === 'SKIP' ? '⏭️ SKIP' : '❌';
    lines.push(`| ${k.name} | \`${k.entry}\` | ${rows.length} | ${p} | ${icon} |`);
  }
  const skippedKernels = new Map<string, string>();
  for (const r of report.cases) if (r.status === 'SKIP' && !skippedKernels.has(r.kernel)) skippedKernels.set(r.kernel, r.skipReason ?? '');
  if (skippedKernels.size > 0) {
    lines.push('', '### Skipped', '');
    for (const [k, why] of skippedKernels) lines.push(`- **${k}**: ${mdText(why)}`);
  }
  const bad = report.cases.filter((r) => r.status === 'FAIL' || r.status === 'ERROR');
  if (bad.length > 0) {
    lines.push('', '### Failures', '');
    for (const r of bad) {
      lines.push(`- **${r.kernel}** ${r.shape} inputs=${r.inputSet}: ${r.status}`);
      for (const l of failureLines(r)) lines.push(`  - \`${mdText(l)}\``);
    }
  }
  return lines.join('\n') + '\n';
}

/** The human report: the header, a table per kernel, the summary line. */
export function renderText(report: VerifyReport, color: boolean): string {
  return [
    `backend: ${report.backend} (${report.device.name}), seed ${report.seed}`,
    ...manifestLines(report),
    renderTable(report.cases, color),
    summaryLine(report.cases, report.durationMs),
  ].join('\n');
}

export const verifyRenderers: Renderers<VerifyReport> = { table: renderText, markdown: renderMarkdown, junit: renderJunit };
