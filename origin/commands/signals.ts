/**
 * How a server process stops: SIGTERM (systemd, docker, `timeout`), SIGINT
 * (Ctrl-C) and SIGHUP (its terminal went away) each start a graceful stop
 * (readiness off, requests drained, volumes synced and closed); a second
 * signal exits at once.
 */
import type { Logger } from '../observability/log.ts';

export const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

export function stopOnSignals(stop: () => Promise<unknown>, log: Logger): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn(`${signal} again: exiting now`);
      process.exit(1);
    }
    stopping = true;
    log.info(`${signal}: stopping (send it again to exit at once)`);
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, `error while stopping on ${signal}`);
        process.exit(1);
      },
    );
  };
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
}
