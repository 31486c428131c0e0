// The NFQUEUE addon's boundary and the firewall rules, without traffic (see gateway-live for that).

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as L from "../assembly/shared/layout.js";
import * as E from "../assembly/shared/events.js";
import { nfq } from "../src/capture/native.js";
import { chainRules } from "../src/gateway/firewall.js";
import { validate } from "../src/gateway/config.js";

describe("NFQUEUE addon boundary", () => {
  it("was compiled with the same descriptor, result and verdict layout as layout.ts", () => {
    assert.deepEqual(nfq().layout(), [
      L.DESC_OFF, L.DESC_LEN, L.DESC_FLAGS, L.DESC_MAC, L.DESC_SIZE, L.DF_INBOUND, L.DF_HAS_MAC, L.RES_VERDICT,
      L.RES_FLAGS, L.RES_SIZE, E.VERDICT_ACCEPT, E.VERDICT_BLOCK, E.VERDICT_DROP, E.PF_PROVISIONAL,
    ]);
  });

  it("rejects calls on a handle that is not open, with a stable code", () => {
    assert.throws(() => nfq().recv(999, 0, 2048, 1, 0, 0, 0), { code: "NFQ_HANDLE" });
    assert.throws(() => nfq().verdict(5000, 0, 0, 1), { code: "NFQ_HANDLE" });
    assert.equal(nfq().close(999, E.VERDICT_ACCEPT), 0, "closing what is not open is harmless");
  });

  it("rejects a memory that is not a byte view and offsets outside it, before touching a socket", () => {
    const mem = new Uint8Array(new SharedArrayBuffer(4096));
    const open = (memory: unknown, stats: number) =>
      nfq().open(0, 1600, 1024, 1 << 20, 0, memory as Uint8Array, stats, 0, 0x0f000000, 1 << 24, 2 << 24, 3 << 24, 4 << 24);
    assert.throws(() => open(new Uint16Array(16), 0), { code: "NFQ_ARGS" });
    assert.throws(() => open(mem, 4096), { code: "NFQ_ARGS" });
  });
});

