/** Timing of one kernel case on a backend, with the noise-driven stopping rule. */
import type { NativeRunOptions } from '../backend/addon-types.js';
import type { Backend, Pipeline } from '../backend/types.js';
import type { KernelSpec, Params } from '../kernels/spec.js';
import { shapeLabel } from '../kernels/spec.js';
import { caseSeed, makeRng } from '../util/rng.js';
import { bindCase } from '../harness/bindings.js';
import { caseRunOptions } from '../harness/launch.js';
import { sampleUntilStable, stats, type StopRule } from './stats.js';

export interface BenchCase {
  kernel: string;
  entry: string;
  shape: string;
  params: Params;
  samples: number;
  medianNs: number;
  minNs: number;
  meanNs: number;
  /** Relative noise of the median (fraction). */
  noise: number;
  stopReason: 'noise' | 'time' | 'samples';
  bytes: number;
  flops: number;
  gbps: number;
  gflops: number;
  /** % of the device's peak bandwidth (null when no peak is known). */
  pctPeakBandwidth: number | null;
  /** --repeats N (N ≥ 2): the median of each block; `medianNs` is then their median. */
  repeatsNs?: number[];
  /** Quantized kernels: the packed weight words alone, GB/s and % of peak (their share of `bytes` over the median). */
  weightGBs?: number;
  weightPctPeak?: number | null;
}

export interface BenchOptions {
  rule: StopRule;
  warmup: number;
  seed: number;
  peakGBs: number | null;
  /** --timeout, --stack-size (the watchdog's default budget is scaled to the spec's cost). */
  runOptions?: NativeRunOptions;
  /** GPU backends: keep the cache warm between dispatches (bench --warm-cache). */
  warmCache?: boolean;
  /** CUDA: back-to-back dispatches per sample (bench --batch); other backends time as they always do. */
  perSample?: number;
  /** CUDA: replay each sample from a CUDA graph (bench --graph). */
  graph?: boolean;
  /**
   * bench --repeats: time the case in this many blocks (each a warm-up and
   * samples under the rule, with 1/repeats of its time cap), so the report
   * records the spread between blocks, which a baseline gate uses. Default 1.
   */
  repeats?: number;
}

/** What timing a case needs, bound once: inputs, launch, cost and the options of each timed call. */
function prepare(spec: KernelSpec, backend: Backend, params: Params, o: BenchOptions) {
  const shape = shapeLabel(spec, params);
  const inputSet = spec.inputSets[0]?.name ?? 'normal';
  const inputs = spec.inputs(params, inputSet, makeRng(caseSeed(o.seed, spec.name, shape, inputSet)));
  const bound = bindCase(spec, params, inputs);
  const launch = spec.launch(params);
  const cost = spec.cost(params);
  const run = caseRunOptions(spec, params, bound, o.runOptions);
  const timing = {
    warmCache: o.warmCache,
    touchedBytes: cost.bytes,
    ...(o.perSample !== undefined ? { perSample: o.perSample } : {}),
    ...(o.graph ? { graph: true } : {}),
  };
  const perSample = backend.name === 'cuda' ? (o.perSample ?? 1) : 1;
  return { shape, bound, launch, cost, run, timing, perSample };
}

type Prepared = ReturnType<typeof prepare>;

/** One block: a warm-up, then samples until the rule stops them. */
async function block(backend: Backend, pipeline: Pipeline, c: Prepared, warmup: number, rule: StopRule) {
  const { bound, launch, run, timing } = c;
  // Warm-up: caches, page faults, thread pool start.
  await backend.time(pipeline, bound.buffers, launch, { ...run, ...timing, warmup: Math.max(0, warmup - 1), iterations: 1 });
  return sampleUntilStable(
    (batch) => backend.time(pipeline, bound.buffers, launch, { ...run, ...timing, warmup: 0, iterations: batch }),
    rule,
    c.perSample,
  );
}

/**
 * A timer of further blocks of one case (the baseline gate's confirmation):
 * the inputs are bound once; each call times one block, with `timeShare` of
 * the rule's time cap, and returns its median in ns.
 */
export function blockTimer(spec: KernelSpec, backend: Backend, pipeline: Pipeline, params: Params, o: BenchOptions, timeShare = 1): () => Promise<number> {
  let c: Prepared | null = null;
  const rule = { ...o.rule, maxTimeNs: o.rule.maxTimeNs * timeShare };
  return async () => {
    c ??= prepare(spec, backend, params, o);
    return stats((await block(backend, pipeline, c, o.warmup, rule)).samples).median;
  };
}

export async function benchCase(
  spec: KernelSpec,
  backend: Backend,
  pipeline: Pipeline,
  params: Params,
  o: BenchOptions,
): Promise<BenchCase> {
  const c = prepare(spec, backend, params, o);
  const { shape, cost } = c;
  const repeats = Math.max(1, Math.floor(o.repeats ?? 1));
  const rule = repeats > 1 ? { ...o.rule, maxTimeNs: o.rule.maxTimeNs / repeats } : o.rule;
  const all: number[] = [];
  const blocks: number[] = [];
  let reason: BenchCase['stopReason'] = 'noise';
  let blockNoise = 0;
  for (let r = 0; r < repeats; r++) {
    const got = await block(backend, pipeline, c, o.warmup, rule);
    const bs = stats(got.samples);
    blocks.push(bs.median);
    blockNoise = Math.max(blockNoise, bs.noise);
    all.push(...got.samples);
    if (got.reason !== 'noise') reason = got.reason;
  }
  const pooled = stats(all);
  // With blocks, the median is theirs and the noise the larger of the
  // standard error of that median (from the spread between blocks) and the
  // noise inside the noisiest block.
  const between = repeats > 1 ? stats(blocks) : null;
  const st = between ? { ...pooled, median: between.median, noise: Math.max(between.noise, blockNoise) } : pooled;
  const gbps = st.median > 0 ? cost.bytes / st.median : 0;
  return {
    kernel: spec.name,
    entry: pipeline.entry,
    shape,
    params,
    samples: st.samples,
    medianNs: st.median,
    minNs: st.min,
    meanNs: st.mean,
    noise: st.noise,
    stopReason: reason,
    ...(repeats > 1 ? { repeatsNs: blocks } : {}),
    bytes: cost.bytes,
    flops: cost.flops,
    gbps,
    gflops: st.median > 0 ? cost.flops / st.median : 0,
    pctPeakBandwidth: o.peakGBs ? (100 * gbps) / o.peakGBs : null,
    ...(cost.weightBytes !== undefined && st.median > 0
      ? { weightGBs: cost.weightBytes / st.median, weightPctPeak: o.peakGBs ? (100 * cost.weightBytes) / st.median / o.peakGBs : null }
      : {}),
  };
}
