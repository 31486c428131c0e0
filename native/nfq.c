// NFQUEUE over raw netlink, as a Node-API addon. No libnetfilter_queue: the protocol is a few
// fixed structs (linux/netfilter/nfnetlink_queue.h). The boundary carries numbers only: the
// host registers its shared WebAssembly memory once per queue, then every call names offsets
// into it. Packets are received straight into that memory (recvmmsg, many per system call),
// described for the WASM core in place, and answered with batched verdicts (one sendmsg).
//
// Offsets and sizes shared with TypeScript are repeated below (NQ_*) and checked by a test
// against assembly/shared/layout.ts through nq_layout().

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netlink.h>
#include <node_api.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

// ---- shared with assembly/shared/layout.ts (checked by test/capture-layout.test.ts) ----
#define DESC_OFF 0
#define DESC_LEN 4
#define DESC_FLAGS 6
#define DESC_MAC 8
#define DESC_SIZE 16
#define DF_INBOUND 0x1
#define DF_HAS_MAC 0x2
#define RES_VERDICT 0
#define RES_FLAGS 12
#define RES_SIZE 16
#define META_ID 0    // u32 packet id
#define META_MARK 4  // u32 mark the packet arrived with
#define META_SIZE 8
#define VERDICT_ACCEPT 2
#define VERDICT_BLOCK 3
#define VERDICT_DROP 4
#define PF_PROVISIONAL 0x2000
// Per-queue counters (u32, written only by the worker that owns the queue).
#define ST_RECEIVED 0
#define ST_BATCHES 4
#define ST_ENOBUFS 8
#define ST_RECV_ERRORS 12
#define ST_SEND_ERRORS 16
#define ST_VERDICT_MSGS 20
#define ST_SKIPPED 24
#define ST_SIZE 64
// WAN interface bitmap: bit i set = ifindex i is on the WAN side (inbound when it arrives there).
#define WAN_BITS 256

// Handles are handed out round-robin and a queue's struct is never freed: close() may run on
// another thread (the watchdog's) while the owning worker is still inside recv() on its way to
// being terminated, so nothing it can touch is released under it. 1024 opens pass before a
// handle number comes round again.
#define MAX_QUEUES 1024
#define MAX_BATCH 1024
#define SOCK_BUF_MIN (1 << 20)
#define VERDICT_MSG_SPACE 64

enum { MARK_ACCEPT, MARK_BLOCK, MARK_DROP, MARK_ONCE, MARK_COUNT };

typedef struct {
  int fd;
  uint16_t queue;
  uint8_t *base;  // shared memory start
  size_t size;    // shared memory size at registration (it only grows)
  uint32_t stats;  // offset of the ST_* block
  uint32_t wan;    // offset of the WAN bitmap (0 = none)
  uint32_t mask;
  uint32_t marks[MARK_COUNT];
  uint32_t last_id;  // highest packet id received (0 = none yet)
  uint32_t slots_off, slot_size, nslots;  // geometry the receive headers were set up for
  int got_any;
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iov[MAX_BATCH];
} queue_t;

static queue_t *queues[MAX_QUEUES];
static int open_flags[MAX_QUEUES];  // 1 while the handle is open
static int next_slot;

static uint32_t *stat(queue_t *q, int field) { return (uint32_t *)(q->base + q->stats + field); }

// ---- netlink helpers ----

static size_t put_attr(uint8_t *buf, size_t off, uint16_t type, const void *data, uint16_t len) {
  struct nlattr *a = (struct nlattr *)(buf + off);
  a->nla_type = type;
  a->nla_len = NLA_HDRLEN + len;
  memcpy(buf + off + NLA_HDRLEN, data, len);
  return off + NLA_ALIGN(a->nla_len);
}

static size_t put_header(uint8_t *buf, size_t off, uint16_t msg, uint16_t flags, uint16_t queue) {
  struct nlmsghdr *h = (struct nlmsghdr *)(buf + off);
  h->nlmsg_len = NLMSG_HDRLEN + sizeof(struct nfgenmsg);
  h->nlmsg_type = (NFNL_SUBSYS_QUEUE << 8) | msg;
  h->nlmsg_flags = NLM_F_REQUEST | flags;
  h->nlmsg_seq = 0;
  h->nlmsg_pid = 0;
  struct nfgenmsg *g = (struct nfgenmsg *)(buf + off + NLMSG_HDRLEN);
  g->nfgen_family = AF_UNSPEC;
  g->version = NFNETLINK_V0;
  g->res_id = htons(queue);
  return off + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg));
}

