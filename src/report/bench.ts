/** Reports of `moe bench`: table, JSON document (docs/bench-report.schema.json), JUnit XML, Markdown. */
import { gateSummary, intervalLabel, verdictLabel, type GateComparison, type GateResult } from '../bench/gate.js';
import type { BenchCase } from '../bench/run.js';
import type { CaseList, ShardOf } from '../kernels/shard.js';
import { IMPOSSIBLE, renderPhysics, type PhysicsVerdict } from '../bench/physics.js';
import { fittedTable, mdText, renderJunitXml, us, wrapText, type Column, type JunitCase, type JunitSuite, type Renderers, type ReportHead, type TableView } from './common.js';

export const BENCH_SCHEMA = 'moe-kernels/bench-report@1';

export interface BenchReport extends ReportHead<typeof BENCH_SCHEMA> {
  clock: string;
  peak: { bandwidthGBs: number; source: string } | null;
  /** The binding manifest (--manifest) of the kernels timed, and its shader. */
  manifest?: { file: string; shader: string };
  seed: number;
  /** --shard i/n: this report holds one share of the cases (`moe merge` combines the shares). */
  shard?: ShardOf;
  /** The whole run's cases, before any sharding: what `moe merge` checks the shares against. */
  caseList?: CaseList;
  /** The shard reports a `moe merge` report was made of. */
  mergedFrom?: { shards: number; files: string[] };
  flags: Record<string, unknown>;
  shaders: Record<string, string>;
  startedAt: string;
  cases: BenchCase[];
  baseline?: GateResult & { file: string; maxRegression: number; baselineShader?: string };
  /** Kernels not timed: their shader needs a feature the device lacks (e.g. bfloat without MSL 3.1). */
  skipped?: { kernel: string; reason: string }[];
  /** Every case against the device's bandwidth and compute ceilings (src/bench/physics.ts). */
  physics?: PhysicsVerdict;
  /** The signal that ended the run early (SIGINT, SIGTERM): the report holds the cases that finished. */
  interrupted?: string;
}

/** Whether the report has the packed-weights columns: when some case is a quantized kernel. */
const hasWeights = (r: BenchReport): boolean => r.cases.some((x) => x.weightGBs !== undefined);

/** A case's packed-weights columns (none when the report has none). */
function weightCells(weights: boolean, c: BenchCase): string[] {
  if (!weights) return [];
  if (c.weightGBs === undefined) return ['-', '-'];
  return [c.weightGBs.toFixed(2), c.weightPctPeak === null || c.weightPctPeak === undefined ? '-' : c.weightPctPeak.toFixed(1)];
}

/** A bench table's column: a head and when it goes at a narrow width (fitTable). */
const col = (head: string, drop: number, wrap = false, align: Column['align'] = 'right'): Column => ({ head, drop, wrap, align });

/**
 * The human report: the backend and peak, a row per case and, with
 * --baseline, a row per comparison. Where the width is known (COLUMNS, a
 * terminal) both tables fit it (the columns left out are named, and stay in
 * --json) and every other line wraps; in a log, where it is not, each row
 * keeps all its figures on one line, as runs are compared line by line.
 */
