import { Flags, type Interfaces } from '@oclif/core';
import { existsSync, readFileSync } from 'node:fs';
import Table from 'cli-table3';
import ora from 'ora';
import { getBackend } from '../backend/index.js';
import { featureSkip } from '../backend/features.js';
import { ensureDeviceTrusted } from '../backend/selftest.js';
import { UsageError } from '../errors.js';
import { SPECS } from '../kernels/index.js';
import { model, models } from '../kernels/models.js';
import type { KernelSpec, Params } from '../kernels/spec.js';
import { cpuGateWarning, gateRun, gateSummary, incomparableSettings, intervalLabel, ROUNDS, verdictLabel, type GateCase, type GateResult } from '../bench/gate.js';
import { findPeak } from '../bench/peaks.js';
import { benchCase, blockTimer, type BenchCase } from '../bench/run.js';
import { copySpec, emptySpec, readSpec } from '../bench/specs.js';
import { toolVersion } from '../util/env.js';
import { preparePipeline, shaderSource } from '../verify/run.js';
import { backendFlag, MoeCommand, parseList, safetyRunOptions, seedFlag, stackSizeFlag, timeoutFlag } from './base.js';
import { checkCaseResources } from '../verify/resources.js';
import type { DeviceInfo } from '../backend/types.js';

export const BENCH_SCHEMA = 'moe-kernels/bench-report@1';

export interface BenchReport {
  schema: typeof BENCH_SCHEMA;
  tool: { name: 'moe-kernels'; version: string };
  backend: string;
  clock: string;
  device: DeviceInfo;
  peak: { bandwidthGBs: number; source: string } | null;
  seed: number;
  flags: Record<string, unknown>;
  shaders: Record<string, string>;
  startedAt: string;
  cases: BenchCase[];
  baseline?: GateResult & { file: string; maxRegression: number; baselineShader?: string };
  /** Kernels not timed: their shader needs a feature the device lacks (e.g. bfloat without MSL 3.1). */
  skipped?: { kernel: string; reason: string }[];
}

const BENCH_ONLY = [emptySpec, copySpec, readSpec];

function shapeFlags(): Record<string, Interfaces.OptionFlag<string | undefined>> {
  const out: Record<string, Interfaces.OptionFlag<string | undefined>> = {};
  for (const s of [...SPECS, ...BENCH_ONLY]) {
    for (const p of s.params) {
      const flag = p.flag ?? p.name;
      if (!out[flag]) out[flag] = Flags.string({ description: `${p.description} (comma list = one row per value)`, helpGroup: 'SHAPE' });
    }
  }
  return out;
}

/** Presets map model fields to the spec parameters they set. */
function presetParams(spec: KernelSpec, key: string): Params {
  const m = model(key);
  if (!m) return {};
  const byName: Record<string, number> = {
    n_experts: m.experts,
    top_k: m.top_k,
    h: m.hidden,
    hidden: m.hidden,
    intermediate: m.expert_intermediate,
    num_heads: m.heads,
    num_kv_heads: m.kv_heads,
    head_dim: m.head_dim,
  };
  const out: Params = {};
  for (const p of spec.params) if (byName[p.name] !== undefined) out[p.name] = byName[p.name] as number;
  return out;
}

const us = (ns: number): string => (ns / 1000).toFixed(ns < 10_000 ? 2 : 1);

export default class Bench extends MoeCommand {
  static override summary = 'Time kernels: warm-up, samples until the noise is low, GB/s, GFLOP/s and % of peak; gate on a baseline';
  static override description = `For each kernel and shape: a warm-up, then timed samples of back-to-back dispatches until the relative noise of the median falls below --max-noise or --max-time runs out (at least --min-samples). Times are the backend's own per-dispatch clock, not wall time around the call. Bandwidth and FLOP rates come from each spec's cost model; % of peak from a table of known devices, or from a copy kernel with --measure-peak.

With --baseline FILE (a saved --json report), each case gets the ratio new/old and a verdict: SAME, FASTER, SLOWER (exit 1) or AMBIGUOUS (exit 0 unless --strict). A first look outside --max-regression is only a suspicion: the case is re-measured and decided on the spread between runs, not the noise inside one. With --baseline-shader (the old code) every case is re-measured interleaved with it (A/B). Record baselines with --repeats 5 so they carry their own spread.`;

  static override examples = [
    '<%= config.bin %> bench --top-k 8',
    '<%= config.bin %> bench --kernel softmax-topk --tokens 1,16,256,4096',
    '<%= config.bin %> bench --kernel empty',
    '<%= config.bin %> bench --json --repeats 5 > base.json && <%= config.bin %> bench --baseline base.json',
    '<%= config.bin %> bench --kernel weighted-sum --shader new.metal --baseline base.json --baseline-shader old.metal',
  ];

