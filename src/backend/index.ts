/**
 * Backend discovery and selection (DESIGN.md: metal on macOS with a Metal
 * device, else cuda where libcuda and a GPU are found, else cpu).
 */
import { execFileSync } from 'node:child_process';
import { UsageError } from '../errors.js';
import { loadAddon } from './addon.js';
import { compilerCommand, CpuBackend } from './cpu.js';
import { CudaBackend, cudaStatus } from './cuda.js';
import { createMetalBackend, findMetal, metalStatusFrom } from './metal.js';
import { BACKEND_NAMES, type Backend, type BackendName, type BackendStatus } from './types.js';

export * from './types.js';

function cpuStatus(): BackendStatus {
  try {
    loadAddon();
  } catch (e) {
    return { name: 'cpu', available: false, reason: (e as Error).message };
  }
  const cxx = compilerCommand();
  try {
    const v = execFileSync(cxx, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const be = new CpuBackend();
    return {
      name: 'cpu',
      available: true,
      reason: `MSL compiled as C++ by ${cxx} (${v.split('\n')[0]?.trim()})`,
      device: be.device(),
    };
  } catch {
    return { name: 'cpu', available: false, reason: `C++ compiler '${cxx}' not found (install g++ or set CXX)` };
  }
}

function metalStatus(): BackendStatus {
  // Not macOS, no Metal in this addon, no device; else the device with its GPU families (src/backend/metal.ts).
  return metalStatusFrom(findMetal());
}


export function detectBackends(): BackendStatus[] {
  return [metalStatus(), cudaStatus(), cpuStatus()];
}

const instances = new Map<BackendName, Backend>();

/** The backend named, or the best available one; UsageError (exit 2) when it cannot run. */
export function getBackend(name?: string): Backend {
  if (name !== undefined && !BACKEND_NAMES.includes(name as BackendName)) {
    throw new UsageError(`unknown backend '${name}' (choose one of ${BACKEND_NAMES.join(', ')})`);
  }
  const statuses = detectBackends();
  const pick = name
    ? statuses.find((s) => s.name === name)
    : statuses.find((s) => s.available);
  if (!pick) throw new UsageError('no backend is available: ' + statuses.map((s) => `${s.name}: ${s.reason}`).join('; '));
  if (!pick.available) throw new UsageError(`backend '${pick.name}' is not available: ${pick.reason}`);
  let be = instances.get(pick.name);
  if (!be) {
    if (pick.name === 'cpu') be = new CpuBackend();
    else if (pick.name === 'metal') be = createMetalBackend();
    else if (pick.name === 'cuda') be = new CudaBackend();
    else throw new UsageError(`backend '${pick.name}' is not available`);
    instances.set(pick.name, be);
  }
  return be;
}
