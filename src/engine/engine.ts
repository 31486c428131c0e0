// One packet core with its memory laid out: two rule-image slots (double-buffered, so a new
// image is written beside the one in use and then published with one store), the IP -> domain
// table, and a scratch area for single packets. Tests, the CLI and the benchmarks use this;
// the live path gives each worker its own batch area in the same memory.

import * as L from "../../assembly/shared/layout.js";
import { Arena } from "./arena.js";
import { createMemory, instantiateCore, rebindTwin, type Core, type CoreKind } from "./core.js";
import { readMatch, readRecord, type MatchInfo, type PacketInfo } from "./record.js";
import type { CompiledImage } from "../rules/image.js";
import { parseAddress } from "../rules/parse.js";
import { SluiceError } from "../core/errors.js";
import { addrToBytes } from "../core/ip.js";

const INITIAL_PAGES = 64;
const DEFAULT_IPDOM_SETS = 8192;
const SCRATCH_PACKET = 65536;
/** Control words: which image slot is live, and its generation (for workers to notice swaps). */
export const CTL_IMAGE = 0;
export const CTL_GENERATION = 4;
const CTL_SIZE = 64;
const IMAGE_SLACK = 1.25;

export interface EngineOptions {
  core?: CoreKind;
  /** Sets (of 4 entries) in the IP -> domain table; a power of two. */
  ipdomSets?: number;
  memory?: WebAssembly.Memory;
}

export interface Verdict extends MatchInfo {
  packet: PacketInfo;
}

export class Engine {
  readonly core: Core;
  readonly arena: Arena;
  readonly ctl: number;
  readonly ipdom: number;
  readonly ipdomSets: number;
  private readonly scratchPkt: number;
  private readonly scratchRec: number;
  private readonly scratchName: number;
  private readonly scratchDesc: number;
  private readonly slots: { off: number; cap: number }[] = [];
  private active = -1;
  private generation = 0;

  constructor(options: EngineOptions = {}) {
    const memory = options.memory ?? createMemory(INITIAL_PAGES);
    this.arena = new Arena(memory);
    this.ipdomSets = options.ipdomSets ?? DEFAULT_IPDOM_SETS;
    if ((this.ipdomSets & (this.ipdomSets - 1)) !== 0) throw new SluiceError("CONFIG_INVALID", "ipdomSets must be a power of two");
    this.ctl = this.arena.alloc(CTL_SIZE);
    this.ipdom = this.arena.alloc(L.IPD_HDR_SIZE + this.ipdomSets * (L.IPD_SET_TAGS + L.IPD_WAYS * L.IPD_ENTRY_SIZE));
    this.scratchPkt = this.arena.alloc(SCRATCH_PACKET);
    this.scratchRec = this.arena.alloc(L.REC_SIZE);
    this.scratchName = this.arena.alloc(L.NAME_MAX);
    this.scratchDesc = this.arena.alloc(L.DESC_SIZE);
    this.core = instantiateCore(options.core ?? "wasm", memory);
    if (this.core.kind === "twin") this.arena.onGrow(() => rebindTwin(memory));
    this.core.ipdomInit(this.ipdom, this.ipdomSets);
  }

  get memory(): WebAssembly.Memory {
    return this.arena.memory;
  }

  /** Offset of the live rule image (0 before the first load). */
  get imageOffset(): number {
    return this.active < 0 ? 0 : this.slots[this.active]!.off;
  }


  /** Copies a compiled image into the idle slot and makes it live with one atomic store. */
  loadImage(image: CompiledImage): void {
    const next = this.active === 0 ? 1 : 0;
    let slot = this.slots[next];
    if (!slot || slot.cap < image.bytes.length) {
      const cap = Math.ceil(image.bytes.length * IMAGE_SLACK);
      slot = { off: this.arena.alloc(cap), cap };
      this.slots[next] = slot;
    }
    this.arena.u8().set(image.bytes, slot.off);
    this.generation++;
    const ctl = new Int32Array(this.memory.buffer, this.ctl, CTL_SIZE / 4);
    Atomics.store(ctl, CTL_IMAGE / 4, slot.off);
    Atomics.store(ctl, CTL_GENERATION / 4, this.generation);
    this.active = next;
  }

