// The tests build their gateway topology with the same helper as `npm run demo`.
export { createTopology, type Topology } from "../../src/tools/netns.js";
