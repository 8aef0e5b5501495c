/*
 * AF_VSOCK for Node.js: thin N-API wrappers over the socket calls, plus a libuv poll watcher.
 *
 * Design: every socket is non-blocking and close-on-exec. Nothing here ever waits. The
 * JavaScript side (src/service/vsock) asks `watch(fd, writable, cb)` to be told when a
 * listening fd is readable (then calls accept() until it answers null) or a connecting fd is
 * writable (then reads connectResult()). The watcher is a uv_poll_t on Node's own event loop,
 * so the loop stays free and no thread is involved. Connected fds are then handed to libuv as
 * stream handles by the JavaScript side, as before.
 *
 * Errors are thrown as JS errors whose `code` is the errno name (EAFNOSUPPORT, ...).
 *
 * The same addon carries the kernel's vTPM proxy (/dev/vtpmx): vtpmNewDev() makes a TPM device
 * pair and returns the proxy fd; read()/write() move whole frames on it. The kernel's proxy fd
 * ignores O_NONBLOCK on read, so JavaScript reads only after watch() said readable (one reader,
 * so the command is there and read() returns at once); a write never waits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#if defined(__has_include) && __has_include(<linux/vm_sockets.h>)
#include <linux/vm_sockets.h>
#else
/* musl cross builds have no kernel headers on their path: the kernel ABI, as in linux/vm_sockets.h. */
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#define VMADDR_CID_ANY 0xFFFFFFFFu
struct sockaddr_vm {
  sa_family_t svm_family;
  unsigned short svm_reserved1;
  unsigned int svm_port;
  unsigned int svm_cid;
  unsigned char svm_flags;
  unsigned char svm_zero[3];
};
#endif
_Static_assert(sizeof(struct sockaddr_vm) == sizeof(struct sockaddr), "sockaddr_vm must be 16 bytes");
#if defined(__has_include) && __has_include(<linux/vtpm_proxy.h>)
#include <linux/vtpm_proxy.h>
#else
/* The kernel ABI, as in linux/vtpm_proxy.h (musl cross builds have no kernel headers). */
struct vtpm_proxy_new_dev {
  uint32_t flags;
  uint32_t tpm_num;
  uint32_t fd;
  uint32_t major;
  uint32_t minor;
};
#define VTPM_PROXY_FLAG_TPM2 1
#define VTPM_PROXY_IOC_NEW_DEV _IOWR(0xa1, 0x00, struct vtpm_proxy_new_dev)
#endif
_Static_assert(sizeof(struct vtpm_proxy_new_dev) == 20, "vtpm_proxy_new_dev must be 20 bytes");
#include <node_api.h>
#include <uv.h>

#define CALL(env, expr)                                  \
  do {                                                   \
    if ((expr) != napi_ok) {                             \
      throw_status(env, #expr);                          \
      return NULL;                                       \
    }                                                    \
  } while (0)

static void throw_status(napi_env env, const char *what) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, "EINVAL", what);
}

/* A JS Error with code = errno name, message "<call>: <strerror> (<name>)". */
static napi_value throw_errno(napi_env env, const char *call, int err) {
  char msg[160];
  const char *name = uv_err_name(-err);
  snprintf(msg, sizeof msg, "%s: %s (%s)", call, uv_strerror(-err), name);
  napi_throw_error(env, name, msg);
  return NULL;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, "EINVAL", "missing argument");
    return -1;
  }
  return 0;
}

static int get_u32(napi_env env, napi_value v, uint32_t *out) {
  if (napi_get_value_uint32(env, v, out) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "expected an unsigned 32-bit number");
    return -1;
  }
  return 0;
}

static int get_fd(napi_env env, napi_value v, int *out) {
  int32_t fd;
  if (napi_get_value_int32(env, v, &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "EBADF", "expected a file descriptor");
    return -1;
  }
  *out = fd;
  return 0;
}

static napi_value u32(napi_env env, uint32_t n) {
  napi_value v;
  napi_create_uint32(env, n, &v);
  return v;
}