  /** Decodes one packet (IP header first) and returns what the core read from it. */
  decode(packet: Uint8Array): PacketInfo {
    this.place(packet);
    this.core.decode(this.scratchPkt, packet.length, this.scratchRec);
    return readRecord(this.arena.u8(), this.scratchRec);
  }

  /** Decodes and decides one packet against the live image. */
  evaluate(packet: Uint8Array, options: { inbound?: boolean; mac?: Uint8Array; now?: number; learnDns?: boolean } = {}): Verdict {
    if (this.active < 0) throw new SluiceError("RULES_NOT_LOADED", "no rule image loaded");
    this.place(packet);
    const u8 = this.arena.u8();
    const desc = this.scratchDesc;
    const dv = new DataView(this.memory.buffer);
    dv.setUint32(desc + L.DESC_OFF, this.scratchPkt, true);
    dv.setUint16(desc + L.DESC_LEN, packet.length, true);
    dv.setUint16(desc + L.DESC_FLAGS, (options.inbound ? L.DF_INBOUND : 0) | (options.mac ? L.DF_HAS_MAC : 0), true);
    if (options.mac) u8.set(options.mac.subarray(0, 6), desc + L.DESC_MAC);
    const now = options.now ?? nowSeconds();
    this.core.processBatch(desc, 1, this.scratchRec, 0, this.imageOffset, this.ipdom, now, options.learnDns ? L.BF_LEARN_DNS : 0, 0);
    return { ...readMatch(u8, this.scratchRec), packet: readRecord(u8, this.scratchRec) };
  }

  /** Tells the matcher that `ip` belongs to `name` for `ttl` seconds (as a DNS answer would). */
  learnDomain(ip: string, name: string, ttl: number, now = nowSeconds()): boolean {
    const a = parseAddress(ip);
    if (typeof a === "string" || a.cidr) throw new SluiceError("INVALID_ADDRESS", `"${ip}" is not an IP address`);
    const bytes = new TextEncoder().encode(name.toLowerCase().replace(/\.$/, ""));
    if (bytes.length === 0 || bytes.length > L.NAME_MAX - 1) throw new SluiceError("INVALID_NAME", `"${name}" is not a domain name`);
    const u8 = this.arena.u8();
    u8.set(addrToBytes(a.addr), this.scratchRec);
    u8.set(bytes, this.scratchName);
    return this.core.ipdomPut(this.ipdom, a.version, this.scratchRec, this.scratchName, bytes.length, now + ttl, now) === 1;
  }

  /**
   * learnDomain for the resolver: the address as raw bytes (4 or 16 at `off`) straight out of a
   * DNS answer and a name already lower-case ASCII, so nothing is parsed or allocated per answer.
   * Returns false for a name the table cannot hold.
   */
  learnAddress(version: 4 | 6, addr: Uint8Array, off: number, name: string, ttl: number, now = nowSeconds()): boolean {
    const n = name.length;
    if (n === 0 || n > L.NAME_MAX - 1) return false;
    const u8 = this.arena.u8();
    const alen = version === 4 ? 4 : 16;
    for (let i = 0; i < alen; i++) u8[this.scratchRec + i] = addr[off + i]!;
    for (let i = 0; i < n; i++) {
      const c = name.charCodeAt(i);
      if (c > 127) return false;
      u8[this.scratchName + i] = c;
    }
    return this.core.ipdomPut(this.ipdom, version, this.scratchRec, this.scratchName, n, now + ttl, now) === 1;
  }

  private place(packet: Uint8Array): void {
    if (packet.length > SCRATCH_PACKET) throw new SluiceError("PACKET_TOO_LARGE", `packet of ${packet.length} bytes exceeds ${SCRATCH_PACKET}`);
    this.arena.u8().set(packet, this.scratchPkt);
  }
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
