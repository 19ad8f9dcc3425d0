import { Flags, type Interfaces } from '@oclif/core';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { CudaBackend } from '../backend/cuda.js';
import { getBackend } from '../backend/index.js';
import { featureSkip } from '../backend/features.js';
import { ensureDeviceTrusted } from '../backend/selftest.js';
import { UsageError } from '../errors.js';
import { findSpec, SPECS } from '../kernels/index.js';
import { loadUserSpecs, withUserSpecs } from '../kernels/user.js';
import { benchShapes, checkShapeFlags, presetModel } from '../kernels/select.js';
import { parseShard, shardCases } from '../kernels/shard.js';
import type { KernelSpec } from '../kernels/spec.js';
import { cpuGateWarning, gateRun, incomparableSettings, ROUNDS, type GateCase } from '../bench/gate.js';
import { findPeak } from '../bench/peaks.js';
import { checkPhysics, renderPhysics } from '../bench/physics.js';
import { renderRoofline } from '../report/roofline.js';
import { benchCase, blockTimer, type BenchCase } from '../bench/run.js';
import { copySpec, emptySpec, readSpec } from '../bench/specs.js';
import { checkCaseResources } from '../harness/launch.js';
import { preparePipeline, shaderSource } from '../harness/source.js';
import { loadManifest, resolveManifest, type Manifest } from '../harness/manifest.js';
import { benchRenderers, BENCH_SCHEMA, type BenchReport } from '../report/bench.js';
import { reportHead } from '../report/common.js';
import { startSpinner } from '../cli/terminal.js';
import { backendFlag, MoeCommand, paramAssignments, paramFlag, paramText, parseList, reportFlags, safetyFlags, safetyRunOptions, seedFlag, shardFlag } from '../cli/base.js';

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

