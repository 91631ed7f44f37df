/** The process logger of a server command, from its [log] options (origin/observability/log.ts). */
import {
  createLogger,
  type LogFormat,
  type Logger,
  type LogLevel,
  setRootLogger,
} from '../observability/log.ts';

export function startLogging(o: { logLevel: LogLevel; logFormat: LogFormat }): Logger {
  const logger = createLogger({ level: o.logLevel, format: o.logFormat });
  setRootLogger(logger);
  return logger;
}
