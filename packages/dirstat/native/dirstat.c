// One directory's entries with each entry's lstat, in one call from JavaScript.
//
// Why native: a warm no-change `dsg status` is bound by one lstat per file.
// From JavaScript each is a call through Node's fs binding that builds a
// Stats object (measured 0.38 s of a 0.8 s status on 100k files); here the
// same fstatat calls, relative to the open directory, fill one Float64Array.
// No published package lists a directory with its entries' stats natively.
//
// list(path) -> [names: string[], kinds: Uint8Array, stats: Float64Array]
//              or the errno (a number) when the directory cannot be listed.
// Names come in byte order (strcmp), as libuv's scandir gives readdirSync's.
// stats holds FIELDS doubles per entry: size, mtimeMs, ino, ctimeMs, computed
// exactly as Node computes Stats#size/#mtimeMs/#ino/#ctimeMs, so values from
// either side compare equal bit for bit.
#define NAPI_VERSION 8
#include <node_api.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__APPLE__)
#define MTIM st_mtimespec
#define CTIM st_ctimespec
#else
#define MTIM st_mtim
#define CTIM st_ctim
#endif

enum { K_GONE = 0, K_FILE = 1, K_DIR = 2, K_LINK = 3, K_OTHER = 4, K_UNDECODABLE = 5 };
#define FIELDS 4

