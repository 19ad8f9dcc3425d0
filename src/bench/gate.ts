/**
 * The regression gate of `moe bench --baseline`: a decision per case that
 * accounts for the spread between runs, not only the noise inside one.
 *
 * Why: the noise a bench run reports is the standard error of its median
 * over samples taken back to back, often within a millisecond. Samples that
 * close together share the state of the machine (other processes, clock
 * boost, which worker threads got a core), so two runs of the same code
 * differ by many times that noise, and a gate on the in-run noise alone
 * fails at random. The unit of evidence here is therefore a *block*: one
 * warm-up plus one sampled median, as a plain run takes; independent blocks
 * taken at different moments show the spread between runs.
 *
 * The decision, per case (all ratios on a log scale, so slower and faster
 * are symmetric; T = --max-regression, the tolerance):
 *
 * 1. First look: the saved baseline against this run, with the in-run noise
 *    of both (an interval of ± z·noise, z the normal quantile at ALPHA).
 *    Without the baseline's code, when the whole interval lies within
 *    [1/(1+T), 1+T] the case is SAME and nothing more is measured; anything
 *    else, in either direction, is only a suspicion, confirmed before a
 *    verdict (step 3). With the baseline's code at hand every case goes to
 *    step 2: the saved file is one moment of the machine, and a first look
 *    that happens to fall within the band can hide a real slowdown as
 *    easily as a false one can raise an alarm; the A/B costs little.
 * 2. Confirmation, with the baseline code at hand (--baseline-shader):
 *    ROUNDS rounds, each one block of the candidate and one of the baseline,
 *    in alternating order (A B, B A, …) so a drift in the machine's speed
 *    hits both alike. Each round gives one ratio; both sides of a round saw
 *    the same moment of the machine, so the load cancels in it. The
 *    interval of the median ratio is the sign test's, from order statistics:
 *    free of any assumption on the shape of the distribution, and a round
 *    disturbed by a burst of load on one side moves it by one rank only.
 * 3. Confirmation without the baseline code (only the saved JSON): the
 *    candidate is measured ROUNDS more blocks, and its own spread between
 *    blocks stands for the baseline's (the same code on the same machine
 *    would spread alike). The baseline's saved blocks (`moe bench
 *    --repeats N` records them) join the spread when there are two or more.
 *    A saved run is one moment of the machine, so no order-statistics test
 *    can reach the confidence below with one value; this path assumes the
 *    block medians are near normal on the log scale, estimates their
 *    standard deviation robustly (1.4826·MAD, so a few disturbed blocks do
 *    not widen it much), and forms a Student-t interval for the difference
 *    of the two medians (variance of a median of k ≥ 3 values taken as
 *    π/2·σ²/k, its large-sample value, which is conservative for small k;
 *    degrees of freedom scaled by the MAD's efficiency, 0.37).
 *    The spread is never taken below the in-run noise of the first look.
 * 4. Verdict from the final interval [lo, hi] of new/old:
 *      lo > 1+T            SLOWER     a regression beyond the tolerance (exit 1)
 *      hi < 1/(1+T)        FASTER
 *      within the band     SAME       equal within the tolerance
 *      otherwise           AMBIGUOUS  the evidence cannot tell; exit 0 unless --strict
 *    AMBIGUOUS is the honest answer for a case whose spread is as wide as
 *    the tolerance: a gate that must say yes or no there flakes.
 *
 * ALPHA = 0.01: the intervals cover the true ratio with probability 0.99, so
 * code that is exactly at the tolerance is called SLOWER by chance at most
 * 0.5% of the time per case (one side of the interval), and unchanged code,
 * which sits a whole tolerance below that edge, far less often.
 * ROUNDS = 16: with ALPHA = 0.01 the sign-test interval of 16 ratios runs
 * from the 3rd smallest to the 3rd largest (coverage 99.6%), so two rounds
 * upset by load on the same side cannot decide a case; and the t interval
 * of the unpaired path rests on 17 candidate blocks (6 effective degrees of
 * freedom for a MAD, t = 3.71). Each block of the confirmation gets 1/ROUNDS of
 * --max-time, so a confirmation costs about the device time of one more
 * run of the case per side.
 */