With --baseline FILE (a saved --json report), each case gets the ratio new/old and a verdict: SAME, FASTER, SLOWER (exit 1) or AMBIGUOUS (exit 0 unless --strict). A first look outside --max-regression is only a suspicion: the case is re-measured and decided on the spread between runs, not the noise inside one. With --baseline-shader (the old code) every case is re-measured interleaved with it (A/B). Record baselines with --repeats 5 so they carry their own spread.`;

  static override examples = [
    '<%= config.bin %> bench --top-k 8',
    '<%= config.bin %> bench --kernel softmax-topk --tokens 1,16,256,4096',
    '<%= config.bin %> bench --kernel empty',
    '<%= config.bin %> bench --json --repeats 5 > base.json && <%= config.bin %> bench --baseline base.json',
    '<%= config.bin %> bench --kernel weighted-sum --shader new.metal --baseline base.json --baseline-shader old.metal',
    '<%= config.bin %> bench --baseline base.json --junit bench.xml --markdown >> $GITHUB_STEP_SUMMARY',
  ];

  static override flags = {
    kernel: Flags.string({ char: 'k', description: 'kernel(s), comma-separated (default: all; with --top-k, those with a top-k parameter)' }),
    'top-k': Flags.string({ description: 'top-k (comma list); selects the kernels that have a top-k parameter', helpGroup: 'SHAPE' }),
    backend: backendFlag,
    seed: seedFlag,
    preset: Flags.string({ description: 'shapes of one model from fixtures/models.json' }),
    shader: Flags.string({ description: 'your own .metal file in place of ours (needs one --kernel)' }),
    spec: Flags.string({ description: 'a file of your own kernel specs (.js, or .ts through tsx where installed); without --kernel, its specs are the ones timed' }),
    entry: Flags.string({ description: 'entry point in --shader', dependsOn: ['shader'] }),
    manifest: Flags.string({ description: 'binding manifest (docs/manifest.md): time the entries of its shader as it binds and launches them (--kernel picks entries or specs)', exclusive: ['shader'] }),
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
    shard: shardFlag,
    repeats: Flags.integer({ description: 'time each case in this many blocks, sharing --max-time; the report records each block\'s median (a baseline with its own spread)', default: 1, min: 1, max: 100 }),
    param: paramFlag,
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

    const user = flags.spec ? await loadUserSpecs(flags.spec) : [];
    const all = flags.spec ? withUserSpecs([...SPECS, ...BENCH_ONLY], user, flags.spec) : [...SPECS, ...BENCH_ONLY];
    let specs: KernelSpec[];
    let manifest: Manifest | null = null;
    /** A manifest entry's reason not to run a shape (its `requires`, whole vectors). */
    const manifestSkip = new Map<KernelSpec, (p: Record<string, number>) => string | null>();
    if (flags.manifest) {
      manifest = loadManifest(flags.manifest);
      const picked = flags.kernel?.split(',').map((s) => s.trim()).filter((s) => s !== '');
      const entries = resolveManifest(manifest, picked).kernels;
      specs = entries.flatMap((k) => (k.spec ? [k.spec] : []));
      for (const k of entries) if (k.spec) manifestSkip.set(k.spec, k.skip);
      if (specs.length === 0) throw new UsageError(`manifest ${flags.manifest}: no entry with a spec to time`);
    } else if (flags.kernel) {
      specs = flags.kernel.split(',').map((n) => findSpec(n.trim(), all));
    } else {
      const pool = flags.spec ? user : SPECS;
      specs = topKs ? pool.filter((s) => s.hasTopK) : pool;
    }
    if (topKs) {
      const without = specs.filter((s) => !s.params.some((p) => p.name === 'top_k'));
      if (without.length > 0) throw new UsageError(`--top-k: ${without.map((s) => s.name).join(', ')} has no top-k parameter`);
    }
    const shapeGiven = Object.keys(shapeFlags()).filter((n) => n !== 'top-k' && f[n] !== undefined);
    for (const { flag, notFor } of checkShapeFlags(specs, shapeGiven)) this.note(`${flag} does not apply to ${notFor.length} of the selected kernels (${notFor.join(', ')}): they run their default shapes`);
    if (flags.shader && specs.length !== 1) throw new UsageError('--shader needs exactly one --kernel');
    if (flags['baseline-shader'] && specs.length !== 1) throw new UsageError('--baseline-shader needs exactly one --kernel');
    const assigned = paramAssignments(flags.param, specs);
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
      for (const line of incomparableSettings(baselineDoc.flags, flags)) this.note(line);
    }

    const shard = flags.shard === undefined ? undefined : parseShard(flags.shard);
    const shapes = specs.map((spec) => {
      const values: Record<string, number[] | undefined> = {};
      for (const p of spec.params) {
        values[p.name] = parseList(p.flag ?? p.name, paramText(p, f, assigned), { min: p.min ?? (p.kind === 'float' ? -Infinity : 1), float: p.kind === 'float' });
      }
      return { spec, cases: benchShapes(spec, values, topKs, preset).map((params) => ({ params })) };
    });
    const { plan, caseList } = shardCases(shapes, shard, () => '');
    if (shard && plan.every((x) => x.cases.length === 0)) this.note(`share ${shard.index}/${shard.count} has none of the ${caseList.cases} cases: an empty report`);

    const backend = getBackend(flags.backend);
    // Timings are of the kernel as written: no watchdog polls in its loops (see CudaBackend.loopPolls).
    if (backend instanceof CudaBackend) backend.loopPolls = false;
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
    const spinner = startSpinner('compiling', this.interactive(flags));
    const cases: BenchCase[] = [];
    const positions: number[] = [];
    const gateCases: GateCase[] = [];
    const skipped: { kernel: string; reason: string }[] = [];
    const shaders: Record<string, string> = {};
    let peak: BenchReport['peak'] = null;
    let baselineResult: BenchReport['baseline'];
    const known = findPeak(device.name);
    if (known) peak = { bandwidthGBs: known.bandwidthGBs, source: known.source };
    /** The report of the cases timed so far, checked against the device's ceilings (and the roofline with --html). */
    const makeReport = (interrupted?: NodeJS.Signals): BenchReport => {
      const report: BenchReport = {
        ...reportHead(BENCH_SCHEMA, backend.name, device),
        clock: cudaClock(backend.name, backend.clock, flags.batch, flags.graph),
        peak,
        seed: flags.seed,
        ...(shard ? { shard: { ...shard, positions } } : {}),
        caseList,
        flags: { ...flags },
        shaders,
        startedAt: new Date().toISOString(),
        cases,
        ...(skipped.length > 0 ? { skipped } : {}),
        ...(manifest ? { manifest: { file: manifest.file, shader: manifest.shaderRel } } : {}),
        ...(baselineResult ? { baseline: baselineResult } : {}),
        ...(interrupted ? { interrupted } : {}),
      };
      report.physics = checkPhysics(report);
      if (flags.html) writeFileSync(flags.html, renderRoofline(report));
      return report;
    };
    // SIGINT/SIGTERM: report the cases timed so far (the gate is not run), then end
    const release = this.reportOnInterrupt(makeReport, benchRenderers, flags, spinner);
    try {
      if (flags['measure-peak']) {
        if (spinner) spinner.text = 'measuring peak bandwidth (copy kernel)';
        const cp = await preparePipeline(copySpec, backend, shaderSource(copySpec));
        const n = backend.name === 'cpu' ? 16 * 1024 * 1024 : 64 * 1024 * 1024;
        const c = await benchCase(copySpec, backend, cp, { n_elements: n }, { ...timing, peakGBs: null });
        peak = { bandwidthGBs: c.gbps, source: `measured: moe_copy_f32 over ${(n * 4) / 2 ** 20} MiB, median of ${c.samples} samples` };
      }
      for (const { spec, cases: share, positions: at } of plan) {
        if (share.length === 0) continue;
        const src = manifest ? shaderSource(spec, manifest.shaderFile, spec.entry) : shaderSource(spec, flags.shader, flags.entry);
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
        for (const [i, { params }] of share.entries()) {
          const skip = manifestSkip.get(spec)?.(params) ?? null;
          if (skip !== null) {
            skipped.push({ kernel: spec.name, reason: `${JSON.stringify(params)}: ${skip}` });
            continue;
          }
          const why = spec.validate(params);
          if (why !== null) throw new UsageError(`${spec.name}: ${why}`);
          checkCaseResources(spec, params);
          if (spinner) spinner.text = `${spec.name}: timing ${JSON.stringify(params)}`;
          const o = { ...timing, peakGBs: peak?.bandwidthGBs ?? null };
          const result = await benchCase(spec, backend, pipeline, params, o);
          cases.push(result);
          positions.push(at[i] as number);
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
      release();
    }

    const report = makeReport();
    if (baselineResult?.fails) process.exitCode = 1;
    if (report.physics?.impossible.length) process.exitCode = 1;
    if (this.jsonEnabled() && report.physics?.impossible.length) process.stderr.write(renderPhysics(report.physics, false) + '\n');
    return this.emit(report, benchRenderers, flags);
  }
}

/** The clock line of a report: the backend's, and how CUDA samples were taken. */
function cudaClock(backend: string, clock: string, batch: number, graph: boolean): string {
  if (backend !== 'cuda' || (batch <= 1 && !graph)) return clock;
  if (!graph) return `${clock}; each sample the mean of ${batch} back-to-back dispatches between two events`;
  return `${clock}; each sample the mean of ${batch} dispatches (rounded up to whole rounds of the buffer copies) replayed from a CUDA graph between two events`;
}