// A name that is not UTF-8 would reach JavaScript with U+FFFD in it, naming
// no file; it is reported as such instead of with the stats of another name.
static int valid_utf8(const unsigned char *s) {
  while (*s) {
    unsigned c = *s;
    int n;
    if (c < 0x80) {
      s++;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c >= 0xe0 && c <= 0xef) n = 2;
    else if (c >= 0xf0 && c <= 0xf4) n = 3;
    else return 0;
    unsigned cp = c & (0x3fu >> n);
    for (int i = 1; i <= n; i++) {
      if ((s[i] & 0xc0) != 0x80) return 0;
      cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
      return 0;
    s += n + 1;
  }
  return 1;
}

// Stats entries [from, to) of one listing. Runs on helper threads: it touches
// only the listing's memory, never Node-API.
typedef struct {
  int dfd;
  size_t dir_len;  // bytes of the directory's path as given
  const char *const *name;
  size_t from, to;
  uint8_t *kp;
  double *sp;
} stripe_t;

// One entry's kind and FIELDS numbers (all 0 when it has no stat), relative to
// the open directory dfd whose path is dir_len bytes long.
static uint8_t stat_entry(int dfd, size_t dir_len, const char *nm, double *f) {
  struct stat st;
  memset(f, 0, FIELDS * sizeof *f);
  if (!valid_utf8((const unsigned char *)nm)) return K_UNDECODABLE;
  // an entry whose full path is too long for lstat(2) is not statable from JavaScript either
  // (ENAMETOOLONG): fstatat relative to the open directory would reach it, and the two listers differ
  if (dir_len + 1 + strlen(nm) >= PATH_MAX || fstatat(dfd, nm, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return K_GONE;  // removed since the listing (or unreadable)
  // Node: fields are doubles; mtimeMs = sec * 1e3 + nsec / 1e6 (msFromTimeSpec)
  f[0] = (double)st.st_size;
  f[1] = (double)st.MTIM.tv_sec * 1e3 + (double)st.MTIM.tv_nsec / 1e6;
  f[2] = (double)st.st_ino;
  f[3] = (double)st.CTIM.tv_sec * 1e3 + (double)st.CTIM.tv_nsec / 1e6;
  return S_ISREG(st.st_mode) ? K_FILE : S_ISDIR(st.st_mode) ? K_DIR : S_ISLNK(st.st_mode) ? K_LINK : K_OTHER;
}

static void *stat_stripe(void *arg) {
  const stripe_t *j = arg;
  for (size_t i = j->from; i < j->to; i++) j->kp[i] = stat_entry(j->dfd, j->dir_len, j->name[i], j->sp + i * FIELDS);
  return NULL;
}

// Like git's preloaded index: a large directory's stats are spread over up to
// MAX_THREADS threads (the kernel's lookups run in parallel on several cores),
// while this thread makes the names' strings.
#define MAX_THREADS 4
#define MIN_PER_THREAD 128

static int by_bytes(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

// A directory's names (not . and ..), sorted by bytes: name[i] points into buf.
typedef struct {
  char *buf;
  const char **name;
  size_t n;
} names_t;

static void free_names(names_t *nm) {
  free(nm->buf);
  free(nm->name);
  nm->buf = NULL;
  nm->name = NULL;
}

// Reads every entry of d into nm. 0, or an errno (ENOMEM for memory).
static int read_names(DIR *d, names_t *nm) {
  size_t cap = 256, n = 0, bytes = 0, bcap = 16384;
  size_t *at = malloc(cap * sizeof *at);
  char *buf = malloc(bcap);
  int err = 0;
  nm->buf = NULL;
  nm->name = NULL;
  nm->n = 0;
  if (!at || !buf) goto nomem;
  for (;;) {
    errno = 0;
    struct dirent *e = readdir(d);
    if (!e) break;
    const char *s = e->d_name;
    if (s[0] == '.' && (s[1] == 0 || (s[1] == '.' && s[2] == 0))) continue;
    size_t l = strlen(s) + 1;
    if (n == cap) {
      size_t *more = realloc(at, (cap *= 2) * sizeof *at);
      if (!more) goto nomem;
      at = more;
    }
    while (bytes + l > bcap) {
      char *more = realloc(buf, bcap *= 2);
      if (!more) goto nomem;
      buf = more;
    }
    memcpy(buf + bytes, s, l);
    at[n++] = bytes;
    bytes += l;
  }
  if (errno) {
    err = errno;
    goto out;
  }
  // in the byte order of the names (UTF-8 byte order, dsg's path order), as readdirSync lists them
  nm->name = malloc((n ? n : 1) * sizeof *nm->name);
  if (!nm->name) goto nomem;
  for (size_t i = 0; i < n; i++) nm->name[i] = buf + at[i];
  qsort(nm->name, n, sizeof *nm->name, by_bytes);
  nm->buf = buf;
  nm->n = n;
  free(at);
  return 0;
nomem:
  err = ENOMEM;
out:
  free(at);
  free(buf);
  return err;
}

// Opens a directory for listing (following a link, as readdirSync does, when
// follow is set). NULL with errno set when it cannot.
static DIR *open_dir(const char *path, int follow) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
  if (fd < 0) return NULL;
  DIR *d = fdopendir(fd);
  if (!d) {
    int err = errno;
    close(fd);
    errno = err;
  }
  return d;
}

#define CHECK(call)                                                    \
  do {                                                                 \
    if ((call) != napi_ok) {                                           \
      napi_throw_error(env, NULL, "dirstat: a Node-API call failed");  \
      goto fail;                                                       \
    }                                                                  \
  } while (0)

static napi_value list(napi_env env, napi_callback_info info) {
  size_t argc = 1, len = 0, n = 0;
  napi_value argv[1], result = NULL;
  char *path = NULL;
  names_t nm = {NULL, NULL, 0};
  DIR *d = NULL;
  napi_status made = napi_ok;
  void *kmem = NULL, *smem = NULL;
  int err;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], NULL, 0, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "dirstat: list(path) takes a path string");
    return NULL;
  }
  path = malloc(len + 1);
  if (!path) goto nomem;
  CHECK(napi_get_value_string_utf8(env, argv[0], path, len + 1, &len));
  if (strlen(path) != len) {  // an embedded NUL would name another path
    napi_throw_type_error(env, NULL, "dirstat: a path cannot hold a NUL byte");
    goto fail;
  }
  if (!(d = open_dir(path, 1))) goto os_error;
  if ((err = read_names(d, &nm)) == ENOMEM) goto nomem;
  if (err) {
    errno = err;
    goto os_error;
  }
  n = nm.n;
  const char *const *name = nm.name;

  napi_value names, kinds_ab, stats_ab, kinds, stats;
  CHECK(napi_create_array_with_length(env, n, &names));
  CHECK(napi_create_arraybuffer(env, n ? n : 1, &kmem, &kinds_ab));
  CHECK(napi_create_arraybuffer(env, (n ? n : 1) * FIELDS * sizeof(double), &smem, &stats_ab));
  uint8_t *kp = kmem;
  double *sp = smem;
  CHECK(napi_create_typedarray(env, napi_uint8_array, n, kinds_ab, 0, &kinds));
  CHECK(napi_create_typedarray(env, napi_float64_array, n * FIELDS, stats_ab, 0, &stats));
  int dfd = dirfd(d);
  size_t dir_len = len > 1 && path[len - 1] == '/' ? len - 1 : len;  // JavaScript joins dir + '/' + name
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  size_t nt = n / MIN_PER_THREAD;
  if (nt > (size_t)(cpus > 0 ? cpus : 1)) nt = (size_t)(cpus > 0 ? cpus : 1);
  if (nt > MAX_THREADS) nt = MAX_THREADS;
  stripe_t jobs[MAX_THREADS];
  pthread_t tids[MAX_THREADS];
  int started[MAX_THREADS] = {0};
  for (size_t t = 0; t < nt; t++) {
    jobs[t] = (stripe_t){dfd, dir_len, name, n * t / nt, n * (t + 1) / nt, kp, sp};
    started[t] = pthread_create(&tids[t], NULL, stat_stripe, &jobs[t]) == 0;
  }
  if (nt == 0) {
    jobs[0] = (stripe_t){dfd, dir_len, name, 0, n, kp, sp};
    stat_stripe(&jobs[0]);
  }
  made = napi_ok;
  for (size_t i = 0; i < n && made == napi_ok; i++) {
    napi_value s;
    made = napi_create_string_utf8(env, name[i], NAPI_AUTO_LENGTH, &s);
    if (made == napi_ok) made = napi_set_element(env, names, (uint32_t)i, s);
  }
  for (size_t t = 0; t < nt; t++) {
    if (started[t]) pthread_join(tids[t], NULL);
    else stat_stripe(&jobs[t]);  // no thread to be had: this one does the stripe
  }
  CHECK(made);
  CHECK(napi_create_array_with_length(env, 3, &result));
  CHECK(napi_set_element(env, result, 0, names));
  CHECK(napi_set_element(env, result, 1, kinds));
  CHECK(napi_set_element(env, result, 2, stats));
  goto done;

os_error:
  CHECK(napi_create_int32(env, errno ? errno : EIO, &result));
  goto done;
nomem:
  napi_throw_error(env, "ENOMEM", "dirstat: out of memory");
fail:
  result = NULL;
done:
  if (d) closedir(d);
  free(path);
  free_names(&nm);
  return result;
}

