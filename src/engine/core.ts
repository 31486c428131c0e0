// Loads the packet core: the WASM build of assembly/ (the production path) or its JS twin
// (same sources through tsc; for benchmarks and as a second oracle in tests). Both run on one
// shared WebAssembly.Memory that the host lays out (see arena.ts). This is the only file that
// touches build/sluice.wasm or dist/twin.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { MEM_MAX_PAGES } from "../../assembly/shared/layout.js";
import { CoreLoadError } from "../core/errors.js";

/** The core's interface: numbers only (see assembly/index.ts). */
export interface Core {
  readonly kind: "wasm" | "twin";
  decode(pkt: number, len: number, rec: number): number;
  match(img: number, rec: number, ipd: number, now: number): number;
  processBatch(desc: number, n: number, rec: number, results: number, img: number, ipd: number, now: number, flags: number, flow: number): number;
  flowInit(ft: number, nbuckets: number, ringCap: number, worker: number): void;
  ipdomInit(ipd: number, nsets: number): void;
  ipdomPut(ipd: number, ver: number, addr: number, name: number, len: number, expiry: number, now: number): number;
  ipdomLearn(ipd: number, rec: number, now: number): number;
  layoutSignature(): number;
  staticEnd(): number;
}

export type CoreKind = Core["kind"];

const WASM_RELEASE = new URL("../../../build/sluice.wasm", import.meta.url);
const WASM_DEBUG = new URL("../../../build/sluice.debug.wasm", import.meta.url);
const TWIN_DIR = new URL("../../twin/", import.meta.url);

let compiled: { release?: WebAssembly.Module; debug?: WebAssembly.Module } = {};

/** A shared memory the core can run on; `initialPages` grows later through the arena. */
export function createMemory(initialPages: number): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial: initialPages, maximum: MEM_MAX_PAGES, shared: true });
}

function wasmModule(debug: boolean): WebAssembly.Module {
  const key = debug ? "debug" : "release";
  let mod = compiled[key];
  if (!mod) {
    const url = debug ? WASM_DEBUG : WASM_RELEASE;
    let bytes: Buffer;
    try {
      bytes = readFileSync(fileURLToPath(url));
    } catch (err) {
      throw new CoreLoadError(`cannot read ${fileURLToPath(url)}: run npm run build`, { cause: String(err) });
    }
    mod = new WebAssembly.Module(new Uint8Array(bytes));
    compiled = { ...compiled, [key]: mod };
  }
  return mod;
}

/** The compiled module, to hand to workers (modules are shareable, instances are not). */
export function coreModule(debug = false): WebAssembly.Module {
  return wasmModule(debug);
}

export function instantiateWasm(memory: WebAssembly.Memory, options: { debug?: boolean; module?: WebAssembly.Module } = {}): Core {
  const mod = options.module ?? wasmModule(options.debug ?? false);
  const inst = new WebAssembly.Instance(mod, { env: { memory } });
  const x = inst.exports as unknown as Omit<Core, "kind">;
  return checked({
    kind: "wasm",
    decode: x.decode,
    match: x.match,
    processBatch: x.processBatch,
    flowInit: x.flowInit,
    ipdomInit: x.ipdomInit,
    ipdomPut: x.ipdomPut,
    ipdomLearn: x.ipdomLearn,
    layoutSignature: x.layoutSignature,
    staticEnd: x.staticEnd,
  });
}

interface TwinModules {
  index: Omit<Core, "kind" | "staticEnd">;
  mem: { bindMemory(buffer: ArrayBufferLike): void; staticEnd(): number };
}

function twinModules(): TwinModules {
  const req = createRequire(TWIN_DIR);
  try {
    return { index: req("./index.js"), mem: req("./core/mem.js") };
  } catch (err) {
    throw new CoreLoadError("cannot load the JS twin from dist/twin: run npm run build", { cause: String(err) });
  }
}

/**
 * The JS twin bound to `memory`. There is one twin per thread (its memory views are module
 * state), so binding again rebinds every twin Core of this thread.
 */
export function instantiateTwin(memory: WebAssembly.Memory): Core {
  const { index, mem } = twinModules();
  mem.bindMemory(memory.buffer);
  return checked({ kind: "twin", ...index, staticEnd: mem.staticEnd });
}

/** Rebinds the twin's views after the memory grew (shared memories never detach, they only grow). */
export function rebindTwin(memory: WebAssembly.Memory): void {
  twinModules().mem.bindMemory(memory.buffer);
}

export function instantiateCore(kind: CoreKind, memory: WebAssembly.Memory, options: { module?: WebAssembly.Module } = {}): Core {
  return kind === "wasm" ? instantiateWasm(memory, options) : instantiateTwin(memory);
}

let hostSignature: number | undefined;

function checked(core: Core): Core {
  // The twin is compiled from the same layout.ts as this host; a WASM build that disagrees
  // with it is stale and would misread every record.
  if (core.kind === "twin") hostSignature = core.layoutSignature();
  else {
    hostSignature ??= twinModules().index.layoutSignature();
    if (core.layoutSignature() !== hostSignature) {
      throw new CoreLoadError("build/sluice.wasm was built from a different layout.ts: run npm run build");
    }
  }
  return core;
}
