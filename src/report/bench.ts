/** Reports of `moe bench`: table, JSON document (docs/bench-report.schema.json), JUnit XML, Markdown. */
import Table from 'cli-table3';
import type { BaselineResult, Comparison } from '../bench/baseline.js';
import type { BenchCase } from '../bench/run.js';
import { IMPOSSIBLE, renderPhysics, type PhysicsVerdict } from '../bench/physics.js';
import { mdText, renderJunitXml, us, type JunitCase, type JunitSuite, type Renderers, type ReportHead } from './common.js';

export const BENCH_SCHEMA = 'moe-kernels/bench-report@1';

export interface BenchReport extends ReportHead<typeof BENCH_SCHEMA> {
  clock: string;
  peak: { bandwidthGBs: number; source: string } | null;
  seed: number;
  flags: Record<string, unknown>;
  shaders: Record<string, string>;
  startedAt: string;
  cases: BenchCase[];
  baseline?: BaselineResult & { file: string; maxRegression: number };
  /** Kernels not timed: their shader needs a feature the device lacks (e.g. bfloat without MSL 3.1). */
  skipped?: { kernel: string; reason: string }[];
  /** Every case against the device's bandwidth and compute ceilings (src/bench/physics.ts). */
  physics?: PhysicsVerdict;
}

/** Whether the report has the packed-weights columns: when some case is a quantized kernel. */
const hasWeights = (r: BenchReport): boolean => r.cases.some((x) => x.weightGBs !== undefined);

/** A case's packed-weights columns (none when the report has none). */
function weightCells(weights: boolean, c: BenchCase): string[] {
  if (!weights) return [];
  if (c.weightGBs === undefined) return ['-', '-'];
  return [c.weightGBs.toFixed(2), c.weightPctPeak === null || c.weightPctPeak === undefined ? '-' : c.weightPctPeak.toFixed(1)];
}

export function renderBenchTable(r: BenchReport): string {
  const weights = hasWeights(r);
  const t = new Table({
    head: ['kernel', 'shape', 'median µs', 'min µs', 'noise %', 'samples', 'GB/s', 'GFLOP/s', '% peak BW', ...(weights ? ['weights GB/s', 'weights % peak'] : [])],
    style: { head: [], border: [] },
  });
  for (const c of r.cases) {
    t.push([
      c.kernel,
      c.shape,
      us(c.medianNs),
      us(c.minNs),
      (100 * c.noise).toFixed(2),
      `${c.samples}${c.stopReason === 'time' ? ' (time cap)' : ''}`,
      c.gbps.toFixed(2),
      c.gflops.toFixed(2),
      c.pctPeakBandwidth === null ? '-' : c.pctPeakBandwidth.toFixed(1),
      ...weightCells(weights, c),
    ]);
  }
  const lines = [
    `backend: ${r.backend} (${r.device.name}); clock: ${r.clock}`,
    `peak bandwidth: ${r.peak ? `${r.peak.bandwidthGBs.toFixed(1)} GB/s (${r.peak.source})` : 'unknown for this device (use --measure-peak)'}`,
    t.toString(),
  ];
  if (weights) lines.push('weights: the packed weight words alone (not scales, biases or activations), over the same median time');
  for (const k of r.skipped ?? []) lines.push(`SKIP ${k.kernel}: ${k.reason}`);
  if (r.baseline) {
    const b = new Table({ head: ['kernel', 'shape', 'old µs', 'new µs', 'new/old', '± noise %', 'verdict'], style: { head: [], border: [] } });
    for (const c of r.baseline.comparisons) {
      b.push([c.kernel, c.shape, us(c.oldNs), us(c.newNs), c.ratio.toFixed(3), (100 * c.combinedNoise).toFixed(2), c.regression ? 'SLOWER (regression)' : c.verdict]);
    }
    lines.push(`baseline: ${r.baseline.file} (fail beyond ${(100 * r.baseline.maxRegression).toFixed(1)}% + noise)`, b.toString());
    if (r.baseline.missing.length > 0) lines.push(`not in the baseline: ${r.baseline.missing.join('; ')}`);
    const regs = r.baseline.comparisons.filter((c) => c.regression).length;
    lines.push(regs > 0 ? `FAIL: ${regs} regression(s)` : 'PASS: no regression');
  }
  return lines.join('\n') + (r.physics ? renderPhysics(r.physics, false) : '');
}

