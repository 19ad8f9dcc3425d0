/** Comparison rules shared by the specs: float32 error budgets and their whole-tensor floors. */
import type { FloatRule } from '../spec.js';

/** float32 unit roundoff. */
export const U = 2 ** -24;

/** An element-wise float rule with the usual cosine floor (0.99999). */
export function floatRule(atol: number, rtol: number, maxRelMaxAbs: number, reason: string): FloatRule {
  return { kind: 'float', atol, rtol, minCosine: 0.99999, maxRelMaxAbs, reason };
}

/**
 * A float rule whose whole-tensor floors (cosine, rel_max_abs) are never
 * stricter than its element-wise bound allows. Where the exact values sit in
 * the f32 noise (GELU's far negative tail, where 1 + tanh cancels; sums that
 * cancel), the element-wise bound |err_i| ≤ atol + rtol·|v_i| is the
 * guarantee, and a correct kernel may miss the default floors: then the
 * floors are relaxed to what that bound implies — rel_max_abs ≤
 * (atol + rtol·max|v|)/max|v|, cosine ≥ √(1 − ‖bound‖²/‖v‖²) — and stay at
 * the given defaults otherwise. `floorAtol` replaces atol there where the
 * element-wise bound is a worst case far above the typical error (long sums:
 * n·u worst case, √n·u typical), so the floors stay meaningful.
 */
export function boundedRule(
  values: ArrayLike<number>,
  atol: number,
  rtol: number,
  minCosine: number,
  maxRelMaxAbs: number,
  reason: string,
  floorAtol = atol,
): FloatRule {
  let maxRef = 0;
  let v2 = 0;
  let e2 = 0;
  for (let i = 0; i < values.length; i++) {
    const v = Math.abs(values[i] as number);
    if (v > maxRef) maxRef = v;
    v2 += v * v;
    const e = floorAtol + rtol * v;
    e2 += e * e;
  }
  const relAllowed = maxRef > 0 ? (floorAtol + rtol * maxRef) / maxRef : Infinity;
  const cosAllowed = e2 < v2 ? Math.sqrt(1 - e2 / v2) : -1;
  return {
    kind: 'float',
    atol,
    rtol,
    minCosine: Math.min(minCosine, cosAllowed),
    maxRelMaxAbs: Math.max(maxRelMaxAbs, relAllowed),
    reason,
  };
}