import { caseKey, compareCase, type TimedCase } from './baseline.js';
import { medianOf, normalQuantile, robustSigma, signTestRank, sorted, tQuantile } from './stats.js';

export const ALPHA = 0.01;
export const ROUNDS = 16;

export type Outcome = 'same' | 'slower' | 'faster' | 'ambiguous';
export type Method = 'first look' | 'interleaved A/B' | 'candidate repeats';

/** A case as saved in a baseline or measured now: its median and, when recorded, the medians of its blocks. */
export interface SavedCase extends TimedCase {
  /** Medians of the blocks of a `--repeats N` run (N ≥ 2). */
  repeatsNs?: number[];
}

export interface Interval {
  /** Point estimate of new/old. */
  ratio: number;
  lo: number;
  hi: number;
}

export interface GateComparison {
  kernel: string;
  shape: string;
  /** The baseline's median: the saved one, or that of its re-measured blocks. */
  oldNs: number;
  /** The candidate's median: this run's, or that of all its blocks after a confirmation. */
  newNs: number;
  /** Estimate of new/old, and its interval at confidence 1 − ALPHA. */
  ratio: number;
  lo: number;
  hi: number;
  /** sqrt(noise_old² + noise_new²): the in-run noise of the first look. */
  combinedNoise: number;
  verdict: Outcome;
  /** verdict === 'slower'. */
  regression: boolean;
  method: Method;
  /** The first look alone (what one run against the saved file says). */
  firstLook: { ratio: number; verdict: Outcome };
  /** Block medians the verdict rests on (after a confirmation). */
  candidateNs?: number[];
  baselineNs?: number[];
}

export interface GateResult {
  comparisons: GateComparison[];
  /** Cases of the new run with no baseline entry. */
  missing: string[];
  tolerance: number;
  strict: boolean;
  /** Whether the gate fails: a SLOWER case, or with strict an AMBIGUOUS one. */
  fails: boolean;
}

/** Verdict of an interval of new/old against the tolerance band [1/(1+T), 1+T]. */
export function classify(iv: { lo: number; hi: number }, tolerance: number): Outcome {
  const up = 1 + tolerance;
  const down = 1 / up;
  if (iv.lo > up) return 'slower';
  if (iv.hi < down) return 'faster';
  if (iv.lo >= down && iv.hi <= up) return 'same';
  return 'ambiguous';
}

/** Step 1: the saved baseline against one run, with the in-run noise of both. */
export function firstLookInterval(oldC: TimedCase, newC: TimedCase, alpha = ALPHA): Interval {
  const ratio = newC.medianNs / oldC.medianNs;
  const noise = Math.sqrt(oldC.noise ** 2 + newC.noise ** 2);
  const half = normalQuantile(alpha) * (Number.isFinite(noise) ? noise : Infinity);
  return { ratio, lo: ratio * Math.exp(-half), hi: ratio * Math.exp(half) };
}

/** A time of 0 ns is below the clock's resolution: 1 ns, so that its logarithm is finite. */
const atLeast1 = (ns: number): number => (ns >= 1 ? ns : 1);

/** Step 2: interleaved rounds, one candidate and one baseline block each; the sign-test interval of the median ratio. */
export function pairedInterval(candidateNs: number[], baselineNs: number[], alpha = ALPHA): Interval {
  if (candidateNs.length !== baselineNs.length || candidateNs.length === 0) throw new Error('pairedInterval: one baseline block per candidate block');
  const d = sorted(candidateNs.map((c, i) => Math.log(atLeast1(c) / atLeast1(baselineNs[i] as number))));
  const n = d.length;
  const k = signTestRank(n, alpha);
  const ratio = Math.exp(medianOf(d));
  if (k === 0) return { ratio, lo: 0, hi: Infinity };
  return { ratio, lo: Math.exp(d[k - 1] as number), hi: Math.exp(d[n - k] as number) };
}

/**
 * The MAD estimates σ with 37% of the efficiency of the standard deviation
 * at the normal: as precisely as an SD from 0.37 as many values. The t
 * quantile gets the degrees of freedom scaled alike, or the interval would
 * be too narrow whenever the MAD comes out small by chance.
 */
