// Reads classic pcap files (either byte order, micro- or nanosecond stamps) and strips the link
// layer, so packets start at the IP header as NFQUEUE delivers them. Small enough to keep here
// rather than take a dependency: used by `sluice decode` and the tests.

import { readFileSync } from "node:fs";

export interface PcapPacket {
  /** 1-based frame number, as tshark counts. */
  frame: number;
  /** Bytes from the IP header on (what was captured of them). */
  data: Uint8Array;
  /** Original length on the wire, including the link header. */
  wireLength: number;
}

const MAGIC_US = 0xa1b2c3d4;
const MAGIC_NS = 0xa1b23c4d;
const GLOBAL_HDR = 24;
const RECORD_HDR = 16;
const LINK_EN10MB = 1;
const LINK_RAW = 101;
const LINK_LINUX_SLL = 113;
const LINK_LINUX_SLL2 = 276;
const ETH_HDR = 14;
const ETHERTYPE_VLAN = 0x8100;
const ETHERTYPE_QINQ = 0x88a8;
const VLAN_TAG = 4;

function linkHeaderLength(link: number, frame: Uint8Array): number {
  if (link === LINK_RAW) return 0;
  if (link === LINK_LINUX_SLL) return 16;
  if (link === LINK_LINUX_SLL2) return 20;
  if (link !== LINK_EN10MB) throw new Error(`unsupported pcap link type ${link}`);
  let off = ETH_HDR;
  let type = (frame[12]! << 8) | frame[13]!;
  while ((type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ) && frame.length >= off + VLAN_TAG) {
    type = (frame[off + 2]! << 8) | frame[off + 3]!;
    off += VLAN_TAG;
  }
  return off;
}

export function readPcap(path: string): PcapPacket[] {
  const buf = readFileSync(path);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = dv.getUint32(0, true);
  let le: boolean;
  if (magic === MAGIC_US || magic === MAGIC_NS) le = true;
  else if (dv.getUint32(0, false) === MAGIC_US || dv.getUint32(0, false) === MAGIC_NS) le = false;
  else throw new Error(`${path}: not a classic pcap file`);
  const link = dv.getUint32(20, le) & 0xffff;
  const out: PcapPacket[] = [];
  let off = GLOBAL_HDR;
  while (off + RECORD_HDR <= buf.length) {
    const caplen = dv.getUint32(off + 8, le);
    const wireLength = dv.getUint32(off + 12, le);
    const frame = new Uint8Array(buf.buffer, buf.byteOffset + off + RECORD_HDR, Math.min(caplen, buf.length - off - RECORD_HDR));
    const skip = linkHeaderLength(link, frame);
    out.push({ frame: out.length + 1, data: frame.slice(Math.min(skip, frame.length)), wireLength });
    off += RECORD_HDR + caplen;
  }
  return out;
}