/* { cid, port } (plus fd when fd >= 0). */
static napi_value addr_object(napi_env env, const struct sockaddr_vm *sa, int fd) {
  napi_value o;
  napi_create_object(env, &o);
  if (fd >= 0) napi_set_named_property(env, o, "fd", u32(env, (uint32_t)fd));
  napi_set_named_property(env, o, "cid", u32(env, sa->svm_cid));
  napi_set_named_property(env, o, "port", u32(env, sa->svm_port));
  return o;
}

static void fill_addr(struct sockaddr_vm *sa, uint32_t cid, uint32_t port) {
  memset(sa, 0, sizeof *sa);
  sa->svm_family = AF_VSOCK;
  sa->svm_cid = cid;
  sa->svm_port = port;
}

/* socket() -> fd */
static napi_value js_socket(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  return u32(env, (uint32_t)fd);
}

/* bind(fd, cid, port) */
static napi_value js_bind(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  uint32_t cid, port;
  if (get_args(env, info, 3, argv) || get_fd(env, argv[0], &fd) || get_u32(env, argv[1], &cid) || get_u32(env, argv[2], &port)) return NULL;
  struct sockaddr_vm sa;
  fill_addr(&sa, cid, port);
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) return throw_errno(env, "bind", errno);
  return NULL;
}

/* listen(fd, backlog) */
static napi_value js_listen(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  uint32_t backlog;
  if (get_args(env, info, 2, argv) || get_fd(env, argv[0], &fd) || get_u32(env, argv[1], &backlog)) return NULL;
  if (listen(fd, (int)(backlog > 4096 ? 4096 : backlog)) < 0) return throw_errno(env, "listen", errno);
  return NULL;
}

/* accept(fd) -> { fd, cid, port } of the new connection, or null when none is waiting. */
static napi_value js_accept(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (get_args(env, info, 1, argv) || get_fd(env, argv[0], &fd)) return NULL;
  struct sockaddr_vm sa;
  for (;;) {
    socklen_t len = sizeof sa;
    memset(&sa, 0, sizeof sa);
    int c = accept4(fd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c >= 0) {
      if (len < sizeof sa || sa.svm_family != AF_VSOCK) {
        /* No usable peer address: never hand out a connection we cannot attribute. */
        close(c);
        return throw_errno(env, "accept (no vsock peer address)", EPROTO);
      }
      return addr_object(env, &sa, c);
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      napi_value n;
      napi_get_null(env, &n);
      return n;
    }
    return throw_errno(env, "accept", errno);
  }
}

/* connect(fd, cid, port) -> true when connected at once, false when in progress. */
static napi_value js_connect(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  uint32_t cid, port;
  if (get_args(env, info, 3, argv) || get_fd(env, argv[0], &fd) || get_u32(env, argv[1], &cid) || get_u32(env, argv[2], &port)) return NULL;
  struct sockaddr_vm sa;
  fill_addr(&sa, cid, port);
  int rc;
  do rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  while (rc < 0 && errno == EINTR);
  napi_value b;
  if (rc == 0) {
    napi_get_boolean(env, true, &b);
    return b;
  }
  if (errno == EINPROGRESS) {
    napi_get_boolean(env, false, &b);
    return b;
  }
  return throw_errno(env, "connect", errno);
}

/* connectResult(fd): throws the errno of a finished non-blocking connect, if it failed. */
static napi_value js_connect_result(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd, err = 0;
  socklen_t len = sizeof err;
  if (get_args(env, info, 1, argv) || get_fd(env, argv[0], &fd)) return NULL;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return throw_errno(env, "getsockopt", errno);
  if (err) return throw_errno(env, "connect", err);
  return NULL;
}

static napi_value name_of(napi_env env, napi_callback_info info, int peer) {
  napi_value argv[1];
  int fd;
  if (get_args(env, info, 1, argv) || get_fd(env, argv[0], &fd)) return NULL;
  struct sockaddr_vm sa;
  socklen_t len = sizeof sa;
  memset(&sa, 0, sizeof sa);
  int rc = peer ? getpeername(fd, (struct sockaddr *)&sa, &len) : getsockname(fd, (struct sockaddr *)&sa, &len);
  if (rc < 0) return throw_errno(env, peer ? "getpeername" : "getsockname", errno);
  if (sa.svm_family != AF_VSOCK) return throw_errno(env, peer ? "getpeername" : "getsockname", EAFNOSUPPORT);
  return addr_object(env, &sa, -1);
}