  static override flags = {
    kernel: Flags.string({ char: 'k', description: 'kernel(s), comma-separated (default: all; with --top-k, those with a top-k parameter)' }),
    'top-k': Flags.string({ description: 'top-k (comma list); selects the kernels that have a top-k parameter', helpGroup: 'SHAPE' }),
    backend: backendFlag,
    seed: seedFlag,
    preset: Flags.string({ description: 'shapes of one model from fixtures/models.json' }),
    shader: Flags.string({ description: 'your own .metal file in place of ours (needs one --kernel)' }),
    entry: Flags.string({ description: 'entry point in --shader', dependsOn: ['shader'] }),
    'max-noise': Flags.string({ description: 'stop when the relative noise of the median is below this % ', default: '0.5' }),
    'max-time': Flags.string({ description: 'seconds of samples per case at most', default: '2' }),
    'min-samples': Flags.integer({ description: 'samples per case at least', default: 10, min: 1 }),
    warmup: Flags.integer({ description: 'untimed dispatches before sampling', default: 3, min: 0 }),
    'measure-peak': Flags.boolean({ description: 'measure peak bandwidth with a copy kernel instead of the device table' }),
    'warm-cache': Flags.boolean({
      description: 'GPU backends: time each dispatch with the cache as the one before left it (one copy of the buffers; default: copies rotated through twice the L2, so each dispatch reads from memory)',
    }),
    batch: Flags.integer({
      description:
        'CUDA: dispatches per sample, timed back to back between two events (their mean): the throughput of a queue of kernels, as a decode loop runs them and as the Metal backend times a command buffer; 1 (default): an event pair around each dispatch, whose own cost (about 2 µs) then shows in short kernels',
      default: 1,
      min: 1,
      max: 100,
    }),
    graph: Flags.boolean({
      description:
        'CUDA: capture each sample\'s --batch dispatches in a CUDA graph and replay it, so the GPU launches them itself, as engines run decode (llama.cpp and vLLM do): without the stream\'s cost per launch. The graph holds --batch rounded up to whole rounds of the buffer copies',
    }),
    baseline: Flags.string({ description: 'compare with a saved --json report; exit 1 on regressions' }),
    'max-regression': Flags.string({ description: '% slowdown that fails against --baseline once the spread between runs is accounted for', default: '5' }),
    'baseline-shader': Flags.string({ description: 'the old .metal file the baseline was timed with: each case is re-measured interleaved with it (A/B) before a verdict; needs one --kernel', dependsOn: ['baseline'] }),
    'baseline-entry': Flags.string({ description: 'entry point in --baseline-shader', dependsOn: ['baseline-shader'] }),
    strict: Flags.boolean({ description: 'with --baseline: an AMBIGUOUS verdict fails too (exit 1)', dependsOn: ['baseline'] }),
    repeats: Flags.integer({ description: 'time each case in this many blocks, sharing --max-time; the report records each block\'s median (a baseline with its own spread)', default: 1, min: 1, max: 100 }),
    markdown: Flags.boolean({ description: 'print Markdown (for CI step summaries) instead of the table' }),
    timeout: timeoutFlag,
    'stack-size': stackSizeFlag,
    ...shapeFlags(),
  };

