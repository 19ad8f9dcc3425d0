/** Building a spec's default sweep: model shapes from fixtures/models.json crossed with input sets; size limits. */
import { model, type ModelShape } from '../models.js';
import type { InputSet, KernelCase, Params } from '../spec.js';

/** The models most sweeps take their shapes from, in sweep order. */
export const SWEEP_MODELS = ['qwen3-30b-a3b', 'gemma-4-26b-a4b', 'qwen1.5-moe-a2.7b', 'mixtral-8x7b', 'deepseek-v2-lite'] as const;

/** Largest element count of one buffer we accept (1 GiB of floats): 32-bit indices in the kernels stay exact. */
export const MAX_ELEMS = 2 ** 28;

/** One row of a sweep: where the shape comes from, its params, the input sets it runs. */
export type CaseRow = [origin: string, params: Params, sets: string[]];

export function modelOf(key: string): ModelShape {
  const m = model(key);
  if (!m) throw new Error(`fixtures/models.json has no model '${key}'`);
  return m;
}

/** One case per (row, input set), in row order. */
export function cross(rows: CaseRow[]): KernelCase[] {
  const out: KernelCase[] = [];
  for (const [origin, params, sets] of rows) for (const inputSet of sets) out.push({ params, inputSet, origin });
  return out;
}

/** The names of a list of input sets. */
export const setNames = (sets: { name: string }[]): string[] => sets.map((s) => s.name);

export function tooLarge(what: string, n: number): string | null {
  return n > MAX_ELEMS ? `${what} = ${n} elements is too large (at most ${MAX_ELEMS})` : null;
}

export function unknownSet(s: string): never {
  throw new Error(`unknown input set '${s}'`);
}

/**
 * Input sets from a text table, one `name: description` a line (the name ends
 * at the first ': '); blank lines are skipped.
 */
export function inputSets(table: string): InputSet[] {
  return table
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line) => {
      const at = line.indexOf(': ');
      if (at < 1) throw new Error(`input set line '${line}' is not 'name: description'`);
      return { name: line.slice(0, at), description: line.slice(at + 2) };
    });
}
