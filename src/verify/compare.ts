/**
 * Output comparison (DESIGN.md, "Comparisons"): cosine similarity and norms in
 * f64, max_abs, rel_max_abs = max|a−b| / max|b|, element-wise atol/rtol with
 * the count and the first and worst violations, non-finite values where the
 * reference is finite, elements never written (NaN canary), and exact integer
 * outputs with tie tolerance.
 */
import type { CompareRule, TypedArray } from '../kernels/spec.js';

/** Bit pattern written into every f32 output element before a run. */
export const F32_CANARY_BITS = 0x7fc5a5a5;
/** 16-bit outputs (bf16, ushort): a bfloat NaN, which no correct store of a finite value produces. */
export const U16_CANARY = 0x7fa5;
/** Value written into every integer output element before a run. */
export const INT_CANARY = 0xa5a5a5a5;

export interface ElementRef {
  index: number;
  got: number;
  expected: number;
}

export interface OutputComparison {
  name: string;
  kind: 'float' | 'exact';
  elements: number;
  pass: boolean;
  /** Short reason of a failure ('' when passing). */
  failure: string;
  cosine: number | null;
  maxAbs: number | null;
  relMaxAbs: number | null;
  /** Elements outside tolerance (or differing, for exact outputs). */
  violations: number;
  firstViolation: ElementRef | null;
  worst: ElementRef | null;
  /** Non-finite where the reference is finite. */
  nonFinite: number;
  /** Elements still holding the canary: the kernel never wrote them. */
  unwritten: number;
  rule: CompareRule;
}

/** Fill an output buffer with the canary before a run. */
export function fillCanary(a: TypedArray, dtype: 'float' | 'int'): void {
  if (dtype === 'float' && a instanceof Float32Array) {
    new Uint32Array(a.buffer, a.byteOffset, a.length).fill(F32_CANARY_BITS);
  } else if (a instanceof Uint16Array) {
    a.fill(U16_CANARY);
  } else if (a instanceof Uint8Array) {
    a.fill(0xa5);
  } else {
    new Uint32Array(a.buffer, a.byteOffset, a.length).fill(INT_CANARY);
  }
}

function isCanary(a: TypedArray, i: number): boolean {
  if (a instanceof Float32Array) {
    return new Uint32Array(a.buffer, a.byteOffset, a.length)[i] === F32_CANARY_BITS;
  }
  if (a instanceof Uint16Array) return a[i] === U16_CANARY;
  if (a instanceof Uint8Array) return a[i] === 0xa5;
  return (a[i] as number) >>> 0 === INT_CANARY;
}

/**
 * Compare `got` with `expected` (same length; expected may be a Float64Array
 * of exact reference values, or values as the kernel would store them).
 * `decode` turns a stored element into a number (bf16 bits → float).
 */
/** A comparison with no figures yet: passing, nothing violated (compareOutput fills it in). */
export function blankComparison(name: string, elements: number, rule: CompareRule): OutputComparison {
  return {
    name,
    kind: rule.kind,
    elements,
    pass: true,
    failure: '',
    cosine: null,
    maxAbs: null,
    relMaxAbs: null,
    violations: 0,
    firstViolation: null,
    worst: null,
    nonFinite: 0,
    unwritten: 0,
    rule,
  };
}