static void finish(uint8_t *buf, size_t start, size_t end) {
  ((struct nlmsghdr *)(buf + start))->nlmsg_len = (uint32_t)(end - start);
}

/** Sends one config message with an ACK request and returns 0 or the kernel's -errno. */
static int config(int fd, uint16_t queue, uint16_t attr, const void *data, uint16_t len) {
  uint8_t buf[256];
  size_t off = put_header(buf, 0, NFQNL_MSG_CONFIG, NLM_F_ACK, queue);
  off = put_attr(buf, off, attr, data, len);
  finish(buf, 0, off);
  if (send(fd, buf, off, 0) < 0) return -errno;
  uint8_t ack[512];
  for (;;) {
    ssize_t n = recv(fd, ack, sizeof ack, 0);
    if (n < 0) return errno == EINTR ? 0 : -errno;
    struct nlmsghdr *h = (struct nlmsghdr *)ack;
    if (n >= (ssize_t)NLMSG_HDRLEN && h->nlmsg_type == NLMSG_ERROR) {
      return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
    }
    // A queued packet can arrive before the ack on a reused queue: it gets no verdict here;
    // the kernel reinjects it when the socket closes or times it out with fail-open.
  }
}

static int config_flags(int fd, uint16_t queue, uint32_t flags, uint32_t mask) {
  uint8_t buf[256];
  size_t off = put_header(buf, 0, NFQNL_MSG_CONFIG, NLM_F_ACK, queue);
  uint32_t f = htonl(flags), m = htonl(mask);
  off = put_attr(buf, off, NFQA_CFG_FLAGS, &f, sizeof f);
  off = put_attr(buf, off, NFQA_CFG_MASK, &m, sizeof m);
  finish(buf, 0, off);
  if (send(fd, buf, off, 0) < 0) return -errno;
  uint8_t ack[512];
  ssize_t n = recv(fd, ack, sizeof ack, 0);
  if (n < 0) return -errno;
  struct nlmsghdr *h = (struct nlmsghdr *)ack;
  return h->nlmsg_type == NLMSG_ERROR ? ((struct nlmsgerr *)NLMSG_DATA(h))->error : 0;
}

// ---- N-API plumbing ----

