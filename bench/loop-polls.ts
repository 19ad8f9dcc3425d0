/**
 * `npm run bench:loop-polls`: the cost of the loop polls of the watchdog's cooperative stop on the
 * CPU backend. The same kernels compiled twice, as emitted and with MOE_LOOP_POLL defined to `true`
 * (no polls), timed alternately in one process: min and median of 8 medians of 7 dispatches each.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getBackend } from '../src/backend/index.js';
import { loadAddon } from '../src/backend/addon.js';
import { CXX_FLAGS, LINK_FLAGS, optionalFlags, compilerCommand } from '../src/backend/cpu.js';
import { emitCpp, parseMsl } from '../src/msl/index.js';
import { findSpec } from '../src/kernels/index.js';
import { bindCase } from '../src/harness/bindings.js';
import { makeRng } from '../src/util/rng.js';
import { SHADER_DIR, PACKAGE_ROOT } from '../src/util/paths.js';

const median = (a: ArrayLike<number>): number => { const s = Array.from(a).sort((x, y) => x - y); return s[Math.floor(s.length / 2)] as number; };
const be = getBackend('cpu');
const addon = loadAddon();
const cxx = compilerCommand();
const flags = await optionalFlags(cxx);
const dir = mkdtempSync(join(tmpdir(), 'moe-loop-polls-'));
for (const [name, params] of [['softmax-topk', { n_tokens: 4096, n_experts: 128, top_k: 8 }], ['matvec', { n: 14336, k: 4096 }], ['attn-values', null]] as const) {
  const spec = findSpec(name);
  const p = params ?? spec.bench ?? spec.defaults;
  const full = { ...spec.defaults, ...p };
  const file = join(SHADER_DIR, spec.shader);
  const src = readFileSync(file, 'utf8');
  const pipe = await be.compile(src, file, spec.entry);
  const cpp = join(dir, `${name}.cpp`);
  writeFileSync(cpp, emitCpp(parseMsl(src, file)).code);
  const so = join(dir, `${name}.so`);
  execFileSync(cxx, [...CXX_FLAGS, ...flags, '-DMOE_LOOP_POLL(c,l)=true', '-w', `-I${join(PACKAGE_ROOT, 'native', 'include')}`, '-o', so, cpp, ...LINK_FLAGS]);
  const off = { ...pipe, module: addon.loadModule(so) } as typeof pipe;
  const bound = bindCase(spec, full, spec.inputs(full, spec.inputSets[0]!.name, makeRng('loop-polls')));
  const launch = spec.launch(full);
  const on: number[] = [], offT: number[] = [];
  for (let r = 0; r < 8; r++) {
    on.push(median(await be.time(pipe, bound.buffers, launch, { warmup: 1, iterations: 7 })));
    offT.push(median(await be.time(off, bound.buffers, launch, { warmup: 1, iterations: 7 })));
  }
  const a = Math.min(...on), b = Math.min(...offT);
  console.log(`${name} ${JSON.stringify(full)}: with polls ${(a / 1e6).toFixed(3)} ms, without ${(b / 1e6).toFixed(3)} ms (min of 8 medians): ${((a / b - 1) * 100).toFixed(2)}%  medians ${(median(on)/1e6).toFixed(3)} vs ${(median(offT)/1e6).toFixed(3)}`);
}
