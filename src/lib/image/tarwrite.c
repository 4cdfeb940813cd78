#include "image/tarwrite.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "util/cleanup.h"

/* The tree comes from container processes: bound what we recurse into. */
#define MAX_TREE_DEPTH 1024
#define COPY_CHUNK (256u * 1024)

struct hardlink {
        dev_t dev;
        ino_t ino;
        char *path;
};

struct silo_tar_writer {
        struct archive *a;
        silo_tar_write_fn fn;
        void *userdata;
        int fd;                 /* for silo_tar_writer_new_fd */
        silo_error cb_err;
        bool cb_failed;
        bool finished;
        char *buf;

        struct hardlink *links;
        size_t n_links, cap_links;
};

static la_ssize_t write_cb(struct archive *a, void *userdata, const void *buf, size_t len)
{
        silo_tar_writer *w = userdata;
        int r = w->fn(w->userdata, buf, len, &w->cb_err);
        if (r < 0) {
                w->cb_failed = true;
                archive_set_error(a, -r, "%s", w->cb_err.message);
                return -1;
        }
        return (la_ssize_t) len;
}

static int fail(silo_tar_writer *w, const char *what, silo_error *err)
{
        if (w->cb_failed) {
                *err = w->cb_err;
                return silo_error_prefix(err, "%s", what);
        }
        const char *m = archive_error_string(w->a);
        return silo_error_msg(err, EIO, "%s: %s", what, m ? m : "tar write failed");
}

