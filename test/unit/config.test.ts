// config/index.ts: loadConfig parses an environment-like object once, with defaults,
// and refuses bad values with a ConfigError that names the offending key.
import { describe, expect, it } from 'vitest';
import { CONFIG_KEYS, ConfigError, loadConfig, MAX_TOKEN_TTL_S } from '../../config/index.ts';
import { MAX_TOKEN_TTL_S as TOKEN_SERVICE_MAX_TTL_S } from '../../identity/tokens.ts';

describe('loadConfig defaults', () => {
  it('fills every setting from an empty environment with the documented defaults', () => {
    const c = loadConfig({});
    // toMatchObject: settings added later do not break this; the listed ones must hold.
    expect(c).toMatchObject({
      databaseUrl: undefined,
      dataDir: './data',
      dbPoolMax: 10,
      mqtt: { host: '0.0.0.0', port: 1883, maxPacketBytes: 256 * 1024 + 1024, maxConnections: 100_000, auth: { authFailuresMax: 100, authFailuresPerVinMax: 5, authConcurrency: 2 } },
      admission: { maxConnectBytes: 4096, maxConnectionsPerAddress: 5000, preauthMaxBytes: 16 * 1024 * 1024 },
      crl: undefined,
      dbApiPoolMax: 5,
      api: { exportsPerCaller: 2, readyzCacheMs: 1000, requestTimeoutMs: 30_000, headersTimeoutMs: 10_000 },
      metricsListener: undefined,
      http: { host: '0.0.0.0', port: 8080 },
      adminToken: undefined,
      ingest: { maxPayloadBytes: 256 * 1024, maxClockSkewMs: 5 * 60_000, maxRecordAgeMs: 30 * 24 * 3_600_000 },
      writer: { batchMaxRows: 20_000, maxPendingRows: 100_000, concurrency: 2, retryMaxMs: 2000 },
      shutdownGraceMs: 10_000,
      secretScryptCost: 4096,
      logLevel: 'info',
    });
    expect(c.databaseUrl).toBeUndefined();
    expect(c.adminToken).toBeUndefined();
  });

  it('treats an empty string as unset and ignores keys it does not know', () => {
    const c = loadConfig({ MQTT_PORT: '', HTTP_PORT: '', LOG_LEVEL: '', SOMETHING_ELSE: 'x', PATH: '/usr/bin' });
    expect(c.mqtt.port).toBe(1883);
    expect(c.http.port).toBe(8080);
    expect(c.logLevel).toBe('info');
  });

  it('parses given values, numbers coerced from strings', () => {
    const c = loadConfig({
      DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/db',
      MQTT_PORT: '0',
      HTTP_PORT: '65535',
      MQTT_HOST: '127.0.0.1',
      ADMIN_TOKEN: 'a'.repeat(16),
      MAX_PAYLOAD_BYTES: '4096',
      MAX_CLOCK_SKEW_MS: '0',
      SECRET_SCRYPT_COST: '1024',
      LOG_LEVEL: 'silent',
    });
    expect(c.databaseUrl).toBe('postgres://u:p@127.0.0.1:5432/db');
    expect(c.mqtt.port).toBe(0);
    expect(c.mqtt.host).toBe('127.0.0.1');
    expect(c.http.port).toBe(65535);
    expect(c.adminToken).toBe('a'.repeat(16));
    expect(c.ingest.maxPayloadBytes).toBe(4096);
    expect(c.ingest.maxClockSkewMs).toBe(0);
    expect(c.secretScryptCost).toBe(1024);
    expect(c.logLevel).toBe('silent');
  });

  it('knows the documented keys', () => {
    for (const k of ['DATABASE_URL', 'MQTT_PORT', 'HTTP_PORT', 'MAX_PAYLOAD_BYTES', 'MAX_PACKET_BYTES', 'SECRET_SCRYPT_COST', 'LOG_LEVEL', 'ADMIN_TOKEN']) {
      expect(CONFIG_KEYS).toContain(k);
    }
  });
});

describe('loadConfig refuses bad values', () => {
  const cases: [key: string, value: string][] = [
    ['MQTT_PORT', 'abc'],
    ['MQTT_PORT', '70000'],
    ['MQTT_PORT', '-1'],
    ['MQTT_PORT', '1.5'],
    ['HTTP_PORT', '65536'],
    ['DATABASE_URL', 'not a url'],
    ['SECRET_SCRYPT_COST', '1000'],
    ['SECRET_SCRYPT_COST', '3000'], // in range, not a power of two
    ['SECRET_SCRYPT_COST', String(1 << 21)],
    ['LOG_LEVEL', 'loud'],
    ['ADMIN_TOKEN', 'short'],
    ['DB_POOL_MAX', '0'],
    ['MAX_PAYLOAD_BYTES', '-5'],
    ['WRITER_CONCURRENCY', '65'],
  ];

  it.each(cases)('%s=%j → ConfigError naming %s', (key, value) => {
    let err: unknown;
    try {
      loadConfig({ [key]: value });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const e = err as ConfigError;
    expect(e.code).toBe('CFG_ERR_INVALID');
    expect(e.message).toContain(`${key}=`);
    // Only the bad key is named.
    for (const other of CONFIG_KEYS) if (other !== key) expect(e.message).not.toMatch(new RegExp(`\\b${other}=`));
  });

  it('names every bad key at once', () => {
    let err: unknown;
    try {
      loadConfig({ MQTT_PORT: 'abc', LOG_LEVEL: 'loud', DATABASE_URL: 'not a url' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    expect(msg).toContain('MQTT_PORT=');
    expect(msg).toContain('LOG_LEVEL=');
    expect(msg).toContain('DATABASE_URL=');
  });
});

describe('the returned config is frozen', () => {
  it('top level and nested objects cannot be changed', () => {
    const c = loadConfig({});
    expect(Object.isFrozen(c)).toBe(true);
    for (const nested of [c.mqtt, c.http, c.ingest, c.writer]) expect(Object.isFrozen(nested)).toBe(true);
    // ES modules are strict: writes to frozen objects throw.
    expect(() => {
      (c as { logLevel: string }).logLevel = 'debug';
    }).toThrow(TypeError);
    expect(() => {
      (c.mqtt as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(c.logLevel).toBe('info');
    expect(c.mqtt.port).toBe(1883);
  });

  it('each call returns an independent config', () => {
    const a = loadConfig({ MQTT_PORT: '1' });
    const b = loadConfig({ MQTT_PORT: '2' });
    expect(a.mqtt.port).toBe(1);
    expect(b.mqtt.port).toBe(2);
  });
});

describe('TOKEN_TTL_S', () => {
  it('is bounded by what the token service accepts (the two constants agree)', () => {
    expect(MAX_TOKEN_TTL_S).toBe(TOKEN_SERVICE_MAX_TTL_S);
    expect(loadConfig({ TOKEN_TTL_S: String(MAX_TOKEN_TTL_S) }).tokenTtlS).toBe(MAX_TOKEN_TTL_S);
    expect(() => loadConfig({ TOKEN_TTL_S: String(MAX_TOKEN_TTL_S + 1) })).toThrow(ConfigError);
  });
});
