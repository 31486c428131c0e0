// This file is shared by the WASM core (compiled by asc) and the TypeScript host (compiled by tsc)
// and must stay portable: `export const NAME = <integer expression>` only, every value < 2^31.
// It is the one description of every byte layout that crosses the WASM boundary; a test checks
// that the compiled module agrees with it (layoutSignature).
//
// Multi-byte fields are little-endian (native WASM order) unless marked "net" (network order).
//
// ## Linear memory (shared, imported from the host)
//
//   0            MEM_STATIC_END                                               MEM_MAX_BYTES
//   +------------+--------------------------------------------------------------+
//   | asc static | host-managed regions: rule images, IP->domain table, per-     |
//   | (reserved) | worker packet slots, descriptors and decode records           |
//   +------------+--------------------------------------------------------------+
//
// The core never allocates: every pointer it touches is handed in by the host.

export const MEM_PAGE = 65536;
export const MEM_STATIC_END = 65536;
/** 2 GiB: every pointer stays a positive i32, which keeps the JS twin's index arithmetic exact. */
export const MEM_MAX_PAGES = 32768;

// ## Packet descriptor: where a packet lies and what the capture layer knows about it
//
//   0       4       6       8               14      16
//   +-------+-------+-------+---------------+-------+
//   | off   | len   | flags | mac (6 bytes) | pad   |
//   +-------+-------+-------+---------------+-------+
export const DESC_OFF = 0; // u32: byte offset of the packet's first IP byte in linear memory
export const DESC_LEN = 4; // u16: captured length
export const DESC_FLAGS = 6; // u16: DF_* bits
export const DESC_MAC = 8; // 6 bytes: source hardware address (when DF_HAS_MAC)
export const DESC_SIZE = 16;

export const DF_INBOUND = 0x1; // the connection was initiated from the WAN side: remote = source
export const DF_HAS_MAC = 0x2;

