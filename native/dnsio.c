// UDP for the DNS server, batched, as a Node-API addon. Node's dgram hands JavaScript one
// Buffer and one event per datagram; at the query rates a LAN resolver must survive that
// per-datagram cost dominates. Here a readable socket wakes JavaScript once (libuv poll on
// Node's own loop), which then drains it with recvmmsg into one buffer it owns and answers
// with sendmmsg from another. The boundary carries numbers only: buffers are named per call
// and every datagram is described by a row of int32s (META_*), never an object.

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

// One row of int32 per datagram, shared with src/dns/udp.ts (META_*).
#define META_LEN 0     // payload bytes
#define META_FAMILY 1  // 4 or 6
#define META_PORT 2
#define META_ADDR 3    // 4 words: IPv4 in word 0 (host order), IPv6 as four host-order words
#define META_FLAGS 7   // MF_TRUNCATED when the datagram did not fit its slot
#define META_INTS 8
#define MF_TRUNCATED 1

// Most datagrams one call moves; the JS side never asks for more.
#define MAX_BATCH 256
#define MAX_SOCKS 64

typedef struct {
  int fd;
  int family;
  int used;
  int watching;
  int closing;  // uv_close pending: the slot is not free and the handle no longer valid
  uv_poll_t poll;
  napi_env env;
  napi_ref cb;
  napi_async_context ctx;
} sock_t;

// Sockets belong to the thread that opened them (the resolver runs on one loop); the scratch
// arrays are per thread so a second thread using the addon cannot trample them.
static sock_t socks[MAX_SOCKS];
static __thread struct mmsghdr msgs[MAX_BATCH];
static __thread struct iovec iovs[MAX_BATCH];
static __thread struct sockaddr_in6 addrs[MAX_BATCH];

static napi_value num(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value code, text, error;
  napi_create_string_utf8(env, "DNSIO", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
  napi_create_error(env, code, text, &error);
  napi_value e;
  napi_create_int32(env, err, &e);
  napi_set_named_property(env, error, "errno", e);
  napi_throw(env, error);
  return NULL;
}

static int get_i32(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

static sock_t *get_sock(napi_env env, napi_value v) {
  int32_t h;
  if (!get_i32(env, v, &h) || h < 0 || h >= MAX_SOCKS || !socks[h].used || socks[h].closing) {
    napi_throw_range_error(env, NULL, "dnsio: bad socket handle");
    return NULL;
  }
  return &socks[h];
}

// A typed array of the wanted kind: its data and element count (bytes for Uint8Array); throws a
// TypeError naming `what` otherwise.
static int get_typed(napi_env env, napi_value v, napi_typedarray_type want, const char *what, void **data, size_t *len) {
  napi_typedarray_type t;
  if (napi_get_typedarray_info(env, v, &t, len, data, NULL, NULL) != napi_ok || t != want) {
    char msg[64];
    snprintf(msg, sizeof msg, "dnsio: expected %s", what);
    napi_throw_type_error(env, NULL, msg);
    return 0;
  }
  return 1;
}

// open(address, port, bufferBytes) -> handle
static napi_value d_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char text[INET6_ADDRSTRLEN + 1];
  size_t tl;
  int32_t port, bufsize;
  if (argc < 3 || napi_get_value_string_utf8(env, argv[0], text, sizeof text, &tl) != napi_ok ||
      !get_i32(env, argv[1], &port) || !get_i32(env, argv[2], &bufsize) || port < 0 || port > 65535) {
    napi_throw_type_error(env, NULL, "dnsio.open(address, port, bufferBytes)");
    return NULL;
  }
  int h = -1;
  for (int i = 0; i < MAX_SOCKS; i++)
    if (!socks[i].used) { h = i; break; }
  if (h < 0) return throw_errno(env, "dnsio.open", EMFILE);

  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t sl;
  int family;
  struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, text, &a4->sin_addr) == 1) {
    family = AF_INET;
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    sl = sizeof *a4;
  } else if (inet_pton(AF_INET6, text, &a6->sin6_addr) == 1) {
    family = AF_INET6;
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    sl = sizeof *a6;
  } else {
    napi_throw_type_error(env, NULL, "dnsio.open: not an IP address");
    return NULL;
  }
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  // No SO_REUSEADDR: on UDP it would let a second server bind the same address and port and
  // take a share of the queries; a port in use must fail loudly instead.
  int one = 1;
  if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bufsize > 0) {
    // FORCE passes rmem_max/wmem_max when we are root; the plain option is the fallback.
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsize, sizeof bufsize) < 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsize, sizeof bufsize) < 0)
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof bufsize);
  }
  if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
    int e = errno;
    close(fd);
    char what[96];
    snprintf(what, sizeof what, "bind %s port %d", text, port);
    return throw_errno(env, what, e);
  }
  sock_t *s = &socks[h];
  memset(s, 0, sizeof *s);
  s->fd = fd;
  s->family = family;
  s->used = 1;
  s->env = env;
  return num(env, h);
}

