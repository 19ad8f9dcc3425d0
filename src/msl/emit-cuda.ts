/**
 * The CUDA emitter of the CUDA backend, beside the C++ one (one analysis, two
 * emitters). Output: the CUDA compat header's include, the user's source
 * rewritten site by site with its line structure kept (under `#line 1
 * "<file>"`, so NVRTC's messages point at the .metal lines), then one
 * `extern "C" __global__` entry per kernel.
 *
 * What each MSL construct becomes:
 *   functions (kernels and helpers, struct methods)  __device__ functions
 *   device / constant / thread pointers             plain (generic) pointers
 *   `constant` / `device` variables at program scope __constant__ / __device__
 *   `threadgroup T a[N];` in a body                  `__shared__ T a[N];`
 *   [[threadgroup(i)]] parameters                    slices of the dynamic shared memory
 *   float4, uint3, packed_half3, ...                 moe_float4, ... (CUDA has its own float4)
 *   builtins                                         from blockIdx/threadIdx/blockDim (msl_cuda/rt.h)
 *
 * Contract with native/include/msl_cuda.h and msl_cuda/abi.h: the entry takes
 * one MoeCudaArgs by value; __moe_dyn_smem is the dynamic shared memory.
 */
import type { Analysis } from './analyze.js';
import { analysisOf } from './parse.js';
import { cString, entryFunction, entryParts, entrySymbol, loopEditsKept, omission, siteEdit, tgDeclText, type OwnSite } from './emit-cpp.js';
import { VECTOR_TYPE } from './features.js';
import { applyEdits, type Edit } from './rewrite.js';
import type { EmitResult, MslParam, ParsedMsl } from './types.js';

export interface EmitCudaOptions {
  /** The compat header to include (default "msl_cuda.h"). */
  headerName?: string;
  /** Poll the watchdog's abort flag in every loop (loops.ts; default true). */
  loopPolls?: boolean;
  /** Kernels (by name) to leave out: no entry, and their definitions blanked (lines kept). Failed kernels are always left out. */
  omit?: ReadonlySet<string>;
}

/** The CUDA spelling of an MSL vector type name. */
export const cudaVectorName = (name: string): string => `moe_${name}`;

/** Vector type names inside a type written in MSL, renamed for CUDA. */
export function cudaType(type: string): string {
  return type.replace(/\b[A-Za-z_]\w*\b/g, (w) => (VECTOR_TYPE.test(w) ? cudaVectorName(w) : w));
}

/** What each of the rewrite sites the emitters do not share becomes in CUDA C++. */
function cudaText(site: OwnSite): Edit['text'] {
  switch (site.kind) {
    case 'remove':
      if (site.what === 'addressSpace' && site.programScope) {
        // an integer constant: constexpr, usable in array bounds and template arguments, and by value in device code
        if (site.word === 'constant' && site.scalarInit) return site.isConstexpr ? '' : 'constexpr';
        if (site.word === 'constant') return '__constant__';
        if (site.word === 'device') return '__device__';
      }
      return '';
    case 'fnDecl':
      return '__device__ ';
    case 'vecType':
      return cudaVectorName(site.name);
    case 'tgDecl':
      return tgDeclText(site, (type, d, dims) => `__shared__ ${type} ${d.name}${dims.map((e) => `[${e}]`).join('')};`);
  }
}

/** The entry's argument for one kernel parameter. */
function cudaArg(p: MslParam): string {
  const type = cudaType(p.cppType);
  const noRef = type.replace(/\s*&\s*$/, '');
  switch (p.attr.kind) {
    case 'buffer': {
      const src = `__a.buffers[${p.attr.index}]`;
      return p.kind === 'pointer' ? `reinterpret_cast<${type}>(${src})` : `*reinterpret_cast<${noRef} *>(${src})`;
    }
    case 'threadgroup': {
      const src = `(__moe_dyn_smem + __a.tg_dyn_offset[${p.attr.index}])`;
      return p.kind === 'pointer' ? `reinterpret_cast<${type}>(${src})` : `*reinterpret_cast<${noRef} *>(${src})`;
    }
    case 'builtin':
      return `::moe_rt::builtin_as<${cudaType(p.baseType)}>(::moe_rt::bi_${p.attr.name}(__a))`;
    case 'none':
      throw new Error(`kernel parameter '${p.name}' has no binding`); // rejected by the parser
  }
}

export function emitCudaFromAnalysis(a: Analysis, options: EmitCudaOptions = {}): EmitResult {
  const header = options.headerName ?? 'msl_cuda.h';
  const om = omission(a, options.omit);
  const edits = [...om.sites.map((site) => siteEdit(site, cudaText)), ...om.blank];
  const polls = options.loopPolls !== false ? loopEditsKept(a, om.blank) : [];
  edits.push(...polls);
  const user = applyEdits(a.source, edits);
  const parts: string[] = [`#include ${cString(header)}\n`, `#line 1 ${cString(a.file)}\n`, user.endsWith('\n') ? user : `${user}\n`];
  parts.push(`#line 1 ${cString(`${a.file}.entries.cu`)}\n`);
  // The entry hands the launch's abort flag (the watchdog's cooperative stop) to the loops of the kernel and its
  // helpers: only in a file that has polled loops, and stored only when it changed. A store by every thread of
  // every launch to one global word serialised them: the copy kernel lost a third of its bandwidth on the H200.
  const prologue = polls.length > 0 ? '  if (::moe_rt::g_abort_flag != __a.abort_flag) ::moe_rt::g_abort_flag = __a.abort_flag;\n' : '';
  const entries = entryParts(a, om.keep, (k, i) =>
    entryFunction(k, a.extras[i].ns, a.extras[i].bareName, `extern "C" __global__ void ${entrySymbol(i)}(const MoeCudaArgs __a)`, cudaArg, prologue),
  );
  parts.push(entries.text);
  return { code: parts.join(''), kernels: entries.kernels };
}

/** CUDA C++ (NVRTC, or nvcc) for the CUDA backend from a parsed MSL source. Throws MslError. */
export function emitCuda(parsed: ParsedMsl, options: EmitCudaOptions = {}): EmitResult {
  return emitCudaFromAnalysis(analysisOf(parsed), options);
}
