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
}

export async function benchCase(
  spec: KernelSpec,
  backend: Backend,
  pipeline: Pipeline,
  params: Params,
  o: BenchOptions,
): Promise<BenchCase> {
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
  // Warm-up: caches, page faults, thread pool start.
  await backend.time(pipeline, bound.buffers, launch, { ...run, ...timing, warmup: Math.max(0, o.warmup - 1), iterations: 1 });
  const { samples, reason } = await sampleUntilStable(
    (batch) => backend.time(pipeline, bound.buffers, launch, { ...run, ...timing, warmup: 0, iterations: batch }),
    o.rule,
    perSample,
  );
  const st = stats(samples);
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