static napi_value js_getsockname(napi_env env, napi_callback_info info) { return name_of(env, info, 0); }
static napi_value js_getpeername(napi_env env, napi_callback_info info) { return name_of(env, info, 1); }

/* close(fd) */
static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int fd;
  if (get_args(env, info, 1, argv) || get_fd(env, argv[0], &fd)) return NULL;
  /* Linux releases the fd even when close() reports EINTR: never retry. */
  if (close(fd) < 0 && errno != EINTR) return throw_errno(env, "close", errno);
  return NULL;
}

/* ---- the vTPM proxy and frame I/O on its fd ---- */

/* vtpmNewDev(controlPath) -> { fd, tpmNum, major, minor }: a new TPM 2.0 device pair (/dev/tpmN,
 * /dev/tpmrmN) whose commands are read from fd (non-blocking, close-on-exec). */
static napi_value js_vtpm_new_dev(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char path[256];
  size_t len;
  if (get_args(env, info, 1, argv)) return NULL;
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok || len == 0 || len >= sizeof path - 1) {
    napi_throw_type_error(env, "EINVAL", "expected the control device's path");
    return NULL;
  }
  int ctl = open(path, O_RDWR | O_CLOEXEC);
  if (ctl < 0) return throw_errno(env, "open", errno);
  struct vtpm_proxy_new_dev nd;
  memset(&nd, 0, sizeof nd);
  nd.flags = VTPM_PROXY_FLAG_TPM2;
  int rc = ioctl(ctl, VTPM_PROXY_IOC_NEW_DEV, &nd);
  int err = errno;
  close(ctl); /* the new device lives as long as its proxy fd, not the control fd */
  if (rc < 0) return throw_errno(env, "ioctl VTPM_PROXY_IOC_NEW_DEV", err);
  int fd = (int)nd.fd;
  /* The kernel installs the fd without close-on-exec: a child must not keep the device alive. */
  int fl = fcntl(fd, F_GETFL);
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    err = errno;
    close(fd);
    return throw_errno(env, "fcntl", err);
  }
  napi_value o;
  napi_create_object(env, &o);
  napi_set_named_property(env, o, "fd", u32(env, nd.fd));
  napi_set_named_property(env, o, "tpmNum", u32(env, nd.tpm_num));
  napi_set_named_property(env, o, "major", u32(env, nd.major));
  napi_set_named_property(env, o, "minor", u32(env, nd.minor));
  return o;
}

static int get_bytes(napi_env env, napi_value v, void **data, size_t *len) {
  napi_typedarray_type type;
  if (napi_get_typedarray_info(env, v, &type, len, data, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, "EINVAL", "expected a Uint8Array");
    return -1;
  }
  return 0;
}

/* read(fd, bytes) -> bytes read (0 at end of file), or null when nothing is ready (EAGAIN). */
static napi_value js_read(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  void *data;
  size_t len;
  if (get_args(env, info, 2, argv) || get_fd(env, argv[0], &fd) || get_bytes(env, argv[1], &data, &len)) return NULL;
  ssize_t n;
  do n = read(fd, data, len);
  while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    napi_value nul;
    napi_get_null(env, &nul);
    return nul;
  }
  if (n < 0) return throw_errno(env, "read", errno);
  return u32(env, (uint32_t)n);
}

/* write(fd, bytes) -> bytes written (one call: the proxy takes one whole response per write). */
static napi_value js_write(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int fd;
  void *data;
  size_t len;
  if (get_args(env, info, 2, argv) || get_fd(env, argv[0], &fd) || get_bytes(env, argv[1], &data, &len)) return NULL;
  ssize_t n;
  do n = write(fd, data, len);
  while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, "write", errno);
  return u32(env, (uint32_t)n);
}

/* ---- watch: a uv_poll_t calling back into JS on readiness ---- */

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref cb;
  napi_async_context ctx;
  int stopped;
} watch_t;

/* The JS references go only once libuv has closed the handle: unwatch() may be called from inside
 * this watcher's own callback, and its async context must outlive that callback. */
static void on_poll_closed(uv_handle_t *h) {
  watch_t *w = h->data;
  if (w->cb) napi_delete_reference(w->env, w->cb);
  if (w->ctx) napi_async_destroy(w->env, w->ctx);
  free(w);
}

