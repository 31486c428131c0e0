// A connection as sluice records it: one row per connection, Portmaster's netquery column names
// (service/netquery/database.go) so its clients read it unchanged, plus sluice's own columns.
// Times are milliseconds since the epoch here; netquery renders them as RFC 3339.

export interface ConnRecord {
  /** `<worker>-<seq>-<started ms>`: unique per connection, ordered by start within a worker. */
  id: string;
  /** `local/<profile id>` */
  profile: string;
  profile_name: string;
  /** "ip" for connections ("dns" is for the resolver's query log). */
  type: "ip" | "dns";
  ip_version: 4 | 6;
  /** 1 ICMP, 6 TCP, 17 UDP, 58 ICMPv6, ... */
  ip_protocol: number;
  /** The LAN side (the device); for a connection from the WAN side, the local server. */
  local_ip: string;
  local_port: number;
  remote_ip: string;
  remote_port: number;
  /** FQDN with a trailing dot, or "" when unknown. */
  domain: string;
  /** IPScope: 1 HostLocal, 2 LinkLocal, 3 SiteLocal, 4 Global, 5 LocalMulticast, 6 GlobalMulticast. */
  scope: number;
  /** 2 Accept, 3 Block, 4 Drop (Portmaster's numbers). */
  verdict: number;
  started: number;
  /** null while active. */
  ended: number | null;
  active: boolean;
  direction: "inbound" | "outbound";
  /** Remote port 22, 443, 465, 853, 993 or 995 (Portmaster's heuristic). */
  encrypted: boolean;
  /** Portmaster's `internal`/`tunneled`/`external`: false on a gateway, kept for compatibility. */
  internal: boolean;
  tunneled: boolean;
  /** true when the remote side is outside the LAN (scope Global). */
  external: boolean;
  /** Accepted (true), refused (false), or still provisional (null). */
  allowed: boolean | null;
  bytes_sent: number;
  bytes_received: number;
  packets_sent: number;
  packets_received: number;
  /** The device: its address and, when the gateway saw it, its MAC. */
  device_ip: string;
  device_mac: string | null;
  /** Why: the deciding rule's text location and how it matched. */
  rule_line: number;
  /** "default" | "ip" | "domain" | "ipdom" (name learned from DNS) */
  matched_by: string;
  /** How the end was learned: "closed" | "timeout" | "evicted" | "conntrack" | "shutdown", or null. */
  end_reason: string | null;
  extra_data: { reason?: { rule_line: number; matched_by: string; profile: string } };
}

/** The netquery columns and their value kinds (for query validation and rendering). */
export const CONN_COLUMNS: Record<string, "text" | "int" | "bool" | "time" | "json"> = {
  id: "text",
  profile: "text",
  profile_name: "text",
  type: "text",
  ip_version: "int",
  ip_protocol: "int",
  local_ip: "text",
  local_port: "int",
  remote_ip: "text",
  remote_port: "int",
  domain: "text",
  scope: "int",
  verdict: "int",
  started: "time",
  ended: "time",
  active: "bool",
  direction: "text",
  encrypted: "bool",
  internal: "bool",
  tunneled: "bool",
  external: "bool",
  allowed: "bool",
  bytes_sent: "int",
  bytes_received: "int",
  packets_sent: "int",
  packets_received: "int",
  device_ip: "text",
  device_mac: "text",
  rule_line: "int",
  matched_by: "text",
  end_reason: "text",
  extra_data: "json",
};
