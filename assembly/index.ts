// The WASM module's whole interface: numbers in, numbers out, memory owned by the host.
// Pointers are byte offsets into the shared linear memory (see shared/layout.ts).

export { decodePacket as decode } from "./decode/ip";
export { matchPacket as match } from "./match/match";
export { processBatch } from "./core/batch";
export { flowInit } from "./flow/track";
export { ipdomInit, ipdomPut, ipdomLearn } from "./match/ipdom";
export { layoutSignature } from "./core/signature";
export { staticEnd } from "./core/mem";