// ## Decode record: one per packet, reused; only the header part is cleared per packet
//
//   0        4        8    9    10   11   12     14     16     18     20     22     24
//   +--------+--------+----+----+----+----+------+------+------+------+------+------+
//   |anomaly | flags  |ver |prot|ttl |tcpf| l4off| payoff|paylen| iplen| sport| dport|
//   +--------+--------+----+----+----+----+------+------+------+------+------+------+
//   24 ipid/fragid  28 fragoff  30 tcpwin  32 tcpseq  36 tcpack  40 icmp type/code,
//   42 inner proto  43 app  44 ext-header bits  46 l3 header length  48 src  64 dst
//   80 inner src  96 inner dst  112 inner sport/dport  116 quic version  120 dns header
//   fields  129 name source  130 name length  132 cname pool use  134 icmp echo id  136 mac
//   144 verdict, match kind, profile, rule, line  160 name  416 answers  800 cname pool
export const REC_ANOMALY = 0; // u32: AN_* bits (events.ts)
export const REC_FLAGS = 4; // u32: PF_* bits
export const REC_IPVER = 8; // u8: 4 or 6, 0 when not IP
export const REC_PROTO = 9; // u8: final IP protocol / next header
export const REC_TTL = 10; // u8: TTL or hop limit
export const REC_TCPFLAGS = 11; // u8: FIN 0x01 SYN 0x02 RST 0x04 PSH 0x08 ACK 0x10 URG 0x20 ECE 0x40 CWR 0x80
export const REC_L4OFF = 12; // u16: offset of the transport header from the packet start
export const REC_PAYOFF = 14; // u16: offset of the transport payload
export const REC_PAYLEN = 16; // u16: captured payload bytes
export const REC_IPLEN = 18; // u16: IPv4 total length, or 40 + IPv6 payload length, as declared
export const REC_SPORT = 20; // u16
export const REC_DPORT = 22; // u16
export const REC_IPID = 24; // u32: IPv4 identification or IPv6 fragment identification
export const REC_FRAGOFF = 28; // u16: fragment offset in 8-byte units
export const REC_TCPWIN = 30; // u16
export const REC_TCPSEQ = 32; // u32
export const REC_TCPACK = 36; // u32
export const REC_ICMPTYPE = 40; // u8
export const REC_ICMPCODE = 41; // u8
export const REC_INNER_PROTO = 42; // u8: protocol of the header embedded in an ICMP error
export const REC_APP = 43; // u8: APP_* detected application protocol
export const REC_EXTHDRS = 44; // u16: EH_* bits, IPv6 extension headers seen
export const REC_L3HLEN = 46; // u16: IP header length including options / extension headers
export const REC_SRC = 48; // 16 bytes net: source address (IPv4 in the first 4 bytes)
export const REC_DST = 64; // 16 bytes net
export const REC_INNER_SRC = 80; // 16 bytes net
export const REC_INNER_DST = 96; // 16 bytes net
export const REC_INNER_SPORT = 112; // u16
export const REC_INNER_DPORT = 114; // u16
export const REC_QUICVER = 116; // u32
export const REC_DNS_ID = 120; // u16
export const REC_DNS_FLAGS = 122; // u16
export const REC_DNS_QTYPE = 124; // u16
export const REC_DNS_ANCOUNT = 126; // u16: answer count as declared in the header
export const REC_DNS_NANS = 128; // u8: answers stored in REC_ANS
export const REC_NAMESRC = 129; // u8: NS_* where REC_NAME came from
export const REC_NAMELEN = 130; // u16
export const REC_DNS_CNLEN = 132; // u16: bytes used in REC_CNAMES
export const REC_ICMPID = 134; // u16: ICMP / ICMPv6 echo identifier
export const REC_MAC = 136; // 6 bytes: copied from the descriptor
export const REC_VERDICT = 144; // u8: VERDICT_*
export const REC_MATCHBY = 145; // u8: MB_* what decided
export const REC_PROFILE = 146; // u16: profile index
export const REC_RULE = 148; // u32: global rule id, NO_RULE when the default decided
export const REC_LINE = 152; // u32: source line of the rule, 0 for the default
export const REC_HDR_END = 160; // the part cleared for every packet (a multiple of 32)
export const REC_NAME = 160; // NAME_MAX bytes: lower-case dotted name, no trailing dot
export const NAME_MAX = 256;
export const REC_ANS = REC_NAME + NAME_MAX; // ANS_MAX answer entries
export const ANS_MAX = 16;
export const ANS_TYPE = 0; // u16: 1 A, 5 CNAME, 28 AAAA
export const ANS_LEN = 2; // u16: address length, or name length in the CNAME pool
export const ANS_TTL = 4; // u32
export const ANS_DATA = 8; // 16 bytes: address (net), or u16 offset into REC_CNAMES
export const ANS_SIZE = 24;
export const REC_CNAMES = REC_ANS + ANS_MAX * ANS_SIZE; // CNAME_POOL bytes of CNAME targets
export const CNAME_POOL = 256;
export const REC_SIZE = REC_CNAMES + CNAME_POOL + 32; // padded to a multiple of 64

// ## Batch result: what the host needs of each packet after a batch, 16 bytes apiece. The full
// decode record is scratch space, reused for every packet of the batch (it stays in L1 cache;
// a record per packet would spill it).
//
//   0         1         2         4         8         12        16
//   +---------+---------+---------+---------+---------+---------+
//   | verdict | matchby | profile | rule    | anomaly | flags   |
//   +---------+---------+---------+---------+---------+---------+
export const RES_VERDICT = 0; // u8: VERDICT_* (0 when the batch ran without an image)
export const RES_MATCHBY = 1; // u8: MB_*
export const RES_PROFILE = 2; // u16
export const RES_RULE = 4; // u32: global rule id or NO_RULE
export const RES_ANOMALY = 8; // u32: AN_* bits
export const RES_FLAGS = 12; // u32: PF_* bits
export const RES_SIZE = 16;

// ## Capture (native/nfq.c repeats these; test/capture.test.ts checks they agree)
// Per packet, beside its descriptor: the NFQUEUE packet id and the mark it arrived with, so
// verdicts can keep the mark bits other software owns.
export const META_ID = 0; // u32
export const META_MARK = 4; // u32
export const META_SIZE = 8;
// Per-queue counters, written only by the worker that owns the queue (u32 each).
export const ST_RECEIVED = 0;
export const ST_BATCHES = 4;
export const ST_ENOBUFS = 8;
export const ST_RECV_ERRORS = 12;
export const ST_SEND_ERRORS = 16;
export const ST_VERDICT_MSGS = 20;
export const ST_SKIPPED = 24;
export const ST_SIZE = 64;
/** Bits in the WAN-interface bitmap: ifindex i arriving there means "inbound" (remote = source). */
export const WAN_BITS = 256;

