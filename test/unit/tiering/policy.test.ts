/**
 * tiering/service/policy.ts: each condition of a rule on its own (full, quiet, age,
 * heat), promotion of a hot tiered volume, unknown backends, rule matching by
 * collection, and the parsing of `[[tier.policy]]` tables and durations.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidParamError } from '../../../shared/errors.ts';
import {
  DEFAULT_RULE,
  describeRule,
  evaluate,
  evaluateVolume,
  type PolicyVolume,
  parseRule,
  parseRules,
  ruleFor,
  type TierRule,
} from '../../../tiering/service/policy.ts';

const H = 3_600_000;
const D = 24 * H;
const NOW = Date.UTC(2026, 10, 1);
const LIMIT = 1_000_000;
const opts = { now: NOW, volumeSizeLimit: LIMIT };

/** The example rule of the issue. */
const PHOTOS = parseRule(
  {
    collection: 'photos',
    minAge: '7d',
    minFullPercent: 95,
    quietFor: '24h',
    maxReadsPerDay: 10,
    backend: 's3.archive',
    keepLocalDat: false,
    promoteAboveReadsPerDay: 1000,
  },
  'test',
);

/** A photos volume that meets every condition of PHOTOS: 96% full, quiet for 8 days, 3 reads/day. */
function vol(over: Partial<PolicyVolume> = {}): PolicyVolume {
  return {
    id: 7,
    collection: 'photos',
    size: 960_000,
    readOnly: false,
    modifiedAt: (NOW - 8 * D) / 1000,
    readsPerDay: 3,
    ...over,
  };
}

function failed(v: PolicyVolume, rules: TierRule[] = [PHOTOS]): string[] {
  return evaluateVolume(v, rules, opts)
    .conditions.filter((c) => !c.ok)
    .map((c) => c.name);
}

