/**
 * `moe merge`: the --json reports of the shares of one sharded run (`--shard
 * i/n` on verify or bench) put back together into the report the unsharded
 * run would have written, after checking that they belong together: one
 * schema, tool version, seed and backend, one case list (its fingerprint),
 * every share once, the same shader sources.
 */
import { UsageError } from '../errors.js';
import type { PhysicsVerdict } from '../bench/physics.js';
import { caseId, caseListOf, type CaseList, type ShardOf } from '../kernels/shard.js';
import { BENCH_SCHEMA, benchRenderers, type BenchReport } from './bench.js';
import type { Renderers } from './common.js';
import { kernelStatus, verifyRenderers, verifySummary, VERIFY_SCHEMA, type VerifyReport } from './verify.js';

export interface ShardFile {
  file: string;
  /** The parsed JSON, not yet checked. */
  doc: unknown;
}

/** The merged report, and notes for stderr (e.g. shares that ran on different devices). */
export type Merged = ({ kind: 'verify'; report: VerifyReport } | { kind: 'bench'; report: BenchReport }) & { notes: string[] };

interface Common {
  schema: string;
  tool: { version: string };
  backend: string;
  device: { name: string };
  seed: number;
  shard?: ShardOf;
  caseList?: CaseList;
  cases: { kernel: string; params: Record<string, number> }[];
}

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** The checks every report passes before its cases are looked at. */
function checkShape(f: ShardFile): Common {
  const d = f.doc;
  if (!isObject(d) || (d.schema !== VERIFY_SCHEMA && d.schema !== BENCH_SCHEMA)) {
    throw new UsageError(`${f.file}: not a moe verify or moe bench --json report (schema ${isObject(d) ? String(d.schema) : 'none'})`);
  }
  if (!isObject(d.tool) || typeof d.tool.version !== 'string' || typeof d.backend !== 'string' || typeof d.seed !== 'number' || !Array.isArray(d.cases) || !isObject(d.device)) {
    throw new UsageError(`${f.file}: a ${String(d.schema)} report without its tool, backend, device, seed or cases`);
  }
  if (!isObject(d.caseList) || typeof d.caseList.fingerprint !== 'string' || typeof d.caseList.cases !== 'number') {
    throw new UsageError(`${f.file}: has no case list fingerprint (written by a moe-kernels without --shard?): cannot tell which run it belongs to`);
  }
  return d as unknown as Common;
}

/** One value for a field across the reports, or a usage error listing which file has which. */
function same<T>(files: string[], docs: Common[], what: string, get: (d: Common) => T): T {
  const values = docs.map(get);
  const first = values[0] as T;
  if (values.every((v) => v === first)) return first;
  const lines = files.map((f, i) => `  ${f}: ${String(values[i])}`).join('\n');
  throw new UsageError(`the reports are of different ${what} and do not make one run:\n${lines}`);
}

/**
 * Check that the reports are the shares of one run, each once and none
 * missing; the reports in share order, with their shards (a report without
 * one is the whole run, 1/1).
 */
function checkShares(inputs: ShardFile[]): { docs: Common[]; files: string[]; shards: ShardOf[]; caseList: CaseList } {
  if (inputs.length === 0) throw new UsageError('moe merge needs the --json reports of the shares (e.g. moe merge shard-*.json)');
  const docs = inputs.map(checkShape);
  const files = inputs.map((f) => f.file);
  same(files, docs, 'report kinds', (d) => d.schema);
  same(files, docs, 'moe-kernels versions', (d) => d.tool.version);
  same(files, docs, 'backends', (d) => d.backend);
  same(files, docs, 'seeds', (d) => d.seed);
  same(files, docs, 'case lists (fingerprints of every case of the unsharded run)', (d) => `${d.caseList?.fingerprint} (${d.caseList?.cases} cases)`);
  const shards = docs.map((d, i): ShardOf => {
    const s = d.shard;
    if (s === undefined) return { index: 1, count: 1, positions: d.cases.map((_, k) => k) };
    if (!Number.isInteger(s.index) || !Number.isInteger(s.count) || s.index < 1 || s.index > s.count || !Array.isArray(s.positions) || s.positions.length !== d.cases.length) {
      throw new UsageError(`${files[i]}: its shard field is malformed (index ${String(s.index)}, count ${String(s.count)})`);
    }
    return s;
  });
  const count = (shards[0] as ShardOf).count;
  if (shards.some((s) => s.count !== count)) {
    throw new UsageError(`the reports split the run into different numbers of shares:\n${files.map((f, i) => `  ${f}: ${shards[i]?.index}/${shards[i]?.count}`).join('\n')}`);
  }
  const byIndex = new Map<number, string>();
  for (const [i, s] of shards.entries()) {
    const other = byIndex.get(s.index);
    if (other !== undefined) throw new UsageError(`share ${s.index}/${count} is given twice: ${other} and ${files[i]}`);
    byIndex.set(s.index, files[i] as string);
  }
  const missing = [...Array(count).keys()].map((k) => k + 1).filter((k) => !byIndex.has(k));
  if (missing.length > 0) {
    throw new UsageError(`missing share${missing.length > 1 ? 's' : ''} ${missing.map((k) => `${k}/${count}`).join(', ')} (given: ${[...byIndex.keys()].sort((a, b) => a - b).map((k) => `${k}/${count}`).join(', ')})`);
  }
  const order = [...shards.keys()].sort((a, b) => (shards[a] as ShardOf).index - (shards[b] as ShardOf).index);
  return {
    docs: order.map((i) => docs[i] as Common),
    files: order.map((i) => files[i] as string),
    shards: order.map((i) => shards[i] as ShardOf),
    caseList: docs[0]?.caseList as CaseList,
  };
}

