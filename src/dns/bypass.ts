// Well-known encrypted-DNS services: what bypass prevention refuses (their addresses, by the
// gateway's FORWARD chain) and answers NXDOMAIN for (their names, by the resolver), so devices
// fall back to the network's DNS, where blocking applies.

/** Public DoH/DoT resolvers' addresses (the big anycast services and a few privacy resolvers). */
export const DOH_ADDRESSES: Record<4 | 6, string[]> = {
  4: [
    "1.1.1.1", "1.0.0.1", "1.1.1.2", "1.0.0.2", "1.1.1.3", "1.0.0.3",
    "8.8.8.8", "8.8.4.4",
    "9.9.9.9", "149.112.112.112", "9.9.9.10", "149.112.112.10", "9.9.9.11", "149.112.112.11",
    "208.67.222.222", "208.67.220.220",
    "94.140.14.14", "94.140.15.15",
    "185.228.168.9", "185.228.169.9",
    "194.242.2.2", "45.90.28.0/24", "45.90.30.0/24",
  ],
  6: [
    "2606:4700:4700::1111", "2606:4700:4700::1001", "2606:4700:4700::1112", "2606:4700:4700::1002",
    "2001:4860:4860::8888", "2001:4860:4860::8844",
    "2620:fe::fe", "2620:fe::9", "2620:fe::10", "2620:fe::11",
    "2620:119:35::35", "2620:119:53::53",
    "2a10:50c0::ad1:ff", "2a10:50c0::ad2:ff",
    "2a0d:2a00:1::", "2a07:e340::2",
  ],
};

/** Their hostnames: the resolver answers NXDOMAIN, so browsers fall back to the network's DNS. */
export const DOH_NAMES: readonly string[] = [
  "cloudflare-dns.com", "mozilla.cloudflare-dns.com", "chrome.cloudflare-dns.com", "one.one.one.one", "1dot1dot1dot1.cloudflare-dns.com",
  "security.cloudflare-dns.com", "family.cloudflare-dns.com",
  "dns.google", "dns.google.com", "dns64.dns.google",
  "dns.quad9.net", "dns9.quad9.net", "dns10.quad9.net", "dns11.quad9.net",
  "doh.opendns.com", "dns.opendns.com", "doh.familyshield.opendns.com",
  "dns.adguard.com", "dns.adguard-dns.com", "dns-family.adguard.com",
  "dns.nextdns.io", "doh.cleanbrowsing.org", "doh.dns.sb", "dns.mullvad.net", "doh.mullvad.net",
];