#define CHECK(call)                                                      \
  do {                                                                   \
    if ((call) != napi_ok) {                                             \
      napi_throw_error(env, "NFQ_NAPI", "N-API call failed: " #call);    \
      return NULL;                                                       \
    }                                                                    \
  } while (0)

static napi_value num(napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

static int arg_u32(napi_env env, napi_value v, uint32_t *out) {
  return napi_get_value_uint32(env, v, out) == napi_ok;
}

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  const char *code = err == EPERM ? "NFQ_PERMISSION" : err == EBUSY ? "NFQ_QUEUE_BUSY" : "NFQ_OPEN";
  napi_throw_error(env, code, msg);
  return NULL;
}

static queue_t *handle(napi_env env, napi_value v) {
  uint32_t h;
  if (!arg_u32(env, v, &h) || h >= MAX_QUEUES || !queues[h] || !open_flags[h]) {
    napi_throw_error(env, "NFQ_HANDLE", "not an open queue handle");
    return NULL;
  }
  return queues[h];
}

/**
 * open(queue, copyRange, maxLen, rcvbuf, cfgFlags, memory: Uint8Array over the shared memory, statsOff, wanOff,
 *      mask, markAccept, markBlock, markDrop, markOnce) -> handle
 * cfgFlags are NFQA_CFG_F_* bits (fail-open, GSO). Throws with code NFQ_PERMISSION without
 * CAP_NET_ADMIN, NFQ_QUEUE_BUSY when another process holds the queue.
 */
static napi_value nq_open(napi_env env, napi_callback_info info) {
  size_t argc = 13;
  napi_value argv[13];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t a[13];
  for (int i = 0; i < 13; i++) {
    if (i == 5) continue;
    if (!arg_u32(env, argv[i], &a[i])) {
      napi_throw_type_error(env, "NFQ_ARGS", "open() takes numbers and one SharedArrayBuffer");
      return NULL;
    }
  }
  // The memory comes as a Uint8Array over the whole SharedArrayBuffer: Node-API has no call for
  // a SharedArrayBuffer itself in Node 20, but reads any typed array's data pointer.
  void *data = NULL;
  size_t size = 0;
  napi_typedarray_type ta_type;
  napi_value ta_buffer;
  size_t ta_offset = 0;
  if (napi_get_typedarray_info(env, argv[5], &ta_type, &size, &data, &ta_buffer, &ta_offset) != napi_ok || !data ||
      ta_type != napi_uint8_array || ta_offset != 0) {
    napi_throw_type_error(env, "NFQ_ARGS", "memory must be a Uint8Array over the whole shared WebAssembly memory");
    return NULL;
  }
  if (a[6] + ST_SIZE > size || (a[7] && a[7] + WAN_BITS / 8 > size)) {
    napi_throw_range_error(env, "NFQ_ARGS", "stats or WAN offsets outside the memory");
    return NULL;
  }
  int slot = -1;
  for (int k = 0; k < MAX_QUEUES; k++) {
    int i = (next_slot + k) % MAX_QUEUES;
    if (!open_flags[i]) {
      slot = i;
      next_slot = (i + 1) % MAX_QUEUES;
      break;
    }
  }
  if (slot < 0) {
    napi_throw_error(env, "NFQ_OPEN", "too many open queues");
    return NULL;
  }
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (fd < 0) return throw_errno(env, "netlink socket", errno);
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "netlink bind", e);
  }
  int rcvbuf = a[3] > SOCK_BUF_MIN ? (int)a[3] : SOCK_BUF_MIN;
  // FORCE needs CAP_NET_ADMIN, which binding a queue needs anyway; fall back to the capped one.
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  uint16_t queue = (uint16_t)a[0];
  struct nfqnl_msg_config_cmd cmd = {.command = NFQNL_CFG_CMD_BIND, .pf = 0};
  int err = config(fd, queue, NFQA_CFG_CMD, &cmd, sizeof cmd);
  if (err < 0) {
    close(fd);
    return throw_errno(env, "bind NFQUEUE", -err);
  }
  struct nfqnl_msg_config_params params = {.copy_range = htonl(a[1]), .copy_mode = NFQNL_COPY_PACKET};
  uint32_t maxlen = htonl(a[2]);
  if ((err = config(fd, queue, NFQA_CFG_PARAMS, &params, sizeof params)) < 0 ||
      (err = config(fd, queue, NFQA_CFG_QUEUE_MAXLEN, &maxlen, sizeof maxlen)) < 0 ||
      (err = config_flags(fd, queue, a[4], NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO)) < 0) {
    close(fd);
    return throw_errno(env, "configure NFQUEUE", -err);
  }
  queue_t *q = queues[slot] ? queues[slot] : calloc(1, sizeof(queue_t));
  if (!q) {
    close(fd);
    return throw_errno(env, "open", ENOMEM);
  }
  q->fd = fd;
  q->queue = queue;
  q->last_id = 0;
  q->got_any = 0;
  q->nslots = 0;  // a reused struct sets its receive headers up again
  q->base = data;
  q->size = size;
  q->stats = a[6];
  q->wan = a[7];
  q->mask = a[8];
  for (int i = 0; i < MARK_COUNT; i++) q->marks[i] = a[9 + i];
  // No reference is kept to the buffer: the host keeps the WebAssembly memory alive for as long
  // as any queue is open (it owns the memory; queues are closed before it goes), and a handle
  // must be closable from another thread (the watchdog), where this env's references are not.
  queues[slot] = q;
  open_flags[slot] = 1;
  return num(env, slot);
}

static const uint8_t *attr_data(const struct nlattr *a) { return (const uint8_t *)a + NLA_HDRLEN; }

/**
 * recv(handle, slotsOff, slotSize, nslots, descOff, metaOff, timeoutMs) -> n (>= 0) | -errno
 * Waits up to timeoutMs for the first packet, then takes whatever else is ready, up to nslots,
 * in one recvmmsg. Writes one descriptor (DESC_*) and one meta entry (META_*) per packet.
 */