/** The cases of all shares in the unsharded run's order; a case in two shares, or a place taken twice, is an error. */
function mergeCases<C extends { kernel: string; params: Record<string, number> }>(files: string[], shards: ShardOf[], lists: C[][], total: number, inputSet: (c: C) => string): C[] {
  const at = new Map<number, { file: string; c: C }>();
  const owner = new Map<string, string>();
  for (const [i, list] of lists.entries()) {
    const file = files[i] as string;
    const positions = (shards[i] as ShardOf).positions;
    for (const [k, c] of list.entries()) {
      const p = positions[k] as number;
      if (!Number.isInteger(p) || p < 0 || p >= total) throw new UsageError(`${file}: case ${k} claims place ${p} of a run of ${total} cases`);
      const prev = at.get(p);
      if (prev) throw new UsageError(`${prev.file} and ${file} both hold case ${p} of the run: the shares overlap`);
      const id = caseId(c.kernel, c.params, inputSet(c));
      const o = owner.get(id);
      if (o !== undefined && o !== file) throw new UsageError(`${o} and ${file} both hold the case ${id}: the shares overlap`);
      owner.set(id, file);
      at.set(p, { file, c });
    }
  }
  return [...at.keys()].sort((a, b) => a - b).map((p) => (at.get(p) as { c: C }).c);
}

/** Differing devices do not stop a merge (hosted runners differ), but the report says which. */
export function deviceNote(docs: { device: { name: string } }[], files: string[]): string | null {
  const names = new Set(docs.map((d) => d.device.name));
  if (names.size <= 1) return null;
  return `the shares ran on different devices: ${files.map((f, i) => `${f}: ${docs[i]?.device.name}`).join('; ')} (the merged report names the first)`;
}

function mergeVerify(files: string[], docs: VerifyReport[], shards: ShardOf[], caseList: CaseList): VerifyReport {
  const cases = mergeCases(files, shards, docs.map((d) => d.cases), caseList.cases, (c) => c.inputSet);
  const check = caseListOf(cases.map((c) => caseId(c.kernel, c.params, c.inputSet)));
  if (check.fingerprint !== caseList.fingerprint) {
    throw new UsageError(`the shares hold ${cases.length} of the run's ${caseList.cases} cases, or other cases than it listed (fingerprint ${check.fingerprint}, expected ${caseList.fingerprint})`);
  }
  const kernelInfo = new Map<string, VerifyReport['kernels'][number] & { file: string }>();
  for (const [i, d] of docs.entries()) {
    for (const k of d.kernels) {
      const prev = kernelInfo.get(k.name);
      if (prev && (prev.sourceHash !== k.sourceHash || prev.entry !== k.entry)) {
        throw new UsageError(`${k.name} ran another shader in ${prev.file} (${prev.entry}, source ${prev.sourceHash}) than in ${files[i]} (${k.entry}, source ${k.sourceHash})`);
      }
      if (!prev) kernelInfo.set(k.name, { ...k, file: files[i] as string });
    }
  }
  // kernels with cases, in the run's order, then those that ran none (a shader that did not compile)
  const names = [...new Set([...cases.map((c) => c.kernel), ...kernelInfo.keys()])];
  const kernels = names.map((name) => {
    const { file: _file, ...k } = kernelInfo.get(name) ?? { file: '', name, entry: '', shader: '', sourceHash: '', math: '', status: 'PASS' as const };
    return { ...k, status: k.error ? ('ERROR' as const) : kernelStatus(cases.filter((c) => c.kernel === name)) };
  });
  const first = docs[0] as VerifyReport;
  const { shard: _shard, ...head } = first;
  return {
    ...head,
    caseList,
    mergedFrom: { shards: docs.length, files },
    startedAt: docs.map((d) => d.startedAt).sort()[0] as string,
    // The shares run side by side: the run took as long as its longest share.
    durationMs: Math.max(...docs.map((d) => d.durationMs)),
    summary: verifySummary(cases, kernels),
    kernels,
    cases,
  };
}

