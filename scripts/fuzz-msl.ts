/**
 * Fuzz test of the MSL front end (issue 7): mutated real shaders (every
 * .metal file of shaders/ and test/shaders/) go through parseMsl and every
 * emitter src/msl exports (emitCpp, ...). Each case must end in output or an
 * MslError: any other exception is a failure, and so is a case that runs
 * past the per-case time limit (a hang). Parse and emit only: no C++ compile.
 *
 *   node --import tsx scripts/fuzz-msl.ts [--cases 10000] [--seed 1] [--start 0] [--timeout-ms 2000] [--out DIR]
 *
 * Mutations (1 to 4 per case, seeded by --seed and the case index, so any
 * case can be rebuilt from those two numbers): token deletions,
 * duplications, swaps and replacements (by MSL vocabulary or tokens of the
 * same file), random bytes (control characters, NUL, invalid UTF-16, non-ASCII),
 * truncation, splices from another shader, and deep nesting.
 *
 * The cases run in a worker thread that publishes the index of the case in
 * progress through shared memory; the main thread watches it, and a case
 * that does not finish within the limit is reported as a hang (the worker is
 * terminated and a new one continues after it). Failing inputs are written
 * to --out (default: fuzz-failures/ under the system temp folder).
 *
 * Exit 0 when every case ended in output or an MslError, 1 otherwise.
 */
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export interface CorpusEntry {
  file: string;
  text: string;
}

export interface FuzzCase {
  index: number;
  /** The shader it was mutated from (relative to the package root). */
  base: string;
  /** The mutations applied, in order. */
  mutations: string[];
  source: string;
}

export interface FuzzFailure {
  index: number;
  kind: 'exception' | 'hang' | 'crash';
  error: string;
  base: string;
  mutations: string[];
  /** Where the input was written (when an output folder was given). */
  saved?: string;
}

export interface FuzzReport {
  seed: number;
  cases: number;
  /** Cases that produced output from every emitter. */
  outputs: number;
  /** Cases that ended in an MslError. */
  mslErrors: number;
  failures: FuzzFailure[];
  ms: number;
}

export interface FuzzOptions {
  cases: number;
  seed: number;
  /** Per-case limit (ms): a case still running then is a hang. */
  caseTimeoutMs: number;
  /** First case index (default 0). */
  start?: number;
  /** Folder for failing inputs (none: not saved). */
  outDir?: string;
  /** The front end under test (default: src/msl/index.ts; tests of the harness give another). */
  frontUrl?: string;
  onProgress?: (done: number, total: number) => void;
}

// ---------------------------------------------------------------------------
// Corpus and mutations (deterministic)
// ---------------------------------------------------------------------------

export function loadCorpus(root = ROOT): CorpusEntry[] {
  const out: CorpusEntry[] = [];
  const walk = (dir: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(dir, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (n.endsWith('.metal')) out.push({ file: relative(root, p), text: readFileSync(p, 'utf8') });
    }
  };
  walk(join(root, 'shaders'));
  walk(join(root, 'test', 'shaders'));
  return out;
}

/** mulberry32 over a seed mixed with the case index. */
function rng(seed: number, index: number): () => number {
  let a = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TOKEN =
  /\s+|\/\/[^\n]*|\/\*[\s\S]*?\*\/|"(?:\\.|[^"\\\n])*"|[A-Za-z_]\w*|\d[\w.]*|::|->|<<=|>>=|[<>=!+\-*/%&|^]=|&&|\|\||\+\+|--|<<|>>|\[\[|\]\]|[\s\S]/g;

function tokenize(text: string): string[] {
  return text.match(TOKEN) ?? [];
}

