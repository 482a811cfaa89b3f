// storage/driver/shards.ts bucketOf: the VIN → bucket hash is a contract with every stored row
// (a changed hash would put a VIN's new rows on another shard than its old ones). Fixed
// vectors, checked against an independent FNV-1a implementation.
import { describe, expect, it } from 'vitest';
import { BUCKETS, bucketOf, fnv1a32, urlLabel } from '../../storage/driver/shards.ts';
import { ConfigError, loadConfig } from '../../config/index.ts';

describe('bucketOf', () => {
  it('is FNV-1a 32-bit (the published test vectors)', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
  });
  it.each([
    ['WVWZZZ1JZXW000001', 0xe5866972, 2418],
    ['1HGCM82633A004352', 0x848a2802, 2050],
    ['SHARDTEST00000000', 0x98c91f1f, 3871],
  ])('%s → hash %i, bucket %i', (vin, hash, bucket) => {
    expect(fnv1a32(vin)).toBe(hash);
    expect(bucketOf(vin)).toBe(bucket);
  });
  it('spreads 20,000 sequential VINs over all 4,096 buckets within ±60% of the mean', () => {
    const n = new Array<number>(BUCKETS).fill(0);
    for (let i = 0; i < 20_000; i++) n[bucketOf(`WVWZZZ1JZ${String(i).padStart(8, '0')}`)]!++;
    const mean = 20_000 / BUCKETS;
    expect(Math.min(...n)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...n)).toBeLessThan(mean * 3);
    expect(n.filter((x) => x === 0).length).toBeLessThan(BUCKETS * 0.05);
  });
  it('hashes non-ASCII text by its UTF-8 bytes (c3 a9)', () => {
    expect(fnv1a32('é')).toBe(0x1e9de8c1);
    expect(fnv1a32('é')).not.toBe(fnv1a32('e'));
  });
});

describe('urlLabel', () => {
  it('keeps host, port and database, never the credentials', () => {
    expect(urlLabel('postgres://cardata:secret@db1.internal:5433/cardata_s1')).toBe('db1.internal:5433/cardata_s1');
    expect(urlLabel('postgres://db2/x')).toBe('db2/x');
  });
});

describe('SHARD_URLS', () => {
  const db = 'postgres://u:p@127.0.0.1:5432/control';
  it('is a list of postgres URLs in order; unset means single-database mode', () => {
    expect(loadConfig({ DATABASE_URL: db }).shardUrls).toBeNull();
    expect(loadConfig({ DATABASE_URL: db, SHARD_URLS: 'postgres://a/s0, postgresql://b:1/s1' }).shardUrls).toEqual(['postgres://a/s0', 'postgresql://b:1/s1']);
  });
  it.each([
    [{ SHARD_URLS: 'postgres://a/s0' }, /SHARD_URLS: needs DATABASE_URL/],
    [{ DATABASE_URL: db, SHARD_URLS: 'http://a/s0' }, /SHARD_URLS=\(hidden\): must be comma-separated postgres:\/\/ URLs/],
    [{ DATABASE_URL: db, SHARD_URLS: 'postgres://a/s0,postgres://a/s0' }, /names the same URL twice/],
  ])('refuses %o', (env, msg) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(msg);
  });
});
