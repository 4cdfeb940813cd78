#include "storage/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

struct silo_store {
        char *root;
        int root_fd;
        int blobs_fd;           /* blobs/sha256 */
        int layers_fd;
        int tmp_fd;
        int containers_fd;
        int locks_fd;
        int lock_fd;            /* storage.lock */

        pthread_mutex_t lock_mutex;
        unsigned lock_depth;
        bool lock_exclusive;
};

struct silo_blob_writer {
        silo_store *store;
        int fd;
        char *tmp_name;         /* NULL for an O_TMPFILE file */
        silo_sha256 *hash;
        uint64_t size;
        bool committed;
};

struct silo_layer_tx {
        silo_store *store;
        char diff_id[SILO_DIGEST_SIZE];
        char tmp_name[128];
        int dir_fd;
        int diff_fd;
        int lock_fd;
        bool committed;
};

void silo_random_hex(char *buf, size_t n)
{
        static const char hex[] = "0123456789abcdef";
        unsigned char raw[64];
        size_t want = (n + 1) / 2;
        if (want > sizeof(raw))
                want = sizeof(raw);
        if (getrandom(raw, want, 0) != (ssize_t) want) {
                /* Uniqueness, not secrecy, is what matters here. */
                unsigned long long x = (unsigned long long) getpid() * 2654435761u ^ (unsigned long long) (uintptr_t) buf;
                for (size_t i = 0; i < want; i++)
                        raw[i] = (unsigned char) (x >> ((i % 8) * 8)) ^ (unsigned char) i;
        }
        for (size_t i = 0; i < n && i / 2 < want; i++)
                buf[i] = hex[(i % 2) ? (raw[i / 2] & 0xf) : (raw[i / 2] >> 4)];
        buf[n] = '\0';
}

static int open_subdir(int dirfd, const char *name, mode_t mode, int *ret, silo_error *err)
{
        if (mkdirat(dirfd, name, mode) < 0 && errno != EEXIST)
                return silo_error_set(err, errno, "mkdir %s", name);
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return silo_error_set(err, errno, "open %s", name);
        *ret = fd;
        return 0;
}