static napi_value nq_recv(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  queue_t *q = handle(env, argv[0]);
  if (!q) return NULL;
  uint32_t slots, slot_size, nslots, desc, meta, timeout;
  if (!arg_u32(env, argv[1], &slots) || !arg_u32(env, argv[2], &slot_size) || !arg_u32(env, argv[3], &nslots) ||
      !arg_u32(env, argv[4], &desc) || !arg_u32(env, argv[5], &meta) || !arg_u32(env, argv[6], &timeout) ||
      nslots == 0 || nslots > MAX_BATCH || (uint64_t)slots + (uint64_t)slot_size * nslots > q->size ||
      (uint64_t)desc + (uint64_t)DESC_SIZE * nslots > q->size || (uint64_t)meta + (uint64_t)META_SIZE * nslots > q->size) {
    napi_throw_range_error(env, "NFQ_ARGS", "recv(): bad offsets or sizes");
    return NULL;
  }
  int fd = __atomic_load_n(&q->fd, __ATOMIC_SEQ_CST);
  if (fd < 0) return num(env, -EBADF);
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int ready = poll(&p, 1, (int)timeout);
  if (ready <= 0) return num(env, ready < 0 && errno != EINTR ? -errno : 0);
  // The receive headers depend only on the slot geometry, which a queue's worker never changes:
  // set them up once, not on every call (a batch of one packet would pay for all of them).
  if (slots != q->slots_off || slot_size != q->slot_size || nslots != q->nslots) {
    for (uint32_t i = 0; i < nslots; i++) {
      q->iov[i].iov_base = q->base + slots + (size_t)i * slot_size;
      q->iov[i].iov_len = slot_size;
      memset(&q->msgs[i].msg_hdr, 0, sizeof q->msgs[i].msg_hdr);
      q->msgs[i].msg_hdr.msg_iov = &q->iov[i];
      q->msgs[i].msg_hdr.msg_iovlen = 1;
    }
    q->slots_off = slots;
    q->slot_size = slot_size;
    q->nslots = nslots;
  }
  int got = recvmmsg(fd, q->msgs, nslots, MSG_DONTWAIT, NULL);
  if (got < 0) {
    int e = errno;
    // ENOBUFS: the kernel dropped messages because our buffer was full (with fail-open the
    // packets went through unseen). Counted, never fatal.
    if (e == ENOBUFS) (*stat(q, ST_ENOBUFS))++;
    else if (e != EAGAIN && e != EINTR) (*stat(q, ST_RECV_ERRORS))++;
    return num(env, (e == EAGAIN || e == EINTR || e == ENOBUFS) ? 0 : -e);
  }
  uint32_t n = 0;
  const uint8_t *wan = q->wan ? q->base + q->wan : NULL;
  for (int m = 0; m < got; m++) {
    const uint8_t *buf = q->iov[m].iov_base;
    size_t len = q->msgs[m].msg_len;
    const struct nlmsghdr *h = (const struct nlmsghdr *)buf;
    if (len < NLMSG_HDRLEN + sizeof(struct nfgenmsg) || h->nlmsg_len > len ||
        h->nlmsg_type != ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET)) {
      (*stat(q, ST_SKIPPED))++;
      continue;
    }
    uint32_t id = 0, mark = 0, indev = 0;
    uint8_t hook = NF_INET_FORWARD;
    const uint8_t *payload = NULL, *mac = NULL;
    uint32_t plen = 0;
    int has_id = 0;
    size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg));
    while (off + NLA_HDRLEN <= h->nlmsg_len) {
      const struct nlattr *a = (const struct nlattr *)(buf + off);
      if (a->nla_len < NLA_HDRLEN || off + a->nla_len > h->nlmsg_len) break;
      uint16_t alen = a->nla_len - NLA_HDRLEN;
      switch (a->nla_type & NLA_TYPE_MASK) {
        case NFQA_PACKET_HDR:
          if (alen >= sizeof(struct nfqnl_msg_packet_hdr)) {
            id = ntohl(((const struct nfqnl_msg_packet_hdr *)attr_data(a))->packet_id);
            hook = ((const struct nfqnl_msg_packet_hdr *)attr_data(a))->hook;
            has_id = 1;
          }
          break;
        case NFQA_MARK:
          if (alen >= 4) mark = ntohl(*(const uint32_t *)attr_data(a));
          break;
        case NFQA_IFINDEX_INDEV:
          if (alen >= 4) indev = ntohl(*(const uint32_t *)attr_data(a));
          break;
        case NFQA_HWADDR:
          if (alen >= sizeof(struct nfqnl_msg_packet_hw) &&
              ntohs(((const struct nfqnl_msg_packet_hw *)attr_data(a))->hw_addrlen) == 6)
            mac = ((const struct nfqnl_msg_packet_hw *)attr_data(a))->hw_addr;
          break;
        case NFQA_PAYLOAD:
          payload = attr_data(a);
          plen = alen;
          break;
      }
      off += NLA_ALIGN(a->nla_len);
    }
    if (!has_id) {
      (*stat(q, ST_SKIPPED))++;
      continue;
    }
    uint8_t *d = q->base + desc + (size_t)n * DESC_SIZE;
    uint16_t flags = 0;
    if (mac) {
      memcpy(d + DESC_MAC, mac, 6);
      flags |= DF_HAS_MAC;
    }
    // Which side is remote: on INPUT always the source, on OUTPUT always the destination; on
    // FORWARD the source when the packet came in on a WAN interface (the first packet of an
    // inbound connection, or a reply to an outbound one).
    if (hook == NF_INET_LOCAL_IN) flags |= DF_INBOUND;
    else if (hook == NF_INET_FORWARD && wan && indev < WAN_BITS && (wan[indev >> 3] >> (indev & 7)) & 1) flags |= DF_INBOUND;
    uint32_t poff = payload ? (uint32_t)(payload - q->base) : 0;
    uint16_t l16 = plen > 0xffff ? 0xffff : (uint16_t)plen;
    memcpy(d + DESC_OFF, &poff, 4);
    memcpy(d + DESC_LEN, &l16, 2);
    memcpy(d + DESC_FLAGS, &flags, 2);
    uint8_t *mt = q->base + meta + (size_t)n * META_SIZE;
    q->last_id = id;
    q->got_any = 1;
    memcpy(mt + META_ID, &id, 4);
    memcpy(mt + META_MARK, &mark, 4);
    n++;
  }
  (*stat(q, ST_RECEIVED)) += n;
  (*stat(q, ST_BATCHES))++;
  return num(env, n);
}