const MAD_EFFICIENCY = 0.37;

/** Variance factor of the median of k values, in units of σ²/k (see the comment at the top). */
const medianVariance = (k: number): number => (k <= 2 ? 1 : Math.PI / 2);

/**
 * Step 3: candidate blocks against saved baseline values (one, or a saved
 * run's blocks); the candidate's spread (pooled with the baseline's when it
 * has two or more blocks) is the noise model. `floor` is the least relative
 * spread to assume (the in-run noise).
 */
export function unpairedInterval(candidateNs: number[], baselineNs: number[], floor = 0, alpha = ALPHA): Interval {
  const n = candidateNs.length;
  const m = baselineNs.length;
  if (n < 2 || m < 1) throw new Error('unpairedInterval: two candidate blocks and one baseline value at least');
  const x = candidateNs.map((v) => Math.log(atLeast1(v)));
  const y = baselineNs.map((v) => Math.log(atLeast1(v)));
  const mx = medianOf(sorted(x));
  const my = medianOf(sorted(y));
  const residuals = x.map((v) => v - mx);
  if (m >= 2) residuals.push(...y.map((v) => v - my));
  // The residuals are about their own group's median; the robust sigma of
  // them is about their median, which is near 0 by construction. A saved
  // run whose own blocks spread wider than the pooled figure widens it.
  const sigma = Math.max(robustSigma(residuals), m >= 3 ? robustSigma(y) : 0, floor);
  const nu = Math.max(1, Math.round(MAD_EFFICIENCY * (residuals.length - (m >= 2 ? 2 : 1))));
  const se = sigma * Math.sqrt(medianVariance(n) / n + medianVariance(m) / m);
  const half = tQuantile(alpha, nu) * se;
  const delta = mx - my;
  return { ratio: Math.exp(delta), lo: Math.exp(delta - half), hi: Math.exp(delta + half) };
}

/** A case measured now, with the means to measure it (and its baseline code) again. */
export interface GateCase {
  result: SavedCase;
  /** One more block of the candidate: its median, ns. */
  measure: () => Promise<number>;
  /** One more block of the baseline's code, when it is at hand (--baseline-shader). */
  measureBaseline?: () => Promise<number>;
}

export interface GateOptions {
  tolerance: number;
  strict?: boolean;
  rounds?: number;
  alpha?: number;
}

/** The blocks of a case: those a --repeats run recorded, else its one median. */
const blocksOf = (c: SavedCase): number[] => (c.repeatsNs && c.repeatsNs.length >= 2 ? [...c.repeatsNs] : [c.medianNs]);

/** Decide one case: first look, then (on any suspicion) a confirmation. */
export async function gateCase(old: SavedCase, g: GateCase, o: GateOptions): Promise<GateComparison> {
  const alpha = o.alpha ?? ALPHA;
  const rounds = o.rounds ?? ROUNDS;
  const now = g.result;
  const combinedNoise = compareCase(old, now, o.tolerance).combinedNoise;
  const first = firstLookInterval(old, now, alpha);
  const firstVerdict = classify(first, o.tolerance);
  const base = { kernel: now.kernel, shape: now.shape, combinedNoise, firstLook: { ratio: first.ratio, verdict: firstVerdict } };
  if (firstVerdict === 'same' && !g.measureBaseline) {
    return { ...base, oldNs: old.medianNs, newNs: now.medianNs, ...first, verdict: 'same', regression: false, method: 'first look' };
  }
  let iv: Interval;
  let candidateNs: number[];
  let baselineNs: number[];
  let method: Method;
  if (g.measureBaseline) {
    candidateNs = [];
    baselineNs = [];
    for (let i = 0; i < rounds; i++) {
      // A B, then B A: a steady drift of the machine's speed favours neither side.
      if (i % 2 === 0) {
        candidateNs.push(await g.measure());
        baselineNs.push(await g.measureBaseline());
      } else {
        baselineNs.push(await g.measureBaseline());
        candidateNs.push(await g.measure());
      }
    }
    iv = pairedInterval(candidateNs, baselineNs, alpha);
    method = 'interleaved A/B';
  } else {
    candidateNs = blocksOf(now);
    for (let i = 0; i < rounds; i++) candidateNs.push(await g.measure());
    baselineNs = blocksOf(old);
    const floor = Math.max(Number.isFinite(now.noise) ? now.noise : 0, Number.isFinite(old.noise) ? old.noise : 0);
    iv = unpairedInterval(candidateNs, baselineNs, floor, alpha);
    method = 'candidate repeats';
  }
  const verdict = classify(iv, o.tolerance);
  return {
    ...base,
    oldNs: medianOf(sorted(baselineNs)),
    newNs: medianOf(sorted(candidateNs)),
    ...iv,
    verdict,
    regression: verdict === 'slower',
    method,
    candidateNs,
    baselineNs,
  };
}