describe('evaluate: uploading a local volume', () => {
  it('uploads when every condition holds, and says which held', () => {
    const d = evaluateVolume(vol(), [PHOTOS], opts);
    expect(d).toMatchObject({ volumeId: 7, action: 'upload', backend: 's3.archive', keepLocalDat: false });
    expect(d.conditions.map((c) => [c.name, c.ok])).toEqual([
      ['full', true],
      ['quiet', true],
      ['age', true],
      ['heat', true],
    ]);
    expect(d.reason).toContain('96% full, at least minFullPercent 95%');
    expect(d.reason).toContain('last written 8d ago, at least quietFor 1d');
    expect(d.reason).toContain('3 reads/day, within maxReadsPerDay 10');
  });

  it('full: under minFullPercent and writable stays, sealed counts as full whatever its size', () => {
    const d = evaluateVolume(vol({ size: 500_000 }), [PHOTOS], opts);
    expect(d.action).toBe('none');
    expect(d.reason).toBe('50% full, under minFullPercent 95% (and writable)');
    const sealed = evaluateVolume(vol({ size: 500_000, readOnly: true }), [PHOTOS], opts);
    expect(sealed.action).toBe('upload');
    expect(sealed.reason).toMatch(/^sealed; /);
  });

  it('full: with the size limit unknown only a sealed volume counts as full', () => {
    const o = { now: NOW, volumeSizeLimit: 0 };
    expect(evaluateVolume(vol(), [PHOTOS], o).reason).toBe('writable, and the size limit is unknown');
    expect(evaluateVolume(vol({ readOnly: true }), [PHOTOS], o).action).toBe('upload');
  });

  it('quiet: a write within quietFor holds it back', () => {
    const d = evaluateVolume(
      vol({ modifiedAt: (NOW - 2 * H) / 1000, firstSeenMs: NOW - 30 * D }),
      [PHOTOS],
      opts,
    );
    expect(d.action).toBe('none');
    expect(failed(vol({ modifiedAt: (NOW - 2 * H) / 1000, firstSeenMs: NOW - 30 * D }))).toEqual(['quiet']);
    expect(d.reason).toBe('last written 2h ago, under quietFor 1d');
  });

  it('age: the larger of time since the last write and time since first seen is the (lower-bound) age', () => {
    // Quiet for 3 days only: too young for minAge 7d unless seen earlier.
    const young = vol({ modifiedAt: (NOW - 3 * D) / 1000 });
    expect(failed(young)).toEqual(['age']);
    expect(evaluateVolume(young, [PHOTOS], opts).reason).toBe('only known to be 3d old, minAge 7d');
    expect(failed({ ...young, firstSeenMs: NOW - 6 * D })).toEqual(['age']);
    expect(evaluateVolume({ ...young, firstSeenMs: NOW - 7 * D }, [PHOTOS], opts).action).toBe('upload');
  });

  it('age: minAge 0 checks nothing', () => {
    const rule = { ...PHOTOS, minAgeMs: 0 };
    expect(evaluateVolume(vol(), [rule], opts).conditions.map((c) => c.name)).not.toContain('age');
  });

  it('heat: more reads than maxReadsPerDay hold it back; no maxReadsPerDay ignores heat', () => {
    expect(failed(vol({ readsPerDay: 11 }))).toEqual(['heat']);
    expect(evaluateVolume(vol({ readsPerDay: 11 }), [PHOTOS], opts).reason).toBe(
      '11 reads/day, over maxReadsPerDay 10',
    );
    expect(evaluateVolume(vol({ readsPerDay: 10 }), [PHOTOS], opts).action).toBe('upload');
    const noHeat: TierRule = { ...PHOTOS, promoteAboveReadsPerDay: undefined, maxReadsPerDay: undefined };
    expect(evaluateVolume(vol({ readsPerDay: 1e6 }), [noHeat], opts).action).toBe('upload');
  });

  it('lists every failing condition', () => {
    const d = evaluateVolume(
      vol({ size: 10, modifiedAt: NOW / 1000 - 60, readsPerDay: 500 }),
      [PHOTOS],
      opts,
    );
    expect(failed(vol({ size: 10, modifiedAt: NOW / 1000 - 60, readsPerDay: 500 }))).toEqual([
      'full',
      'quiet',
      'age',
      'heat',
    ]);
    expect(d.reason.split('; ')).toHaveLength(4);
  });

  it('keepLocalDat comes from the rule', () => {
    expect(evaluateVolume(vol(), [{ ...PHOTOS, keepLocalDat: true }], opts).keepLocalDat).toBe(true);
  });
});

describe('evaluate: unknown backends', () => {
  it('moves nothing to a backend the servers holding the volume do not have, and says so', () => {
    const d = evaluateVolume(vol({ backends: ['local.default'] }), [PHOTOS], opts);
    expect(d.action).toBe('none');
    expect(d.backend).toBe('s3.archive');
    expect(d.reason).toBe(
      'backend s3.archive is not configured on the servers holding it (they have: local.default)',
    );
  });

  it('uploads when the backend is there, or when the servers are not known', () => {
    expect(evaluateVolume(vol({ backends: ['local.default', 's3.archive'] }), [PHOTOS], opts).action).toBe(
      'upload',
    );
    expect(evaluateVolume(vol(), [PHOTOS], opts).action).toBe('upload');
  });

  it('reports failing conditions first: an unknown backend matters only once they hold', () => {
    const d = evaluateVolume(vol({ size: 1, backends: [] }), [PHOTOS], opts);
    expect(d.conditions.map((c) => c.name)).toEqual(['full', 'quiet', 'age', 'heat']);
  });
});