/** Tokens that stress the front end: MSL keywords, attributes, preprocessor, punctuation. */
const VOCAB = [
  'kernel', 'template', 'typename', 'struct', 'namespace', 'using', 'static', 'inline', 'constexpr', 'const', 'volatile',
  'device', 'constant', 'threadgroup', 'thread', 'threadgroup_imageblock', 'ray_data', 'object_data',
  'void', 'uint', 'uint3', 'float4', 'half', 'bfloat', 'bool', 'ulong', 'packed_float3', 'atomic_uint', 'vec<float, 4>',
  '[[', ']]', '[[buffer(0)]]', '[[buffer(31)]]', '[[buffer(4294967296)]]', '[[threadgroup(0)]]', '[[thread_position_in_grid]]',
  '[[host_name("x")]]', '[[kernel]]', '[[stage_in]]', '[[function_constant(0)]]', '[[texture(0)]]', '[[max_total_threads_per_threadgroup(1024)]]',
  '#include <metal_stdlib>', '#define X(a) a##a', '#if 0', '#endif', '#pragma once', '#line 0', '\\\n', '#',
  '{', '}', '(', ')', '[', ']', '<', '>', ';', ',', ':', '::', '?', '=', '&', '*', '&&', '...', '.', '->', '~',
  '"', "'", '"unterminated', "'x", '/*', '*/', '//', '0x', '0xffffffffffffffffff', '1e999', '1.0h', '1.0bf', '.5f', '0b102',
  'simdgroup_float8x8', 'simdgroup_matrix<float, 8, 8>', 'texture2d<float>', 'sampler', 'threadgroup_barrier(mem_flags::mem_threadgroup);',
  'simd_sum', 'operator', 'sizeof', 'alignas(16)', 'decltype', 'this', 'return', 'if', 'else', 'for', 'while', 'do', 'switch', 'case', 'goto',
  'kernel void k(device float* a [[buffer(0)]], uint i [[thread_position_in_grid]]) { a[i] = 0; }',
  'template <typename T> kernel void t(device T* a [[buffer(0)]]) {}', 'template [[host_name("t")]] kernel void t<float>(device float*);',
];

function pick<T>(r: () => number, a: readonly T[]): T {
  return a[Math.floor(r() * a.length)] as T;
}

function randomBytes(r: () => number): string {
  const n = 1 + Math.floor(r() * 16);
  let s = '';
  for (let i = 0; i < n; i++) {
    const k = r();
    if (k < 0.4) s += String.fromCharCode(Math.floor(r() * 128));  // ASCII, control characters and NUL included
    else if (k < 0.7) s += String.fromCharCode(Math.floor(r() * 256));  // Latin-1
    else if (k < 0.85) s += String.fromCharCode(0xd800 + Math.floor(r() * 0x800));  // lone surrogates
    else s += String.fromCodePoint(Math.floor(r() * 0x10ffff) & ~0x800 | 0x80);  // anything
  }
  return s;
}

