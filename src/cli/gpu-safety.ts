/**
 * The GPU checkers of `moe verify` that need a process of their own:
 * --sanitize TOOL (CUDA: the command re-runs itself under NVIDIA's
 * compute-sanitizer, src/harness/sanitize.ts) and --validate (Metal: the
 * command re-runs itself with Apple's shader validation turned on in the
 * environment, which Metal reads when the device is created).
 */
import { spawnSync } from 'node:child_process';
import { Flags } from '@oclif/core';
import type { Backend } from '../backend/types.js';
import { UsageError } from '../errors.js';
import {
  applySanitizerFindings,
  markCaseDone,
  markingBackend,
  runUnderSanitizer,
  SANITIZE_TOOLS,
  sanitizeChildTool,
  type SanitizeTool,
  writeChildReport,
} from '../harness/sanitize.js';

export const gpuSafetyFlags = {
  sanitize: Flags.string({
    description:
      "cuda: re-run under NVIDIA's compute-sanitizer with this tool and fail each case it reports on (kernel, .metal line, thread, threadgroup, buffer); exit 2 when compute-sanitizer is not found or cannot attach",
    options: [...SANITIZE_TOOLS],
    helpGroup: 'SAFETY',
  }),
  validate: Flags.boolean({
    description:
      "metal: run with Apple's shader validation (MTL_SHADER_VALIDATION=1, MTL_DEBUG_LAYER=1, set before the device is created, in a child process); its reports fail their cases",
    default: false,
    helpGroup: 'SAFETY',
  }),
};

/** Set in the environment of the --validate child. */
export const VALIDATE_CHILD_ENV = 'MOE_VALIDATE_CHILD';

/**
 * The environment of the --validate child: Apple's shader validation and API
 * validation (docs/metal-backend.md, "Shader validation"), API errors logged
 * rather than aborting the process, and no redzones (the guards would be
 * memory the validation layer sees as part of each buffer).
 */
export function validationEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return {
    ...env,
    MTL_SHADER_VALIDATION: '1',
    MTL_DEBUG_LAYER: '1',
    MTL_DEBUG_LAYER_ERROR_MODE: 'nslog',
    MOE_GPU_REDZONES: '0',
    [VALIDATE_CHILD_ENV]: '1',
  };
}

interface CasesReport {
  cases: { status: string; error: string | null }[];
  summary: { passed: number; failed: number; errors: number; skipped: number };
}

/**
 * --sanitize in the parent: the child's report with the tool's findings on
 * its cases (null when not asked, or when this process is the child).
 * --validate in the parent: runs the child with the terminal and exits with
 * its code (never returns).
 */
export async function delegateGpuSafety<R extends CasesReport>(
  flags: { sanitize?: string; validate?: boolean; backend?: string },
  argv: string[],
): Promise<R | null> {
  if (flags.sanitize && flags.validate) throw new UsageError('--sanitize (cuda) and --validate (metal) cannot be combined');
  if (flags.validate) {
    if (flags.backend && flags.backend !== 'metal') throw new UsageError(`--validate is Apple's shader validation: it needs --backend metal, not ${flags.backend}`);
    if (process.env[VALIDATE_CHILD_ENV] === '1') return null;
    const args = [...process.execArgv, process.argv[1] ?? '', 'verify', ...argv];
    if (!flags.backend) args.push('--backend', 'metal');
    const r = spawnSync(process.execPath, args, { stdio: 'inherit', env: validationEnv() });
    if (r.error) throw new UsageError(`--validate: cannot start the validated process: ${r.error.message}`);
    process.exit(r.status ?? 2);
  }
  if (!flags.sanitize) return null;
  const tool = flags.sanitize as SanitizeTool;
  if (flags.backend && flags.backend !== 'cuda') throw new UsageError(`--sanitize runs NVIDIA's compute-sanitizer: it needs --backend cuda, not ${flags.backend}`);
  if (sanitizeChildTool() !== null) return null;
  const { report, parsed } = await runUnderSanitizer<R>(tool, argv);
  const orphans = applySanitizerFindings(tool, report.cases, parsed);
  for (const o of orphans) process.stderr.write(`warning: compute-sanitizer ${tool} reported after the last case ended: ${o}\n`);
  report.summary.passed = report.cases.filter((c) => c.status === 'PASS').length;
  report.summary.failed = report.cases.filter((c) => c.status === 'FAIL').length;
  report.summary.errors = report.cases.filter((c) => c.status === 'ERROR').length;
  if (report.summary.failed + report.summary.errors > 0 || orphans.length > 0) process.exitCode = 1;
  return report;
}

/** (the --sanitize child) The backend that marks each dispatch; the backend itself elsewhere. */
export function childBackend(backend: Backend): Backend {
  return sanitizeChildTool() !== null ? markingBackend(backend) : backend;
}

/** (the --sanitize child) Marks the end of a case. */
export function childCaseDone(): void {
  if (sanitizeChildTool() !== null) markCaseDone();
}

/** (the --sanitize child) Hands the report to the parent; true when this process is the child. */
export function childReport(report: unknown): boolean {
  if (sanitizeChildTool() === null) return false;
  writeChildReport(report);
  return true;
}
