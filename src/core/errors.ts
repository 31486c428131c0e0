// One class per failure, each with a stable `code`. Callers (the API, the CLI) switch on codes,
// never on messages. Malformed packets are not errors: they are anomaly bits in a record.

export class SluiceError extends Error {
  readonly code: string;
  readonly data: Record<string, unknown> | null;
  constructor(code: string, message: string, data: Record<string, unknown> | null = null) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.data = data;
  }
}

/** One problem in rule text, located so an editor can point at it. */
export interface RuleProblem {
  /** 1-based line in the text that was parsed. */
  line: number;
  /** 1-based column of the offending token. */
  column: number;
  message: string;
  /** What would have been valid at that position. */
  expected: string;
  /** The profile the line belongs to, when known. */
  profile?: string;
}

export class RuleSyntaxError extends SluiceError {
  readonly problems: RuleProblem[];
  constructor(problems: RuleProblem[], source = "rules") {
    const first = problems[0];
    const where = first ? `${source}:${first.line}:${first.column}: ${first.message} (expected ${first.expected})` : source;
    const more = problems.length > 1 ? ` and ${problems.length - 1} more problem(s)` : "";
    super("RULES_INVALID", `invalid rules: ${where}${more}`, { problems });
    this.problems = problems;
  }
}

export class RuleCompileError extends SluiceError {
  constructor(message: string, data: Record<string, unknown> | null = null) {
    super("RULES_COMPILE", message, data);
  }
}

export class CoreLoadError extends SluiceError {
  constructor(message: string, data: Record<string, unknown> | null = null) {
    super("CORE_LOAD", message, data);
  }
}

export class MemoryExhaustedError extends SluiceError {
  constructor(requested: number, limit: number) {
    super("MEMORY_EXHAUSTED", `shared memory cannot grow by ${requested} bytes (limit ${limit} bytes)`, {
      requested,
      limit,
    });
  }
}