describe('evaluate: tiered volumes and promotion', () => {
  it('brings back a tiered volume hotter than promoteAboveReadsPerDay', () => {
    const d = evaluateVolume(
      vol({ remote: 's3.archive', readOnly: true, readsPerDay: 1001 }),
      [PHOTOS],
      opts,
    );
    expect(d).toMatchObject({ action: 'download', backend: 's3.archive' });
    expect(d.reason).toBe('tiered to s3.archive and hot: 1001 reads/day, over promoteAboveReadsPerDay 1000');
  });

  it('leaves it tiered at or below the threshold, and when promotion is off', () => {
    const at = evaluateVolume(vol({ remote: 's3.archive', readsPerDay: 1000 }), [PHOTOS], opts);
    expect(at.action).toBe('none');
    expect(at.reason).toBe('tiered to s3.archive; 1000 reads/day, not over promoteAboveReadsPerDay 1000');
    const off: TierRule = { ...PHOTOS, promoteAboveReadsPerDay: undefined };
    const hot = evaluateVolume(vol({ remote: 's3.archive', readsPerDay: 1e6 }), [off], opts);
    expect(hot.action).toBe('none');
    expect(hot.reason).toBe('tiered to s3.archive; promotion is off');
  });

  it('promotes from whichever backend the volume is on', () => {
    const d = evaluateVolume(vol({ remote: 'gcs.old', readsPerDay: 5000 }), [PHOTOS], opts);
    expect(d).toMatchObject({ action: 'download', backend: 'gcs.old' });
  });

  it('never re-tiers a volume on another backend than its rule names', () => {
    const d = evaluateVolume(vol({ remote: 'gcs.old' }), [PHOTOS], opts);
    expect(d.action).toBe('none');
    expect(d.reason).toContain('the policy names s3.archive: download it to move it');
  });

  it('finishes a move interrupted between replicas', () => {
    const d = evaluateVolume(vol({ remote: 's3.archive', partial: true }), [PHOTOS], opts);
    expect(d).toMatchObject({ action: 'upload', backend: 's3.archive' });
    expect(d.reason).toBe('tiered on some replicas only: finishing the move to s3.archive');
    // ...unless it turned hot meanwhile: then the tiered replicas come back.
    expect(
      evaluateVolume(vol({ remote: 's3.archive', partial: true, readsPerDay: 2000 }), [PHOTOS], opts).action,
    ).toBe('download');
  });

  it('a volume just brought back stays local while it is hotter than maxReadsPerDay (no flapping)', () => {
    const back = vol({ readOnly: true, readsPerDay: 1001 });
    expect(evaluateVolume(back, [PHOTOS], opts).action).toBe('none');
    expect(evaluateVolume({ ...back, remote: 's3.archive' }, [PHOTOS], opts).action).toBe('download');
  });
});