// port(handle) -> the bound port (useful after binding port 0)
static napi_value d_port(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  struct sockaddr_in6 a;
  socklen_t l = sizeof a;
  if (getsockname(s->fd, (struct sockaddr *)&a, &l) < 0) return throw_errno(env, "getsockname", errno);
  return num(env, ntohs(a.sin6_port));  // sin_port and sin6_port sit at the same offset
}

static void on_readable(uv_poll_t *p, int status, int events) {
  (void)events;
  sock_t *s = p->data;
  if (!s->watching) return;
  napi_env env = s->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value cb, recv, result, arg;
  napi_get_reference_value(env, s->cb, &cb);
  napi_get_global(env, &recv);
  napi_create_int32(env, status, &arg);
  if (napi_make_callback(env, s->ctx, recv, cb, 1, &arg, &result) == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
  napi_close_handle_scope(env, scope);
}

// watch(handle, callback): callback(status) runs on the loop whenever the socket is readable.
static napi_value d_watch(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  if (s->watching) {
    napi_throw_error(env, NULL, "dnsio.watch: already watching");
    return NULL;
  }
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  napi_create_reference(env, argv[1], 1, &s->cb);
  napi_value name, res;
  napi_create_string_utf8(env, "sluice.dnsio", NAPI_AUTO_LENGTH, &name);
  napi_create_object(env, &res);
  napi_async_init(env, res, name, &s->ctx);
  uv_poll_init(loop, &s->poll, s->fd);
  s->poll.data = s;
  s->watching = 1;
  uv_poll_start(&s->poll, UV_READABLE, on_readable);
  return NULL;
}

static void fill_meta(int32_t *m, const struct sockaddr_in6 *a, unsigned len, int truncated) {
  m[META_LEN] = (int32_t)len;
  m[META_FLAGS] = truncated ? MF_TRUNCATED : 0;
  if (a->sin6_family == AF_INET) {
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)a;
    m[META_FAMILY] = 4;
    m[META_PORT] = ntohs(a4->sin_port);
    m[META_ADDR] = (int32_t)ntohl(a4->sin_addr.s_addr);
    m[META_ADDR + 1] = m[META_ADDR + 2] = m[META_ADDR + 3] = 0;
  } else {
    m[META_FAMILY] = 6;
    m[META_PORT] = ntohs(a->sin6_port);
    uint32_t w[4];
    memcpy(w, &a->sin6_addr, 16);
    for (int i = 0; i < 4; i++) m[META_ADDR + i] = (int32_t)ntohl(w[i]);
  }
}

// The arguments recv and send share: (handle, buf, slot, count, meta), checked so that `count`
// slots of `slot` bytes and `count` meta rows fit the buffers. Returns 0 after throwing.
typedef struct {
  sock_t *s;
  uint8_t *buf;
  int32_t *meta;
  int32_t slot;
  int32_t count;
} io_args;

static int get_io_args(napi_env env, napi_callback_info info, const char *what, io_args *a) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  size_t blen, mlen;
  if (argc < 5) {
    napi_throw_type_error(env, NULL, "dnsio: expected (handle, buf, slot, count, meta)");
    return 0;
  }
  a->s = get_sock(env, argv[0]);
  if (!a->s || !get_typed(env, argv[1], napi_uint8_array, "a Uint8Array", (void **)&a->buf, &blen) || !get_i32(env, argv[2], &a->slot) ||
      !get_i32(env, argv[3], &a->count) || !get_typed(env, argv[4], napi_int32_array, "an Int32Array", (void **)&a->meta, &mlen))
    return 0;
  if (a->count > MAX_BATCH) a->count = MAX_BATCH;
  if (a->count < 0) a->count = 0;
  if (a->slot <= 0 || (size_t)a->slot * a->count > blen || (size_t)a->count * META_INTS > mlen) {
    char msg[96];
    snprintf(msg, sizeof msg, "dnsio.%s: buffers too small for slot x count", what);
    napi_throw_range_error(env, NULL, msg);
    return 0;
  }
  return 1;
}

