// DATABASE_READ_URL (docs/high-availability.md "Reads off the primary"): parsed into
// config.read, refused with a message naming the key when it cannot work.
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../config/index.ts';

const PRIMARY = 'postgres://cardata:pw@127.0.0.1:55443/cardata';
const STANDBY = 'postgres://cardata:pw@127.0.0.1:55444/cardata';

describe('DATABASE_READ_URL', () => {
  it('unset: exports read on the primary (read is null)', () => {
    expect(loadConfig({ DATABASE_URL: PRIMARY }).read).toBeNull();
  });

  it('set: the URL and the wait, default 1000 ms', () => {
    expect(loadConfig({ DATABASE_URL: PRIMARY, DATABASE_READ_URL: STANDBY }).read).toEqual({ url: STANDBY, maxWaitMs: 1000 });
    expect(loadConfig({ DATABASE_URL: PRIMARY, DATABASE_READ_URL: STANDBY, DATABASE_READ_MAX_WAIT_MS: '250' }).read?.maxWaitMs).toBe(250);
  });

  it('refuses it without DATABASE_URL, with SHARD_URLS, or when it is not a postgres URL', () => {
    expect(() => loadConfig({ DATABASE_READ_URL: STANDBY })).toThrow(/DATABASE_READ_URL: needs DATABASE_URL/);
    expect(() => loadConfig({ DATABASE_URL: PRIMARY, DATABASE_READ_URL: STANDBY, SHARD_URLS: 'postgres://a@127.0.0.1:1/s1' })).toThrow(/DATABASE_READ_URL: not with SHARD_URLS/);
    expect(() => loadConfig({ DATABASE_URL: PRIMARY, DATABASE_READ_URL: 'http://127.0.0.1/x' })).toThrow(ConfigError);
    expect(() => loadConfig({ DATABASE_URL: PRIMARY, DATABASE_READ_URL: 'http://127.0.0.1/x' })).toThrow(/DATABASE_READ_URL=\(hidden\): must be a postgres:\/\/ URL/);
    expect(() => loadConfig({ DATABASE_URL: PRIMARY, DATABASE_READ_URL: STANDBY, DATABASE_READ_MAX_WAIT_MS: '-1' })).toThrow(/DATABASE_READ_MAX_WAIT_MS/);
  });
});