export function renderBenchTable(r: BenchReport, given: TableView): string {
  const view: TableView = Number.isFinite(given.wrapWidth) ? given : { ...given, width: Infinity };
  const weights = hasWeights(r);
  const text = (line: string): string[] => wrapText(line, view.wrapWidth, '  ');
  const columns: Column[] = [
    col('kernel', 0, true, 'left'),
    col('shape', 0, true, 'left'),
    col('median µs', 0),
    col('min µs', 8),
    col('noise %', 5),
    col('samples', 7, true),
    col('GB/s', 1),
    col('GFLOP/s', 6),
    col('% peak BW', 3),
    ...(weights ? [col('weights GB/s', 2), col('weights % peak', 4)] : []),
  ];
  const rows = r.cases.map((c) => [
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
  const lines = [
    ...text(`backend: ${r.backend} (${r.device.name}); clock: ${r.clock}`),
    ...text(`peak bandwidth: ${r.peak ? `${r.peak.bandwidthGBs.toFixed(1)} GB/s (${r.peak.source})` : 'unknown for this device (use --measure-peak)'}`),
    ...fittedTable(columns, rows, view),
  ];
  if (weights) lines.push(...text('weights: the packed weight words alone (not scales, biases or activations), over the same median time'));
  if (r.manifest) lines.push(...text(`manifest: ${r.manifest.file} (shader ${r.manifest.shader})`));
  for (const k of r.skipped ?? []) lines.push(...text(`SKIP ${k.kernel}: ${k.reason}`));
  if (r.baseline) {
    const b = r.baseline;
    const gate: Column[] = [
      col('kernel', 0, true, 'left'),
      col('shape', 0, true, 'left'),
      col('old µs', 4),
      col('new µs', 3),
      col('new/old', 0),
      col('99% interval', 2),
      col('evidence', 5, true, 'left'),
      col('verdict', 0, false, 'left'),
    ];
    const cells = b.comparisons.map((c) => [c.kernel, c.shape, us(c.oldNs), us(c.newNs), c.ratio.toFixed(3), intervalLabel(c), c.method, verdictLabel(c, b.strict)]);
    lines.push(
      ...text(`baseline: ${b.file}${b.baselineShader ? ` (old code: ${b.baselineShader})` : ''} (fail when slower than ${(100 * b.maxRegression).toFixed(1)}% beyond the spread between runs)`),
      ...fittedTable(gate, cells, view),
    );
    if (b.missing.length > 0) lines.push(...text(`not in the baseline: ${b.missing.join('; ')}`));
    lines.push(...text(gateSummary(b)));
  }
  if (r.physics) for (const l of renderPhysics(r.physics, false).split('\n').filter((x) => x !== '')) lines.push(...text(l));
  if (r.interrupted) lines.push(...text(interruptedLine(r)));
  return lines.join('\n');
}

/** The closing line of a run cut short by a signal. */
function interruptedLine(r: BenchReport): string {
  const flags = r.flags as { baseline?: unknown };
  const gate = typeof flags.baseline === 'string' && !r.baseline ? `; not compared with the baseline ${flags.baseline}` : '';
  return `INTERRUPTED (${r.interrupted}): ${r.cases.length} case(s) timed before the run stopped${gate}; the cases not timed are not in this report`;
}

export function renderBenchMarkdown(r: BenchReport): string {
  const regressions = r.baseline?.comparisons.filter((c) => c.regression).length ?? 0;
  const lines = [
    `## moe bench: ${r.interrupted ? `⚠️ INTERRUPTED (${r.interrupted})` : benchVerdict(r) === 'PASS' ? '✅ PASS' : '❌ FAIL'}`,
    '',
    `${r.cases.length} cases timed on **${r.backend}** (${r.device.name}), seed ${r.seed}, moe-kernels ${r.tool.version}` +
      (r.baseline ? `; ${regressions} regression(s) against ${r.baseline.file}.` : '.'),
    '',
    ...(r.manifest ? [`manifest: ${r.manifest.file} (shader ${r.manifest.shader})`, ''] : []),
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
    for (const c of r.baseline.comparisons) lines.push(`| ${c.kernel} | ${c.shape} | ${c.ratio.toFixed(3)} | ${c.regression ? '❌ regression' : verdictLabel(c, r.baseline.strict)} |`);
  }
  if (r.physics) lines.push(renderPhysics(r.physics, true));
  if (r.interrupted) lines.push('', mdText(interruptedLine(r)));
  return lines.join('\n') + '\n';
}

/** PASS, or FAIL when the gate fails (a SLOWER case; with --strict an AMBIGUOUS one too), or a case is physically impossible. */
export function benchVerdict(r: BenchReport): 'PASS' | 'FAIL' {
  if ((r.physics?.impossible.length ?? 0) > 0) return 'FAIL';
  return r.baseline?.fails ? 'FAIL' : 'PASS';
}

const regressionText = (c: GateComparison, maxRegression: number): string =>
  `${c.kernel} ${c.shape}: ${us(c.newNs)} µs against ${us(c.oldNs)} µs in the baseline (new/old ${c.ratio.toFixed(3)}, 99% interval ${intervalLabel(c)}, ${c.method}), ` +
  `${c.verdict === 'ambiguous' ? 'neither within nor beyond' : 'slower than'} ${(100 * maxRegression).toFixed(1)}% once the spread between runs is accounted for`;

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
    if (b && r.baseline && (b.regression || (r.baseline.strict && b.verdict === 'ambiguous'))) {
      const text = regressionText(b, r.baseline.maxRegression);
      tc.failure = { message: text, type: b.regression ? 'regression' : 'ambiguous', text: `${text}\nbaseline: ${r.baseline.file}` };
    }
    const imp = r.physics?.impossible.find((x) => x.kernel === c.kernel && x.shape === c.shape);
    if (imp) tc.failure = { message: `${IMPOSSIBLE}: ${imp.reasons.join('; ')}`, type: 'impossible', text: `${IMPOSSIBLE}\n${imp.reasons.join('\n')}` };
    suite(c.kernel).cases.push(tc);
  }
  for (const k of r.skipped ?? []) suite(k.kernel).cases.push({ name: 'not timed', seconds: 0, skipped: k.reason });
  const seconds = [...suites.values()].flatMap((s) => s.cases).reduce((a, c) => a + c.seconds, 0);
  return renderJunitXml('moe bench', seconds, [...suites.values()]);
}

export const benchRenderers: Renderers<BenchReport> = { table: renderBenchTable, markdown: renderBenchMarkdown, junit: renderBenchJunit };
