/**
 * What to run, for every command: the cases of a spec (its default sweep, or
 * the product of the values given on the command line), bench shapes, and
 * model presets from fixtures/models.json.
 */
import { UsageError } from '../errors.js';
import { model, models, type ModelShape } from './models.js';
import type { KernelCase, KernelSpec, Params } from './spec.js';

/** The model of a --preset key, or a usage error naming the known keys. */
export function presetModel(key: string): ModelShape {
  const m = model(key);
  if (!m) throw new UsageError(`unknown preset '${key}' (choose from ${models().map((x) => x.key).join(', ')})`);
  return m;
}

/** A case's origin names a model by its key, possibly followed by details ("qwen3-30b-a3b (down: ...)"). */
export function originIsModel(origin: string, key: string): boolean {
  const o = origin.toLowerCase();
  const k = key.toLowerCase();
  return o === k || o.startsWith(`${k} `) || o.startsWith(`${k}:`);
}

/** How merged cases join their origins. */
export const ORIGIN_JOIN = ' + ';

/**
 * Cases with the same params and input set run once: merged into the first
 * of them, their origins joined (" + "), in first-seen order. Two presets
 * that share a shape then give one case that names both.
 */
export function mergeDuplicateCases(cases: KernelCase[]): KernelCase[] {
  const byKey = new Map<string, { c: KernelCase; origins: string[] }>();
  for (const c of cases) {
    const key = JSON.stringify([Object.entries(c.params).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)), c.inputSet]);
    const have = byKey.get(key);
    if (!have) byKey.set(key, { c, origins: [c.origin] });
    else if (!have.origins.includes(c.origin)) have.origins.push(c.origin);
  }
  return [...byKey.values()].map(({ c, origins }) => ({ ...c, origin: origins.join(ORIGIN_JOIN) }));
}

/** Whether a (possibly merged) case comes from a model's shapes. */
export const caseIsFromModel = (c: KernelCase, key: string): boolean => c.origin.split(ORIGIN_JOIN).some((o) => originIsModel(o, key));

/** Every combination of the listed values over `base`, the first list varying slowest. */
export function sweep(base: Params, lists: [name: string, values: number[]][]): Params[] {
  let shapes: Params[] = [base];
  for (const [name, values] of lists) shapes = shapes.flatMap((s) => values.map((v) => ({ ...s, [name]: v })));
  return shapes;
}

/**
 * The cases to verify for a spec: its default sweep (only the preset model's
 * shapes and the given input sets, when given), or, when a shape flag is
 * given (`values` by flag name), the product of the given values over the
 * defaults (or the preset's first shape) with every input set.
 */
export function buildCases(
  spec: KernelSpec,
  values: Record<string, number[] | undefined>,
  inputSets: string[] | undefined,
  preset: string | undefined,
): KernelCase[] {
  for (const s of inputSets ?? []) {
    if (!spec.inputSets.some((x) => x.name === s)) {
      throw new UsageError(`${spec.name}: unknown input set '${s}' (choose from ${spec.inputSets.map((x) => x.name).join(', ')})`);
    }
  }
  const given = spec.params.filter((p) => values[p.flag ?? p.name] !== undefined);
  if (given.length === 0) {
    let cases = mergeDuplicateCases(spec.cases());
    if (preset) cases = cases.filter((c) => caseIsFromModel(c, preset));
    if (inputSets) cases = cases.filter((c) => inputSets.includes(c.inputSet));
    return cases;
  }
  const base: Params = { ...spec.defaults };
  if (preset) {
    const fromPreset = spec.cases().find((c) => originIsModel(c.origin, preset));
    if (fromPreset) Object.assign(base, fromPreset.params);
  }
  const lists: [string, number[]][] = [];
  for (const p of spec.params) {
    const vs = values[p.flag ?? p.name];
    if (!vs) continue;
    for (const v of vs) {
      if (p.min !== undefined && v < p.min) throw new UsageError(`--${p.flag ?? p.name} ${v}: must be at least ${p.min}`);
      if (p.max !== undefined && v > p.max) throw new UsageError(`--${p.flag ?? p.name} ${v}: must be at most ${p.max}`);
    }
    lists.push([p.name, vs]);
  }
  const sets = inputSets ?? spec.inputSets.map((s) => s.name);
  const cases: KernelCase[] = [];
  for (const params of sweep(base, lists)) for (const inputSet of sets) cases.push({ params, inputSet, origin: 'cli' });
  return mergeDuplicateCases(cases);
}

/**
 * The shapes to time for a spec: defaults, then its bench overrides, then
 * what the preset model sets, swept over --top-k first and then the given
 * values of its other params (`values` by param name).
 */
export function benchShapes(spec: KernelSpec, values: Record<string, number[] | undefined>, topKs: number[] | undefined, preset: ModelShape | undefined): Params[] {
  const base: Params = { ...spec.defaults, ...(spec.bench ?? {}), ...(preset ? (spec.presetParams?.(preset) ?? {}) : {}) };
  const lists: [string, number[]][] = [];
  if (topKs) lists.push(['top_k', topKs]);
  for (const p of spec.params) {
    const v = values[p.name];
    if (v && p.name !== 'top_k') lists.push([p.name, v]);
  }
  return sweep(base, lists);
}

/**
 * The shape flags given (by flag name) that none of the selected specs has:
 * a UsageError naming the flags that do apply. Flags that apply to some of
 * them only are returned with the kernels they do not apply to (those run
 * their default cases), for a warning.
 */
export function checkShapeFlags(specs: KernelSpec[], given: string[]): { flag: string; notFor: string[] }[] {
  const flagsOf = (s: KernelSpec): string[] => s.params.map((p) => `--${p.flag ?? p.name}`);
  const partial: { flag: string; notFor: string[] }[] = [];
  for (const g of given) {
    const flag = `--${g}`;
    const notFor = specs.filter((s) => !flagsOf(s).includes(flag)).map((s) => s.name);
    if (notFor.length === specs.length) {
      const names = specs.map((s) => s.name);
      const apply = [...new Set(specs.flatMap(flagsOf))];
      const list = apply.length > 0 ? apply.join(', ') : 'none';
      throw new UsageError(
        names.length === 1
          ? `${flag} does not apply to ${names[0]} (its shape flags: ${list})`
          : `${flag} does not apply to any selected kernel (${names.join(', ')}; their shape flags: ${list})`,
      );
    }
    if (notFor.length > 0) partial.push({ flag, notFor });
  }
  return partial;
}