static int fd_write(void *userdata, const void *buf, size_t len, silo_error *err)
{
        silo_tar_writer *w = userdata;
        const char *p = buf;
        while (len > 0) {
                ssize_t n = write(w->fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return silo_error_set(err, errno, "write");
                }
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

int silo_tar_writer_new(silo_tar_write_fn fn, void *userdata, silo_tar_writer **ret, silo_error *err)
{
        _cleanup_free_ silo_tar_writer *w = calloc(1, sizeof(*w));
        if (!w)
                return silo_error_set(err, ENOMEM, "tar writer");
        w->fn = fn;
        w->userdata = userdata;
        w->fd = -1;
        w->buf = malloc(COPY_CHUNK);
        w->a = archive_write_new();
        if (!w->buf || !w->a) {
                silo_tar_writer_free(TAKE_PTR(w));
                return silo_error_set(err, ENOMEM, "tar writer");
        }
        /* ustar, with pax extensions only where needed (long names, xattrs). */
        archive_write_set_format_pax_restricted(w->a);
        archive_write_set_bytes_in_last_block(w->a, 1);
        if (archive_write_open(w->a, w, NULL, write_cb, NULL) != ARCHIVE_OK) {
                int r = fail(w, "open tar stream", err);
                silo_tar_writer_free(TAKE_PTR(w));
                return r;
        }
        *ret = TAKE_PTR(w);
        return 0;
}

int silo_tar_writer_new_fd(int fd, silo_tar_writer **ret, silo_error *err)
{
        silo_tar_writer *w = NULL;
        /* userdata is the writer itself, patched in below. */
        int r = silo_tar_writer_new(fd_write, NULL, &w, err);
        if (r < 0)
                return r;
        w->userdata = w;
        w->fd = fd;
        *ret = w;
        return 0;
}

silo_tar_writer *silo_tar_writer_free(silo_tar_writer *w)
{
        if (!w)
                return NULL;
        if (w->a)
                archive_write_free(w->a);       /* also closes; harmless after finish */
        for (size_t i = 0; i < w->n_links; i++)
                free(w->links[i].path);
        free(w->links);
        free(w->buf);
        free(w);
        return NULL;
}

int silo_tar_writer_finish(silo_tar_writer *w, silo_error *err)
{
        if (archive_write_close(w->a) != ARCHIVE_OK)
                return fail(w, "finish tar stream", err);
        w->finished = true;
        return 0;
}

static struct archive_entry *new_entry(const char *path, mode_t type, mode_t perm)
{
        struct archive_entry *e = archive_entry_new();
        if (!e)
                return NULL;
        archive_entry_set_pathname(e, path);
        archive_entry_set_filetype(e, type);
        archive_entry_set_perm(e, perm);
        archive_entry_set_mtime(e, 0, 0);
        return e;
}

static int write_header(silo_tar_writer *w, struct archive_entry *e, silo_error *err)
{
        int r = archive_write_header(w->a, e);
        if (r < ARCHIVE_WARN)
                return fail(w, archive_entry_pathname(e), err);
        return 0;
}

static int copy_data(silo_tar_writer *w, int fd, uint64_t size, const char *path, silo_error *err)
{
        uint64_t left = size;
        while (left > 0) {
                size_t want = left < COPY_CHUNK ? (size_t) left : COPY_CHUNK;
                ssize_t n = read(fd, w->buf, want);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return silo_error_set(err, errno, "read %s", path);
                }
                if (n == 0) {
                        /* File shrank while we read it: pad, the header is written. */
                        memset(w->buf, 0, want);
                        n = (ssize_t) want;
                }
                if (archive_write_data(w->a, w->buf, (size_t) n) < 0)
                        return fail(w, path, err);
                left -= (uint64_t) n;
        }
        return 0;
}

int silo_tar_writer_add_buffer(silo_tar_writer *w, const char *path, const void *data, size_t len, silo_error *err)
{
        struct archive_entry *e = new_entry(path, AE_IFREG, 0644);
        if (!e)
                return silo_error_set(err, ENOMEM, "tar entry");
        archive_entry_set_size(e, (la_int64_t) len);
        int r = write_header(w, e, err);
        archive_entry_free(e);
        if (r < 0)
                return r;
        if (len > 0 && archive_write_data(w->a, data, len) < 0)
                return fail(w, path, err);
        return 0;
}

int silo_tar_writer_add_fd(silo_tar_writer *w, const char *path, int fd, uint64_t size, silo_error *err)
{
        struct archive_entry *e = new_entry(path, AE_IFREG, 0644);
        if (!e)
                return silo_error_set(err, ENOMEM, "tar entry");
        archive_entry_set_size(e, (la_int64_t) size);
        int r = write_header(w, e, err);
        archive_entry_free(e);
        if (r < 0)
                return r;
        return copy_data(w, fd, size, path, err);
}

int silo_tar_writer_add_dir(silo_tar_writer *w, const char *path, silo_error *err)
{
        struct archive_entry *e = new_entry(path, AE_IFDIR, 0755);
        if (!e)
                return silo_error_set(err, ENOMEM, "tar entry");
        int r = write_header(w, e, err);
        archive_entry_free(e);
        return r;
}

int silo_tar_writer_add_symlink(silo_tar_writer *w, const char *path, const char *target, silo_error *err)
{
        struct archive_entry *e = new_entry(path, AE_IFLNK, 0777);
        if (!e)
                return silo_error_set(err, ENOMEM, "tar entry");
        archive_entry_set_symlink(e, target);
        int r = write_header(w, e, err);
        archive_entry_free(e);
        return r;
}

/* ---- trees ---- */

static int cmp_names(const void *a, const void *b)
{
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Sorted entry names of a directory (deterministic layers). */
static int list_dir(int dfd, char ***ret, size_t *ret_n, silo_error *err)
{
        int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return silo_error_set(err, errno, "open directory");
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return silo_error_set(err, errno, "fdopendir");
        }
        _cleanup_closedir_ DIR *dir = d;
        size_t n = 0, cap = 16;
        _cleanup_strv_ char **v = calloc(cap + 1, sizeof(char *));
        if (!v)
                return silo_error_set(err, ENOMEM, "list directory");
        struct dirent *de;
        while ((de = readdir(dir))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                if (n == cap) {
                        char **nv = realloc(v, (2 * cap + 1) * sizeof(char *));
                        if (!nv)
                                return silo_error_set(err, ENOMEM, "list directory");
                        v = nv;
                        cap *= 2;
                }
                if (!(v[n] = strdup(de->d_name)))
                        return silo_error_set(err, ENOMEM, "list directory");
                v[++n] = NULL;
        }
        qsort(v, n, sizeof(char *), cmp_names);
        *ret = TAKE_PTR(v);
        *ret_n = n;
        return 0;
}

static bool keep_xattr(const char *name)
{
        return !strncmp(name, "user.", 5) || !strcmp(name, "security.capability");
}

static void add_xattrs(struct archive_entry *e, int fd)
{
        char names[4096];
        ssize_t n = flistxattr(fd, names, sizeof(names));
        if (n <= 0)
                return;
        for (char *p = names; p < names + n; p += strlen(p) + 1) {
                if (!keep_xattr(p))
                        continue;
                char value[4096];
                ssize_t vn = fgetxattr(fd, p, value, sizeof(value));
                if (vn >= 0)
                        archive_entry_xattr_add_entry(e, p, value, (size_t) vn);
        }
}

static bool is_opaque(int fd)
{
        char v[4];
        ssize_t n = fgetxattr(fd, "trusted.overlay.opaque", v, sizeof(v));
        return n == 1 && v[0] == 'y';
}

static const char *find_link(silo_tar_writer *w, const struct stat *st)
{
        for (size_t i = 0; i < w->n_links; i++)
                if (w->links[i].dev == st->st_dev && w->links[i].ino == st->st_ino)
                        return w->links[i].path;
        return NULL;
}

static int remember_link(silo_tar_writer *w, const struct stat *st, const char *path)
{
        if (w->n_links == w->cap_links) {
                size_t cap = w->cap_links ? w->cap_links * 2 : 32;
                struct hardlink *v = realloc(w->links, cap * sizeof(*v));
                if (!v)
                        return -ENOMEM;
                w->links = v;
                w->cap_links = cap;
        }
        char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        w->links[w->n_links++] = (struct hardlink) { st->st_dev, st->st_ino, p };
        return 0;
}

static struct archive_entry *stat_entry(const char *path, const struct stat *st)
{
        struct archive_entry *e = archive_entry_new();
        if (!e)
                return NULL;
        archive_entry_copy_stat(e, st);
        archive_entry_set_pathname(e, path);
        /* Reproducible: only mtime. */
        archive_entry_unset_atime(e);
        archive_entry_unset_ctime(e);
        archive_entry_unset_birthtime(e);
        return e;
}

static int walk(silo_tar_writer *w, int dfd, const char *prefix, silo_tar_mode mode, unsigned depth, silo_error *err);

static int add_one(silo_tar_writer *w, int dfd, const char *name, const char *prefix, silo_tar_mode mode,
                   unsigned depth, silo_error *err)
{
        char path[PATH_MAX];
        if (snprintf(path, sizeof(path), "%s%s", prefix, name) >= (int) sizeof(path) - 2)
                return silo_error_msg(err, ENAMETOOLONG, "%s%s: path too long", prefix, name);

        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno == ENOENT)
                        return 0;       /* deleted while we walked */
                return silo_error_set(err, errno, "stat %s", path);
        }

        if (mode == SILO_TAR_OVERLAY_DIFF && S_ISCHR(st.st_mode) && st.st_rdev == 0) {
                char wh[PATH_MAX];
                if (snprintf(wh, sizeof(wh), "%s.wh.%s", prefix, name) >= (int) sizeof(wh))
                        return silo_error_msg(err, ENAMETOOLONG, "%s: path too long", path);
                struct archive_entry *e = new_entry(wh, AE_IFREG, 0);
                if (!e)
                        return silo_error_set(err, ENOMEM, "tar entry");
                archive_entry_set_size(e, 0);
                archive_entry_set_mtime(e, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
                int r = write_header(w, e, err);
                archive_entry_free(e);
                return r;
        }

        if (S_ISSOCK(st.st_mode))
                return 0;

        int r = 0;
        struct archive_entry *e = NULL;
        if (S_ISDIR(st.st_mode)) {
                strcat(path, "/");
                _cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        return silo_error_set(err, errno, "open %s", path);
                e = stat_entry(path, &st);
                if (!e)
                        return silo_error_set(err, ENOMEM, "tar entry");
                add_xattrs(e, fd);
                r = write_header(w, e, err);
                archive_entry_free(e);
                if (r < 0)
                        return r;
                if (mode == SILO_TAR_OVERLAY_DIFF && is_opaque(fd)) {
                        char opq[PATH_MAX];
                        if (snprintf(opq, sizeof(opq), "%s.wh..wh..opq", path) >= (int) sizeof(opq))
                                return silo_error_msg(err, ENAMETOOLONG, "%s: path too long", path);
                        e = new_entry(opq, AE_IFREG, 0);
                        if (!e)
                                return silo_error_set(err, ENOMEM, "tar entry");
                        archive_entry_set_size(e, 0);
                        r = write_header(w, e, err);
                        archive_entry_free(e);
                        if (r < 0)
                                return r;
                }
                return walk(w, fd, path, mode, depth + 1, err);
        }

        e = stat_entry(path, &st);
        if (!e)
                return silo_error_set(err, ENOMEM, "tar entry");

        if (S_ISLNK(st.st_mode)) {
                char target[PATH_MAX];
                ssize_t n = readlinkat(dfd, name, target, sizeof(target) - 1);
                if (n < 0) {
                        archive_entry_free(e);
                        return silo_error_set(err, errno, "readlink %s", path);
                }
                target[n] = '\0';
                archive_entry_set_symlink(e, target);
                r = write_header(w, e, err);
        } else if (S_ISREG(st.st_mode)) {
                const char *first = st.st_nlink > 1 ? find_link(w, &st) : NULL;
                if (first) {
                        archive_entry_set_hardlink(e, first);
                        archive_entry_set_size(e, 0);
                        r = write_header(w, e, err);
                } else {
                        if (st.st_nlink > 1 && remember_link(w, &st, path) < 0) {
                                archive_entry_free(e);
                                return silo_error_set(err, ENOMEM, "hardlink table");
                        }
                        _cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
                        if (fd < 0) {
                                archive_entry_free(e);
                                return silo_error_set(err, errno, "open %s", path);
                        }
                        add_xattrs(e, fd);
                        r = write_header(w, e, err);
                        if (r == 0)
                                r = copy_data(w, fd, (uint64_t) st.st_size, path, err);
                }
        } else {
                /* fifos and device nodes: header only */
                r = write_header(w, e, err);
        }
        archive_entry_free(e);
        return r;
}

