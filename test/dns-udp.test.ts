// The batched UDP addon (native/dnsio.c) on loopback: datagrams arrive in one recvmmsg with
// their senders described in meta rows, replies leave in one sendmmsg, and bad arguments are
// refused with errors rather than touching memory they do not own.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { once } from "node:events";
import { dnsio, addressText, META_ADDR, META_FAMILY, META_FLAGS, META_INTS, META_LEN, META_PORT, MF_TRUNCATED } from "../src/dns/udp.js";

const SLOT = 512;
const BATCH = 8;

describe("the DNS UDP addon", () => {
  it("receives a burst in one call with each sender's address and port, and answers them in one call", async () => {
    const io = dnsio();
    const h = io.open("127.0.0.1", 0, 1 << 20);
    const port = io.port(h);
    const client = dgram.createSocket("udp4");
    await new Promise<void>((r) => client.bind(0, "127.0.0.1", r));
    try {
      for (let i = 0; i < 5; i++) client.send(Buffer.from(`hello ${i}`), port, "127.0.0.1");
      const buf = new Uint8Array(SLOT * BATCH);
      const meta = new Int32Array(META_INTS * BATCH);
      let n = 0;
      for (let tries = 0; tries < 50 && n < 5; tries++) {
        const got = io.recv(h, buf.subarray(n * SLOT), SLOT, BATCH - n, meta.subarray(n * META_INTS));
        assert.ok(got >= 0);
        n += got;
        if (n < 5) await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal(n, 5);
      for (let i = 0; i < 5; i++) {
        const r = i * META_INTS;
        assert.equal(Buffer.from(buf.subarray(i * SLOT, i * SLOT + meta[r + META_LEN]!)).toString(), `hello ${i}`);
        assert.equal(meta[r + META_FAMILY], 4);
        assert.equal(meta[r + META_PORT], client.address().port);
        assert.equal(addressText(meta, i), "127.0.0.1");
        buf.set(Buffer.from(`reply ${i}`), i * SLOT);
        meta[r + META_LEN] = 7;
      }
      meta[2 * META_INTS + META_LEN] = 0; // a row the resolver chose not to answer is skipped
      const replies: string[] = [];
      client.on("message", (m) => replies.push(m.toString()));
      assert.equal(io.send(h, buf, SLOT, 5, meta), 4);
      while (replies.length < 4) await once(client, "message");
      assert.deepEqual(replies.sort(), ["reply 0", "reply 1", "reply 3", "reply 4"]);
      assert.equal(io.recv(h, buf, SLOT, BATCH, meta), 0, "nothing waiting: 0, not a block");
    } finally {
      client.close();
      io.close(h);
    }
  });

  it("sends the rest of a batch when one destination cannot be sent to", async () => {
    const io = dnsio();
    const h = io.open("127.0.0.1", 0, 0);
    const client = dgram.createSocket("udp4");
    await new Promise<void>((r) => client.bind(0, "127.0.0.1", r));
    try {
      const buf = new Uint8Array(SLOT * 3);
      const meta = new Int32Array(META_INTS * 3);
      for (let i = 0; i < 3; i++) {
        buf.set(Buffer.from(`r${i}`), i * SLOT);
        const r = i * META_INTS;
        meta[r + META_LEN] = 2;
        meta[r + META_FAMILY] = 4;
        meta[r + META_PORT] = i === 0 ? 0 : client.address().port; // port 0: the kernel refuses it
        meta[r + META_ADDR] = 0x7f000001;
      }
      const got: string[] = [];
      client.on("message", (m) => got.push(m.toString()));
      assert.equal(io.send(h, buf, SLOT, 3, meta), 2);
      while (got.length < 2) await once(client, "message");
      assert.deepEqual(got.sort(), ["r1", "r2"]);
    } finally {
      client.close();
      io.close(h);
    }
  });

  it("marks a datagram larger than its slot as truncated", async () => {
    const io = dnsio();
    const h = io.open("127.0.0.1", 0, 0);
    const client = dgram.createSocket("udp4");
    try {
      client.send(Buffer.alloc(100, 1), io.port(h), "127.0.0.1");
      const buf = new Uint8Array(64);
      const meta = new Int32Array(META_INTS);
      let n = 0;
      for (let tries = 0; tries < 50 && n === 0; tries++) {
        n = io.recv(h, buf, 64, 1, meta);
        if (n === 0) await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal(n, 1);
      assert.equal(meta[META_FLAGS]! & MF_TRUNCATED, MF_TRUNCATED);
    } finally {
      client.close();
      io.close(h);
    }
  });

  it("wakes a watcher on the event loop when datagrams arrive", async () => {
    const io = dnsio();
    const h = io.open("::1", 0, 0);
    const client = dgram.createSocket("udp6");
    try {
      const woke = new Promise<void>((resolve) => io.watch(h, () => resolve()));
      client.send(Buffer.from("ping"), io.port(h), "::1");
      await woke;
      const buf = new Uint8Array(SLOT);
      const meta = new Int32Array(META_INTS);
      assert.equal(io.recv(h, buf, SLOT, 1, meta), 1);
      assert.equal(meta[META_FAMILY], 6);
      assert.equal(addressText(meta, 0), "::1");
    } finally {
      client.close();
      io.close(h);
    }
  });

  it("refuses buffers too small for the batch, wrong types, unknown handles and addresses", () => {
    const io = dnsio();
    const h = io.open("127.0.0.1", 0, 0);
    try {
      assert.throws(() => io.recv(h, new Uint8Array(100), SLOT, 2, new Int32Array(META_INTS * 2)), RangeError);
      assert.throws(() => io.send(h, new Uint8Array(SLOT * 2), SLOT, 2, new Int32Array(META_INTS)), RangeError);
      assert.throws(() => io.recv(h, new Int32Array(SLOT) as unknown as Uint8Array, SLOT, 1, new Int32Array(META_INTS)), TypeError);
      assert.throws(() => io.recv(63, new Uint8Array(SLOT), SLOT, 1, new Int32Array(META_INTS)), RangeError);
      assert.throws(() => io.open("not an address", 53, 0), TypeError);
      assert.throws(() => io.open("127.0.0.1", io.port(h), 0), /bind 127\.0\.0\.1 port \d+: Address already in use/);
    } finally {
      io.close(h);
    }
  });
});