function mergeBench(files: string[], docs: BenchReport[], shards: ShardOf[], caseList: CaseList): BenchReport {
  const cases = mergeCases(files, shards, docs.map((d) => d.cases), caseList.cases, () => '');
  const shaders: Record<string, string> = {};
  for (const [i, d] of docs.entries()) {
    for (const [k, h] of Object.entries(d.shaders ?? {})) {
      if (shaders[k] !== undefined && shaders[k] !== h) throw new UsageError(`${k} was timed with another shader source in ${files[i]} (${h}) than in another share (${shaders[k]})`);
      shaders[k] = h;
    }
  }
  const skipped = new Map<string, string>();
  for (const d of docs) for (const s of d.skipped ?? []) if (!skipped.has(s.kernel)) skipped.set(s.kernel, s.reason);
  if (skipped.size === 0) {
    const check = caseListOf(cases.map((c) => caseId(c.kernel, c.params, '')));
    if (check.fingerprint !== caseList.fingerprint) {
      throw new UsageError(`the shares hold ${cases.length} of the run's ${caseList.cases} cases, or other cases than it listed (fingerprint ${check.fingerprint}, expected ${caseList.fingerprint})`);
    }
  }
  const first = docs[0] as BenchReport;
  const baselines = docs.map((d) => d.baseline).filter((b) => b !== undefined);
  if (baselines.length > 0 && baselines.length !== docs.length) throw new UsageError('some shares were gated against a baseline and others not: rerun them alike');
  const fb = baselines[0];
  const baseline: BenchReport['baseline'] = fb
    ? {
        ...fb,
        comparisons: baselines.flatMap((b) => b.comparisons),
        missing: baselines.flatMap((b) => b.missing),
        fails: baselines.some((b) => b.fails),
      }
    : undefined;
  // Each share's physics verdict was judged against its own host's ceilings: the merged one keeps them all.
  const physicsOf = docs.map((d) => d.physics).filter((p): p is PhysicsVerdict => p !== undefined);
  const physics: PhysicsVerdict | undefined = physicsOf[0]
    ? {
        ceilings: physicsOf[0].ceilings,
        notes: [...new Set(physicsOf.flatMap((p) => p.notes))],
        impossible: physicsOf.flatMap((p) => p.impossible),
      }
    : undefined;
  const { shard: _shard, baseline: _b, physics: _p, skipped: _s, ...head } = first;
  return {
    ...head,
    caseList,
    mergedFrom: { shards: docs.length, files },
    shaders,
    startedAt: docs.map((d) => d.startedAt).sort()[0] as string,
    cases,
    ...(skipped.size > 0 ? { skipped: [...skipped].map(([kernel, reason]) => ({ kernel, reason })) } : {}),
    ...(baseline ? { baseline } : {}),
    ...(physics ? { physics } : {}),
  };
}

/** The merged report of the shares' --json reports, or a usage error saying why they do not make one run. */
export function mergeReports(inputs: ShardFile[]): Merged {
  const { docs, files, shards, caseList } = checkShares(inputs);
  const note = deviceNote(docs, files);
  const notes = note === null ? [] : [note];
  if (docs[0]?.schema === VERIFY_SCHEMA) return { kind: 'verify', report: mergeVerify(files, docs as unknown as VerifyReport[], shards, caseList), notes };
  return { kind: 'bench', report: mergeBench(files, docs as unknown as BenchReport[], shards, caseList), notes };
}

/** The renderers of a merged report: the command's own, with a line naming the shares. */
export function mergedRenderers(kind: Merged['kind']): Renderers<VerifyReport | BenchReport> {
  const base = (kind === 'verify' ? verifyRenderers : benchRenderers) as unknown as Renderers<VerifyReport | BenchReport>;
  const line = (r: VerifyReport | BenchReport): string => `merged from ${r.mergedFrom?.shards ?? 1} share(s): ${(r.mergedFrom?.files ?? []).join(', ')}`;
  return {
    table: (r, color) => `${base.table(r, color)}\n${line(r)}`,
    markdown: (r) => `${base.markdown(r)}\n_${line(r)}_\n`,
    junit: (r) => base.junit(r),
  };
}