// recv(handle, buf, slot, max, meta) -> datagrams received (0: none waiting), or -errno
static napi_value d_recv(napi_env env, napi_callback_info info) {
  io_args a;
  if (!get_io_args(env, info, "recv", &a)) return NULL;
  sock_t *s = a.s;
  uint8_t *buf = a.buf;
  int32_t *meta = a.meta, slot = a.slot, max = a.count;
  if (max == 0) return num(env, 0);
  for (int i = 0; i < max; i++) {
    iovs[i].iov_base = buf + (size_t)i * slot;
    iovs[i].iov_len = slot;
    memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
    msgs[i].msg_hdr.msg_iov = &iovs[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &addrs[i];
    msgs[i].msg_hdr.msg_namelen = sizeof addrs[i];
  }
  int n = recvmmsg(s->fd, msgs, max, MSG_DONTWAIT, NULL);
  if (n < 0) return num(env, (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -errno);
  for (int i = 0; i < n; i++) fill_meta(meta + i * META_INTS, &addrs[i], msgs[i].msg_len, msgs[i].msg_hdr.msg_flags & MSG_TRUNC);
  return num(env, n);
}

// send(handle, buf, slot, n, meta) -> datagrams sent, or -errno if none could be
static napi_value d_send(napi_env env, napi_callback_info info) {
  io_args a;
  if (!get_io_args(env, info, "send", &a)) return NULL;
  sock_t *s = a.s;
  uint8_t *buf = a.buf;
  int32_t *meta = a.meta, slot = a.slot, n = a.count;
  if (n == 0) return num(env, 0);
  int k = 0;
  for (int i = 0; i < n; i++) {
    int32_t *m = meta + i * META_INTS;
    if (m[META_LEN] <= 0 || m[META_LEN] > slot) continue;  // the JS side skipped this one
    memset(&addrs[k], 0, sizeof addrs[k]);
    socklen_t al;
    if (m[META_FAMILY] == 4) {
      if (s->family != AF_INET) continue;
      struct sockaddr_in *a4 = (struct sockaddr_in *)&addrs[k];
      a4->sin_family = AF_INET;
      a4->sin_port = htons((uint16_t)m[META_PORT]);
      a4->sin_addr.s_addr = htonl((uint32_t)m[META_ADDR]);
      al = sizeof *a4;
    } else {
      if (s->family != AF_INET6) continue;
      addrs[k].sin6_family = AF_INET6;
      addrs[k].sin6_port = htons((uint16_t)m[META_PORT]);
      uint32_t w[4];
      for (int j = 0; j < 4; j++) w[j] = htonl((uint32_t)m[META_ADDR + j]);
      memcpy(&addrs[k].sin6_addr, w, 16);
      al = sizeof addrs[k];
    }
    iovs[k].iov_base = buf + (size_t)i * slot;
    iovs[k].iov_len = m[META_LEN];
    memset(&msgs[k].msg_hdr, 0, sizeof msgs[k].msg_hdr);
    msgs[k].msg_hdr.msg_iov = &iovs[k];
    msgs[k].msg_hdr.msg_iovlen = 1;
    msgs[k].msg_hdr.msg_name = &addrs[k];
    msgs[k].msg_hdr.msg_namelen = al;
    k++;
  }
  // sendmmsg stops at the first datagram that fails. One bad destination (port 0, a route
  // gone, a firewall EPERM) must not cost the replies behind it: skip it and go on. A full
  // send buffer (EAGAIN, ENOBUFS) would fail the rest as well: stop there (UDP may drop).
  int sent = 0, done = 0, lastErr = 0;
  while (done < k) {
    int r = sendmmsg(s->fd, msgs + done, k - done, MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EINTR) continue;
      lastErr = errno;
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) break;
      done++;  // this one cannot be sent; the rest may
      continue;
    }
    if (r == 0) break;
    sent += r;
    done += r;
  }
  return num(env, sent == 0 && lastErr != 0 ? -lastErr : sent);
}

static void on_closed(uv_handle_t *h) {
  sock_t *s = h->data;
  close(s->fd);
  s->closing = 0;
  s->used = 0;  // only now may open() reuse the slot: libuv is done with its poll handle
}

// close(handle)
static napi_value d_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  sock_t *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  if (s->watching) {
    s->watching = 0;
    s->closing = 1;
    uv_poll_stop(&s->poll);
    napi_delete_reference(env, s->cb);
    napi_async_destroy(env, s->ctx);
    uv_close((uv_handle_t *)&s->poll, on_closed);  // the fd is closed once libuv lets go of it
  } else {
    close(s->fd);
    s->used = 0;
  }
  return NULL;
}

static napi_value d_layout(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value arr;
  napi_create_array(env, &arr);
  int v[] = {META_LEN, META_FAMILY, META_PORT, META_ADDR, META_FLAGS, META_INTS, MF_TRUNCATED, MAX_BATCH};
  for (unsigned i = 0; i < sizeof v / sizeof v[0]; i++) napi_set_element(env, arr, i, num(env, v[i]));
  return arr;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor p[] = {
      {"open", 0, d_open, 0, 0, 0, napi_default, 0},
      {"port", 0, d_port, 0, 0, 0, napi_default, 0},
      {"watch", 0, d_watch, 0, 0, 0, napi_default, 0},
      {"recv", 0, d_recv, 0, 0, 0, napi_default, 0},
      {"send", 0, d_send, 0, 0, 0, napi_default, 0},
      {"close", 0, d_close, 0, 0, 0, napi_default, 0},
      {"layout", 0, d_layout, 0, 0, 0, napi_default, 0},
  };
  napi_define_properties(env, exports, sizeof p / sizeof p[0], p);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