describe("firewall chains", () => {
  const marks = { mask: 0x0f000000, accept: 0x01000000, block: 0x02000000, drop: 0x03000000, once: 0x04000000 };
  const text = (family: 4 | 6, failClosed = false, queues = 2) =>
    chainRules({ firstQueue: 10, queues, marks, failClosed, ipv6: true, mode: "gateway", exemptPorts: [] }, family)
      .map((c) => `${c.table}/${c.chain}: ${c.rules.map((r) => r.join(" ")).join(" ; ")}`)
      .join("\n");

  it("queues only undecided packets, balanced over the queues, bypassing when nobody listens", () => {
    const t = text(4);
    assert.match(t, /CONNMARK --restore-mark --nfmask 0xf000000 --ctmask 0xf000000/);
    assert.match(t, /-m mark ! --mark 0\/0xf000000 -j RETURN/);
    assert.match(t, /NFQUEUE --queue-balance 10:11 --queue-bypass/);
    assert.match(text(4, false, 1), /NFQUEUE --queue-num 10 --queue-bypass/);
  });

  it("touches only the bits of its mask, so other software's marks survive", () => {
    for (const family of [4, 6] as const) {
      for (const { rules } of chainRules({ firstQueue: 0, queues: 1, marks, failClosed: false, ipv6: true, mode: "both", exemptPorts: [22] }, family)) {
        for (const r of rules) {
          const i = r.indexOf("--mark");
          if (i >= 0) assert.match(r[i + 1]!, /\/0xf000000$/, r.join(" "));
        }
      }
    }
  });

  it("resets blocked TCP and rejects the rest as admin-prohibited per family, letting its own resets and errors out", () => {
    assert.match(text(4), /--mark 0x2000000\/0xf000000 -p tcp --tcp-flags RST RST -j RETURN ; -m mark --mark 0x2000000\/0xf000000 -p icmp -j RETURN/);
    assert.match(text(4), /--mark 0x2000000\/0xf000000 -p tcp -j REJECT --reject-with tcp-reset/);
    assert.match(text(4), /REJECT --reject-with icmp-admin-prohibited/);
    assert.match(text(6), /-p ipv6-icmp -j RETURN/);
    assert.match(text(6), /REJECT --reject-with icmp6-adm-prohibited/);
  });

  it("lets undecided packets through when failing open and drops them when failing closed", () => {
    assert.match(text(4, false), /--mark 0x0\/0xf000000 -j RETURN/);
    assert.match(text(4, true), /--mark 0x0\/0xf000000 -j DROP/);
  });

  it("exempts loopback, SSH and the API port before anything but the self-check probe in host mode, and adds only the probe chains in gateway mode", () => {
    const opts = { firstQueue: 0, queues: 1, marks, failClosed: true, ipv6: true, exemptPorts: [22, 817] };
    const host = chainRules({ ...opts, mode: "host" }, 4);
    const inQ = host.find((c) => c.chain === "SLUICE-IN")!.rules.map((r) => r.join(" "));
    assert.deepEqual(inQ, ["-i lo -j RETURN", "-p tcp --dport 22 -j RETURN", "-p tcp --dport 817 -j RETURN", "-j SLUICE-QUEUE"]);
    const outF = host.find((c) => c.chain === "SLUICE-OUT-FILTER")!.rules.map((r) => r.join(" "));
    const probe = "-d 127.127.0.1/32 -p udp --dport 17017";
    assert.deepEqual(outF, [`${probe} -j SLUICE-FILTER`, "-o lo -j RETURN", "-p tcp --sport 22 -j RETURN", "-p tcp --sport 817 -j RETURN", "-j SLUICE-FILTER"]);
    const gw = chainRules({ ...opts, mode: "gateway" }, 4).map((c) => c.chain);
    assert.deepEqual(gw, ["SLUICE-QUEUE", "SLUICE-FILTER", "SLUICE-PROBE", "SLUICE-PROBE-FILTER"]);
    const probes = chainRules({ ...opts, mode: "gateway" }, 4).filter((c) => c.chain.startsWith("SLUICE-PROBE")).map((c) => c.rules.map((r) => r.join(" ")));
    assert.deepEqual(probes, [[`${probe} -j SLUICE-QUEUE`], [`${probe} -j SLUICE-FILTER`]], "the probe chains send only the probe packet through the queue");
    assert.ok(chainRules({ ...opts, mode: "gateway" }, 6).filter((c) => c.chain.startsWith("SLUICE-PROBE")).every((c) => c.rules.length === 0), "no IPv6 probe");
  });

  it("saves only decided marks to the connmark, never a pass-once mark", () => {
    const filter = chainRules({ firstQueue: 0, queues: 1, marks, failClosed: false, ipv6: true, mode: "gateway", exemptPorts: [] }, 4).find((c) => c.table === "filter")!;
    const onceAt = filter.rules.findIndex((r) => r.join(" ").includes(`--mark 0x4000000/0xf000000 -j RETURN`));
    const saveAt = filter.rules.findIndex((r) => r.includes("--save-mark"));
    assert.ok(onceAt >= 0 && saveAt > onceAt, "pass-once returns before the save");
  });
});

describe("gateway config", () => {
  it("fills every default and accepts hex marks", () => {
    const c = validate({ marks: { mask: "0x00f00000", accept: "0x00100000", block: "0x00200000", drop: "0x00300000", once: "0x00400000" } });
    assert.equal(c.marks.mask, 0x00f00000);
    assert.ok(c.queues.count >= 1);
    assert.equal(c.failClosed, false);
  });

  it("names the setting that is wrong", () => {
    assert.throws(() => validate({ queues: { count: 0 } }), /queues\.count: must be an integer 1\.\.64/);
    assert.throws(() => validate({ queus: {} }), /queus: unknown setting/);
    assert.throws(() => validate({ marks: { accept: 0x10000000 } }), /marks\.accept: must lie inside marks\.mask/);
    assert.throws(() => validate({ marks: { block: 0x01000000 } }), /must differ/);
    assert.throws(() => validate({ wanInterfaces: ["eth0; rm -rf /"] }), /wanInterfaces/);
    assert.throws(() => validate([]), /must be an object/);
  });
});
