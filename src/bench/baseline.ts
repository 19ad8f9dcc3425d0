/**
 * One run against a saved baseline, on the noise inside each run alone: per
 * case the ratio new/old of the medians and a verdict. A difference within
 * the combined noise of both runs is 'same'; a slowdown beyond it by more
 * than --max-regression is a suspected regression. That noise misses the
 * spread between runs, so this is only the gate's first look: `moe bench
 * --baseline` decides in gate.ts, which re-measures every suspicion.
 */

export interface TimedCase {
  kernel: string;
  shape: string;
  medianNs: number;
  /** Relative noise (fraction). */
  noise: number;
}

export type Verdict = 'faster' | 'slower' | 'same';

export interface Comparison {
  kernel: string;
  shape: string;
  oldNs: number;
  newNs: number;
  ratio: number;
  /** sqrt(noise_old² + noise_new²). */
  combinedNoise: number;
  verdict: Verdict;
  regression: boolean;
}

export function caseKey(c: { kernel: string; shape: string }): string {
  return `${c.kernel} | ${c.shape}`;
}

export function compareCase(oldC: TimedCase, newC: TimedCase, maxRegression: number): Comparison {
  const ratio = newC.medianNs / oldC.medianNs;
  const combinedNoise = Math.sqrt(oldC.noise ** 2 + newC.noise ** 2);
  const diff = ratio - 1;
  let verdict: Verdict = 'same';
  if (Math.abs(diff) > combinedNoise) verdict = diff > 0 ? 'slower' : 'faster';
  const regression = verdict === 'slower' && diff - combinedNoise > maxRegression;
  return { kernel: newC.kernel, shape: newC.shape, oldNs: oldC.medianNs, newNs: newC.medianNs, ratio, combinedNoise, verdict, regression };
}

export interface BaselineResult {
  comparisons: Comparison[];
  /** Cases of the new run with no baseline entry. */
  missing: string[];
}

export function compareRuns(oldCases: TimedCase[], newCases: TimedCase[], maxRegression: number): BaselineResult {
  const old = new Map(oldCases.map((c) => [caseKey(c), c]));
  const comparisons: Comparison[] = [];
  const missing: string[] = [];
  for (const c of newCases) {
    const o = old.get(caseKey(c));
    if (!o) missing.push(caseKey(c));
    else comparisons.push(compareCase(o, c, maxRegression));
  }
  return { comparisons, missing };
}
