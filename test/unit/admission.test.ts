import { describe, expect, it } from 'vitest';
import { addressGroup } from '../../identity/address.ts';
import { loadConfig, MQTT_HEADER_ROOM_BYTES } from '../../config/index.ts';

describe('addressGroup: the key connections and failed logins are counted under', () => {
  it.each([
    ['203.0.113.7', '203.0.113.7'],
    ['::ffff:203.0.113.7', '203.0.113.7'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:1:2:ffff:ffff:ffff:ffff', '2001:db8:1:2::/64'],
    ['2001:0db8:0001:0002::1', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['2001:db8:0:0:1::', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['2001:db8:1:2::1.2.3.4', '2001:db8:1:2::/64'],
  ])('%s → %s', (addr, group) => {
    expect(addressGroup(addr)).toBe(group);
  });
  it('two hosts of one /64 share a key, neighbouring /64s do not', () => {
    expect(addressGroup('2001:db8:a:b::1')).toBe(addressGroup('2001:db8:a:b:dead:beef::'));
    expect(addressGroup('2001:db8:a:b::1')).not.toBe(addressGroup('2001:db8:a:c::1'));
  });
});

describe('MAX_PACKET_BYTES', () => {
  it('defaults to MAX_PAYLOAD_BYTES plus the MQTT header room, not a fixed 1 MiB', () => {
    expect(loadConfig({}).mqtt.maxPacketBytes).toBe(262_144 + MQTT_HEADER_ROOM_BYTES);
    expect(loadConfig({ MAX_PAYLOAD_BYTES: '4096' }).mqtt.maxPacketBytes).toBe(4096 + MQTT_HEADER_ROOM_BYTES);
    expect(loadConfig({ MAX_PAYLOAD_BYTES: '4096', MAX_PACKET_BYTES: '100000' }).mqtt.maxPacketBytes).toBe(100_000);
  });
});
