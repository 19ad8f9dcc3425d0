/** Errors of the MSL front end, located in the user's source (1-based line and column). */
export class MslError extends Error {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** The message without the "file:line:col: error: " prefix. */
  readonly detail: string;

  constructor(file: string, line: number, column: number, detail: string) {
    super(`${file}:${line}:${column}: error: ${detail}`);
    this.name = 'MslError';
    this.file = file;
    this.line = line;
    this.column = column;
    this.detail = detail;
  }
}