function mutate(r: () => number, text: string, corpus: CorpusEntry[]): { text: string; what: string } {
  const toks = tokenize(text);
  const solid = toks.map((t, i) => (/^\s/.test(t) ? -1 : i)).filter((i) => i >= 0);
  const at = (): number => (solid.length ? pick(r, solid) : 0);
  const op = Math.floor(r() * 9);
  switch (op) {
    case 0: {
      const i = at();
      const n = 1 + Math.floor(r() * 3);
      const gone = toks.splice(i, n);
      return { text: toks.join(''), what: `delete ${n} token(s) at ${i} (${JSON.stringify(gone.join('').slice(0, 40))})` };
    }
    case 1: {
      const i = at();
      const n = 1 + Math.floor(r() * 8);
      const copy = toks.slice(i, i + n);
      toks.splice(i + n, 0, ...copy);
      return { text: toks.join(''), what: `duplicate ${n} token(s) at ${i}` };
    }
    case 2: {
      const i = at();
      const j = at();
      const t = toks[i] as string;
      toks[i] = toks[j] as string;
      toks[j] = t;
      return { text: toks.join(''), what: `swap tokens ${i} and ${j}` };
    }
    case 3: {
      const i = at();
      const by = r() < 0.5 ? pick(r, VOCAB) : (toks[at()] ?? '');
      toks[i] = by;
      return { text: toks.join(''), what: `replace token ${i} by ${JSON.stringify(by.slice(0, 40))}` };
    }
    case 4: {
      const i = Math.floor(r() * (toks.length + 1));
      const bytes = randomBytes(r);
      toks.splice(i, 0, bytes);
      return { text: toks.join(''), what: `insert ${bytes.length} random character(s) at token ${i}` };
    }
    case 5: {
      const n = Math.floor(r() * text.length);
      return { text: text.slice(0, n), what: `truncate at ${n}` };
    }
    case 6: {
      const other = pick(r, corpus).text;
      const a = Math.floor(r() * other.length);
      const b = Math.min(other.length, a + Math.floor(r() * 400));
      const i = Math.floor(r() * (text.length + 1));
      return { text: text.slice(0, i) + other.slice(a, b) + text.slice(i), what: `splice ${b - a} characters of another shader at ${i}` };
    }
    case 7: {
      const depth = 1 + Math.floor(r() * 3000);
      const [o, c] = pick(r, [['(', ')'], ['{', '}'], ['[', ']'], ['<', '>'], ['[[', ']]']] as const);
      const closed = r() < 0.7;
      const i = at();
      toks.splice(i, 0, o.repeat(depth) + (closed ? c.repeat(depth) : ''));
      return { text: toks.join(''), what: `nest ${depth} × '${o}'${closed ? ' (closed)' : ' (unclosed)'} at token ${i}` };
    }
    default: {
      const i = at();
      const t = toks[i] ?? '';
      const s = r() < 0.5 ? t.slice(0, Math.floor(r() * t.length)) : t + pick(r, ['_', '0', '"', '\\', '.', '$', '@', '`']);
      toks[i] = s;
      return { text: toks.join(''), what: `damage token ${i} (${JSON.stringify(t.slice(0, 20))} → ${JSON.stringify(s.slice(0, 20))})` };
    }
  }
}

/** Case `index` of seed `seed`: rebuilt identically anywhere. */
export function makeCase(corpus: CorpusEntry[], seed: number, index: number): FuzzCase {
  const r = rng(seed, index);
  const base = pick(r, corpus);
  let text = base.text;
  const mutations: string[] = [];
  // Mostly one mutation (the input stays close to a real shader and reaches
  // the emitters), sometimes up to four.
  const x = r();
  const n = x < 0.6 ? 1 : x < 0.85 ? 2 : x < 0.95 ? 3 : 4;
  for (let k = 0; k < n; k++) {
    const m = mutate(r, text, corpus);
    text = m.text;
    mutations.push(m.what);
  }
  return { index, base: base.file, mutations, source: text };
}

// ---------------------------------------------------------------------------
// One case: parse, then every emitter
// ---------------------------------------------------------------------------

type Front = {
  parseMsl: (source: string, file: string) => unknown;
  MslError: new (...a: never[]) => Error;
} & Record<string, unknown>;

/** 'output' or 'msl-error'; throws anything else. */
export function runCase(front: Front, c: FuzzCase): 'output' | 'msl-error' {
  try {
    const parsed = front.parseMsl(c.source, `fuzz/${c.index}.metal`);
    for (const [name, fn] of Object.entries(front)) {
      if (/^emit[A-Z]/.test(name) && typeof fn === 'function') (fn as (p: unknown) => unknown)(parsed);
    }
    return 'output';
  } catch (e) {
    if (e instanceof front.MslError) return 'msl-error';
    throw e;
  }
}

const FRONT_URL = pathToFileURL(join(ROOT, 'src', 'msl', 'index.ts')).href;

function loadFront(url = FRONT_URL): Promise<Front> {
  return import(url) as Promise<Front>;
}

// ---------------------------------------------------------------------------
// The worker: cases [start, end), the index in progress in shared[0]
// ---------------------------------------------------------------------------

