/**
 * Errors that map to exit codes (DESIGN.md, "Reports and exit codes"):
 * 2 for bad usage or environment (bad flags, unknown kernel, a shader that
 * does not compile, a backend that is not available); kernel FAILs are
 * reported rows and give exit 1.
 */
export class UsageError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The shader did not compile; the message carries the .metal file:line. */
export class ShaderCompileError extends UsageError {
  constructor(message: string) {
    super(message);
    this.name = 'ShaderCompileError';
  }
}

/** The kernel failed while running (trap, divergent barrier, out-of-bounds...). */
export class KernelRuntimeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KernelRuntimeError';
  }
}