// ## Rule image: written by src/rules/image.ts, read by assembly/match
// All offsets inside the image are relative to the image base; offset 0 means "none".
export const IMG_MAGIC_VALUE = 0x49524c53; // "SLRI"
export const IMG_FORMAT = 1;
export const IMG_MAGIC = 0; // u32
export const IMG_VERSION = 4; // u32: IMG_FORMAT
export const IMG_SIZE = 8; // u32: total bytes
export const IMG_NPROFILES = 12; // u32
export const IMG_PROFILES = 16; // u32: offset of the profile table
export const IMG_NRULES = 20; // u32
export const IMG_RULES = 24; // u32: offset of the rule table
export const IMG_DOM_MASK = 28; // u32: domain slots - 1 (a power of two minus one)
export const IMG_DOM_SLOTS = 32; // u32: offset of the domain hash table
export const IMG_BIND4 = 36; // u32: interval table source IPv4 -> profile + 1
export const IMG_BIND6 = 40; // u32: interval table source IPv6 -> profile + 1
export const IMG_NMACS = 44; // u32
export const IMG_MACS = 48; // u32: sorted MAC binding table
export const IMG_DEFAULT_PROFILE = 52; // u32
export const IMG_GENERATION = 56; // u32: bumped by the host for every image it publishes
export const IMG_POOL = 60; // u32: offset of the name pool
export const IMG_DOM_FILTER = 64; // u32: offset of the suffix filter (1 bit per hash bucket)
export const IMG_DOM_FILTER_MASK = 68; // u32: filter bits - 1 (a power of two minus one)
export const IMG_HDR_SIZE = 128;

export const PROF_DEFAULT = 0; // u8: VERDICT_* when no rule matches
export const PROF_V4 = 4; // u32: interval table remote IPv4 -> rule list
export const PROF_V6 = 8; // u32: interval table remote IPv6 -> rule list
export const PROF_NDOMAIN = 12; // u32: domain rules in the profile (0 skips all name lookups)
export const PROF_FIRST_DOMAIN = 16; // u32: lowest global id of the profile's domain rules
export const PROF_SIZE = 32;

export const RULE_VERDICT = 0; // u8: VERDICT_ACCEPT or VERDICT_BLOCK
export const RULE_PROTO = 1; // u8: IP protocol, 0 = any
export const RULE_FLAGS = 2; // u8: RF_* bits
export const RULE_KIND = 3; // u8: RK_* entity kind
export const RULE_PORTLO = 4; // u16
export const RULE_PORTHI = 6; // u16
export const RULE_PROFILE = 8; // u32
export const RULE_LINE = 12; // u32
export const RULE_SIZE = 16;

export const RF_HAS_PORT = 0x1;

// Rule list: u32 count, then that many ascending u32 rule ids. A list stops after its first rule
// without protocol or port condition, since nothing after it can ever win.
export const LIST_COUNT = 0;
export const LIST_IDS = 4;

// Domain hash table slot (open addressing, linear probing, hash 0 = empty)
export const DOM_HASH = 0; // u32
export const DOM_PROFILE = 4; // u16
export const DOM_NAMELEN = 6; // u16
export const DOM_NAMEOFF = 8; // u32: offset of the name bytes in the image
export const DOM_LIST_SELF = 12; // u32: rules matching this exact name (`name`, `.name`)
export const DOM_LIST_SUB = 16; // u32: rules matching strict subdomains (`*.name`, `.name`)
export const DOM_SLOT_SIZE = 20;

// Interval table: the address space cut into disjoint, sorted intervals, each with a value
// (a rule list offset, or a profile + 1). Each interval's start and value sit side by side, so
// the binary search lands on its answer's cache line. `index` narrows the search: for the top
// `kbits` bits b of an address, the containing interval lies in [index[b], index[b + 1]].
//
//   0       4       8         12
//   +-------+-------+---------+------------------+---------------------------------+
//   | count | kbits | entries | index[2^k + 1]   | entries[count]                  |
//   +-------+-------+---------+------------------+---------------------------------+
// IPv4 entry (8 bytes): start u32 (host order), value u32.
// IPv6 entry (32 bytes): start as 4 u32 words, most significant first, value u32, padding.
export const IT_COUNT = 0;
export const IT_KBITS = 4;
export const IT_ENTRIES = 8; // u32: offset of the entries, relative to the table
export const IT_INDEX = 12;
export const IT_MAX_KBITS = 16;
/** Entries per index bucket aimed for: a short search that stays within a line or two. */
export const IT_BUCKET_SHIFT = 2;
export const IT4_ENTRY_SHIFT = 3;
export const IT4_VALUE = 4;
export const IT6_ENTRY_SHIFT = 5;
export const IT6_VALUE = 16;