static int walk(silo_tar_writer *w, int dfd, const char *prefix, silo_tar_mode mode, unsigned depth, silo_error *err)
{
        if (depth > MAX_TREE_DEPTH)
                return silo_error_msg(err, ELOOP, "%s: directory tree deeper than %d levels", prefix, MAX_TREE_DEPTH);
        _cleanup_strv_ char **names = NULL;
        size_t n = 0;
        int r = list_dir(dfd, &names, &n, err);
        if (r < 0)
                return silo_error_prefix(err, "%s", *prefix ? prefix : "./");
        for (size_t i = 0; i < n; i++) {
                r = add_one(w, dfd, names[i], prefix, mode, depth, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

int silo_tar_writer_add_tree(silo_tar_writer *w, int dirfd, silo_tar_mode mode, silo_error *err)
{
        if (mode == SILO_TAR_PLAIN) {
                struct stat st;
                if (fstat(dirfd, &st) < 0)
                        return silo_error_set(err, errno, "stat tree root");
                struct archive_entry *e = stat_entry("./", &st);
                if (!e)
                        return silo_error_set(err, ENOMEM, "tar entry");
                int r = write_header(w, e, err);
                archive_entry_free(e);
                if (r < 0)
                        return r;
        }
        return walk(w, dirfd, "", mode, 0, err);
}
