/**
 * Options for {@link SourceError}: where in the data file the problem is.
 */
export interface SourceErrorOptions {
  /** The file (or stream name) being read. */
  path?: string | undefined;
  /** 1-based line of the problem, when known. */
  line?: number | undefined;
  /** 1-based column (in UTF-16 code units) of the problem, when known. */
  column?: number | undefined;
  /** The underlying error (a Node.js `fs` error, a `SyntaxError`, ...). */
  cause?: unknown;
}

/**
 * A problem with a whole data file, as opposed to one record of it: the file is missing or
 * unreadable, is not valid UTF-8, is a JSON document that is not an array of records, has
 * duplicate CSV header names, and so on. A problem with one record is never a `SourceError`:
 * it becomes a {@link SourceRecord} with an `error`, and reading goes on.
 *
 * The message names the file and, where known, the line (and column), for example
 * `data.json: line 3, column 7: invalid JSON: Unexpected token '}'`.
 */
export class SourceError extends Error {
  override name = "SourceError";
  /** The file (or stream name) being read, when known. */
  readonly path: string | undefined;
  /** 1-based line of the problem, when known. */
  readonly line: number | undefined;
  /** 1-based column of the problem, when known. */
  readonly column: number | undefined;

  /**
   * @param message Full human-readable message (already naming the file and line).
   * @param options Location of the problem and its cause.
   */
  constructor(message: string, options: SourceErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.path = options.path;
    this.line = options.line;
    this.column = options.column;
  }
}

/**
 * Whether `error` is a {@link SourceError}. Also true for a `SourceError` from another copy of
 * this module (it checks the `name`), so prefer it to `instanceof`.
 */
export function isSourceError(error: unknown): error is SourceError {
  return error instanceof SourceError || (error instanceof Error && error.name === "SourceError");
}
