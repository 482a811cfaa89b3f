// Where a webhook may point (webhooks/safety.ts), and the delivery's pure parts
// (webhooks/worker.ts): the retry schedule and the webhook-id of a delivery.
import { describe, expect, it } from 'vitest';
import { createUrlChecker, type Resolve } from '../../webhooks/safety.ts';
import { deliveryId, retryDelay } from '../../webhooks/worker.ts';

/** A resolver of fixed names: what a rebinding or a private name would answer. */
const names: Record<string, string[]> = {
  'hooks.example.com': ['93.184.216.34'],
  'v6.example.com': ['2606:2800:220:1:248:1893:25c8:1946'],
  'internal.example.com': ['10.0.0.7'],
  'mixed.example.com': ['93.184.216.34', '127.0.0.1'],
  'metadata.example.com': ['169.254.169.254'],
  'mapped.example.com': ['::ffff:192.168.1.1'],
};
const resolve: Resolve = async (host) => {
  const a = names[host];
  if (!a) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
  return a.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
};

describe('webhook URL policy', () => {
  const strict = createUrlChecker({ allowHttp: false, allowPrivate: [] }, resolve);
  it.each([
    ['https://hooks.example.com/in', '93.184.216.34'],
    ['https://hooks.example.com:8443/in?x=1', '93.184.216.34'],
    ['https://v6.example.com/in', '2606:2800:220:1:248:1893:25c8:1946'],
    ['https://93.184.216.34/in', '93.184.216.34'],
  ])('accepts %s, to be connected to at %s', async (url, address) => {
    const c = await strict.check(url);
    expect(c.ok && c.target.address).toBe(address);
  });
  it.each([
    ['http://hooks.example.com/in', /https:\/\//],
    ['ftp://hooks.example.com/in', /https:\/\//],
    ['https://u:p@hooks.example.com/in', /credentials/],
    ['https://hooks.example.com/in#x', /fragment/],
    ['https://internal.example.com/in', /10\.0\.0\.7/],
    ['https://mixed.example.com/in', /127\.0\.0\.1/],
    ['https://metadata.example.com/', /169\.254\.169\.254/],
    ['https://mapped.example.com/', /192\.168\.1\.1/],
    ['https://nowhere.example.com/', /ENOTFOUND/],
    ['https://127.0.0.1/', /range/],
    ['https://10.255.0.1/', /range/],
    ['https://100.100.100.200/', /range/],
    ['https://172.31.255.255/', /range/],
    ['https://192.168.0.1/', /range/],
    ['https://198.18.0.1/', /range/],
    ['https://224.0.0.1/', /range/],
    ['https://255.255.255.255/', /range/],
    ['https://0.0.0.0/', /range/],
    ['https://[::1]/', /range/],
    ['https://[::]/', /range/],
    ['https://[fe80::1]/', /range/],
    ['https://[fd00:ec2::254]/', /range/],
    ['https://[::ffff:7f00:1]/', /range/],
    ['https://[64:ff9b::a00:1]/', /range/],
    ['not a url', /absolute URL/],
  ])('refuses %s', async (url, why) => {
    const c = await strict.check(url);
    expect(c.ok).toBe(false);
    if (!c.ok) expect(c.problem).toMatch(why);
  });
  it('allows http and the ranges WEBHOOK_ALLOW_PRIVATE names, no others', async () => {
    const dev = createUrlChecker({ allowHttp: true, allowPrivate: ['127.0.0.0/8', '10.0.0.7'] }, resolve);
    expect((await dev.check('http://127.0.0.2:9/x')).ok).toBe(true);
    expect((await dev.check('http://internal.example.com/x')).ok).toBe(true);
    expect((await dev.check('http://10.0.0.8/x')).ok).toBe(false);
    expect((await dev.check('http://169.254.169.254/x')).ok).toBe(false);
    const all = createUrlChecker({ allowHttp: false, allowPrivate: ['all'] }, resolve);
    expect((await all.check('https://169.254.169.254/x')).ok).toBe(true);
    expect(() => createUrlChecker({ allowHttp: false, allowPrivate: ['nope'] }, resolve)).toThrow(/WEBHOOK_ALLOW_PRIVATE/);
  });
});

describe('retries and ids', () => {
  it('retries three times within a minute, then further apart, capped', () => {
    const d = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 30].map((n) => retryDelay(n, 5000, 3_600_000));
    expect(d.slice(0, 3).reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(60_000);
    expect(d).toEqual([5000, 10_000, 30_000, 60_000, 150_000, 300_000, 600_000, 1_200_000, 2_400_000, 3_600_000, 3_600_000, 3_600_000]);
  });
  it('gives a delivery the same id on every attempt, another delivery another id', () => {
    const a = deliveryId('w1', 'g1', 'records', { tx: 10, ord: 0 }, { tx: 12, ord: 5 });
    expect(deliveryId('w1', 'g1', 'records', { tx: 10, ord: 0 }, { tx: 12, ord: 5 })).toBe(a);
    expect(a).toMatch(/^msg_[A-Za-z0-9_-]{27}$/);
    expect(new Set([a, deliveryId('w1', 'g1', 'records', { tx: 10, ord: 0 }, { tx: 12, ord: 6 }), deliveryId('w2', 'g1', 'records', { tx: 10, ord: 0 }, { tx: 12, ord: 5 }), deliveryId('w1', 'g1', 'grant.created', null, null)]).size).toBe(4);
  });
});