interface WorkerInput {
  fuzzMsl: true;
  front: string;
  seed: number;
  start: number;
  end: number;
  shared: SharedArrayBuffer;
}

type WorkerMessage =
  | { type: 'failure'; index: number; error: string; ms: number }
  | { type: 'done'; next: number };

async function workerMain(input: WorkerInput): Promise<void> {
  const front = await loadFront(input.front);
  const corpus = loadCorpus();
  // [case in progress, cases started, outputs, MslErrors]: read by the main
  // thread even when it has to terminate this worker.
  const cur = new Int32Array(input.shared);
  for (let i = input.start; i < input.end; i++) {
    Atomics.store(cur, 0, i);
    Atomics.add(cur, 1, 1);
    const c = makeCase(corpus, input.seed, i);
    const t0 = performance.now();
    try {
      Atomics.add(cur, runCase(front, c) === 'output' ? 2 : 3, 1);
    } catch (e) {
      const err = e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ''}` : String(e);
      parentPort?.postMessage({ type: 'failure', index: i, error: err, ms: performance.now() - t0 } satisfies WorkerMessage);
    }
  }
  parentPort?.postMessage({ type: 'done', next: input.end } satisfies WorkerMessage);
}

if (!isMainThread && (workerData as WorkerInput | undefined)?.fuzzMsl === true) {
  void workerMain(workerData as WorkerInput);
}

// ---------------------------------------------------------------------------
// The driver
// ---------------------------------------------------------------------------

function save(outDir: string | undefined, seed: number, c: FuzzCase, f: FuzzFailure): FuzzFailure {
  if (!outDir) return f;
  mkdirSync(outDir, { recursive: true });
  const p = join(outDir, `seed${seed}-case${c.index}-${f.kind}.metal`);
  const header = [
    `// moe fuzz-msl: seed ${seed}, case ${c.index}, ${f.kind}`,
    `// from ${c.base}: ${c.mutations.join('; ')}`,
    `// rerun: node --import tsx scripts/fuzz-msl.ts --seed ${seed} --start ${c.index} --cases 1 (the file is UTF-8: lone surrogates of the input read as U+FFFD here)`,
  ];
  const err = f.error.split('\n').slice(0, 8).map((l) => `// ${l}`);
  writeFileSync(p, `${[...header, ...err].join('\n')}\n${c.source}`);
  return { ...f, saved: p };
}

/**
 * The worker runs this file as TypeScript: tsx's loader is registered in the
 * worker (a loader given by --import to the main thread does not reach
 * worker threads on every Node version).
 */
function workerBootstrap(): string {
  const api = import.meta.resolve('tsx/esm/api');
  return [
    `import(${JSON.stringify(api)})`,
    `  .then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}); })`,
    `  .catch((e) => { setImmediate(() => { throw e; }); });`,
  ].join('\n');
}

