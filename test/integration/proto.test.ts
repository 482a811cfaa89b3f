// The .proto contract: the committed generated code is what scripts/gen-proto.sh makes
// from it today, and protoc (the reference compiler vehicles use) accepts it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import Long from 'long';
import { TelemetryBatch } from '../../proto/index.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

describe('generated code (proto/gen) is up to date', () => {
  let dir: string;
  let run: ReturnType<typeof spawnSync>;

  beforeAll(() => {
    // A copy of exactly what the script reads, so the real script (its flags, its sed)
    // runs without touching the repo's own proto/gen.
    dir = mkdtempSync(join(tmpdir(), 'gen-proto-'));
    mkdirSync(join(dir, 'scripts'));
    mkdirSync(join(dir, 'proto'));
    cpSync(join(REPO, 'scripts/gen-proto.sh'), join(dir, 'scripts/gen-proto.sh'));
    cpSync(join(REPO, 'scripts/gen-fields.ts'), join(dir, 'scripts/gen-fields.ts'));
    cpSync(join(REPO, 'proto/vehicle'), join(dir, 'proto/vehicle'), { recursive: true });
    cpSync(join(REPO, 'package.json'), join(dir, 'package.json'));
    symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'), 'dir');
    run = spawnSync('bash', [join(dir, 'scripts/gen-proto.sh')], { cwd: dir, encoding: 'utf8', timeout: 180_000 });
  }, 200_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('scripts/gen-proto.sh runs cleanly', () => {
    expect(run.error).toBeUndefined();
    expect(run.status, String(run.stderr)).toBe(0);
  });

  it.each(['telemetry.js', 'telemetry.d.ts', 'fields.ts'])('proto/gen/%s matches a fresh generation byte for byte (run `npm run proto:gen`)', (file) => {
    const fresh = readFileSync(join(dir, 'proto/gen', file));
    const committed = readFileSync(join(REPO, 'proto/gen', file));
    expect(fresh.length).toBeGreaterThan(1000);
    expect(committed.equals(fresh), `proto/gen/${file} is stale: run npm run proto:gen`).toBe(true);
  });

  it('the generated codec and the .proto agree on the wire format', () => {
    const root = protobuf.loadSync(join(REPO, 'proto/vehicle/v1/telemetry.proto'));
    const Reflected = root.lookupType('vehicle.v1.TelemetryBatch');
    const bytes = TelemetryBatch.encode({
      vin: 'WTEST000000000001',
      records: [{ seq: Long.fromNumber(5, true), recordedAtMs: Long.fromNumber(1_700_000_000_000), technical: { speedKmh: 12.5, engineOilTempC: 99 }, location: { accuracyM: 3 }, consumption: { totalGridEnergyIntoBatteryKwh: 7 } }],
    }).finish();
    const back = Reflected.toObject(Reflected.decode(bytes), { longs: Number });
    expect(back).toEqual({
      vin: 'WTEST000000000001',
      records: [{ seq: 5, recordedAtMs: 1_700_000_000_000, technical: { speedKmh: 12.5, engineOilTempC: 99 }, location: { accuracyM: 3 }, consumption: { totalGridEnergyIntoBatteryKwh: 7 } }],
    });
  });
});

describe('protoc', () => {
  it('compiles proto/vehicle/v1/telemetry.proto cleanly', () => {
    const probe = spawnSync('protoc', ['--version'], { encoding: 'utf8' });
    if (probe.error) {
      throw new Error(`protoc is not installed (${probe.error.message}): install protobuf-compiler (apt-get install -y protobuf-compiler)`);
    }
    const r = spawnSync('protoc', ['--proto_path=proto', '--descriptor_set_out=/dev/null', 'vehicle/v1/telemetry.proto'], { cwd: REPO, encoding: 'utf8', timeout: 30_000 });
    expect(r.error).toBeUndefined();
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
