/**
 * Small f64 building blocks for references: sums and dot products that also
 * return Σ|terms|, the scale the rounding error of a float32 sum in any order
 * is proportional to (|err| ≤ (n+1)·u·Σ|terms|).
 */

export interface Sum64 {
  value: number;
  /** Σ|terms|. */
  absSum: number;
}

/** Σ a[start + i·stride] for i < n, in f64. */
export function sum64(a: ArrayLike<number>, start = 0, n = a.length - start, stride = 1): Sum64 {
  let value = 0;
  let absSum = 0;
  for (let i = 0; i < n; i++) {
    const v = a[start + i * stride] as number;
    value += v;
    absSum += Math.abs(v);
  }
  return { value, absSum };
}

/** Σ a[aStart + i]·b[bStart + i] for i < n, in f64. */
export function dot64(a: ArrayLike<number>, b: ArrayLike<number>, n = a.length, aStart = 0, bStart = 0): Sum64 {
  if (aStart + n > a.length || bStart + n > b.length) throw new Error(`dot64: ${n} terms from [${aStart}] and [${bStart}] pass the end of arrays of ${a.length} and ${b.length}`);
  let value = 0;
  let absSum = 0;
  for (let i = 0; i < n; i++) {
    const t = (a[aStart + i] as number) * (b[bStart + i] as number);
    value += t;
    absSum += Math.abs(t);
  }
  return { value, absSum };
}

/** √(Σ x² / n + eps) of a[start .. start + n), in f64: the denominator of an RMS norm. */
export function rmsOf(a: ArrayLike<number>, start: number, n: number, eps = 0): number {
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (a[start + i] as number) ** 2;
  return Math.sqrt(ss / n + eps);
}