  async run(): Promise<BenchReport> {
    const { flags } = await this.parse(Bench);
    const f = flags as Record<string, unknown>;
    const num = (name: string, v: string, lo: number): number => {
      const x = Number(v);
      if (!Number.isFinite(x) || x < lo) throw new UsageError(`--${name}: '${v}' must be a number ≥ ${lo}`);
      return x;
    };
    const maxNoise = num('max-noise', flags['max-noise'], 0) / 100;
    const maxTime = num('max-time', flags['max-time'], 0);
    const maxRegression = num('max-regression', flags['max-regression'], 0) / 100;
    const topKs = parseList('top-k', flags['top-k']);

    const all = [...SPECS, ...BENCH_ONLY];
    let specs: KernelSpec[];
    if (flags.kernel) {
      specs = flags.kernel.split(',').map((n) => {
        const s = all.find((k) => k.name === n.trim() || k.entry === n.trim());
        if (!s) throw new UsageError(`unknown kernel '${n}'. Known: ${all.map((k) => k.name).join(', ')}`);
        return s;
      });
    } else {
      specs = topKs ? SPECS.filter((s) => s.hasTopK) : SPECS;
    }
    if (topKs) {
      const without = specs.filter((s) => !s.params.some((p) => p.name === 'top_k'));
      if (without.length > 0) throw new UsageError(`--top-k: ${without.map((s) => s.name).join(', ')} has no top-k parameter`);
    }
    if (flags.shader && specs.length !== 1) throw new UsageError('--shader needs exactly one --kernel');
    if (flags['baseline-shader'] && specs.length !== 1) throw new UsageError('--baseline-shader needs exactly one --kernel');
    if (flags.preset && !model(flags.preset)) {
      throw new UsageError(`unknown preset '${flags.preset}' (choose from ${models().map((m) => m.key).join(', ')})`);
    }
    let baselineDoc: BenchReport | null = null;
    if (flags.baseline) {
      if (!existsSync(flags.baseline)) throw new UsageError(`baseline file not found: ${flags.baseline}`);
      try {
        baselineDoc = JSON.parse(readFileSync(flags.baseline, 'utf8')) as BenchReport;
      } catch (e) {
        throw new UsageError(`baseline ${flags.baseline} is not JSON: ${(e as Error).message}`);
      }
      if (baselineDoc.schema !== BENCH_SCHEMA) throw new UsageError(`baseline ${flags.baseline} is not a moe bench --json report (schema ${String(baselineDoc.schema)})`);
      for (const line of incomparableSettings(baselineDoc.flags, flags)) this.note(line);
    }

    const backend = getBackend(flags.backend);
    if (backend.name !== 'cuda' && (flags.batch > 1 || flags.graph)) {
      this.note(`--batch and --graph apply to the CUDA backend; ${backend.name} times as its clock says (${backend.clock})`);
    }
    if (baselineDoc) {
      const warn = cpuGateWarning(baselineDoc.backend, backend.name);
      if (warn) this.note(warn);
    }
    await ensureDeviceTrusted(backend);  // GPU backends: the device self-test, or exit 2
    const device = backend.device();
    const rule = { minSamples: flags['min-samples'], maxNoise, maxTimeNs: maxTime * 1e9, maxSamples: 100_000 };
    const runOptions = safetyRunOptions(flags);
    const timing = { rule, warmup: flags.warmup, seed: flags.seed, runOptions, warmCache: flags['warm-cache'], perSample: flags.batch, graph: flags.graph, repeats: flags.repeats };
    const spinner = process.stderr.isTTY && !this.jsonEnabled() && !flags.markdown ? ora({ stream: process.stderr }).start('compiling') : null;
    const cases: BenchCase[] = [];
    const gateCases: GateCase[] = [];
    const skipped: { kernel: string; reason: string }[] = [];
    const shaders: Record<string, string> = {};
    let peak: BenchReport['peak'] = null;
    let baselineResult: BenchReport['baseline'];
    const known = findPeak(device.name);
    if (known) peak = { bandwidthGBs: known.bandwidthGBs, source: known.source };
    try {
      if (flags['measure-peak']) {
        if (spinner) spinner.text = 'measuring peak bandwidth (copy kernel)';
        const cp = await preparePipeline(copySpec, backend, shaderSource(copySpec));
        const n = backend.name === 'cpu' ? 16 * 1024 * 1024 : 64 * 1024 * 1024;
        const c = await benchCase(copySpec, backend, cp, { n_elements: n }, { ...timing, peakGBs: null });
        peak = { bandwidthGBs: c.gbps, source: `measured: moe_copy_f32 over ${(n * 4) / 2 ** 20} MiB, median of ${c.samples} samples` };
      }
      for (const spec of specs) {
        const src = shaderSource(spec, flags.shader, flags.entry);
        const skip = featureSkip(device, src.source, src.file);
        if (skip !== null) {
          skipped.push({ kernel: spec.name, reason: skip });
          continue;
        }
        const pipeline = await preparePipeline(spec, backend, src);
        shaders[spec.name] = pipeline.sourceHash;
        const old = flags['baseline-shader'] ? await preparePipeline(spec, backend, shaderSource(spec, flags['baseline-shader'], flags['baseline-entry'])) : null;
        const savedHash = baselineDoc?.shaders?.[spec.name];
        if (old && savedHash && savedHash !== old.sourceHash) this.note(`--baseline-shader ${flags['baseline-shader']} is not the source ${spec.name} was timed with in the baseline (another hash): the A/B compares with it all the same`);
        const base: Params = { ...spec.defaults, ...(spec.bench ?? {}), ...(flags.preset ? presetParams(spec, flags.preset) : {}) };
        let shapes: Params[] = [base];
        const lists: [string, number[]][] = [];
        if (topKs) lists.push(['top_k', topKs]);
        for (const p of spec.params) {
          const v = parseList(p.flag ?? p.name, f[p.flag ?? p.name] as string | undefined, { min: p.min ?? (p.kind === 'float' ? -Infinity : 1), float: p.kind === 'float' });
          if (v && p.name !== 'top_k') lists.push([p.name, v]);
        }
        for (const [name, vs] of lists) shapes = shapes.flatMap((s) => vs.map((v) => ({ ...s, [name]: v })));
        for (const params of shapes) {
          const why = spec.validate(params);
          if (why !== null) throw new UsageError(`${spec.name}: ${why}`);
          checkCaseResources(spec, params);
          if (spinner) spinner.text = `${spec.name}: timing ${JSON.stringify(params)}`;
          const o = { ...timing, peakGBs: peak?.bandwidthGBs ?? null };
          const result = await benchCase(spec, backend, pipeline, params, o);
          cases.push(result);
          if (baselineDoc) {
            // The gate's confirmation blocks: 1/ROUNDS of the time cap each (src/bench/gate.ts).
            gateCases.push({
              result,
              measure: blockTimer(spec, backend, pipeline, params, o, 1 / ROUNDS),
              ...(old ? { measureBaseline: blockTimer(spec, backend, old, params, o, 1 / ROUNDS) } : {}),
            });
          }
        }
      }
      if (baselineDoc && flags.baseline) {
        if (spinner) spinner.text = 'comparing with the baseline';
        const gate = await gateRun(baselineDoc.cases, gateCases, { tolerance: maxRegression, strict: flags.strict });
        baselineResult = { ...gate, file: flags.baseline, maxRegression, ...(flags['baseline-shader'] ? { baselineShader: flags['baseline-shader'] } : {}) };
      }
    } finally {
      spinner?.stop();
    }

    const report: BenchReport = {
      schema: BENCH_SCHEMA,
      tool: { name: 'moe-kernels', version: toolVersion() },
      backend: backend.name,
      clock: cudaClock(backend.name, backend.clock, flags.batch, flags.graph),
      device,
      peak,
      seed: flags.seed,
      flags: { ...flags },
      shaders,
      startedAt: new Date().toISOString(),
      cases,
      ...(skipped.length > 0 ? { skipped } : {}),
    };
    if (baselineResult) {
      report.baseline = baselineResult;
      if (baselineResult.fails) process.exitCode = 1;
    }
    if (!this.jsonEnabled()) this.log(flags.markdown ? renderBenchMarkdown(report) : renderBenchTable(report));
    return report;
  }
}

