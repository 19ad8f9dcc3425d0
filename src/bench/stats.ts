/**
 * Sample statistics and the noise-driven stopping rule of `moe bench`.
 *
 * Noise is the relative standard error of the median: 1.2533·σ/√n / median,
 * with σ estimated robustly as 1.4826·MAD (so a few outliers from the OS do
 * not dominate). It shrinks as samples accumulate on quiet data, so a quiet
 * kernel stops after the minimum number of samples, while a noisy one runs to
 * the time cap.
 */

export interface SampleStats {
  samples: number;
  median: number;
  min: number;
  max: number;
  mean: number;
  /** Robust standard deviation (1.4826·MAD). */
  sigma: number;
  /** Relative standard error of the median, as a fraction (0.005 = 0.5%). */
  noise: number;
}

export function sorted(a: ArrayLike<number>): number[] {
  return Array.from(a).sort((x, y) => x - y);
}

export function medianOf(s: number[]): number {
  const n = s.length;
  if (n === 0) return NaN;
  const m = Math.floor(n / 2);
  return n % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export function stats(a: ArrayLike<number>): SampleStats {
  const s = sorted(a);
  const n = s.length;
  const median = medianOf(s);
  const dev = sorted(s.map((x) => Math.abs(x - median)));
  const sigma = 1.4826 * medianOf(dev);
  const mean = s.reduce((x, y) => x + y, 0) / Math.max(n, 1);
  const noise = n < 2 || median <= 0 ? Infinity : (1.2533 * sigma) / Math.sqrt(n) / median;
  return { samples: n, median, min: s[0] ?? NaN, max: s[n - 1] ?? NaN, mean, sigma, noise };
}

export interface StopRule {
  minSamples: number;
  /** Relative noise target (fraction). */
  maxNoise: number;
  /** Cap on measured time per case, in ns. */
  maxTimeNs: number;
  /** Hard cap on samples (memory bound). */
  maxSamples: number;
}

export type StopReason = 'noise' | 'time' | 'samples' | null;

/** Should sampling stop now? null = keep going. */
export function shouldStop(samples: ArrayLike<number>, elapsedNs: number, rule: StopRule): StopReason {
  const n = samples.length;
  if (n >= rule.maxSamples) return 'samples';
  if (n >= rule.minSamples && stats(samples).noise <= rule.maxNoise) return 'noise';
  if (n >= rule.minSamples && elapsedNs >= rule.maxTimeNs) return 'time';
  return null;
}

/**
 * Take samples from `next` (which returns a batch of per-dispatch times in ns)
 * until the rule says stop. Elapsed time is the sum of the samples (device
 * time), times the dispatches each sample is the mean of.
 */
export async function sampleUntilStable(
  next: (batch: number) => Promise<ArrayLike<number>>,
  rule: StopRule,
  dispatchesPerSample = 1,
): Promise<{ samples: number[]; reason: Exclude<StopReason, null> }> {
  const samples: number[] = [];
  let elapsed = 0;
  let batch = Math.max(1, Math.min(rule.minSamples, 10));
  for (;;) {
    const got = await next(batch);
    for (let i = 0; i < got.length; i++) {
      const v = got[i] as number;
      samples.push(v);
      elapsed += v * dispatchesPerSample;
    }
    const reason = shouldStop(samples, elapsed, rule);
    if (reason !== null) return { samples, reason };
    // Grow batches for fast kernels so the per-call overhead stays small, but
    // never past what the remaining time or sample budget allows.
    const per = elapsed / Math.max(samples.length, 1); // device time of one sample
    const remainingTime = Math.max(1, Math.floor((rule.maxTimeNs - elapsed) / Math.max(per, 1)));
    batch = Math.max(1, Math.min(batch * 2, 1000, remainingTime, rule.maxSamples - samples.length));
  }
}
