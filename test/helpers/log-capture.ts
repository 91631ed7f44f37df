/**
 * Log lines of a server under test, kept in memory: the real pino logger
 * (redaction, scrubbing, levels) with a destination that appends each JSON
 * line to an array, so tests assert on what an operator would read.
 */
import { createLogger, type Logger, type LogLevel } from '../../origin/observability/log.ts';

export interface LogCapture {
  logger: Logger;
  /** Each line as written (one JSON object). */
  lines: string[];
  /** The lines parsed. */
  records(): Array<Record<string, unknown> & { level: string; msg: string }>;
}

export function captureLogs(lines: string[] = [], level: LogLevel = 'debug'): LogCapture {
  const logger = createLogger({
    level,
    destination: {
      write(chunk: string) {
        for (const line of chunk.split('\n')) if (line) lines.push(line);
      },
    },
  });
  return {
    logger,
    lines,
    records: () =>
      lines.map((l) => JSON.parse(l) as Record<string, unknown> & { level: string; msg: string }),
  };
}
