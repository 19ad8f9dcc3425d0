/** Reports of `moe verify`: table, JSON document (docs/verify-report.schema.json), JUnit XML, Markdown. */
import type { CaseResult } from '../harness/run.js';
import type { CaseList, ShardOf } from '../kernels/shard.js';
import type { OutputComparison } from '../verify/compare.js';
import { fitTable, fittedTable, fmt, mdText, renderJunitXml, wrapText, type Column, type JunitCase, type Renderers, type ReportHead, type TableView } from './common.js';

export const VERIFY_SCHEMA = 'moe-kernels/verify-report@1';

export interface VerifyReport extends ReportHead<typeof VERIFY_SCHEMA> {
  seed: number;
  /** --shard i/n: this report holds one share of the cases (`moe merge` combines the shares). */
  shard?: ShardOf;
  /** The whole run's cases, before any sharding: what `moe merge` checks the shares against. */
  caseList?: CaseList;
  /** The shard reports a `moe merge` report was made of. */
  mergedFrom?: { shards: number; files: string[] };
  startedAt: string;
  durationMs: number;
  /** skipped: cases not run because the device lacks a feature (never counted as passed or failed). */
  /** The user's --shader (null: ours under shaders/). */
  userShader: string | null;
  /**
   * kernelErrors: kernels that did not run at all (their shader does not
   * compile, or its signature does not match the spec): exit 2.
   */
  summary: { cases: number; passed: number; failed: number; errors: number; skipped: number; kernels: number; kernelErrors: number };
  kernels: VerifyKernel[];
  cases: CaseResult[];
  /** The signal that ended the run early (SIGINT, SIGTERM): the report holds what finished. */
  interrupted?: string;
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

export interface VerifyKernel {
  name: string;
  entry: string;
  shader: string;
  /** null when the shader never compiled. */
  sourceHash: string | null;
  math: string;
  status: KernelStatus;
  /** Why the kernel did not run (status ERROR): 'compile' (the shader does not compile) or 'signature' (it does not match the spec). */
  error?: { type: 'compile' | 'signature'; message: string };
  /** Set when outputs were never written: the kernel may be launched or bound otherwise than the spec says. */
  hint?: string;
  /** With --manifest: the catalog spec the entry is verified against, and the manifest. */
  spec?: string;
  manifest?: string;
}

/** The summary of a run's cases and kernels. */
export function verifySummary(cases: CaseResult[], kernels: VerifyKernel[]): VerifyReport['summary'] {
  const count = (status: CaseResult['status']): number => cases.filter((r) => r.status === status).length;
  return {
    cases: cases.length,
    passed: count('PASS'),
    failed: count('FAIL'),
    errors: count('ERROR'),
    skipped: count('SKIP'),
    kernels: kernels.length,
    kernelErrors: kernels.filter((k) => k.status === 'ERROR').length,
  };
}

/** ERROR: the kernel did not run (compile error, signature mismatch). */
export type KernelStatus = 'PASS' | 'FAIL' | 'SKIP' | 'ERROR';

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

const paint = (color: boolean, s: string, code: number): string => (color ? `\u001b[${code}m${s}\u001b[0m` : s);
const statusText = (color: boolean, s: string): string => paint(color, s, s === 'PASS' ? 32 : s === 'SKIP' ? 33 : 31);

/** Every case of each kernel, a fitted table per kernel (--verbose). */
export function renderCaseTables(results: CaseResult[], view: TableView): string[] {
  const out: string[] = [];
  const byKernel = new Map<string, CaseResult[]>();
  for (const r of results) byKernel.set(r.kernel, [...(byKernel.get(r.kernel) ?? []), r]);
  const columns: Column[] = [
    { head: 'shape', drop: 0, wrap: true },
    { head: 'inputs', drop: 0 },
    { head: 'origin', drop: 4, wrap: true },
    { head: 'cosine', drop: 2, align: 'right' },
    { head: 'max_abs', drop: 3, align: 'right' },
    { head: 'rel_max_abs', drop: 1, align: 'right' },
    { head: 'status', drop: 0 },
  ];
  for (const [kernel, rows] of byKernel) {
    const cells = rows.map((r) => [r.shape, r.inputSet, r.origin, cosineText(r.outputs), fmt(worst(r.outputs, 'maxAbs')), fmt(worst(r.outputs, 'relMaxAbs')), statusText(view.color, r.status)]);
    const passed = rows.filter((r) => r.status === 'PASS').length;
    const skipped = rows.filter((r) => r.status === 'SKIP').length;
    out.push(`${kernel} (${rows[0]?.entry}): ${passed}/${rows.length} PASS${skipped > 0 ? `, ${skipped} SKIP` : ''}`);
    out.push(fitTable(columns, cells, view.width, view.color).text);
  }
  return out;
}

/**
 * The worst of a kernel's cases over the float outputs whose rule bounds the
 * figure (a rule may leave cosine or rel_max_abs unbounded for inputs where
 * they mean nothing, e.g. an all-zero reference): the lowest cosine, the
 * highest rel_max_abs, and the largest share of its limit either one used.
 */
export function kernelWorst(rows: CaseResult[]): { cosine: number | null; rel: number | null; used: number | null } {
  let cosine: number | null = null;
  let rel: number | null = null;
  let used: number | null = null;
  for (const o of rows.flatMap((r) => r.outputs)) {
    if (o.kind !== 'float' || o.rule.kind !== 'float') continue;
    const { minCosine, maxRelMaxAbs } = o.rule;
    if (o.cosine !== null && minCosine > 0 && minCosine < 1) {
      cosine = Math.min(cosine ?? Infinity, o.cosine);
      used = Math.max(used ?? 0, (1 - o.cosine) / (1 - minCosine));
    }
    if (o.relMaxAbs !== null && Number.isFinite(maxRelMaxAbs) && maxRelMaxAbs > 0) {
      rel = Math.max(rel ?? 0, o.relMaxAbs);
      used = Math.max(used ?? 0, o.relMaxAbs / maxRelMaxAbs);
    }
  }
  return { cosine, rel, used };
}

/** One row per kernel: cases, passed, failed (with errors), skipped, the worst figures, the verdict. */
export function renderKernelSummary(report: VerifyReport, view: TableView): string {
  const columns: Column[] = [
    { head: 'kernel', drop: 0, wrap: true },
    { head: 'entry', drop: 4, wrap: true },
    { head: 'cases', drop: 0, align: 'right' },
    { head: 'pass', drop: 0, align: 'right' },
    { head: 'fail', drop: 0, align: 'right' },
    { head: 'skip', drop: 6, align: 'right' },
    { head: 'worst cosine', drop: 2, align: 'right' },
    { head: 'worst rel_max_abs', drop: 1, align: 'right' },
    { head: 'of limit %', drop: 3, align: 'right' },
    { head: 'time s', drop: 5, align: 'right' },
    { head: 'status', drop: 0 },
  ];
  const rows = report.kernels.map((k) => {
    const cs = report.cases.filter((r) => r.kernel === k.name);
    const w = kernelWorst(cs);
    const count = (st: string[]): string => (k.status === 'ERROR' ? '-' : String(cs.filter((r) => st.includes(r.status)).length));
    return [
      k.name,
      k.entry,
      k.status === 'ERROR' ? '-' : String(cs.length),
      count(['PASS']),
      count(['FAIL', 'ERROR']),
      count(['SKIP']),
      w.cosine === null ? '-' : w.cosine.toFixed(6),
      fmt(w.rel),
      w.used === null ? '-' : 100 * w.used < 1000 ? (100 * w.used).toFixed(1) : fmt(100 * w.used, 2),
      (cs.reduce((a, r) => a + r.ms, 0) / 1000).toFixed(2),
      statusText(view.color, k.status),
    ];
  });
  // no skip column when nothing was skipped
  const skipAt = columns.findIndex((c) => c.head === 'skip');
  const anySkip = report.cases.some((r) => r.status === 'SKIP');
  const cols = anySkip ? columns : columns.filter((_, i) => i !== skipAt);
  const cells = anySkip ? rows : rows.map((r) => r.filter((_, i) => i !== skipAt));
  return fittedTable(cols, cells, view).join('\n');
}

/** The kernels that did not run and the cases that failed, in full, wrapped to the width. */
export function failureText(report: VerifyReport, width: number): string[] {
  const out: string[] = [];
  for (const k of report.kernels) {
    if (!k.error) continue;
    out.push(...wrapText(`${k.name} (${k.entry}, ${k.shader}): ERROR: ${k.error.message}`, width, '    '));
  }
  for (const r of report.cases) {
    if (r.status !== 'FAIL' && r.status !== 'ERROR') continue;
    out.push(...wrapText(`${r.kernel} ${r.shape} inputs=${r.inputSet} (${r.origin}): ${r.status}`, width, '    '));
    for (const l of failureLines(r)) out.push(...wrapText(`  ${l}`, width, '    '));
  }
  return out;
}

/** The verdict line: PASS, FAIL, ERROR (kernels that did not run), SKIP (nothing ran), or INTERRUPTED. */
export function summaryLine(report: VerifyReport): string {
  const results = report.cases;
  const passed = results.filter((r) => r.status === 'PASS').length;
  const failed = results.filter((r) => r.status === 'FAIL').length;
  const errors = results.filter((r) => r.status === 'ERROR').length;
  const skipped = results.filter((r) => r.status === 'SKIP').length;
  const kernelErrors = report.kernels.filter((k) => k.status === 'ERROR').length;
  // Nothing that ran failed: PASS; nothing ran at all: SKIP (exit 0 either way, and never counted as passed).
  const verdict = report.interrupted
    ? `INTERRUPTED (${report.interrupted})`
    : kernelErrors > 0
      ? 'ERROR'
      : failed + errors > 0
        ? 'FAIL'
        : passed === 0 && skipped > 0
          ? 'SKIP'
          : 'PASS';
  const skipText = skipped > 0 ? `, ${skipped} skipped` : '';
  const notRun = kernelErrors > 0 ? `, ${kernelErrors} kernel(s) did not compile or match` : '';
  return `${verdict}: ${passed} passed, ${failed} failed, ${errors} errors${skipText}${notRun} — ${results.length} cases of ${report.kernels.length} kernel(s) in ${(report.durationMs / 1000).toFixed(2)} s`;
}

const setupCase = (shader: string, entry: string, e: { type: string; message: string }): JunitCase => ({
  name: `compile and check ${shader} (${entry})`,
  seconds: 0,
  error: { message: e.message, type: e.type, text: e.message },
});

/** A case's test name: its shape, input set and (unless from flags) where the shape comes from. */
export const caseName = (r: CaseResult): string => `${r.shape} inputs=${r.inputSet}${r.origin === 'cli' ? '' : ` [${r.origin}]`}`;

/**
 * JUnit XML: one testsuite per kernel, one testcase per kernel × case; a
 * kernel that did not run (compile error, signature mismatch) is one
 * testcase with an <error>.
 */
export function renderJunit(report: VerifyReport): string {
  const hints = new Map(report.kernels.filter((k) => k.hint).map((k) => [k.name, k.hint as string]));
  const byKernel = new Map<string, CaseResult[]>();
  for (const r of report.cases) byKernel.set(r.kernel, [...(byKernel.get(r.kernel) ?? []), r]);
  const properties: [string, string | number][] = [['backend', report.backend], ['device', report.device.name], ['seed', report.seed]];
  if (report.manifest) properties.push(['manifest', report.manifest.file], ['shader', report.manifest.shader]);
  const suites = report.kernels.map((k) => ({ name: k.name, rows: byKernel.get(k.name) ?? [], kernel: k })).map(({ name, rows, kernel }) => ({
    name,
    properties,
    cases: (kernel.error ? [setupCase(kernel.shader, kernel.entry, kernel.error)] : []).concat(rows.map((r): JunitCase => {
      const c: JunitCase = { name: caseName(r), seconds: r.ms / 1000 };
      const hint = r.status === 'FAIL' ? hints.get(r.kernel) : undefined;
      const text = [...failureLines(r), ...(hint ? [`hint: ${hint}`] : [])].join('\n');
      if (r.status === 'FAIL') {
        const message = r.outputs.filter((o) => !o.pass).map((o) => `${o.name}: ${o.failure}`).join('; ');
        c.failure = { message, type: 'tolerance', text };
      } else if (r.status === 'ERROR') {
        c.error = { message: r.error ?? '', type: 'runtime', text };
      } else if (r.status === 'SKIP') {
        c.skipped = r.skipReason ?? '';
      }
      return c;
    })),
  }));
  return renderJunitXml('moe verify', report.durationMs / 1000, suites);
}

/** Markdown for CI step summaries. */
export function renderMarkdown(report: VerifyReport): string {
  const s = report.summary;
  const ok = s.failed + s.errors === 0;
  const verdict = report.interrupted
    ? `⚠️ INTERRUPTED (${report.interrupted})`
    : s.kernelErrors > 0
      ? '❌ ERROR'
      : !ok
        ? '❌ FAIL'
        : s.passed === 0 && s.skipped > 0
          ? '⏭️ SKIP'
          : '✅ PASS';
  const skipText = s.skipped > 0 ? ` (${s.skipped} skipped: never counted as passed)` : '';
  const lines = [
    `## moe verify: ${verdict}`,
    '',
    `${s.passed}/${s.cases} cases passed${skipText} on **${report.backend}** (${report.device.name}), seed ${report.seed}, moe-kernels ${report.tool.version}` +
      `${report.userShader ? `; shader \`${mdText(report.userShader)}\`` : ''}${report.manifest ? `; manifest \`${mdText(report.manifest.file)}\`` : ''}.`,
    ...manifestLines(report).flatMap((l) => ['', mdText(l)]),
    '',
    '| kernel | entry | cases | passed | status |',
    '|---|---|---:|---:|---|',
  ];
  for (const k of report.kernels) {
    const rows = report.cases.filter((r) => r.kernel === k.name);
    const p = rows.filter((r) => r.status === 'PASS').length;
    const icon = k.status === 'PASS' ? '✅' : k.status === 'SKIP' ? '⏭️ SKIP' : k.status === 'ERROR' ? '❌ ERROR' : '❌';
    lines.push(`| ${k.name} | \`${k.entry}\` | ${rows.length} | ${p} | ${icon} |`);
  }
  const skippedKernels = new Map<string, string>();
  for (const r of report.cases) if (r.status === 'SKIP' && !skippedKernels.has(r.kernel)) skippedKernels.set(r.kernel, r.skipReason ?? '');
  if (skippedKernels.size > 0) {
    lines.push('', '### Skipped', '');
    for (const [k, why] of skippedKernels) lines.push(`- **${k}**: ${mdText(why)}`);
  }
  const hinted = report.kernels.filter((k) => k.hint);
  if (hinted.length > 0) {
    lines.push('', '### Hints', '');
    for (const k of hinted) lines.push(`- **${k.name}**: ${mdText(k.hint ?? '')}`);
  }
  const bad = report.cases.filter((r) => r.status === 'FAIL' || r.status === 'ERROR');
  const notRun = report.kernels.filter((k) => k.error);
  if (notRun.length > 0) {
    lines.push('', '### Kernels that did not run', '');
    for (const k of notRun) lines.push(`- **${k.name}** (\`${k.entry}\`, ${mdText(k.shader)}): ${k.error?.type} error`, ...(k.error?.message ?? '').split('\n').map((l) => `  - \`${mdText(l)}\``));
  }
  if (bad.length > 0) {
    lines.push('', '### Failures', '');
    for (const r of bad) {
      lines.push(`- **${r.kernel}** ${caseName(r)}: ${r.status}`);
      for (const l of failureLines(r)) lines.push(`  - \`${mdText(l)}\``);
    }
  }
  return lines.join('\n') + '\n';
}

/** The header: backend, device, seed, and the user's shader and manifest when given. */
export function headerLine(report: VerifyReport): string {
  const parts = [`moe verify: backend ${report.backend} (${report.device.name}), seed ${report.seed}`];
  if (report.userShader) parts.push(`shader ${report.userShader}`);
  if (report.manifest) parts.push(`manifest ${report.manifest.file}`);
  return parts.join('; ');
}

/**
 * The human report: the header; with --verbose a table of every case per
 * kernel; a row per kernel; the failures in full; the verdict.
 */
export function renderText(report: VerifyReport, view: TableView): string {
  const failures = failureText(report, view.wrapWidth);
  return [
    ...wrapText(headerLine(report), view.wrapWidth, '  '),
    ...manifestLines(report),
    ...(view.verbose ? renderCaseTables(report.cases, view) : []),
    renderKernelSummary(report, view),
    ...report.kernels.filter((k) => k.hint).map((k) => `hint (${k.name}): ${k.hint}`),
    ...(failures.length > 0 ? ['Failures:', ...failures] : []),
    summaryLine(report),
  ].join('\n');
}

export const verifyRenderers: Renderers<VerifyReport> = { table: renderText, markdown: renderMarkdown, junit: renderJunit };
