// The tests read fixtures with the same pcap reader the CLI uses.
export { readPcap, type PcapPacket } from "../../src/tools/pcap.js";