describe('rules', () => {
  it('match their collection first, then the rule without one; no rule, no move', () => {
    const any: TierRule = { ...DEFAULT_RULE, backend: 'local.cold' };
    const rules = [any, PHOTOS];
    expect(ruleFor(rules, 'photos')).toBe(PHOTOS);
    expect(ruleFor(rules, 'docs')).toBe(any);
    expect(ruleFor(rules, '')).toBe(any);
    expect(ruleFor([PHOTOS], 'docs')).toBeUndefined();
    const d = evaluateVolume(vol({ collection: 'docs' }), [PHOTOS], opts);
    expect(d).toMatchObject({ action: 'none', reason: 'no [[tier.policy]] covers collection "docs"' });
    expect(d.backend).toBeUndefined();
    // collection "" is the default collection, not a wildcard.
    const dflt = parseRule({ collection: '', backend: 'local.default' }, 't');
    expect(ruleFor([dflt], '')).toBe(dflt);
    expect(ruleFor([dflt], 'photos')).toBeUndefined();
  });

  it('parse with defaults: 95% full, quiet for 24 h, no age, heat or promotion', () => {
    expect(parseRule({ backend: 's3' }, 't')).toEqual({
      backend: 's3.default',
      minAgeMs: 0,
      minFullPercent: 95,
      quietForMs: D,
      keepLocalDat: false,
    });
    expect(PHOTOS).toEqual({
      collection: 'photos',
      backend: 's3.archive',
      minAgeMs: 7 * D,
      minFullPercent: 95,
      quietForMs: D,
      maxReadsPerDay: 10,
      keepLocalDat: false,
      promoteAboveReadsPerDay: 1000,
    });
    expect(describeRule(PHOTOS)).toBe(
      'collection "photos" -> s3.archive: minFullPercent 95 (or sealed), quietFor 1d, minAge 7d, maxReadsPerDay 10, promoteAboveReadsPerDay 1000',
    );
  });

  it.each([
    [{}, '"backend" is required'],
    [{ backend: 's3', minAge: '7 days' }, '"minAge": invalid duration'],
    [{ backend: 's3', quietFor: 24 }, '"quietFor" must be a duration'],
    [{ backend: 's3', minFullPercent: 120 }, 'must be 0-100'],
    [{ backend: 's3', minFullPercent: -1 }, 'must be a number >= 0'],
    [{ backend: 's3', maxReadsPerDay: 'ten' }, '"maxReadsPerDay" must be a number'],
    [{ backend: 's3', keepLocalDat: 'yes' }, '"keepLocalDat" must be true or false'],
    [{ backend: 's3', quietfor: '1h' }, 'unknown key "quietfor"'],
    [{ backend: 's3', promoteAboveReadsPerDay: 5 }, 'needs "maxReadsPerDay"'],
    [{ backend: 's3', maxReadsPerDay: 10, promoteAboveReadsPerDay: 10 }, 'must be above "maxReadsPerDay"'],
  ])('refuses %j: %s', (raw, message) => {
    expect(() => parseRule(raw, 'tier.policy[0]')).toThrow(InvalidParamError);
    expect(() => parseRule(raw, 'tier.policy[0]')).toThrow(message);
  });

  it('allow one rule per collection and one without', () => {
    expect(parseRules([{ backend: 's3' }, { collection: 'a', backend: 's3' }])).toHaveLength(2);
    expect(() => parseRules([{ backend: 's3' }, { backend: 'gcs' }])).toThrow(
      'a second rule without a collection',
    );
    expect(() =>
      parseRules([
        { collection: 'a', backend: 's3' },
        { collection: 'a', backend: 'gcs' },
      ]),
    ).toThrow('tier.policy[1]: a second rule for collection "a"');
    expect(() => parseRules({ backend: 's3' })).toThrow('must be an array of tables');
  });
});

describe('evaluate over many volumes', () => {
  it('decides each in id order', () => {
    const ds = evaluate(
      [vol({ id: 9 }), vol({ id: 2, size: 1 }), vol({ id: 5, remote: 's3.archive' })],
      [PHOTOS],
      opts,
    );
    expect(ds.map((d) => [d.volumeId, d.action])).toEqual([
      [2, 'none'],
      [5, 'none'],
      [9, 'upload'],
    ]);
  });

  it('never moves a volume both ways: whatever the numbers, download needs tiered and upload local', () => {
    fc.assert(
      fc.property(
        fc.record({
          size: fc.nat({ max: 2 * LIMIT }),
          readOnly: fc.boolean(),
          quietH: fc.nat({ max: 24 * 400 }),
          readsPerDay: fc.nat({ max: 5000 }),
          tiered: fc.boolean(),
          partial: fc.boolean(),
        }),
        (r) => {
          const v = vol({
            size: r.size,
            readOnly: r.readOnly,
            modifiedAt: (NOW - r.quietH * H) / 1000,
            readsPerDay: r.readsPerDay,
            ...(r.tiered ? { remote: 's3.archive', ...(r.partial ? { partial: true } : {}) } : {}),
          });
          const d = evaluateVolume(v, [PHOTOS], opts);
          if (d.action === 'download') expect(r.tiered).toBe(true);
          if (d.action === 'upload') expect(!r.tiered || r.partial).toBe(true);
          expect(d.reason.length).toBeGreaterThan(0);
        },
      ),
    );
  });
});
