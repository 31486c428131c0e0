// A connection record for tests that need rows: a plausible outbound HTTPS connection from a
// LAN device, with whatever fields the test overrides.

import type { ConnRecord } from "../../src/flow/types.js";

export function connRecord(n: number, started: number, o: Partial<ConnRecord> = {}): ConnRecord {
  return {
    id: `0-${n}-${started}`,
    profile: "local/lan",
    profile_name: "LAN",
    type: "ip",
    ip_version: 4,
    ip_protocol: 6,
    local_ip: "192.168.1.10",
    local_port: 40000 + n,
    remote_ip: "93.184.216.34",
    remote_port: 443,
    domain: "example.com.",
    scope: 4,
    verdict: 2,
    started,
    ended: null,
    active: true,
    direction: "outbound",
    encrypted: true,
    internal: false,
    tunneled: false,
    external: true,
    allowed: true,
    bytes_sent: 0,
    bytes_received: 0,
    packets_sent: 0,
    packets_received: 0,
    device_ip: "192.168.1.10",
    device_mac: null,
    rule_line: 0,
    matched_by: "default",
    end_reason: null,
    extra_data: {},
    ...o,
  };
}
