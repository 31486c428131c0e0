// This file is shared by the WASM core (asc) and the TypeScript host (tsc) and must stay portable.
// Every named value that the decoder and matcher write into a record, in one place.

// ## Anomalies: malformed input is data. One bit each in REC_ANOMALY; decoding stops at the
// layer that is broken and keeps what it learned from the layers before.
export const AN_TRUNC_L3 = 0x1; // shorter than the IP header it claims to be
export const AN_BAD_VERSION = 0x2; // IP version neither 4 nor 6
export const AN_BAD_IHL = 0x4; // IPv4 header length < 20
export const AN_BAD_TOTAL_LEN = 0x8; // IPv4 total length < header length
export const AN_IP_OPT_BAD = 0x10; // IPv4 option runs past the header or has length < 2
export const AN_CAPTURE_SHORT = 0x20; // fewer bytes captured than the IP length says (snap length)
export const AN_V6_EXT_TRUNC = 0x40; // an IPv6 extension header runs past the packet
export const AN_V6_EXT_LIMIT = 0x80; // more extension headers than the decoder follows
export const AN_V6_HBH_NOT_FIRST = 0x100; // hop-by-hop options after another extension header
export const AN_TRUNC_L4 = 0x200; // transport header cut off
export const AN_TCP_BAD_DOFF = 0x400; // TCP data offset < 5 words
export const AN_UDP_BAD_LEN = 0x800; // UDP length < 8 or past the IP payload
export const AN_ICMP_INNER_TRUNC = 0x1000; // ICMP error with a cut-off embedded header
export const AN_DNS_TRUNC = 0x2000; // DNS message ends inside a record
export const AN_DNS_BAD_NAME = 0x4000; // pointer loop, forward pointer, bad label type, > 255 bytes
export const AN_DNS_ANS_CAPPED = 0x8000; // more answers or CNAME bytes than the record stores
export const AN_TLS_TRUNC = 0x10000; // ClientHello cut off before the SNI could be read
export const AN_TLS_BAD = 0x20000; // ClientHello lengths inconsistent
export const AN_HTTP_BAD_HOST = 0x40000; // Host header empty or too long
export const AN_FRAG_BAD = 0x80000; // fragment header inconsistent (IPv6 fragment too short)

// ## Packet flags (REC_FLAGS)
export const PF_FRAGMENT = 0x1; // part of a fragmented datagram
export const PF_FIRST_FRAG = 0x2; // the fragment carrying the transport header
export const PF_MORE_FRAGS = 0x4; // MF bit
export const PF_DONT_FRAG = 0x8; // IPv4 DF bit
export const PF_HAS_PORTS = 0x10; // REC_SPORT / REC_DPORT are valid
export const PF_ICMP_ERROR = 0x20; // REC_INNER_* describe the packet the error is about
export const PF_HAS_NAME = 0x40; // REC_NAME holds a name (see REC_NAMESRC)
export const PF_DNS_RESPONSE = 0x80; // DNS message with QR set
export const PF_HAS_MAC = 0x100; // REC_MAC is valid
export const PF_INNER_PORTS = 0x200; // REC_INNER_SPORT / REC_INNER_DPORT are valid
export const PF_ICMP_ECHO = 0x400; // REC_ICMPID is valid
export const PF_INBOUND = 0x800; // remote side is the source
export const PF_L4_HDR = 0x1000; // the transport's fixed header was read (TCP 20, UDP 8, SCTP 12, ICMP 8 bytes)
// The verdict holds for this packet only, so the connection's next packet is queued again: a TCP
// packet without payload and without a known name, in a profile whose domain rules could still
// decide the connection once its first payload (TLS SNI, HTTP Host) arrives; and accepted DNS,
// whose answers must reach the IP -> domain table.
export const PF_PROVISIONAL = 0x2000;
// The matcher asked the IP -> domain table for this packet's remote address and found nothing:
// connection tracking need not ask again for the same packet.
export const PF_IPDOM_MISS = 0x4000;

// ## Application protocols (REC_APP)
export const APP_NONE = 0;
export const APP_DNS = 1;
export const APP_TLS = 2;
export const APP_HTTP = 3;
export const APP_QUIC = 4;

// ## Where REC_NAME came from (REC_NAMESRC)
export const NS_NONE = 0;
export const NS_DNS = 1; // DNS question
export const NS_SNI = 2; // TLS ClientHello server_name
export const NS_HOST = 3; // HTTP/1.x Host header (port stripped)
export const NS_IPDOM = 4; // IP -> domain table (an earlier DNS answer for the remote address)

// ## IPv6 extension headers seen (REC_EXTHDRS)
export const EH_HOPOPTS = 0x1;
export const EH_ROUTING = 0x2;
export const EH_FRAGMENT = 0x4;
export const EH_DSTOPTS = 0x8;
export const EH_AH = 0x10;
export const EH_ESP = 0x20;
export const EH_NONE = 0x40;

// ## IP protocol numbers the decoder knows
export const IPP_HOPOPTS = 0;
export const IPP_ICMP = 1;
export const IPP_TCP = 6;
export const IPP_UDP = 17;
export const IPP_ROUTING = 43;
export const IPP_FRAGMENT = 44;
export const IPP_GRE = 47;
export const IPP_ESP = 50;
export const IPP_AH = 51;
export const IPP_ICMPV6 = 58;
export const IPP_NONE = 59;
export const IPP_DSTOPTS = 60;
export const IPP_SCTP = 132;
export const IPP_UDPLITE = 136;

// ## Verdicts: Portmaster's values (service/network/status.go), so records need no mapping
export const VERDICT_UNDECIDED = 0;
export const VERDICT_ACCEPT = 2;
export const VERDICT_BLOCK = 3;
export const VERDICT_DROP = 4;

// ## What decided (REC_MATCHBY)
export const MB_DEFAULT = 0; // no rule matched: the profile's default
export const MB_IP = 1; // an IP, CIDR or `*` rule on the remote address
export const MB_DOMAIN = 2; // a domain rule on the name the packet carries
export const MB_IPDOM = 3; // a domain rule on the name the IP -> domain table gave the address

// ## Rule entity kinds (RULE_KIND)
export const RK_ANY = 0; // `*`
export const RK_IP = 1; // single address
export const RK_CIDR = 2;
export const RK_DOMAIN = 3; // `example.com`
export const RK_SUBDOMAINS = 4; // `*.example.com`
export const RK_DOMAIN_TREE = 5; // `.example.com`: the domain and its subdomains

/** REC_RULE when no rule matched. */
export const NO_RULE = 0x7fffffff;