/** The mark a packet leaves with: its verdict's mark in our bits, the arrival mark elsewhere. */
static uint32_t final_mark(const queue_t *q, const uint8_t *r, const uint8_t *mt) {
  uint32_t orig, rflags;
  memcpy(&orig, mt + META_MARK, 4);
  memcpy(&rflags, r + RES_FLAGS, 4);
  int which;
  switch (r[RES_VERDICT]) {
    case VERDICT_ACCEPT: which = (rflags & PF_PROVISIONAL) ? MARK_ONCE : MARK_ACCEPT; break;
    case VERDICT_BLOCK: which = MARK_BLOCK; break;
    case VERDICT_DROP: which = MARK_DROP; break;
    default: which = MARK_ONCE; break;  // undecided: let this packet pass, ask again next time
  }
  return (orig & ~q->mask) | (q->marks[which] & q->mask);
}

/**
 * verdict(handle, metaOff, resultsOff, n) -> 0 | -errno
 * Every packet is accepted with a mark naming the connection's verdict (the filter table
 * enforces it and saves it to the connmark), keeping the mark bits outside the mask. Runs of
 * packets with the same final mark go out as one NFQNL_MSG_VERDICT_BATCH; ids only grow and
 * every earlier packet already has its verdict, so a batch never covers a packet it should not.
 */
