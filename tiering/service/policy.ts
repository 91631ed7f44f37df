/**
 * Tier policies (docs/format.md §10): which volumes go to a cloud tier and which come
 * back, decided from what heartbeats report: fullness, the time since the last
 * write, the time a volume has existed, and read heat. Pure: volumes and rules
 * in, decisions with a human reason out, so `kelp tier plan` and the tiering
 * service (service.ts) decide the same way and both are testable without a
 * cluster.
 *
 * A rule names a collection (or none: every collection without a rule of its
 * own) and a backend. A local volume is uploaded when every condition holds:
 *   full       sealed (read-only: it takes no more writes), or at least
 *              `minFullPercent` of the size limit, as SeaweedFS's
 *              `volume.tier.upload -fullPercent` judges it (the upload seals it);
 *   quietFor   no write or delete for this long (the heartbeat's `modifiedAt`);
 *   minAge     it has existed this long. Heartbeats carry no creation time, so
 *              the age is a lower bound: the larger of the time since its last
 *              write (`modifiedAt`) and the time since the service first saw it
 *              (`firstSeenMs`, in memory only). A restart of the service can
 *              only make it wait longer, never tier a volume early;
 *   heat       at most `maxReadsPerDay` reads over the last 24 hours, summed
 *              over its replicas (unset: heat is not considered).
 * A tiered volume comes back (download) when promotion is on and its heat is
 * above `promoteAboveReadsPerDay`. That threshold must be above
 * `maxReadsPerDay`, so a volume cannot flap between the two.
 */
import { InvalidParamError } from '../../shared/errors.ts';
import { formatDuration, parseDuration } from './duration.ts';

// ---- rules ----

export interface TierRule {
  /** The collection this rule covers ("" = the default collection); undefined = every collection without a rule of its own. */
  collection?: string;
  /** `type.id` of the backend to tier to, e.g. `s3.archive`. */
  backend: string;
  minAgeMs: number;
  minFullPercent: number;
  quietForMs: number;
  /** Undefined: heat does not hold a volume back. */
  maxReadsPerDay?: number;
  keepLocalDat: boolean;
  /** Undefined: promotion is off, a tiered volume stays tiered however hot. */
  promoteAboveReadsPerDay?: number;
}

/** The keys of one `[[tier.policy]]` table, as docs/configuration.md lists them (scripts/config-docs.ts). */
export const RULE_FIELDS = {
  collection: {
    type: 'string',
    default: '(every collection)',
    meaning: 'collection the rule covers ("" = the default one); a rule without one covers the others',
  },
  backend: { type: 'string', default: '(required)', meaning: 'backend to tier to, `type.id` (s3.archive)' },
  minAge: { type: 'duration', default: '0', meaning: 'volume at least this old (see "Age" below)' },
  minFullPercent: {
    type: 'number',
    default: '95',
    meaning: 'at least this full (percent of the size limit); a sealed volume counts as full',
  },
  quietFor: { type: 'duration', default: '24h', meaning: 'no write or delete for this long' },
  maxReadsPerDay: {
    type: 'number',
    default: '(no limit)',
    meaning: 'at most this many reads over the last 24 h (all replicas)',
  },
  keepLocalDat: { type: 'boolean', default: 'false', meaning: 'keep the local .dat after the upload' },
  promoteAboveReadsPerDay: {
    type: 'number',
    default: '(off)',
    meaning: 'bring a tiered volume back above this many reads/day; needs a lower maxReadsPerDay',
  },
} as const;

export const RULE_DEFAULTS = { minAgeMs: 0, minFullPercent: 95, quietForMs: 86_400_000, keepLocalDat: false };

/**
 * The rule `kelp tier serve` and `plan` use when the config has no
 * `[[tier.policy]]`: every collection to the embedded `local.default`, with
 * SeaweedFS's defaults (95% full, quiet for 24 h), so tiering works out of the box.
 */
export const DEFAULT_RULE: TierRule = { backend: 'local.default', ...RULE_DEFAULTS };

/** `s3` → `s3.default`, as the volume server's registry resolves a bare type. */
export function normalizeBackendName(name: string): string {
  return name.includes('.') ? name : `${name}.default`;
}

function fail(where: string, message: string): never {
  throw new InvalidParamError(`${where}: ${message}`);
}

