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

/** 1.4826·MAD: the robust standard deviation (that of a normal sample). */
export function robustSigma(a: ArrayLike<number>): number {
  return stats(a).sigma;
}

/** P(X ≤ k) for X ~ Binomial(n, 1/2), exactly (n ≤ 1000). */
export function binomialHalfCdf(n: number, k: number): number {
  if (k < 0) return 0;
  if (k >= n) return 1;
  // Sum C(n, i)/2^n term by term in logs, so large n does not overflow.
  let term = Math.exp(-n * Math.LN2); // C(n, 0)/2^n
  let sum = term;
  for (let i = 1; i <= k; i++) {
    term *= (n - i + 1) / i;
    sum += term;
  }
  return Math.min(1, sum);
}

/**
 * The distribution-free confidence interval of a median from the order
 * statistics (the sign test inverted): with n independent values, the k-th
 * smallest and the k-th largest bracket the true median with probability
 * 1 − 2·P(Binomial(n, 1/2) ≤ k − 1). Returns the largest such k whose
 * coverage is at least 1 − alpha, or 0 when n is too small for that alpha
 * (then no interval at that confidence exists: the caller must say so).
 */
export function signTestRank(n: number, alpha: number): number {
  let k = 0;
  while (k + 1 <= Math.floor(n / 2) && 2 * binomialHalfCdf(n, k) <= alpha) k++;
  return k;
}

/** P(|T| < t) for Student's t with nu (whole) degrees of freedom: the closed forms of Abramowitz & Stegun 26.7.3–4. */
function tTwoSidedMass(t: number, nu: number): number {
  const theta = Math.atan(Math.abs(t) / Math.sqrt(nu));
  const c2 = Math.cos(theta) ** 2;
  const s = Math.sin(theta);
  if (nu % 2 === 1) {
    if (nu === 1) return (2 / Math.PI) * theta;
    // θ + sinθ·cosθ·(1 + (2/3)cos²θ + (2·4)/(3·5)cos⁴θ + … up to cos^(ν−3)θ)
    let term = 1;
    let sum = 1;
    for (let j = 2; j <= nu - 3; j += 2) {
      term *= (j / (j + 1)) * c2;
      sum += term;
    }
    return (2 / Math.PI) * (theta + s * Math.cos(theta) * sum);
  }
  // sinθ·(1 + (1/2)cos²θ + (1·3)/(2·4)cos⁴θ + … up to cos^(ν−2)θ)
  let term = 1;
  let sum = 1;
  for (let j = 1; j <= nu - 3; j += 2) {
    term *= (j / (j + 1)) * c2;
    sum += term;
  }
  return s * sum;
}

/**
 * erf(x) for x ≥ 0 by Abramowitz & Stegun 7.1.26 (absolute error below
 * 1.5e-7, far below what a confidence level needs).
 */
function erf(x: number): number {
  const t = 1 / (1 + 0.3275911 * x);
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return 1 - poly * Math.exp(-x * x);
}

/** The two-sided quantile of the standard normal: the z with P(|Z| < z) = 1 − alpha (bisection). */
export function normalQuantile(alpha: number): number {
  let lo = 0;
  let hi = 40;
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2;
    if (erf(mid / Math.SQRT2) < 1 - alpha) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** The two-sided quantile of Student's t: the t with P(|T| < t) = 1 − alpha (bisection; nu whole, ≥ 1). */
export function tQuantile(alpha: number, nu: number): number {
  const v = Math.max(1, Math.round(nu));
  let lo = 0;
  let hi = 1;
  while (tTwoSidedMass(hi, v) < 1 - alpha) hi *= 2;
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2;
    if (tTwoSidedMass(mid, v) < 1 - alpha) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}
