import type { Logger } from "@rdm/observability";

export interface LogLine {
  level: "info" | "warn" | "error";
  fields: Record<string, unknown>;
  message: string;
}

/** A logger that records lines (with bindings from child()) so tests can assert on them. */
export function captureLogger(
  lines: LogLine[] = [],
  bindings: Record<string, unknown> = {},
): Logger & { lines: LogLine[] } {
  const write =
    (level: LogLine["level"]) =>
    (a: unknown, b?: unknown): void => {
      const fields = typeof a === "object" && a !== null ? (a as Record<string, unknown>) : {};
      const message = typeof a === "string" ? a : typeof b === "string" ? b : "";
      lines.push({ level, fields: { ...bindings, ...fields }, message });
    };
  const logger = {
    lines,
    info: write("info"),
    warn: write("warn"),
    error: write("error"),
    debug: () => undefined,
    trace: () => undefined,
    child: (more: Record<string, unknown>) => captureLogger(lines, { ...bindings, ...more }),
  };
  return logger as unknown as Logger & { lines: LogLine[] };
}