export const MAC_HI = 0; // u32: first four bytes, big-endian value
export const MAC_LO = 4; // u16: last two bytes, big-endian value
export const MAC_PROFILE = 6; // u16
export const MAC_SIZE = 8;

// ## IP -> domain table: filled from observed DNS answers, read by the matcher
// 4-way set associative. A lookup reads one 64-byte tag line per set and touches an entry only
// on a tag hit, so a miss (most packets) costs one cache line. Each way has a sequence word
// (seqlock): odd while being written, so readers never act on a torn entry and writers never
// wait for each other.
//
//   header (64) | tags: nsets x 64 (4 ways x 16) | entries: nsets x 4 x IPD_ENTRY_SIZE
export const IPD_NSETS = 0; // u32: number of sets (a power of two)
export const IPD_HDR_SIZE = 64;
export const IPD_WAYS = 4;
export const IPD_TAG_SHIFT = 4;
export const IPD_TAG_SIZE = 1 << IPD_TAG_SHIFT;
export const IPD_SET_TAGS = IPD_WAYS * IPD_TAG_SIZE;
export const IPD_SEQ = 0; // i32 in the tag: 0 = never written
export const IPD_EXPIRY = 4; // u32 in the tag: seconds (host clock), stale after this
export const IPD_HASH = 8; // i32 in the tag: hash of the address
export const IPD_VER = 12; // u8 in the tag
export const IPD_NAMELEN = 13; // u8 in the tag
export const IPD_ADDR = 0; // 16 bytes net, in the entry
export const IPD_NAME = 16; // 256 bytes, in the entry
export const IPD_ENTRY_SIZE = 272;
/** Answers shorter-lived than this are kept this long: connections often start after the TTL. */
export const IPD_MIN_TTL = 60;
export const IPD_MAX_TTL = 86400;

// ## Batch processing flags
export const BF_LEARN_DNS = 0x1; // feed DNS answers seen in the batch into the IP -> domain table

// ## Connection tracking (assembly/flow/track.ts), one region per queue worker:
//   [flow header FT_HDR_SIZE][buckets: nbuckets x (tag line + FT_WAYS entries of FL_SIZE)][event ring]
// A flow is keyed by its 5-tuple as first seen (initiator -> responder); both directions hash to
// the same bucket, so one probe finds it either way. A full bucket evicts its least recently
// seen flow (counted, and reported as an end with reason EVR_EVICTED).
export const FT_NBUCKETS = 0; // u32: a power of two
export const FT_SEQ = 4; // u32: the last connection id handed out by this worker
export const FT_SWEEP = 8; // u32: next bucket the expiry sweep looks at
export const FT_EVICTED = 12; // u32: flows evicted from a full bucket
export const FT_LIVE = 16; // u32: flows in the table
export const FT_RING = 20; // u32: offset of the event ring, relative to the region
export const FT_WORKER = 24; // u32: the worker's index, the high bits of its connection ids
export const FT_HDR_SIZE = 64;
export const FT_WAYS = 8;
// Each bucket starts with one cache line of tags: the ways' hashes (0 = empty) and last-seen
// times, so a lookup reads one line and touches an entry only when its hash matches.
export const FT_TAG_HASH = 0; // FT_WAYS x i32
export const FT_TAG_LAST = 32; // FT_WAYS x u32
export const FT_BUCKET_HDR = 64;
export const FT_BUCKET_SIZE = FT_BUCKET_HDR + FT_WAYS * 128; // 128 = FL_SIZE (declared below; flow-track.test.ts checks)

