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

/**
 * The kernel failed while running (an out-of-bounds access, a stack overflow,
 * the watchdog's timeout, a divergent barrier, a trap...): a kernel failure,
 * exit 1, where a command cannot report it as a row of its own.
 */
export class KernelRuntimeError extends Error {
  readonly exitCode = 1;
  constructor(message: string) {
    super(message);
    this.name = 'KernelRuntimeError';
  }
}
