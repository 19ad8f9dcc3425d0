/** Seeded random numbers (seedrandom's alea) for reproducible inputs. */
import seedrandom from 'seedrandom';

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  uniform(lo: number, hi: number): number;
  /** Standard normal (Box–Muller). */
  normal(): number;
  int(lo: number, hiExclusive: number): number;
}

export function makeRng(seed: string): Rng {
  const r = seedrandom.alea(seed);
  let spare: number | null = null;
  const rng: Rng = {
    next: () => r.double(),
    uniform: (lo, hi) => lo + (hi - lo) * r.double(),
    normal: () => {
      if (spare !== null) {
        const s = spare;
        spare = null;
        return s;
      }
      let u = 0;
      while (u === 0) u = r.double();
      const v = r.double();
      const mag = Math.sqrt(-2 * Math.log(u));
      spare = mag * Math.sin(2 * Math.PI * v);
      return mag * Math.cos(2 * Math.PI * v);
    },
    int: (lo, hi) => lo + Math.floor(r.double() * (hi - lo)),
  };
  return rng;
}

/** The seed of one case: the same case gets the same inputs however it is selected. */
export function caseSeed(seed: number, kernel: string, shape: string, inputSet: string): string {
  return `${seed}|${kernel}|${shape}|${inputSet}`;
}