// The first cache line holds what a lookup compares and what every packet updates; the second
// what only events read.
export const FL_STATE = 0; // u8: FS_*
export const FL_IPVER = 1; // u8
export const FL_PROTO = 2; // u8
export const FL_VERDICT = 3; // u8: VERDICT_* last given
export const FL_MATCHBY = 4; // u8
export const FL_DIR = 5; // u8: 1 = inbound (initiated from the WAN side)
export const FL_TCP = 6; // u8: TS_* bits seen
export const FL_NAMED = 7; // u8: 1 once an event carried a name
export const FL_SPORT = 8; // u16: initiator's port (ICMP: echo id)
export const FL_DPORT = 10; // u16
export const FL_PROFILE = 12; // u16
export const FL_SRC = 16; // 16 bytes net: initiator
export const FL_DST = 32; // 16 bytes net: responder
export const FL_PKTS_OUT = 48; // u32: initiator -> responder
export const FL_PKTS_IN = 52; // u32
export const FL_LAST = 56; // u32: seconds, host clock
export const FL_HASH = 60; // i32: the bucket hash (also in the bucket's tag line)
export const FL_RULE = 64; // u32
export const FL_LINE = 68; // u32
export const FL_ID = 72; // u32: connection id within this worker
export const FL_FIRST = 76; // u32
export const FL_BYTES_OUT = 80; // u32 low, u32 high at +4
export const FL_BYTES_IN = 88; // u32 low, u32 high at +4
export const FL_FLAGS = 96; // u32: PF_* of the deciding packet
export const FL_SIZE = 128;

export const FS_EMPTY = 0;
export const FS_OPEN = 1; // being decided or followed packet by packet
export const FS_CLOSING = 2; // FIN from both sides or RST: ends after a short linger
export const FS_KERNEL = 3; // decided and fast-tracked: the kernel has it (conntrack reports its end)

export const TS_SYN = 1;
export const TS_FIN_OUT = 2;
export const TS_FIN_IN = 4;
export const TS_RST = 8;

// Idle timeouts, seconds. A fast-tracked flow stays a moment for packets already queued.
export const FT_TIMEOUT_TCP = 3600;
export const FT_TIMEOUT_TCP_NEW = 30;
export const FT_TIMEOUT_CLOSING = 10;
export const FT_TIMEOUT_UDP = 60;
export const FT_TIMEOUT_OTHER = 30;
export const FT_TIMEOUT_KERNEL = 5;
/** Buckets the expiry sweep visits per batch (and per idle poll). */
export const FT_SWEEP_BUCKETS = 16;

// The event ring: single producer (the worker's core), single consumer (the main thread's
// writer). The producer never waits: when the ring is full the event is dropped and counted.
export const RG_HEAD = 0; // u32: events written (producer)
export const RG_DROPPED = 4; // u32: events dropped on a full ring
export const RG_CAP = 8; // u32: slots, a power of two
export const RG_TAIL = 64; // u32: events consumed (consumer), on its own cache line
export const RG_HDR_SIZE = 128;

export const EV_TYPE = 0; // u8: EVT_*
export const EV_REASON = 1; // u8: EVR_* (ends)
export const EV_IPVER = 2; // u8
export const EV_PROTO = 3; // u8
export const EV_VERDICT = 4; // u8
export const EV_MATCHBY = 5; // u8
export const EV_DIR = 6; // u8
export const EV_HASMAC = 7; // u8
export const EV_SPORT = 8; // u16
export const EV_DPORT = 10; // u16
export const EV_PROFILE = 12; // u16
export const EV_NAMELEN = 14; // u16
export const EV_RULE = 16; // u32
export const EV_LINE = 20; // u32
export const EV_ID = 24; // u32
export const EV_FIRST = 28; // u32
export const EV_LAST = 32; // u32
export const EV_PKTS_OUT = 36; // u32
export const EV_PKTS_IN = 40; // u32
export const EV_BYTES_OUT = 44; // u32 low, u32 high
export const EV_BYTES_IN = 52; // u32 low, u32 high
export const EV_FLAGS = 60; // u32: PF_*
export const EV_SRC = 64; // 16 bytes
export const EV_DST = 80; // 16 bytes
export const EV_MAC = 96; // 6 bytes
export const EV_NAME = 128; // NAME_MAX bytes
export const EV_SIZE = 384;

export const EVT_NEW = 1; // first packet of a flow, with its (possibly provisional) verdict
export const EVT_UPDATE = 2; // the verdict or the name changed (e.g. decided on the SNI)
export const EVT_END = 3; // the flow ended in the worker's view (with its counters)

export const EVR_CLOSED = 1; // FIN both ways, or RST
export const EVR_TIMEOUT = 2; // idle longer than its protocol's timeout
export const EVR_EVICTED = 3; // pushed out of a full bucket

export const BF_TRACK_FAST = 0x2; // decided flows are fast-tracked: hand them to the kernel
// Accepted TCP is passed once (not fast-tracked) until its first payload, so the connection's
// name (TLS SNI, HTTP Host) reaches the record even when no domain rule asks for it.
export const BF_WAIT_NAME = 0x4;