// ---- verify(root, walk) -> Promise<boolean> ---------------------------------
//
// Whether the tree under root is, directory for directory, the recorded walk
// (the format is encodeWalk's, src/walk.ts): each recorded directory lists the
// same names with the same kinds, and the entries marked `checked` have the
// same FIELDS numbers. The answer a walk in JavaScript would give (sameWalkJs),
// without a string or a number crossing into JavaScript per entry: a warm
// no-change status asks exactly this. It runs off the JavaScript thread (the
// status over SSH walks while its handshake runs) and spreads the directories
// over up to MAX_THREADS threads. A record it cannot read is an answer of
// false, never an error: it is a cache, and the caller then walks itself.

typedef struct {
  const uint8_t *rel;  // UTF-8, no NUL, '' for root
  uint32_t rel_len;
  uint32_t n;
  const uint8_t *entries;  // n × {u8 kind, u8 checked, u16 name length, name, [FIELDS f64 if checked]}
} wdir_t;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  char *root;
  size_t root_len;
  uint8_t *rec;
  size_t rec_len;
  wdir_t *dirs;
  uint32_t nd;
  atomic_uint next;
  atomic_int differs;
} verify_t;

static uint32_t u32le(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

// A recorded relative path: components that are neither empty, '.' nor '..', and no NUL.
static int plain_rel(const uint8_t *p, uint32_t len) {
  uint32_t start = 0;
  for (uint32_t i = 0; i <= len; i++) {
    if (i < len && p[i] == 0) return 0;
    if (i == len || p[i] == '/') {
      uint32_t l = i - start;
      if (len && (l == 0 || (l == 1 && p[start] == '.') || (l == 2 && p[start] == '.' && p[start + 1] == '.')))
        return 0;
      start = i + 1;
    }
  }
  return 1;
}

// Splits the record into its directories; 0 when it is not a whole, well-formed record.
static int parse_walk(verify_t *v) {
  const uint8_t *p = v->rec, *end = v->rec + v->rec_len;
  if (end - p < 4) return 0;
  uint32_t nd = u32le(p);
  p += 4;
  if (nd > v->rec_len / 8) return 0;  // each directory takes at least 8 bytes
  v->dirs = calloc(nd ? nd : 1, sizeof *v->dirs);
  if (!v->dirs) return 0;
  for (uint32_t k = 0; k < nd; k++) {
    wdir_t *w = &v->dirs[k];
    if (end - p < 4) return 0;
    w->rel_len = u32le(p);
    p += 4;
    if ((size_t)(end - p) < (size_t)w->rel_len + 4 || !plain_rel(p, w->rel_len)) return 0;
    w->rel = p;
    p += w->rel_len;
    w->n = u32le(p);
    p += 4;
    w->entries = p;
    for (uint32_t i = 0; i < w->n; i++) {
      if (end - p < 4) return 0;
      size_t l = 4 + ((size_t)p[2] | (size_t)p[3] << 8) + (p[1] ? FIELDS * 8 : 0);
      if ((size_t)(end - p) < l) return 0;
      p += l;
    }
  }
  v->nd = nd;
  return p == end;
}

// Whether one recorded directory is as recorded.
static int same_dir(const verify_t *v, const wdir_t *w) {
  size_t plen = v->root_len + (w->rel_len ? 1 + w->rel_len : 0);
  char *path = malloc(plen + 1);
  if (!path) return 0;
  memcpy(path, v->root, v->root_len);
  if (w->rel_len) {
    path[v->root_len] = '/';
    memcpy(path + v->root_len + 1, w->rel, w->rel_len);
  }
  path[plen] = 0;
  // the root may be reached through a link (as the JavaScript walk lists it); a directory under it never is
  DIR *d = open_dir(path, w->rel_len == 0);
  free(path);
  if (!d) return 0;
  names_t nm;
  int same = read_names(d, &nm) == 0 && nm.n == w->n;
  const uint8_t *p = w->entries;
  int dfd = dirfd(d);
  for (size_t i = 0; same && i < nm.n; i++) {
    size_t l = (size_t)p[2] | (size_t)p[3] << 8;
    double f[FIELDS];
    if (strlen(nm.name[i]) != l || memcmp(nm.name[i], p + 4, l) != 0) same = 0;
    else if (stat_entry(dfd, plen, nm.name[i], f) != p[0]) same = 0;
    else if (p[1]) {
      for (int k = 0; k < FIELDS && same; k++) {
        double r;
        memcpy(&r, p + 4 + l + 8 * k, sizeof r);  // unaligned in the record; little-endian, as every target of this file
        if (r != f[k]) same = 0;
      }
    }
    p += 4 + l + (p[1] ? FIELDS * 8 : 0);
    if (i % 64 == 63 && atomic_load(&v->differs)) same = 0;  // another thread has the answer already
  }
  free_names(&nm);
  closedir(d);
  return same;
}

static void *verify_dirs(void *arg) {
  verify_t *v = arg;
  for (;;) {
    unsigned k = atomic_fetch_add(&v->next, 1);
    if (k >= v->nd || atomic_load(&v->differs)) break;
    if (!same_dir(v, &v->dirs[k])) atomic_store(&v->differs, 1);
  }
  return NULL;
}

static void verify_execute(napi_env env, void *data) {
  (void)env;
  verify_t *v = data;
  if (!parse_walk(v)) {
    atomic_store(&v->differs, 1);
    return;
  }
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  size_t nt = cpus > 0 ? (size_t)cpus : 1;
  if (nt > MAX_THREADS) nt = MAX_THREADS;
  if (nt > v->nd) nt = v->nd;
  pthread_t tids[MAX_THREADS];
  int started[MAX_THREADS] = {0};
  for (size_t t = 1; t < nt; t++) started[t] = pthread_create(&tids[t], NULL, verify_dirs, v) == 0;
  verify_dirs(v);  // this (libuv pool) thread takes directories too
  for (size_t t = 1; t < nt; t++)
    if (started[t]) pthread_join(tids[t], NULL);
}

static void verify_complete(napi_env env, napi_status status, void *data) {
  verify_t *v = data;
  napi_value answer;
  // a cancelled work (status not ok) proved nothing
  if (napi_get_boolean(env, status == napi_ok && !atomic_load(&v->differs), &answer) == napi_ok)
    napi_resolve_deferred(env, v->deferred, answer);
  napi_delete_async_work(env, v->work);
  free(v->root);
  free(v->rec);
  free(v->dirs);
  free(v);
}

static napi_value verify(napi_env env, napi_callback_info info) {
  size_t argc = 2, len = 0;
  napi_value argv[2], promise = NULL, name;
  void *data = NULL;
  size_t blen = 0;
  bool is_buffer = false;
  verify_t *v = calloc(1, sizeof *v);
  if (!v) {
    napi_throw_error(env, "ENOMEM", "dirstat: out of memory");
    return NULL;
  }
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || napi_get_value_string_utf8(env, argv[0], NULL, 0, &len) != napi_ok ||
      napi_is_buffer(env, argv[1], &is_buffer) != napi_ok || !is_buffer) {
    napi_throw_type_error(env, NULL, "dirstat: verify(root, walk) takes a path string and a Buffer");
    goto fail;
  }
  v->root = malloc(len + 1);
  if (!v->root) goto nomem;
  CHECK(napi_get_value_string_utf8(env, argv[0], v->root, len + 1, &len));
  if (strlen(v->root) != len || len == 0) {
    napi_throw_type_error(env, NULL, "dirstat: the root must be a path without a NUL byte");
    goto fail;
  }
  while (len > 1 && v->root[len - 1] == '/') v->root[--len] = 0;  // JavaScript joins root + '/' + rel
  v->root_len = len;
  // a copy: the caller's buffer may change while the threads read
  CHECK(napi_get_buffer_info(env, argv[1], &data, &blen));
  v->rec = malloc(blen ? blen : 1);
  if (!v->rec) goto nomem;
  memcpy(v->rec, data, blen);
  v->rec_len = blen;
  atomic_init(&v->next, 0);
  atomic_init(&v->differs, 0);
  CHECK(napi_create_promise(env, &v->deferred, &promise));
  CHECK(napi_create_string_utf8(env, "dirstat.verify", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_async_work(env, NULL, name, verify_execute, verify_complete, v, &v->work));
  if (napi_queue_async_work(env, v->work) != napi_ok) {
    napi_delete_async_work(env, v->work);
    napi_throw_error(env, NULL, "dirstat: a Node-API call failed");
    goto fail;
  }
  return promise;
nomem:
  napi_throw_error(env, "ENOMEM", "dirstat: out of memory");
fail:
  free(v->root);
  free(v->rec);
  free(v);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn, fv;
  if (napi_create_function(env, "list", NAPI_AUTO_LENGTH, list, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "list", fn) != napi_ok ||
      napi_create_function(env, "verify", NAPI_AUTO_LENGTH, verify, NULL, &fv) != napi_ok ||
      napi_set_named_property(env, exports, "verify", fv) != napi_ok)
    return NULL;
  return exports;
}