static void on_poll(uv_poll_t *p, int status, int events) {
  (void)events;
  watch_t *w = p->data;
  if (w->stopped) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, arg, result;
  napi_get_reference_value(env, w->cb, &cb);
  napi_get_global(env, &recv); /* make_callback needs an object as `this` */
  napi_create_int32(env, status, &arg);
  /* make_callback: runs the microtasks after, and routes a throw to 'uncaughtException'. */
  napi_make_callback(env, w->ctx, recv, cb, 1, &arg, &result);
  napi_close_handle_scope(env, scope);
}

/* watch(fd, writable, cb(status)) -> handle; cb gets 0 (ready) or a negative libuv error. */
static napi_value js_watch(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int fd;
  bool writable;
  if (get_args(env, info, 3, argv) || get_fd(env, argv[0], &fd)) return NULL;
  CALL(env, napi_get_value_bool(env, argv[1], &writable));
  uv_loop_t *loop;
  CALL(env, napi_get_uv_event_loop(env, &loop));
  watch_t *w = calloc(1, sizeof *w);
  if (!w) return throw_errno(env, "watch", ENOMEM);
  w->env = env;
  int rc = uv_poll_init(loop, &w->poll, fd);
  if (rc < 0) {
    free(w);
    return throw_errno(env, "uv_poll_init", -rc);
  }
  w->poll.data = w;
  napi_value name;
  napi_create_string_utf8(env, "VSOCKWATCH", NAPI_AUTO_LENGTH, &name);
  if (napi_create_reference(env, argv[2], 1, &w->cb) != napi_ok || napi_async_init(env, NULL, name, &w->ctx) != napi_ok ||
      (rc = uv_poll_start(&w->poll, writable ? UV_WRITABLE : UV_READABLE, on_poll)) < 0) {
    uv_close((uv_handle_t *)&w->poll, on_poll_closed);
    if (rc < 0) return throw_errno(env, "uv_poll_start", -rc);
    throw_status(env, "watch");
    return NULL;
  }
  napi_value ext;
  CALL(env, napi_create_external(env, w, NULL, NULL, &ext));
  return ext;
}

/* unwatch(handle): stops at once (no callback after this returns); the fd stays open. */
static napi_value js_unwatch(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  void *data;
  if (get_args(env, info, 1, argv)) return NULL;
  CALL(env, napi_get_value_external(env, argv[0], &data));
  watch_t *w = data;
  if (w->stopped) return NULL;
  w->stopped = 1;
  uv_poll_stop(&w->poll);
  uv_close((uv_handle_t *)&w->poll, on_poll_closed);
  return NULL;
}

/* ref/unref a watch: an unref'd listener does not keep the process alive. */
static napi_value js_set_ref(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  void *data;
  bool on;
  if (get_args(env, info, 2, argv)) return NULL;
  CALL(env, napi_get_value_external(env, argv[0], &data));
  CALL(env, napi_get_value_bool(env, argv[1], &on));
  watch_t *w = data;
  if (!w->stopped) {
    if (on) uv_ref((uv_handle_t *)&w->poll);
    else uv_unref((uv_handle_t *)&w->poll);
  }
  return NULL;
}

NAPI_MODULE_INIT() {
  const struct { const char *name; napi_callback fn; } fns[] = {
    {"socket", js_socket},     {"bind", js_bind},           {"listen", js_listen},
    {"accept", js_accept},     {"connect", js_connect},     {"connectResult", js_connect_result},
    {"getsockname", js_getsockname}, {"getpeername", js_getpeername}, {"close", js_close},
    {"watch", js_watch},       {"unwatch", js_unwatch},     {"setRef", js_set_ref},
    {"vtpmNewDev", js_vtpm_new_dev}, {"read", js_read},     {"write", js_write},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f) != napi_ok) return NULL;
    if (napi_set_named_property(env, exports, fns[i].name, f) != napi_ok) return NULL;
  }
  napi_set_named_property(env, exports, "VMADDR_CID_ANY", u32(env, VMADDR_CID_ANY));
  napi_set_named_property(env, exports, "abi", u32(env, 1));
  return exports;
}