export function renderBenchMarkdown(r: BenchReport): string {
  const regressions = r.baseline?.comparisons.filter((c) => c.regression).length ?? 0;
  const lines = [
    `## moe bench: ${benchVerdict(r) === 'PASS' ? '✅ PASS' : '❌ FAIL'}`,
    '',
    `${r.cases.length} cases timed on **${r.backend}** (${r.device.name}), seed ${r.seed}, moe-kernels ${r.tool.version}` +
      (r.baseline ? `; ${regressions} regression(s) against ${r.baseline.file}.` : '.'),
    '',
  ];
  const weights = hasWeights(r);
  lines.push(
    `| kernel | shape | median µs | noise % | samples | GB/s | GFLOP/s | % peak BW |${weights ? ' weights GB/s | weights % peak |' : ''}`,
    `|---|---|---:|---:|---:|---:|---:|---:|${weights ? '---:|---:|' : ''}`,
  );
  for (const c of r.cases) {
    const wc = weightCells(weights, c);
    lines.push(`| ${c.kernel} | ${c.shape} | ${us(c.medianNs)} | ${(100 * c.noise).toFixed(2)} | ${c.samples} | ${c.gbps.toFixed(2)} | ${c.gflops.toFixed(2)} | ${c.pctPeakBandwidth === null ? '-' : c.pctPeakBandwidth.toFixed(1)} |${wc.map((x) => ` ${x} |`).join('')}`);
  }
  if (r.skipped && r.skipped.length > 0) {
    lines.push('', '### Skipped (not timed)', '');
    for (const k of r.skipped) lines.push(`- **${k.kernel}**: ${mdText(k.reason)}`);
  }
  if (r.baseline) {
    lines.push('', '| kernel | shape | new/old | verdict |', '|---|---|---:|---|');
    for (const c of r.baseline.comparisons) lines.push(`| ${c.kernel} | ${c.shape} | ${c.ratio.toFixed(3)} | ${c.regression ? '❌ regression' : c.verdict} |`);
  }
  if (r.physics) lines.push(renderPhysics(r.physics, true));
  return lines.join('\n') + '\n';
}

/** PASS, or FAIL when a case is slower than its baseline beyond the noise and --max-regression, or physically impossible. */
export function benchVerdict(r: BenchReport): 'PASS' | 'FAIL' {
  if ((r.physics?.impossible.length ?? 0) > 0) return 'FAIL';
  return r.baseline?.comparisons.some((c) => c.regression) ? 'FAIL' : 'PASS';
}

const regressionText = (c: Comparison, maxRegression: number): string =>
  `${c.kernel} ${c.shape}: ${us(c.newNs)} µs against ${us(c.oldNs)} µs in the baseline (new/old ${c.ratio.toFixed(3)}), ` +
  `slower than ${(100 * maxRegression).toFixed(1)}% beyond the combined noise of ±${(100 * c.combinedNoise).toFixed(2)}%`;

/** JUnit XML: one testsuite per kernel, one testcase per shape (a failure when it regressed against --baseline); kernels not timed are skipped. */
export function renderBenchJunit(r: BenchReport): string {
  const cmp = new Map((r.baseline?.comparisons ?? []).map((c) => [`${c.kernel} | ${c.shape}`, c]));
  const properties: [string, string | number][] = [['backend', r.backend], ['device', r.device.name], ['seed', r.seed], ['clock', r.clock]];
  const suites = new Map<string, JunitSuite>();
  const suite = (name: string): JunitSuite => {
    let s = suites.get(name);
    if (!s) suites.set(name, (s = { name, properties, cases: [] }));
    return s;
  };
  for (const c of r.cases) {
    const tc: JunitCase = { name: c.shape, seconds: (c.samples * c.meanNs) / 1e9 };
    const b = cmp.get(`${c.kernel} | ${c.shape}`);
    if (b?.regression && r.baseline) {
      const text = regressionText(b, r.baseline.maxRegression);
      tc.failure = { message: text, type: 'regression', text: `${text}\nbaseline: ${r.baseline.file}` };
    }
    const imp = r.physics?.impossible.find((x) => x.kernel === c.kernel && x.shape === c.shape);
    if (imp) tc.failure = { message: `${IMPOSSIBLE}: ${imp.reasons.join('; ')}`, type: 'impossible', text: `${IMPOSSIBLE}\n${imp.reasons.join('\n')}` };
    suite(c.kernel).cases.push(tc);
  }
  for (const k of r.skipped ?? []) suite(k.kernel).cases.push({ name: 'not timed', seconds: 0, skipped: k.reason });
  const seconds = [...suites.values()].flatMap((s) => s.cases).reduce((a, c) => a + c.seconds, 0);
  return renderJunitXml('moe bench', seconds, [...suites.values()]);
}

export const benchRenderers: Renderers<BenchReport> = { table: (r) => renderBenchTable(r), markdown: renderBenchMarkdown, junit: renderBenchJunit };
