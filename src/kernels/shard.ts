/**
 * `--shard i/n`: a deterministic split of a run's case list into n disjoint
 * shares, so the runners of a CI matrix each run one and `moe merge` puts the
 * reports back together.
 *
 * A case is named by its id (kernel, params, input set); the id's SHA-256 is
 * its place in a fixed order, and the spec's cost model its weight. The
 * shares are filled greedily, heaviest case first (ties in hash order), each
 * case going to the share with the least weight so far. Nothing of the
 * machine, the clock or the order in which kernels were listed enters the
 * split: every runner of the matrix computes the same one.
 */
import { createHash } from 'node:crypto';
import { UsageError } from '../errors.js';
import type { KernelCase, KernelSpec, Params } from './spec.js';

export interface Shard {
  /** 1-based: the i of i/n. */
  index: number;
  count: number;
}

/** The shard a report holds, with where its cases stand in the whole run's list (so a merge restores that order). */
export interface ShardOf extends Shard {
  /** For each case of the report, in its order: the case's 0-based place in the unsharded run. */
  positions: number[];
}

/** The case list a run covers before sharding: how many cases, and a hash of their ids (order-free). */
export interface CaseList {
  cases: number;
  fingerprint: string;
}

/** The i/n of --shard, or a usage error saying what is wrong with it. */
export function parseShard(text: string): Shard {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  if (!m) throw new UsageError(`--shard: '${text}' is not i/n (e.g. 2/3: the second of three shares)`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1 || count > 10_000) throw new UsageError(`--shard ${text}: the number of shares must be 1 to 10000`);
  if (index < 1 || index > count) throw new UsageError(`--shard ${text}: the share must be 1 to ${count}`);
  return { index, count };
}

/** A case's id: kernel, input set and params (sorted by name), the same on every machine. */
export function caseId(kernel: string, params: Params, inputSet: string): string {
  const p = Object.keys(params)
    .sort()
    .map((k) => `${k}=${JSON.stringify(params[k])}`)
    .join(',');
  return `${kernel}|${inputSet}|${p}`;
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** The fingerprint of a case list: the hash of its sorted ids (the order kernels were listed in does not count). */
export function caseListOf(ids: string[]): CaseList {
  const sorted = [...ids].sort();
  return { cases: ids.length, fingerprint: sha256(sorted.join('\n')).slice(0, 32) };
}

/**
 * What a case costs to run, in the cost model's units: the bytes it moves
 * plus the flops it does, plus a fixed part for what every case costs
 * whatever its size (inputs, launch, comparison), so tiny cases weigh
 * something too.
 */
export const CASE_OVERHEAD = 65_536;

export function caseWeight(spec: Pick<KernelSpec, 'cost'>, params: Params): number {
  let w = 0;
  try {
    const c = spec.cost(params);
    w = c.bytes + c.flops;
  } catch {
    w = 0; // a case the cost model cannot size is judged by verify itself; here it weighs the fixed part
  }
  return CASE_OVERHEAD + (Number.isFinite(w) && w > 0 ? w : 0);
}

export interface Weighted {
  id: string;
  weight: number;
}

/** The share (0-based) of every item, by id: heaviest first into the lightest share so far. */
export function assignShares(items: Weighted[], count: number): Map<string, number> {
  const keyed = items.map((x) => ({ ...x, hash: sha256(x.id) }));
  keyed.sort((a, b) => b.weight - a.weight || (a.hash < b.hash ? -1 : a.hash > b.hash ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const load = new Array<number>(count).fill(0);
  const out = new Map<string, number>();
  for (const x of keyed) {
    const seen = out.get(x.id);
    if (seen !== undefined) {
      // The same case listed twice (e.g. --tokens 1,1) runs twice, in one share.
      load[seen] = (load[seen] as number) + x.weight;
      continue;
    }
    let best = 0;
    for (let s = 1; s < count; s++) if ((load[s] as number) < (load[best] as number)) best = s;
    load[best] = (load[best] as number) + x.weight;
    out.set(x.id, best);
  }
  return out;
}

/** The cases of one spec, before and after sharding. */
export interface SpecCases<S extends Pick<KernelSpec, 'name' | 'cost'> = KernelSpec, C extends { params: Params } = KernelCase> {
  spec: S;
  cases: C[];
}

/** A spec's cases in one share, with each one's place in the unsharded run. */
export interface SpecShare<S, C> {
  spec: S;
  cases: C[];
  positions: number[];
}

/**
 * The share of a run: each spec with only its cases in shard `shard` (specs
 * left with none are kept, with an empty list), the fingerprint of the whole
 * case list, and each share's total weight. `inputSet` names a case's input
 * set (bench cases have none).
 */
export function shardCases<S extends Pick<KernelSpec, 'name' | 'cost'>, C extends { params: Params }>(
  plan: SpecCases<S, C>[],
  shard: Shard | undefined,
  inputSet: (c: C) => string,
): { plan: SpecShare<S, C>[]; caseList: CaseList; loads: number[] } {
  const items: Weighted[] = [];
  for (const { spec, cases } of plan) for (const c of cases) items.push({ id: caseId(spec.name, c.params, inputSet(c)), weight: caseWeight(spec, c.params) });
  const caseList = caseListOf(items.map((x) => x.id));
  const count = shard?.count ?? 1;
  const shares = assignShares(items, count);
  const loads = new Array<number>(count).fill(0);
  for (const x of items) loads[shares.get(x.id) as number] += x.weight;
  const mine = (spec: S, c: C): boolean => !shard || shares.get(caseId(spec.name, c.params, inputSet(c))) === shard.index - 1;
  let at = 0;
  const out = plan.map(({ spec, cases }) => {
    const share: SpecShare<S, C> = { spec, cases: [], positions: [] };
    for (const c of cases) {
      if (mine(spec, c)) {
        share.cases.push(c);
        share.positions.push(at);
      }
      at++;
    }
    return share;
  });
  return { plan: out, caseList, loads };
}
