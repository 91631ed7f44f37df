/** No secret or token reaches a log line, whatever field or message it hides in; levels and components. */
import { describe, expect, it } from 'vitest';
import { scrubText } from '../../../../origin/observability/log.ts';
import { captureLogs } from '../../../helpers/log-capture.ts';

const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJmaWQiOiIzLDAxIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ';
const SECRETS = {
  bearer: 'client-key-0123456789abcdef',
  cluster: 'cluster-key-fedcba9876543210',
  s3: 'wJalrXUtnFEMI-K7MDENG-bPxRfiCY',
  signature: 'v1;1796480000;abcdef0123456789abcdef0123456789',
};

describe('scrubText', () => {
  it.each([
    [`Authorization: Bearer ${SECRETS.bearer}`, 'Authorization: Bearer [redacted]'],
    [`bearer ${SECRETS.bearer} and more`, 'bearer [redacted] and more'],
    [`GET /3,01637037d6?jwt=${JWT}&dl=1`, 'GET /3,01637037d6?jwt=[redacted]&dl=1'],
    [`/3,01?sig=abc123&width=200`, '/3,01?sig=[redacted]&width=200'],
    [`x-kelp-auth: ${SECRETS.signature}`, 'x-kelp-auth: [redacted]'],
    [`token ${JWT} in text`, 'token [redacted] in text'],
    ['nothing secret here: volume 3 sealed', 'nothing secret here: volume 3 sealed'],
  ])('%s', (input, expected) => {
    expect(scrubText(input)).toBe(expected);
  });
});

describe('the logger', () => {
  it('censors credentials in fields, nested objects, messages and errors', () => {
    const { logger, lines } = captureLogs();
    logger.info(
      {
        headers: { authorization: `Bearer ${SECRETS.bearer}`, 'x-kelp-auth': SECRETS.signature, host: 'h' },
        req: { headers: { authorization: `Bearer ${SECRETS.bearer}` } },
        config: { clusterKey: SECRETS.cluster, backend: { secretAccessKey: SECRETS.s3, bucket: 'b' } },
        url: `/3,01637037d6?jwt=${JWT}`,
      },
      `upload with Bearer ${SECRETS.bearer}`,
    );
    logger.error({ err: new Error(`replica said: jwt=${JWT} refused`) }, 'replication failed');
    logger.warn('formatted %s', `Bearer ${SECRETS.bearer}`);
    const all = lines.join('\n');
    for (const secret of [...Object.values(SECRETS), JWT]) expect(all).not.toContain(secret);
    expect(all).toContain('[redacted]');
    // What is not secret stays readable.
    const [first, second] = lines.map((l) => JSON.parse(l));
    expect(first).toMatchObject({
      level: 'info',
      headers: { host: 'h' },
      config: { backend: { bucket: 'b' } },
      url: '/3,01637037d6?jwt=[redacted]',
      msg: 'upload with Bearer [redacted]',
    });
    expect(second).toMatchObject({
      level: 'error',
      err: { message: 'replica said: jwt=[redacted] refused' },
    });
  });

  it('writes JSON lines with label levels, ISO times and the component of a child; drops lines below its level', () => {
    const { logger, records } = captureLogs([], 'warn');
    const child = logger.child({ component: 'volume' });
    child.info('not written');
    child.warn({ volume: 3 }, 'volume 3: disk full');
    expect(records()).toEqual([
      expect.objectContaining({ level: 'warn', component: 'volume', volume: 3, msg: 'volume 3: disk full' }),
    ]);
    expect(records()[0]!.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });
});
