/**
 * `kelp tier serve`'s metrics (docs/operations.md lists each): its rounds and
 * the moves they made. The transfers themselves are counted where they run,
 * on the volume servers (kelp_tier_transfer_*).
 */
import type { RoundOutcome } from '../../tiering/service/service.ts';
import {
  collectedCounter,
  collectedGauge,
  FastHistogram,
  type HistogramSeries,
  METRIC_PREFIX as P,
  type ServerMetrics,
  TRANSFER_BUCKETS,
} from './metrics.ts';

export class TierServiceMetrics {
  private readonly rounds = new Map<string, number>();
  private readonly moves = new Map<string, number>();
  private lastRoundAt = 0;
  private readonly roundSeconds: HistogramSeries;

  constructor(metrics: ServerMetrics) {
    const r = metrics.registry;
    collectedCounter(
      r,
      `${P}tier_service_rounds_total`,
      'Rounds of the tiering service by outcome: idle (nothing to move), moved, waited (for a transfer it found running), failed',
      ['outcome'],
      () => [...this.rounds].map(([outcome, n]) => [{ outcome }, n] as const),
    );
    collectedCounter(
      r,
      `${P}tier_service_moves_total`,
      'Volumes the tiering service moved or tried to, by action, backend and result (done, failed)',
      ['action', 'backend', 'result'],
      () =>
        [...this.moves].map(([k, n]) => {
          const [action, backend, result] = k.split('|') as [string, string, string];
          return [{ action, backend, result }, n] as const;
        }),
    );
    collectedGauge(
      r,
      `${P}tier_service_last_round_timestamp_seconds`,
      'Unix time the last round ended (0 before the first): a round that waits on a transfer lasts as long as it',
      [],
      () => [[{}, this.lastRoundAt]],
    );
    this.roundSeconds = new FastHistogram(
      r,
      `${P}tier_service_round_duration_seconds`,
      'How long rounds took (a round with a move lasts as long as its transfers)',
      TRANSFER_BUCKETS,
    ).series();
  }

  readonly onRound = (outcome: RoundOutcome, seconds: number): void => {
    this.rounds.set(outcome.kind, (this.rounds.get(outcome.kind) ?? 0) + 1);
    this.lastRoundAt = Date.now() / 1000;
    this.roundSeconds.observe(seconds);
    const d = outcome.kind === 'moved' || outcome.kind === 'failed' ? outcome.decision : undefined;
    if (!d) return;
    const key = `${d.action}|${d.backend ?? ''}|${outcome.kind === 'moved' ? 'done' : 'failed'}`;
    this.moves.set(key, (this.moves.get(key) ?? 0) + 1);
  };
}