function nonNegative(raw: unknown, where: string, key: string): number {
  const n = typeof raw === 'bigint' ? Number(raw) : raw;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0)
    fail(where, `"${key}" must be a number >= 0, not ${JSON.stringify(String(raw))}`);
  return n;
}

function duration(raw: unknown, where: string, key: string): number {
  if (typeof raw === 'number' && raw === 0) return 0;
  if (typeof raw !== 'string') fail(where, `"${key}" must be a duration string such as "24h"`);
  try {
    return parseDuration(raw);
  } catch (err) {
    if (err instanceof InvalidParamError) fail(where, `"${key}": ${err.message}`);
    throw err;
  }
}

/** One `[[tier.policy]]` table → a rule; `where` names it in errors ("tier.policy[2]"). */
export function parseRule(raw: unknown, where: string): TierRule {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail(where, 'must be a table');
  const t = raw as Record<string, unknown>;
  for (const key of Object.keys(t)) {
    if (!Object.hasOwn(RULE_FIELDS, key))
      fail(where, `unknown key "${key}" (known: ${Object.keys(RULE_FIELDS).join(', ')})`);
  }
  if (typeof t.backend !== 'string' || t.backend.trim() === '') fail(where, '"backend" is required');
  if (t.collection !== undefined && typeof t.collection !== 'string')
    fail(where, '"collection" must be a string');
  if (t.keepLocalDat !== undefined && typeof t.keepLocalDat !== 'boolean')
    fail(where, '"keepLocalDat" must be true or false');
  const rule: TierRule = {
    ...(t.collection !== undefined ? { collection: t.collection as string } : {}),
    backend: normalizeBackendName(t.backend.trim()),
    minAgeMs: t.minAge === undefined ? RULE_DEFAULTS.minAgeMs : duration(t.minAge, where, 'minAge'),
    minFullPercent:
      t.minFullPercent === undefined
        ? RULE_DEFAULTS.minFullPercent
        : nonNegative(t.minFullPercent, where, 'minFullPercent'),
    quietForMs: t.quietFor === undefined ? RULE_DEFAULTS.quietForMs : duration(t.quietFor, where, 'quietFor'),
    keepLocalDat: (t.keepLocalDat as boolean | undefined) ?? RULE_DEFAULTS.keepLocalDat,
  };
  if (rule.minFullPercent > 100) fail(where, '"minFullPercent" must be 0-100');
  if (t.maxReadsPerDay !== undefined)
    rule.maxReadsPerDay = nonNegative(t.maxReadsPerDay, where, 'maxReadsPerDay');
  if (t.promoteAboveReadsPerDay !== undefined)
    rule.promoteAboveReadsPerDay = nonNegative(t.promoteAboveReadsPerDay, where, 'promoteAboveReadsPerDay');
  if (rule.promoteAboveReadsPerDay !== undefined) {
    // Otherwise a volume hotter than the promotion threshold would be brought back and uploaded
    // again on alternate rounds: the gap between the two thresholds is the hysteresis.
    if (rule.maxReadsPerDay === undefined)
      fail(where, '"promoteAboveReadsPerDay" needs "maxReadsPerDay" (below it)');
    if (rule.promoteAboveReadsPerDay <= rule.maxReadsPerDay)
      fail(where, '"promoteAboveReadsPerDay" must be above "maxReadsPerDay"');
  }
  return rule;
}

/** The `[[tier.policy]]` array → rules; one rule per collection at most (and one catch-all). */
export function parseRules(raw: unknown, where = 'tier.policy'): TierRule[] {
  if (!Array.isArray(raw)) fail(where, 'must be an array of tables ([[tier.policy]])');
  const rules = raw.map((r, i) => parseRule(r, `${where}[${i}]`));
  const seen = new Set<string | undefined>();
  for (const [i, r] of rules.entries()) {
    if (seen.has(r.collection)) {
      fail(
        `${where}[${i}]`,
        r.collection === undefined
          ? 'a second rule without a collection'
          : `a second rule for collection ${JSON.stringify(r.collection)}`,
      );
    }
    seen.add(r.collection);
  }
  return rules;
}