/** Whether the report has the packed-weights columns: when some case is a quantized kernel. */
const hasWeights = (r: BenchReport): boolean => r.cases.some((x) => x.weightGBs !== undefined);

/** A case's packed-weights columns (none when the report has none). */
function weightCells(weights: boolean, c: BenchCase): string[] {
  if (!weights) return [];
  if (c.weightGBs === undefined) return ['-', '-'];
  return [c.weightGBs.toFixed(2), c.weightPctPeak === null || c.weightPctPeak === undefined ? '-' : c.weightPctPeak.toFixed(1)];
}

/** The clock line of a report: the backend's, and how CUDA samples were taken. */
function cudaClock(backend: string, clock: string, batch: number, graph: boolean): string {
  if (backend !== 'cuda' || (batch <= 1 && !graph)) return clock;
  if (!graph) return `${clock}; each sample the mean of ${batch} back-to-back dispatches between two events`;
  return `${clock}; each sample the mean of ${batch} dispatches (rounded up to whole rounds of the buffer copies) replayed from a CUDA graph between two events`;
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
    const b = new Table({ head: ['kernel', 'shape', 'old µs', 'new µs', 'new/old', '99% interval', 'evidence', 'verdict'], style: { head: [], border: [] } });
    for (const c of r.baseline.comparisons) {
      b.push([c.kernel, c.shape, us(c.oldNs), us(c.newNs), c.ratio.toFixed(3), intervalLabel(c), c.method, verdictLabel(c, r.baseline.strict)]);
    }
    lines.push(`baseline: ${r.baseline.file}${r.baseline.baselineShader ? ` (old code: ${r.baseline.baselineShader})` : ''} (fail when slower than ${(100 * r.baseline.maxRegression).toFixed(1)}% beyond the spread between runs)`, b.toString());
    if (r.baseline.missing.length > 0) lines.push(`not in the baseline: ${r.baseline.missing.join('; ')}`);
    lines.push(gateSummary(r.baseline));
  }
  return lines.join('\n');
}

export function renderBenchMarkdown(r: BenchReport): string {
  const lines = [
    `## moe bench: ${r.backend} (${r.device.name})`,
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
    for (const k of r.skipped) lines.push(`- **${k.kernel}**: ${k.reason.replace(/`/g, "'")}`);
  }
  if (r.baseline) {
    lines.push('', '| kernel | shape | new/old | verdict |', '|---|---|---:|---|');
    for (const c of r.baseline.comparisons) lines.push(`| ${c.kernel} | ${c.shape} | ${c.ratio.toFixed(3)} | ${c.regression ? '❌ regression' : verdictLabel(c, r.baseline.strict)} |`);
  }
  return lines.join('\n') + '\n';
}