/** Runs the cases in a watched worker; resolves with the report (never rejects on a case). */
export async function fuzz(o: FuzzOptions): Promise<FuzzReport> {
  const corpus = loadCorpus();
  if (corpus.length === 0) throw new Error(`no .metal files under ${ROOT}/shaders or ${ROOT}/test/shaders`);
  const t0 = performance.now();
  const start = o.start ?? 0;
  const end = start + o.cases;
  const report: FuzzReport = { seed: o.seed, cases: o.cases, outputs: 0, mslErrors: 0, failures: [], ms: 0 };
  const fail = (index: number, kind: FuzzFailure['kind'], error: string): void => {
    const c = makeCase(corpus, o.seed, index);
    report.failures.push(save(o.outDir, o.seed, c, { index, kind, error, base: c.base, mutations: c.mutations }));
  };
  let next = start;
  while (next < end) {
    next = await new Promise<number>((resolveBatch, rejectAll) => {
      const shared = new SharedArrayBuffer(16);
      const cur = new Int32Array(shared);
      Atomics.store(cur, 0, next);
      const input: WorkerInput = { fuzzMsl: true, front: o.frontUrl ?? FRONT_URL, seed: o.seed, start: next, end, shared };
      const w = new Worker(workerBootstrap(), { eval: true, workerData: input });
      let lastBeat = -1;
      let since = performance.now();
      let settled = false;
      const finish = (resumeAt: number): void => {
        if (settled) return;
        settled = true;
        clearInterval(watch);
        report.outputs += Atomics.load(cur, 2);
        report.mslErrors += Atomics.load(cur, 3);
        void w.terminate();
        resolveBatch(resumeAt);
      };
      const watch = setInterval(() => {
        const beat = Atomics.load(cur, 1);
        const idx = Atomics.load(cur, 0);
        o.onProgress?.(idx - start, o.cases);
        if (beat !== lastBeat) {
          lastBeat = beat;
          since = performance.now();
          return;
        }
        // (the worker's start-up, loading the front end, counts against the first case: allow for it)
        const limit = o.caseTimeoutMs + (beat === 0 ? 20_000 : 0);
        if (performance.now() - since > limit) {
          fail(idx, 'hang', `still running after ${o.caseTimeoutMs} ms`);
          finish(idx + 1);
        }
      }, Math.max(10, Math.min(200, o.caseTimeoutMs / 4)));
      w.on('message', (m: WorkerMessage) => {
        if (m.type === 'failure') fail(m.index, 'exception', m.error);
        else if (m.type === 'done') finish(m.next);
      });
      const died = (why: string): void => {
        if (settled) return;
        if (Atomics.load(cur, 1) === 0) {
          // Before its first case: the fuzzer itself is broken, not a case.
          settled = true;
          clearInterval(watch);
          rejectAll(new Error(`fuzz-msl: the worker failed to start: ${why}`));
          return;
        }
        const idx = Atomics.load(cur, 0);
        fail(idx, 'crash', why);
        finish(idx + 1);
      };
      w.on('error', (e) => died(`the worker died: ${e instanceof Error ? e.message : String(e)}`));
      w.on('exit', (code) => died(`the worker exited with code ${code}`));
    });
  }
  report.ms = performance.now() - t0;
  return report;
}

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

function flag(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(args[i + 1]);
  if (!Number.isFinite(v) || v < 0) {
    console.error(`fuzz-msl: --${name} needs a non-negative number`);
    process.exit(2);
  }
  return v;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const cases = flag(args, 'cases', 10_000);
  const seed = flag(args, 'seed', 1);
  const caseTimeoutMs = flag(args, 'timeout-ms', 2000);
  const start = flag(args, 'start', 0);
  const oi = args.indexOf('--out');
  const outDir = oi >= 0 ? (args[oi + 1] as string) : join(tmpdir(), 'moe-fuzz-failures');
  let shown = -1;
  const tty = process.stderr.isTTY === true;
  const r = await fuzz({
    cases,
    seed,
    start,
    caseTimeoutMs,
    outDir,
    onProgress: (done, total) => {
      const pct = Math.floor((100 * done) / total);
      if (tty && pct !== shown) {
        shown = pct;
        process.stderr.write(`\rfuzz-msl: ${done}/${total}`);
      }
    },
  });
  if (tty) process.stderr.write('\n');
  console.log(
    `fuzz-msl: seed ${r.seed}, ${r.cases} cases in ${(r.ms / 1000).toFixed(1)} s: ${r.outputs} gave output, ${r.mslErrors} an MslError, ${r.failures.length} failed`,
  );
  for (const f of r.failures.slice(0, 20)) {
    console.log(`  case ${f.index} (${f.kind}) from ${f.base}: ${f.mutations.join('; ')}`);
    console.log(`    ${f.error.split('\n')[0]}${f.saved ? `\n    input: ${f.saved}` : ''}`);
  }
  if (r.failures.length > 20) console.log(`  ... ${r.failures.length - 20} more`);
  process.exitCode = r.failures.length === 0 ? 0 : 1;
}

if (isMainThread && process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  void main();
}