/** One line per rule, for logs and `kelp tier plan`. */
export function describeRule(r: TierRule): string {
  const who =
    r.collection === undefined
      ? 'collections without a rule of their own'
      : `collection ${JSON.stringify(r.collection)}`;
  const parts = [
    `minFullPercent ${r.minFullPercent} (or sealed)`,
    `quietFor ${formatDuration(r.quietForMs)}`,
    ...(r.minAgeMs ? [`minAge ${formatDuration(r.minAgeMs)}`] : []),
    ...(r.maxReadsPerDay !== undefined ? [`maxReadsPerDay ${r.maxReadsPerDay}`] : []),
    r.promoteAboveReadsPerDay !== undefined
      ? `promoteAboveReadsPerDay ${r.promoteAboveReadsPerDay}`
      : 'promotion off',
    ...(r.keepLocalDat ? ['keepLocalDat'] : []),
  ];
  return `${who} -> ${r.backend}: ${parts.join(', ')}`;
}

/** The rule for `collection`: its own, else the one without a collection. */
export function ruleFor(rules: readonly TierRule[], collection: string): TierRule | undefined {
  return rules.find((r) => r.collection === collection) ?? rules.find((r) => r.collection === undefined);
}

// ---- evaluation ----

/** One volume as the cluster reports it (master `/vol/status` plus its volume servers). */
export interface PolicyVolume {
  id: number;
  collection: string;
  /** Bytes of the `.dat`. */
  size: number;
  readOnly: boolean;
  /** Unix seconds of the last write or delete (the heartbeat's `modifiedAt`). */
  modifiedAt: number;
  /** Reads over the last 24 hours, all replicas together, plus the edge's (below). */
  readsPerDay: number;
  /** Of which the volume servers served (all replicas together). */
  originReadsPerDay?: number;
  /** Of which the edge served with no origin request (cache hits, reads from the bucket). */
  edgeReadsPerDay?: number;
  /** The backend holding the `.dat` of its tiered replicas; undefined when every replica is local. */
  remote?: string;
  /** Some replicas are tiered and others are not: a move that was interrupted. */
  partial?: boolean;
  /** Epoch ms at which the service first saw this volume (a lower bound of its age, see minAge). */
  firstSeenMs?: number;
  /** Backends every server holding it can use; undefined = not known, not checked. */
  backends?: readonly string[];
}

export interface EvaluateOptions {
  /** Epoch milliseconds. */
  now: number;
  /** Bytes at which volumes seal (the master's); 0 = unknown, only sealed volumes count as full. */
  volumeSizeLimit: number;
}

export type TierAction = 'upload' | 'download' | 'none';

export interface Condition {
  name: 'full' | 'quiet' | 'age' | 'heat' | 'backend' | 'promote' | 'rule' | 'partial';
  ok: boolean;
  text: string;
}

export interface TierDecision {
  volumeId: number;
  collection: string;
  action: TierAction;
  /** Where an upload goes or a download comes from; the rule's backend for `none`; undefined without a rule. */
  backend?: string;
  keepLocalDat: boolean;
  /** Human: the conditions that held (for a move) or those that failed (for none). */
  reason: string;
  /** Every condition checked, in order. */
  conditions: Condition[];
}

const percent = (n: number) => `${Math.floor(n * 10) / 10}%`;
const reads = (n: number) => `${Math.round(n)} read${Math.round(n) === 1 ? '' : 's'}/day`;
/** Heat as the policy weighs it, with the edge's share when it has any. */
const heat = (v: PolicyVolume) =>
  v.edgeReadsPerDay
    ? `${reads(v.readsPerDay)} (origin ${Math.round(v.originReadsPerDay ?? v.readsPerDay - v.edgeReadsPerDay)}, edge ${Math.round(v.edgeReadsPerDay)})`
    : reads(v.readsPerDay);

function decision(
  v: PolicyVolume,
  action: TierAction,
  backend: string | undefined,
  keepLocalDat: boolean,
  conditions: Condition[],
): TierDecision {
  const shown = action === 'none' ? conditions.filter((c) => !c.ok) : conditions;
  return {
    volumeId: v.id,
    collection: v.collection,
    action,
    ...(backend !== undefined ? { backend } : {}),
    keepLocalDat,
    reason: (shown.length ? shown : conditions).map((c) => c.text).join('; '),
    conditions,
  };
}