static napi_value nq_verdict(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  queue_t *q = handle(env, argv[0]);
  if (!q) return NULL;
  uint32_t meta, results, n;
  if (!arg_u32(env, argv[1], &meta) || !arg_u32(env, argv[2], &results) || !arg_u32(env, argv[3], &n) ||
      n > MAX_BATCH || (uint64_t)meta + (uint64_t)META_SIZE * n > q->size ||
      (uint64_t)results + (uint64_t)RES_SIZE * n > q->size) {
    napi_throw_range_error(env, "NFQ_ARGS", "verdict(): bad offsets or count");
    return NULL;
  }
  // One buffer per thread: every worker sends its own verdicts.
  static __thread uint8_t buf[MAX_BATCH * VERDICT_MSG_SPACE];
  size_t off = 0;
  uint32_t msgs = 0;
  uint32_t run_start = 0;
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t *mt = q->base + meta + (size_t)i * META_SIZE;
    uint32_t mark = final_mark(q, q->base + results + (size_t)i * RES_SIZE, mt);
    // Extend the run while the next packet ends up with the same mark.
    if (i + 1 < n && final_mark(q, q->base + results + (size_t)(i + 1) * RES_SIZE, mt + META_SIZE) == mark) continue;
    // The run [run_start, i] shares one mark. The batch form covers every queued id up to this
    // packet's; all earlier packets already have their verdicts (ids only grow, and verdicts go
    // out in order), so it names exactly this run. A run of one uses the plain form.
    uint32_t id;
    memcpy(&id, mt + META_ID, 4);
    size_t start = off;
    off = put_header(buf, off, i > run_start ? NFQNL_MSG_VERDICT_BATCH : NFQNL_MSG_VERDICT, 0, q->queue);
    struct nfqnl_msg_verdict_hdr vh = {.verdict = htonl(NF_ACCEPT), .id = htonl(id)};
    off = put_attr(buf, off, NFQA_VERDICT_HDR, &vh, sizeof vh);
    uint32_t m = htonl(mark);
    off = put_attr(buf, off, NFQA_MARK, &m, sizeof m);
    finish(buf, start, off);
    msgs++;
    run_start = i + 1;
  }
  int fd = __atomic_load_n(&q->fd, __ATOMIC_SEQ_CST);
  if (off == 0) return num(env, 0);
  if (fd < 0) return num(env, -EBADF);
  if (send(fd, buf, off, 0) < 0) {
    int e = errno;
    (*stat(q, ST_SEND_ERRORS))++;
    return num(env, -e);
  }
  (*stat(q, ST_VERDICT_MSGS)) += msgs;
  return num(env, 0);
}

/** Ids compare in serial arithmetic; this reach past the newest id covers all that can be queued. */
#define ID_REACH 0x7fff0000u

/**
 * close(handle, defaultVerdict): gives every packet still waiting in the queue the default
 * verdict (VERDICT_ACCEPT: pass once, unmarked; anything else: drop) in one batch verdict, then
 * closes the socket, which unbinds the queue. Safe to call from another thread than the owner.
 */
static napi_value nq_close(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t h, def = VERDICT_ACCEPT;
  if (!arg_u32(env, argv[0], &h) || h >= MAX_QUEUES || !queues[h] || !open_flags[h]) return num(env, 0);
  if (argc > 1) arg_u32(env, argv[1], &def);
  queue_t *q = queues[h];
  open_flags[h] = 0;
  int fd = __atomic_exchange_n(&q->fd, -1, __ATOMIC_SEQ_CST);
  if (fd < 0) return num(env, 0);
  // Without this the kernel drops whatever is still queued when the socket goes.
  uint8_t buf[128];
  size_t off = put_header(buf, 0, NFQNL_MSG_VERDICT_BATCH, 0, q->queue);
  struct nfqnl_msg_verdict_hdr vh = {
      .verdict = htonl(def == VERDICT_ACCEPT ? NF_ACCEPT : NF_DROP),
      .id = htonl(q->last_id + ID_REACH),
  };
  off = put_attr(buf, off, NFQA_VERDICT_HDR, &vh, sizeof vh);
  finish(buf, 0, off);
  send(fd, buf, off, 0);
  close(fd);
  return num(env, 0);
}

/** layout() -> the offsets this file was compiled with, for the agreement test. */
static napi_value nq_layout(napi_env env, napi_callback_info info) {
  (void)info;
  const double v[] = {DESC_OFF, DESC_LEN, DESC_FLAGS, DESC_MAC, DESC_SIZE, DF_INBOUND, DF_HAS_MAC, RES_VERDICT,
                      RES_FLAGS, RES_SIZE, VERDICT_ACCEPT, VERDICT_BLOCK, VERDICT_DROP, PF_PROVISIONAL};
  napi_value arr;
  CHECK(napi_create_array_with_length(env, sizeof v / sizeof v[0], &arr));
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) CHECK(napi_set_element(env, arr, (uint32_t)i, num(env, v[i])));
  return arr;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, nq_open, NULL, NULL, NULL, napi_default, NULL},
      {"recv", NULL, nq_recv, NULL, NULL, NULL, napi_default, NULL},
      {"verdict", NULL, nq_verdict, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, nq_close, NULL, NULL, NULL, napi_default, NULL},
      {"layout", NULL, nq_layout, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