int silo_store_open(const char *root, silo_store **ret, silo_error *err)
{
        if (!root || !*root)
                root = getenv("SILO_ROOT");
        if (!root || !*root)
                root = SILO_DEFAULT_ROOT;

        bool created = access(root, F_OK) < 0;
        int r = silo_mkdir_p_at(AT_FDCWD, root, 0700, err);
        if (r < 0)
                return silo_error_prefix(err, "store %s", root);

        _cleanup_free_ silo_store *s = calloc(1, sizeof(*s));
        if (!s)
                return silo_error_set(err, ENOMEM, "store %s", root);
        s->root_fd = s->blobs_fd = s->layers_fd = s->tmp_fd = s->containers_fd = s->locks_fd = s->lock_fd = -1;
        pthread_mutex_init(&s->lock_mutex, NULL);

        /* Overlay lowerdirs and bundles need absolute paths. */
        s->root = realpath(root, NULL);
        if (!s->root)
                return silo_error_set(err, errno, "store %s", root);
        s->root_fd = open(s->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (s->root_fd < 0) {
                r = silo_error_set(err, errno, "open store %s", s->root);
                goto fail;
        }
        if (created)
                (void) fchmod(s->root_fd, 0711);

        int blobs = -1;
        if ((r = open_subdir(s->root_fd, "blobs", 0700, &blobs, err)) < 0)
                goto fail_prefix;
        r = open_subdir(blobs, "sha256", 0700, &s->blobs_fd, err);
        close(blobs);
        if (r < 0)
                goto fail_prefix;
        /* layers/ holds setuid binaries of images: never reachable by others. */
        if ((r = open_subdir(s->root_fd, "layers", 0700, &s->layers_fd, err)) < 0 ||
            (r = open_subdir(s->root_fd, "tmp", 0700, &s->tmp_fd, err)) < 0 ||
            (r = open_subdir(s->root_fd, "containers", 0711, &s->containers_fd, err)) < 0 ||
            (r = open_subdir(s->root_fd, "locks", 0700, &s->locks_fd, err)) < 0)
                goto fail_prefix;

        s->lock_fd = openat(s->root_fd, "storage.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (s->lock_fd < 0) {
                r = silo_error_set(err, errno, "open storage.lock");
                goto fail_prefix;
        }

        *ret = TAKE_PTR(s);
        return 0;

fail_prefix:
        silo_error_prefix(err, "store %s", s->root);
fail:
        silo_store_free(TAKE_PTR(s));
        return r;
}

silo_store *silo_store_free(silo_store *s)
{
        if (!s)
                return NULL;
        int fds[] = { s->root_fd, s->blobs_fd, s->layers_fd, s->tmp_fd, s->containers_fd, s->locks_fd, s->lock_fd };
        for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
                if (fds[i] >= 0)
                        close(fds[i]);
        pthread_mutex_destroy(&s->lock_mutex);
        free(s->root);
        free(s);
        return NULL;
}

const char *silo_store_root(const silo_store *s)
{
        return s->root;
}

int silo_store_root_fd(const silo_store *s)
{
        return s->root_fd;
}

int silo_store_dir_fd(const silo_store *s, const char *which)
{
        if (!strcmp(which, "blobs"))
                return s->blobs_fd;
        if (!strcmp(which, "layers"))
                return s->layers_fd;
        if (!strcmp(which, "tmp"))
                return s->tmp_fd;
        if (!strcmp(which, "containers"))
                return s->containers_fd;
        if (!strcmp(which, "locks"))
                return s->locks_fd;
        return -1;
}

int silo_store_begin(silo_store *s, bool exclusive, silo_error *err)
{
        int r = 0;
        pthread_mutex_lock(&s->lock_mutex);
        if (s->lock_depth > 0) {
                if (exclusive && !s->lock_exclusive)
                        r = silo_error_msg(err, EDEADLK, "store %s: exclusive lock requested while holding a shared one", s->root);
                else
                        s->lock_depth++;
                pthread_mutex_unlock(&s->lock_mutex);
                return r;
        }
        while (flock(s->lock_fd, exclusive ? LOCK_EX : LOCK_SH) < 0) {
                if (errno != EINTR) {
                        r = silo_error_set(err, errno, "lock %s/storage.lock", s->root);
                        break;
                }
        }
        if (r == 0) {
                s->lock_depth = 1;
                s->lock_exclusive = exclusive;
        }
        pthread_mutex_unlock(&s->lock_mutex);
        return r;
}

int silo_store_try_begin_exclusive(silo_store *s, silo_error *err)
{
        int r = 0;
        pthread_mutex_lock(&s->lock_mutex);
        if (s->lock_depth > 0) {
                if (!s->lock_exclusive)
                        r = silo_error_msg(err, EDEADLK, "store %s: exclusive lock requested while holding a shared one", s->root);
                else
                        s->lock_depth++;
        } else if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
                r = errno == EWOULDBLOCK ? silo_error_msg(err, EBUSY, "store %s is busy (other operations are running)", s->root)
                                         : silo_error_set(err, errno, "lock %s/storage.lock", s->root);
        } else {
                s->lock_depth = 1;
                s->lock_exclusive = true;
        }
        pthread_mutex_unlock(&s->lock_mutex);
        return r;
}

void silo_store_end(silo_store *s)
{
        pthread_mutex_lock(&s->lock_mutex);
        if (s->lock_depth > 0 && --s->lock_depth == 0)
                (void) flock(s->lock_fd, LOCK_UN);
        pthread_mutex_unlock(&s->lock_mutex);
}