/** The conditions an upload of a local volume needs, each with its verdict. */
function uploadConditions(v: PolicyVolume, rule: TierRule, o: EvaluateOptions): Condition[] {
  const out: Condition[] = [];
  if (v.readOnly) out.push({ name: 'full', ok: true, text: 'sealed' });
  else if (o.volumeSizeLimit > 0) {
    const full = (v.size / o.volumeSizeLimit) * 100;
    const ok = full >= rule.minFullPercent;
    out.push({
      name: 'full',
      ok,
      text: `${percent(full)} full, ${ok ? 'at least' : 'under'} minFullPercent ${rule.minFullPercent}% (and writable)`,
    });
  } else {
    out.push({ name: 'full', ok: false, text: 'writable, and the size limit is unknown' });
  }
  const quietMs = o.now - v.modifiedAt * 1_000;
  const quiet = quietMs >= rule.quietForMs;
  out.push({
    name: 'quiet',
    ok: quiet,
    text: `last written ${formatDuration(quietMs)} ago, ${quiet ? 'at least' : 'under'} quietFor ${formatDuration(rule.quietForMs)}`,
  });
  if (rule.minAgeMs > 0) {
    const ageMs = Math.max(quietMs, v.firstSeenMs !== undefined ? o.now - v.firstSeenMs : 0);
    const old = ageMs >= rule.minAgeMs;
    out.push({
      name: 'age',
      ok: old,
      text: `${old ? 'at least' : 'only known to be'} ${formatDuration(ageMs)} old, minAge ${formatDuration(rule.minAgeMs)}`,
    });
  }
  if (rule.maxReadsPerDay !== undefined) {
    const cool = v.readsPerDay <= rule.maxReadsPerDay;
    out.push({
      name: 'heat',
      ok: cool,
      text: `${heat(v)}, ${cool ? 'within' : 'over'} maxReadsPerDay ${rule.maxReadsPerDay}`,
    });
  }
  return out;
}

function backendCondition(v: PolicyVolume, backend: string): Condition | undefined {
  if (!v.backends || v.backends.includes(backend)) return undefined;
  return {
    name: 'backend',
    ok: false,
    text: `backend ${backend} is not configured on the servers holding it (they have: ${v.backends.join(', ') || 'none'})`,
  };
}

/** Decides one volume. */
export function evaluateVolume(
  v: PolicyVolume,
  rules: readonly TierRule[],
  o: EvaluateOptions,
): TierDecision {
  const rule = ruleFor(rules, v.collection);
  if (!rule) {
    const text = `no [[tier.policy]] covers collection ${JSON.stringify(v.collection)}`;
    return decision(v, 'none', undefined, false, [{ name: 'rule', ok: false, text }]);
  }
  if (v.remote !== undefined) {
    const promote = rule.promoteAboveReadsPerDay;
    if (promote !== undefined && v.readsPerDay > promote) {
      return decision(v, 'download', v.remote, false, [
        {
          name: 'promote',
          ok: true,
          text: `tiered to ${v.remote} and hot: ${heat(v)}, over promoteAboveReadsPerDay ${promote}`,
        },
      ]);
    }
    const stay: Condition = {
      name: 'promote',
      ok: false,
      text:
        promote === undefined
          ? `tiered to ${v.remote}; promotion is off`
          : `tiered to ${v.remote}; ${heat(v)}, not over promoteAboveReadsPerDay ${promote}`,
    };
    if (v.partial && v.remote === rule.backend) {
      // An interrupted move: replicas should agree, and the one already uploaded decided it.
      const missing = backendCondition(v, rule.backend);
      const finish: Condition = {
        name: 'partial',
        ok: true,
        text: `tiered on some replicas only: finishing the move to ${rule.backend}`,
      };
      return missing
        ? decision(v, 'none', rule.backend, rule.keepLocalDat, [finish, missing])
        : decision(v, 'upload', rule.backend, rule.keepLocalDat, [finish]);
    }
    if (v.remote !== rule.backend) {
      stay.text += ` (the policy names ${rule.backend}: download it to move it)`;
    }
    return decision(v, 'none', v.remote, false, [stay]);
  }
  const conditions = uploadConditions(v, rule, o);
  if (conditions.every((c) => c.ok)) {
    const missing = backendCondition(v, rule.backend);
    if (missing) return decision(v, 'none', rule.backend, rule.keepLocalDat, [...conditions, missing]);
    return decision(v, 'upload', rule.backend, rule.keepLocalDat, conditions);
  }
  return decision(v, 'none', rule.backend, rule.keepLocalDat, conditions);
}

/** Decides every volume, in id order. */
export function evaluate(
  volumes: readonly PolicyVolume[],
  rules: readonly TierRule[],
  o: EvaluateOptions,
): TierDecision[] {
  return [...volumes].sort((a, b) => a.id - b.id).map((v) => evaluateVolume(v, rules, o));
}