export function compareOutput(
  name: string,
  got: TypedArray,
  expected: ArrayLike<number>,
  rule: CompareRule,
  decode: (a: TypedArray, i: number) => number = (a, i) => a[i] as number,
  include?: (i: number) => boolean,
): OutputComparison {
  const n = expected.length;
  const res = blankComparison(name, n, rule);
  if (got.length !== n) {
    res.pass = false;
    res.failure = `length ${got.length} != expected ${n}`;
    return res;
  }

  if (rule.kind === 'exact') {
    let worstDiff = -1;
    for (let i = 0; i < n; i++) {
      if (include && !include(i)) continue;
      const g = decode(got, i);
      const e = expected[i] as number;
      if (isCanary(got, i)) res.unwritten++;
      if (g === e || (rule.tieOk !== undefined && rule.tieOk(i, g, e))) continue;
      res.violations++;
      const ref = { index: i, got: g, expected: e };
      if (res.firstViolation === null) res.firstViolation = ref;
      const d = Math.abs(g - e);
      if (d > worstDiff) {
        worstDiff = d;
        res.worst = ref;
      }
    }
    const extra = rule.validate ? rule.validate(got) : null;
    if (res.unwritten > 0) {
      res.pass = false;
      res.failure = `${res.unwritten} element(s) never written`;
    } else if (res.violations > 0) {
      res.pass = false;
      res.failure = `${res.violations} of ${n} differ`;
    } else if (extra !== null) {
      res.pass = false;
      res.failure = extra;
    }
    return res;
  }

  let dot = 0;
  let ng = 0;
  let ne = 0;
  let maxAbs = 0;
  let maxRef = 0;
  let worstExcess = -Infinity;
  for (let i = 0; i < n; i++) {
    if (include && !include(i)) continue;
    const e = expected[i] as number;
    if (isCanary(got, i)) {
      res.unwritten++;
    }
    const g = decode(got, i);
    const ref = { index: i, got: g, expected: e };
    if (!Number.isFinite(g)) {
      if (Number.isFinite(e)) {
        res.nonFinite++;
        res.violations++;
        if (res.firstViolation === null) res.firstViolation = ref;
        if (worstExcess < Infinity) {
          worstExcess = Infinity;
          res.worst = ref;
        }
        continue;
      }
      // Both non-finite: they must agree (NaN with NaN, +inf with +inf).
      if (!(Number.isNaN(g) && Number.isNaN(e)) && g !== e) {
        res.violations++;
        if (res.firstViolation === null) res.firstViolation = ref;
      }
      continue;
    }
    if (!Number.isFinite(e)) {
      res.violations++;
      if (res.firstViolation === null) res.firstViolation = ref;
      continue;
    }
    dot += g * e;
    ng += g * g;
    ne += e * e;
    const d = Math.abs(g - e);
    if (d > maxAbs) maxAbs = d;
    if (Math.abs(e) > maxRef) maxRef = Math.abs(e);
    const allowed = rule.atol + rule.rtol * Math.abs(e);
    const excess = d - allowed;
    if (excess > 0) {
      res.violations++;
      if (res.firstViolation === null) res.firstViolation = ref;
    }
    if (excess > worstExcess) {
      worstExcess = excess;
      res.worst = ref;
    }
  }
  // Cosine of two zero vectors is 1 (identical); of one zero vector, 0.
  res.cosine = ng === 0 && ne === 0 ? 1 : ng === 0 || ne === 0 ? 0 : dot / Math.sqrt(ng * ne);
  res.maxAbs = maxAbs;
  res.relMaxAbs = maxRef === 0 ? (maxAbs === 0 ? 0 : Infinity) : maxAbs / maxRef;

  if (res.unwritten > 0) {
    res.pass = false;
    res.failure = `${res.unwritten} element(s) never written`;
  } else if (res.nonFinite > 0) {
    res.pass = false;
    res.failure = `${res.nonFinite} non-finite value(s) where the reference is finite`;
  } else if (res.violations > 0) {
    res.pass = false;
    res.failure = `${res.violations} of ${n} out of tolerance`;
  } else if (res.cosine < rule.minCosine) {
    res.pass = false;
    res.failure = `cosine ${res.cosine.toPrecision(6)} < ${rule.minCosine}`;
  } else if (res.relMaxAbs > rule.maxRelMaxAbs) {
    res.pass = false;
    res.failure = `rel_max_abs ${res.relMaxAbs.toExponential(2)} > ${rule.maxRelMaxAbs}`;
  }
  return res;
}