static int lock_digest(silo_store *s, const char *digest, bool wait, int *ret_fd, silo_error *err)
{
        int r = silo_digest_check(digest, "lock", err);
        if (r < 0)
                return r;
        char name[SILO_DIGEST_HEX_LEN + 8];
        snprintf(name, sizeof(name), "%s.lock", silo_digest_hex(digest));
        _cleanup_close_ int fd = openat(s->locks_fd, name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return silo_error_set(err, errno, "open lock for %s", digest);
        while (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
                if (errno == EWOULDBLOCK)
                        return -EAGAIN;
                if (errno != EINTR)
                        return silo_error_set(err, errno, "lock %s", digest);
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int silo_store_lock_digest(silo_store *s, const char *digest, int *ret_fd, silo_error *err)
{
        return lock_digest(s, digest, true, ret_fd, err);
}

int silo_store_trylock_digest(silo_store *s, const char *digest, int *ret_fd, silo_error *err)
{
        return lock_digest(s, digest, false, ret_fd, err);
}

/* ---- blobs ---- */

bool silo_store_blob_exists(silo_store *s, const char *digest)
{
        struct stat st;
        return silo_digest_valid(digest) &&
               fstatat(s->blobs_fd, silo_digest_hex(digest), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
               S_ISREG(st.st_mode);
}

int silo_store_blob_size(silo_store *s, const char *digest, int64_t *ret_size, silo_error *err)
{
        int r = silo_digest_check(digest, "blob", err);
        if (r < 0)
                return r;
        struct stat st;
        if (fstatat(s->blobs_fd, silo_digest_hex(digest), &st, AT_SYMLINK_NOFOLLOW) < 0)
                return silo_error_set(err, errno, "blob %s", digest);
        *ret_size = st.st_size;
        return 0;
}

int silo_store_blob_open(silo_store *s, const char *digest, int *ret_fd, silo_error *err)
{
        int r = silo_digest_check(digest, "blob", err);
        if (r < 0)
                return r;
        int fd = openat(s->blobs_fd, silo_digest_hex(digest), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return silo_error_set(err, errno, "blob %s", digest);
        *ret_fd = fd;
        return 0;
}

static int hash_fd(int fd, char ret[SILO_DIGEST_SIZE], uint64_t *ret_size)
{
        _cleanup_sha256_ silo_sha256 *h = silo_sha256_new();
        _cleanup_free_ char *buf = malloc(1 << 16);
        if (!h || !buf)
                return -ENOMEM;
        uint64_t total = 0;
        for (;;) {
                ssize_t n = read(fd, buf, 1 << 16);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                silo_sha256_update(h, buf, n);
                total += n;
        }
        silo_sha256_final(h, ret);
        if (ret_size)
                *ret_size = total;
        return 0;
}

int silo_store_blob_verify(silo_store *s, const char *digest, silo_error *err)
{
        _cleanup_close_ int fd = -1;
        int r = silo_store_blob_open(s, digest, &fd, err);
        if (r < 0)
                return r;
        char got[SILO_DIGEST_SIZE];
        r = hash_fd(fd, got, NULL);
        if (r < 0)
                return silo_error_set(err, r, "read blob %s", digest);
        if (strcmp(got, digest) != 0)
                return silo_error_msg(err, EBADMSG, "blob %s is corrupt: content hashes to %s", digest, got);
        return 0;
}

int silo_store_blob_read(silo_store *s, const char *digest, size_t max, char **ret, size_t *ret_len, silo_error *err)
{
        int r = silo_digest_check(digest, "blob", err);
        if (r < 0)
                return r;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;
        r = silo_read_file_at(s->blobs_fd, silo_digest_hex(digest), max, &buf, &len, err);
        if (r < 0)
                return silo_error_prefix(err, "blob %s", digest);
        char got[SILO_DIGEST_SIZE];
        if (silo_digest_buffer(buf, len, got) < 0)
                return silo_error_set(err, ENOMEM, "hash blob %s", digest);
        if (strcmp(got, digest) != 0)
                return silo_error_msg(err, EBADMSG, "blob %s is corrupt: content hashes to %s", digest, got);
        *ret = TAKE_PTR(buf);
        if (ret_len)
                *ret_len = len;
        return 0;
}

int silo_store_blob_remove(silo_store *s, const char *digest, silo_error *err)
{
        int r = silo_digest_check(digest, "blob", err);
        if (r < 0)
                return r;
        if (unlinkat(s->blobs_fd, silo_digest_hex(digest), 0) < 0 && errno != ENOENT)
                return silo_error_set(err, errno, "remove blob %s", digest);
        return 0;
}

int silo_blob_writer_new(silo_store *s, silo_blob_writer **ret, silo_error *err)
{
        _cleanup_free_ silo_blob_writer *w = calloc(1, sizeof(*w));
        if (!w)
                return silo_error_set(err, ENOMEM, "blob writer");
        w->store = s;
        w->hash = silo_sha256_new();
        if (!w->hash)
                return silo_error_set(err, ENOMEM, "blob writer");

        /* An O_TMPFILE file has no name until linked: a crash leaves nothing. */
        w->fd = openat(s->tmp_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
        if (w->fd < 0) {
                char name[32] = "blob-";
                silo_random_hex(name + 5, 16);
                w->fd = openat(s->tmp_fd, name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0644);
                if (w->fd < 0) {
                        int e = errno;
                        silo_sha256_free(w->hash);
                        return silo_error_set(err, e, "create temp blob in %s/tmp", s->root);
                }
                w->tmp_name = strdup(name);
        }
        *ret = TAKE_PTR(w);
        return 0;
}

int silo_blob_writer_write(silo_blob_writer *w, const void *data, size_t len, silo_error *err)
{
        const char *p = data;
        silo_sha256_update(w->hash, data, len);
        w->size += len;
        while (len > 0) {
                ssize_t n = write(w->fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return silo_error_set(err, errno, "write blob");
                }
                p += n;
                len -= n;
        }
        return 0;
}

uint64_t silo_blob_writer_size(const silo_blob_writer *w)
{
        return w->size;
}

int silo_blob_writer_reset(silo_blob_writer *w, silo_error *err)
{
        if (ftruncate(w->fd, 0) < 0 || lseek(w->fd, 0, SEEK_SET) < 0)
                return silo_error_set(err, errno, "truncate temp blob");
        silo_sha256_reset(w->hash);
        w->size = 0;
        return 0;
}

void silo_blob_writer_digest(silo_blob_writer *w, char ret[SILO_DIGEST_SIZE])
{
        silo_sha256_peek(w->hash, ret);
}

int silo_blob_writer_commit(silo_blob_writer *w, const char *expected, int64_t expected_size,
                            char ret_digest[SILO_DIGEST_SIZE], silo_error *err)
{
        char got[SILO_DIGEST_SIZE];
        silo_sha256_final(w->hash, got);

        if (expected_size >= 0 && (uint64_t) expected_size != w->size)
                return silo_error_msg(err, EBADMSG, "blob %s: size mismatch: expected %lld bytes, got %llu",
                                      expected ? expected : got, (long long) expected_size,
                                      (unsigned long long) w->size);
        if (expected && strcmp(expected, got) != 0)
                return silo_error_msg(err, EBADMSG, "blob digest mismatch: expected %s, content hashes to %s",
                                      expected, got);

        /* Data first, then the name, then the directory holding the name. */
        if (fdatasync(w->fd) < 0)
                return silo_error_set(err, errno, "fsync blob %s", got);
        (void) fchmod(w->fd, 0444);

        const char *hex = silo_digest_hex(got);
        if (w->tmp_name) {
                if (renameat(w->store->tmp_fd, w->tmp_name, w->store->blobs_fd, hex) < 0)
                        return silo_error_set(err, errno, "rename blob %s into place", got);
                free(w->tmp_name);
                w->tmp_name = NULL;
        } else {
                char path[64];
                if (linkat(AT_FDCWD, silo_fd_path(path, w->fd), w->store->blobs_fd, hex, AT_SYMLINK_FOLLOW) < 0 &&
                    errno != EEXIST)  /* someone stored the same content first */
                        return silo_error_set(err, errno, "link blob %s into place", got);
        }
        if (fsync(w->store->blobs_fd) < 0)
                return silo_error_set(err, errno, "fsync %s/blobs/sha256", w->store->root);
        w->committed = true;
        if (ret_digest)
                memcpy(ret_digest, got, SILO_DIGEST_SIZE);
        return 0;
}

silo_blob_writer *silo_blob_writer_free(silo_blob_writer *w)
{
        if (!w)
                return NULL;
        if (w->fd >= 0)
                close(w->fd);
        if (w->tmp_name && !w->committed)
                (void) unlinkat(w->store->tmp_fd, w->tmp_name, 0);
        free(w->tmp_name);
        silo_sha256_free(w->hash);
        free(w);
        return NULL;
}

int silo_store_blob_put(silo_store *s, const void *data, size_t len, const char *expected,
                        char ret_digest[SILO_DIGEST_SIZE], silo_error *err)
{
        char digest[SILO_DIGEST_SIZE];
        if (silo_digest_buffer(data, len, digest) < 0)
                return silo_error_set(err, ENOMEM, "hash blob");
        if (expected && strcmp(expected, digest) != 0)
                return silo_error_msg(err, EBADMSG, "blob digest mismatch: expected %s, content hashes to %s",
                                      expected, digest);
        if (ret_digest)
                memcpy(ret_digest, digest, SILO_DIGEST_SIZE);
        if (silo_store_blob_exists(s, digest))
                return 0;

        _cleanup_blob_writer_ silo_blob_writer *w = NULL;
        int r = silo_blob_writer_new(s, &w, err);
        if (r < 0)
                return r;
        r = silo_blob_writer_write(w, data, len, err);
        if (r < 0)
                return r;
        return silo_blob_writer_commit(w, digest, (int64_t) len, NULL, err);
}

static int list_hex_names(int dirfd, bool want_dirs, char ***ret, silo_error *err)
{
        int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return silo_error_set(err, errno, "dup");
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return silo_error_set(err, errno, "opendir");
        }
        _cleanup_closedir_ DIR *dir = d;
        rewinddir(dir);

        size_t n = 0, cap = 16;
        _cleanup_strv_ char **v = calloc(cap + 1, sizeof(char *));
        if (!v)
                return silo_error_set(err, ENOMEM, "list");
        struct dirent *de;
        while ((de = readdir(dir))) {
                char digest[SILO_DIGEST_SIZE + 8];
                if (strlen(de->d_name) != SILO_DIGEST_HEX_LEN)
                        continue;
                snprintf(digest, sizeof(digest), SILO_DIGEST_PREFIX "%s", de->d_name);
                if (!silo_digest_valid(digest))
                        continue;
                if (de->d_type != DT_UNKNOWN && (de->d_type == DT_DIR) != want_dirs)
                        continue;
                if (n == cap) {
                        char **nv = realloc(v, (2 * cap + 1) * sizeof(char *));
                        if (!nv)
                                return silo_error_set(err, ENOMEM, "list");
                        v = nv;
                        cap *= 2;
                }
                v[n] = strdup(digest);
                if (!v[n])
                        return silo_error_set(err, ENOMEM, "list");
                v[++n] = NULL;
        }
        *ret = TAKE_PTR(v);
        return 0;
}

int silo_store_list_blobs(silo_store *s, char ***ret, silo_error *err)
{
        return list_hex_names(s->blobs_fd, false, ret, err);
}

/* ---- layers ---- */

bool silo_store_layer_exists(silo_store *s, const char *diff_id)
{
        struct stat st;
        return silo_digest_valid(diff_id) &&
               fstatat(s->layers_fd, silo_digest_hex(diff_id), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
               S_ISDIR(st.st_mode);
}

int silo_store_layer_path(silo_store *s, const char *diff_id, char **ret, silo_error *err)
{
        int r = silo_digest_check(diff_id, "layer", err);
        if (r < 0)
                return r;
        if (asprintf(ret, "%s/layers/%s/diff", s->root, silo_digest_hex(diff_id)) < 0)
                return silo_error_set(err, ENOMEM, "layer path");
        return 0;
}

int silo_store_layer_open(silo_store *s, const char *diff_id, int *ret_fd, silo_error *err)
{
        int r = silo_digest_check(diff_id, "layer", err);
        if (r < 0)
                return r;
        char path[SILO_DIGEST_HEX_LEN + 8];
        snprintf(path, sizeof(path), "%s/diff", silo_digest_hex(diff_id));
        int fd = openat(s->layers_fd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return silo_error_set(err, errno, "layer %s", diff_id);
        *ret_fd = fd;
        return 0;
}

int silo_store_layer_size(silo_store *s, const char *diff_id, uint64_t *ret_size, silo_error *err)
{
        int r = silo_digest_check(diff_id, "layer", err);
        if (r < 0)
                return r;
        char path[SILO_DIGEST_HEX_LEN + 16];
        snprintf(path, sizeof(path), "%s/layer.json", silo_digest_hex(diff_id));
        _cleanup_json_ json_t *j = NULL;
        r = silo_json_load_file_at(s->layers_fd, path, 64 * 1024, &j, err);
        if (r < 0)
                return r;
        json_t *v = json_object_get(j, "size");
        *ret_size = json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t) json_integer_value(v) : 0;
        return 0;
}

int silo_store_layer_remove(silo_store *s, const char *diff_id, silo_error *err)
{
        int r = silo_digest_check(diff_id, "layer", err);
        if (r < 0)
                return r;
        /* Rename first so a half-deleted tree is never visible as the layer. */
        char tmp[64] = ".tmp-del-";
        silo_random_hex(tmp + 9, 16);
        if (renameat(s->layers_fd, silo_digest_hex(diff_id), s->layers_fd, tmp) < 0) {
                if (errno == ENOENT)
                        return 0;
                return silo_error_set(err, errno, "remove layer %s", diff_id);
        }
        r = silo_rm_rf_at(s->layers_fd, tmp, err);
        if (r < 0)
                return silo_error_prefix(err, "remove layer %s", diff_id);
        return 0;
}

int silo_store_list_layers(silo_store *s, char ***ret, silo_error *err)
{
        return list_hex_names(s->layers_fd, true, ret, err);
}

int silo_layer_tx_begin(silo_store *s, const char *diff_id, silo_layer_tx **ret, silo_error *err)
{
        int r = silo_digest_check(diff_id, "layer", err);
        if (r < 0)
                return r;

        _cleanup_free_ silo_layer_tx *tx = calloc(1, sizeof(*tx));
        if (!tx)
                return silo_error_set(err, ENOMEM, "layer %s", diff_id);
        tx->store = s;
        tx->dir_fd = tx->diff_fd = tx->lock_fd = -1;
        snprintf(tx->diff_id, sizeof(tx->diff_id), "%s", diff_id);

        r = silo_store_lock_digest(s, diff_id, &tx->lock_fd, err);
        if (r < 0)
                return r;
        if (silo_store_layer_exists(s, diff_id)) {
                close(tx->lock_fd);
                *ret = NULL;
                return 1;
        }

        snprintf(tx->tmp_name, sizeof(tx->tmp_name), ".tmp-%.12s-", silo_digest_hex(diff_id));
        silo_random_hex(tx->tmp_name + strlen(tx->tmp_name), 12);
        if (mkdirat(s->layers_fd, tx->tmp_name, 0700) < 0) {
                r = silo_error_set(err, errno, "mkdir layers/%s", tx->tmp_name);
                close(tx->lock_fd);
                return r;
        }
        tx->dir_fd = openat(s->layers_fd, tx->tmp_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (tx->dir_fd < 0 || mkdirat(tx->dir_fd, "diff", 0755) < 0 ||
            (tx->diff_fd = openat(tx->dir_fd, "diff", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
                r = silo_error_set(err, errno, "create layers/%s/diff", tx->tmp_name);
                silo_layer_tx_free(TAKE_PTR(tx));
                return r;
        }
        *ret = TAKE_PTR(tx);
        return 0;
}

int silo_layer_tx_diff_fd(const silo_layer_tx *tx)
{
        return tx->diff_fd;
}

int silo_layer_tx_commit(silo_layer_tx *tx, uint64_t size, uint64_t entries, silo_error *err)
{
        silo_store *s = tx->store;
        char meta[256];
        int n = snprintf(meta, sizeof(meta), "{\"diff_id\":\"%s\",\"size\":%llu,\"entries\":%llu}\n",
                         tx->diff_id, (unsigned long long) size, (unsigned long long) entries);
        int r = silo_write_file_atomic_at(tx->dir_fd, "layer.json", meta, (size_t) n, 0600, err);
        if (r < 0)
                return silo_error_prefix(err, "layer %s", tx->diff_id);

        /* One syncfs for the whole tree is far cheaper than fsync per file,
         * and the rename below must not become durable before the content. */
        if (syncfs(tx->diff_fd) < 0)
                return silo_error_set(err, errno, "syncfs layer %s", tx->diff_id);
        if (renameat(s->layers_fd, tx->tmp_name, s->layers_fd, silo_digest_hex(tx->diff_id)) < 0) {
                if (errno != EEXIST && errno != ENOTEMPTY)
                        return silo_error_set(err, errno, "rename layer %s into place", tx->diff_id);
                /* Unreachable while we hold the digest lock, but harmless. */
                return 0;
        }
        tx->committed = true;
        if (fsync(s->layers_fd) < 0)
                return silo_error_set(err, errno, "fsync %s/layers", s->root);
        return 0;
}

silo_layer_tx *silo_layer_tx_free(silo_layer_tx *tx)
{
        if (!tx)
                return NULL;
        if (tx->diff_fd >= 0)
                close(tx->diff_fd);
        if (tx->dir_fd >= 0)
                close(tx->dir_fd);
        if (!tx->committed && tx->tmp_name[0])
                (void) silo_rm_rf_at(tx->store->layers_fd, tx->tmp_name, NULL);
        if (tx->lock_fd >= 0)
                close(tx->lock_fd);
        free(tx);
        return NULL;
}

static int clean_dir(int dirfd, const char *prefix, silo_error *err)
{
        int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return silo_error_set(err, errno, "dup");
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return silo_error_set(err, errno, "opendir");
        }
        _cleanup_closedir_ DIR *dir = d;
        rewinddir(dir);
        struct dirent *de;
        while ((de = readdir(dir))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                if (prefix && strncmp(de->d_name, prefix, strlen(prefix)) != 0)
                        continue;
                int r = silo_rm_rf_at(dirfd, de->d_name, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

int silo_store_clean_tmp(silo_store *s, silo_error *err)
{
        int r = clean_dir(s->tmp_fd, NULL, err);
        if (r >= 0)
                r = clean_dir(s->layers_fd, ".tmp-", err);
        if (r >= 0)
                r = clean_dir(s->locks_fd, NULL, err);
        return r < 0 ? silo_error_prefix(err, "clean %s", s->root) : 0;
}