/** The gate over a whole run: each case of this run with a baseline entry is decided; the others are listed. */
export async function gateRun(oldCases: SavedCase[], cases: GateCase[], o: GateOptions): Promise<GateResult> {
  const old = new Map(oldCases.map((c) => [caseKey(c), c]));
  const comparisons: GateComparison[] = [];
  const missing: string[] = [];
  for (const g of cases) {
    const o2 = old.get(caseKey(g.result));
    if (!o2) missing.push(caseKey(g.result));
    else comparisons.push(await gateCase(o2, g, o));
  }
  const strict = o.strict ?? false;
  const fails = comparisons.some((c) => c.verdict === 'slower' || (strict && c.verdict === 'ambiguous'));
  return { comparisons, missing, tolerance: o.tolerance, strict, fails };
}

/** The verdict as the tables print it. */
export function verdictLabel(c: GateComparison, strict: boolean): string {
  switch (c.verdict) {
    case 'slower':
      return 'SLOWER (regression)';
    case 'ambiguous':
      return strict ? 'AMBIGUOUS (fails: --strict)' : 'AMBIGUOUS';
    default:
      return c.verdict.toUpperCase();
  }
}

/** The interval column: "0.98–1.03". */
export function intervalLabel(c: GateComparison): string {
  const f = (x: number): string => (Number.isFinite(x) ? x.toFixed(3) : '∞');
  return `${f(c.lo)}–${f(c.hi)}`;
}

/** The closing line of a gated run. */
export function gateSummary(r: GateResult): string {
  const n = (v: Outcome): number => r.comparisons.filter((c) => c.verdict === v).length;
  const counts = `${n('same')} same, ${n('faster')} faster, ${n('slower')} slower, ${n('ambiguous')} ambiguous`;
  if (n('slower') > 0) return `FAIL: ${n('slower')} regression(s) (${counts})`;
  if (r.fails) return `FAIL: ${n('ambiguous')} ambiguous case(s) under --strict (${counts})`;
  return `PASS: no regression (${counts}${n('ambiguous') > 0 ? '; AMBIGUOUS: the spread between runs is as wide as the tolerance, re-run or use --baseline-shader' : ''})`;
}

/** The warning when a gate's times come from the CPU backend. */
export function cpuGateWarning(baselineBackend: string | undefined, backend: string): string | null {
  if (baselineBackend !== 'cpu' && backend !== 'cpu') return null;
  return (
    'a CPU-backend baseline used as a gate: CPU times move with the load of the machine (other processes, clock boost, thread placement), ' +
    'so runs of the same code differ by several %. The gate confirms every suspicion by re-measuring before a verdict; ' +
    'for a steadier gate record the baseline with --repeats 5 and pass the old shader as --baseline-shader (interleaved A/B), or gate on a GPU backend'
  );
}

/**
 * Settings of the baseline run that make its times incomparable with this
 * one's: one line each. Flags left out of a saved report had their default.
 */
export function incomparableSettings(oldFlags: Record<string, unknown> | undefined, flags: Record<string, unknown>): string[] {
  const out: string[] = [];
  const defaults: Record<string, unknown> = { batch: 1, 'warm-cache': false, graph: false };
  for (const k of Object.keys(defaults)) {
    const was = oldFlags?.[k] ?? defaults[k];
    const is = flags[k] ?? defaults[k];
    if (was !== is) out.push(`the baseline was timed with --${k} ${String(was)}, this run with ${String(is)}: the times are not comparable`);
  }
  return out;
}
