import { Flags, type Interfaces } from '@oclif/core';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import ora from 'ora';
import { getBackend } from '../backend/index.js';
import { featureSkip } from '../backend/features.js';
import { ensureDeviceTrusted } from '../backend/selftest.js';
import { UsageError } from '../errors.js';
import { SPECS } from '../kernels/index.js';
import { benchShapes, presetModel } from '../kernels/select.js';
import type { KernelSpec } from '../kernels/spec.js';
import { compareRuns } from '../bench/baseline.js';
import { findPeak } from '../bench/peaks.js';
import { checkPhysics, renderPhysics } from '../bench/physics.js';
import { renderRoofline } from '../report/roofline.js';
import { benchCase, type BenchCase } from '../bench/run.js';
import { copySpec, emptySpec, readSpec } from '../bench/specs.js';
import { checkCaseResources } from '../harness/launch.js';
import { preparePipeline, shaderSource } from '../harness/source.js';
import { benchRenderers, BENCH_SCHEMA, type BenchReport } from '../report/bench.js';
import { reportHead } from '../report/common.js';
import { backendFlag, MoeCommand, parseList, reportFlags, safetyFlags, safetyRunOptions, seedFlag } from '../cli/base.js';

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


export default class Bench extends MoeCommand {
  static override summary = 'Time kernels: warm-up, samples until the noise is low, GB/s, GFLOP/s and % of peak; gate on a baseline';
  static override description = `For each kernel and shape: a warm-up, then timed samples of back-to-back dispatches until the relative noise of the median falls below --max-noise or --max-time runs out (at least --min-samples). Times are the backend's own per-dispatch clock, not wall time around the call. Bandwidth and FLOP rates come from each spec's cost model; % of peak from a table of known devices, or from a copy kernel with --measure-peak.

With --baseline FILE (a saved --json report), each case gets the ratio new/old and a verdict; exit 1 when a case is slower than --max-regression beyond the combined noise of both runs.`;

  static override examples = [
    '<%= config.bin %> bench --top-k 8',
    '<%= config.bin %> bench --kernel softmax-topk --tokens 1,16,256,4096',
    '<%= config.bin %> bench --kernel empty',
    '<%= config.bin %> bench --json > base.json && <%= config.bin %> bench --baseline base.json',
    '<%= config.bin %> bench --baseline base.json --junit bench.xml --markdown >> $GITHUB_STEP_SUMMARY',
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
    'max-regression': Flags.string({ description: '% slowdown beyond the noise that fails against --baseline', default: '5' }),
    ...reportFlags,
    ...safetyFlags,
    html: Flags.string({ description: 'also write a self-contained HTML roofline of the cases to this file' }),
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
    const preset = flags.preset ? presetModel(flags.preset) : undefined;
    let baselineDoc: BenchReport | null = null;
    if (flags.baseline) {
      if (!existsSync(flags.baseline)) throw new UsageError(`baseline file not found: ${flags.baseline}`);
      try {
        baselineDoc = JSON.parse(readFileSync(flags.baseline, 'utf8')) as BenchReport;
      } catch (e) {
        throw new UsageError(`baseline ${flags.baseline} is not JSON: ${(e as Error).message}`);
      }
      if (baselineDoc.schema !== BENCH_SCHEMA) throw new UsageError(`baseline ${flags.baseline} is not a moe bench --json report (schema ${String(baselineDoc.schema)})`);
      for (const k of ['batch', 'warm-cache', 'graph'] as const) {
        const old = baselineDoc.flags?.[k] ?? (k === 'batch' ? 1 : false);
        if (old !== flags[k]) this.note(`the baseline was timed with --${k} ${String(old)}, this run with ${String(flags[k])}: the times are not comparable`);
      }
    }

    const backend = getBackend(flags.backend);
    if (backend.name !== 'cuda' && (flags.batch > 1 || flags.graph)) {
      this.note(`--batch and --graph apply to the CUDA backend; ${backend.name} times as its clock says (${backend.clock})`);
    }
    await ensureDeviceTrusted(backend);  // GPU backends: the device self-test, or exit 2
    const device = backend.device();
    const rule = { minSamples: flags['min-samples'], maxNoise, maxTimeNs: maxTime * 1e9, maxSamples: 100_000 };
    const runOptions = safetyRunOptions(flags);
    const timing = { rule, warmup: flags.warmup, seed: flags.seed, runOptions, warmCache: flags['warm-cache'], perSample: flags.batch, graph: flags.graph };
    const spinner = this.interactive(flags) ? ora({ stream: process.stderr }).start('compiling') : null;
    const cases: BenchCase[] = [];
    const skipped: { kernel: string; reason: string }[] = [];
    const shaders: Record<string, string> = {};
    let peak: BenchReport['peak'] = null;
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
        const values: Record<string, number[] | undefined> = {};
        for (const p of spec.params) {
          values[p.name] = parseList(p.flag ?? p.name, f[p.flag ?? p.name] as string | undefined, { min: p.min ?? (p.kind === 'float' ? -Infinity : 1), float: p.kind === 'float' });
        }
        for (const params of benchShapes(spec, values, topKs, preset)) {
          const why = spec.validate(params);
          if (why !== null) throw new UsageError(`${spec.name}: ${why}`);
          checkCaseResources(spec, params);
          if (spinner) spinner.text = `${spec.name}: timing ${JSON.stringify(params)}`;
          cases.push(await benchCase(spec, backend, pipeline, params, { ...timing, peakGBs: peak?.bandwidthGBs ?? null }));
        }
      }
    } finally {
      spinner?.stop();
    }

    const report: BenchReport = {
      ...reportHead(BENCH_SCHEMA, backend.name, device),
      clock: cudaClock(backend.name, backend.clock, flags.batch, flags.graph),
      peak,
      seed: flags.seed,
      flags: { ...flags },
      shaders,
      startedAt: new Date().toISOString(),
      cases,
      ...(skipped.length > 0 ? { skipped } : {}),
    };
    if (baselineDoc && flags.baseline) {
      const cmp = compareRuns(baselineDoc.cases, cases, maxRegression);
      report.baseline = { ...cmp, file: flags.baseline, maxRegression };
      if (cmp.comparisons.some((c) => c.regression)) process.exitCode = 1;
    }
    report.physics = checkPhysics(report);
    if (report.physics.impossible.length > 0) process.exitCode = 1;
    if (flags.html) writeFileSync(flags.html, renderRoofline(report));
    if (this.jsonEnabled() && report.physics.impossible.length > 0) process.stderr.write(renderPhysics(report.physics, false) + '\n');
    return this.emit(report, benchRenderers, flags);
  }
}

/** The clock line of a report: the backend's, and how CUDA samples were taken. */
function cudaClock(backend: string, clock: string, batch: number, graph: boolean): string {
  if (backend !== 'cuda' || (batch <= 1 && !graph)) return clock;
  if (!graph) return `${clock}; each sample the mean of ${batch} back-to-back dispatches between two events`;
  return `${clock}; each sample the mean of ${batch} dispatches (rounded up to whole rounds of the buffer copies) replayed from a CUDA graph between two events`;
}

