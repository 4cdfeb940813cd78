/* Layer unpacking: whiteout conversion, metadata, compression and digests,
 * and every hostile-tarball case we defend against.  Each hostile test
 * keeps a canary directory outside the layer root and checks that it is
 * untouched. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>

#include "image/unpack.h"
#include "storage/digest.h"
#include "util/cleanup.h"
#include "util/fs.h"

struct fixture {
        char dir[64];
        char outside[128];      /* canary directory next to the layer root */
        int root_fd;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        snprintf(f->dir, sizeof(f->dir), "/tmp/silo-test-unpack-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        char path[256];
        snprintf(path, sizeof(path), "%s/root", f->dir);
        assert_int_equal(mkdir(path, 0755), 0);
        f->root_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(f->root_fd >= 0);
        snprintf(f->outside, sizeof(f->outside), "%s/outside", f->dir);
        assert_int_equal(mkdir(f->outside, 0755), 0);
        snprintf(path, sizeof(path), "%s/victim", f->outside);
        int fd = open(path, O_CREAT | O_WRONLY, 0644);
        assert_int_equal(write(fd, "original", 8), 8);
        close(fd);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        close(f->root_fd);
        silo_rm_rf_at(AT_FDCWD, f->dir, NULL);
        free(f);
        return 0;
}

/* The canary must be exactly as setup() left it. */
static void assert_outside_untouched(struct fixture *f)
{
        char path[256];
        snprintf(path, sizeof(path), "%s/victim", f->outside);
        char buf[64] = {};
        int fd = open(path, O_RDONLY);
        assert_true(fd >= 0);
        assert_int_equal(read(fd, buf, sizeof(buf)), 8);
        close(fd);
        assert_string_equal(buf, "original");
        DIR *d = opendir(f->outside);
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                n++;
        closedir(d);
        assert_int_equal(n, 3);
}

/* ---- tar builder (libarchive writer into a memfd) ---- */

struct tb {
        struct archive *a;
        int fd;
};

static void tb_init(struct tb *t, const char *filter)
{
        t->fd = memfd_create("layer", MFD_CLOEXEC);
        assert_true(t->fd >= 0);
        t->a = archive_write_new();
        archive_write_set_format_pax_restricted(t->a);
        if (filter && !strcmp(filter, "gzip"))
                archive_write_add_filter_gzip(t->a);
        else if (filter && !strcmp(filter, "zstd"))
                archive_write_add_filter_zstd(t->a);
        assert_int_equal(archive_write_open_fd(t->a, t->fd), ARCHIVE_OK);
}

static struct archive_entry *tb_entry(const char *path, mode_t type, mode_t perm)
{
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, path);
        archive_entry_set_filetype(e, type);
        archive_entry_set_perm(e, perm);
        archive_entry_set_uid(e, 0);
        archive_entry_set_gid(e, 0);
        archive_entry_set_mtime(e, 1000000000, 0);
        return e;
}

static void tb_add(struct tb *t, struct archive_entry *e, const void *data, size_t len)
{
        assert_int_equal(archive_write_header(t->a, e), ARCHIVE_OK);
        if (len)
                assert_int_equal(archive_write_data(t->a, data, len), (la_ssize_t) len);
        archive_entry_free(e);
}

static void tb_file(struct tb *t, const char *path, const char *content, mode_t perm)
{
        struct archive_entry *e = tb_entry(path, AE_IFREG, perm);
        archive_entry_set_size(e, (la_int64_t) strlen(content));
        tb_add(t, e, content, strlen(content));
}

static void tb_dir(struct tb *t, const char *path)
{
        tb_add(t, tb_entry(path, AE_IFDIR, 0755), NULL, 0);
}

static void tb_symlink(struct tb *t, const char *path, const char *target)
{
        struct archive_entry *e = tb_entry(path, AE_IFLNK, 0777);
        archive_entry_set_symlink(e, target);
        tb_add(t, e, NULL, 0);
}

static void tb_hardlink(struct tb *t, const char *path, const char *target)
{
        struct archive_entry *e = tb_entry(path, AE_IFREG, 0644);
        archive_entry_set_hardlink(e, target);
        archive_entry_set_size(e, 0);
        tb_add(t, e, NULL, 0);
}

static void tb_char(struct tb *t, const char *path, unsigned maj, unsigned min)
{
        struct archive_entry *e = tb_entry(path, AE_IFCHR, 0666);
        archive_entry_set_rdevmajor(e, maj);
        archive_entry_set_rdevminor(e, min);
        tb_add(t, e, NULL, 0);
}

/* Finishes the archive; returns the fd rewound to 0. */
static int tb_finish(struct tb *t)
{
        assert_int_equal(archive_write_close(t->a), ARCHIVE_OK);
        archive_write_free(t->a);
        assert_int_equal(lseek(t->fd, 0, SEEK_SET), 0);
        return t->fd;
}

static int unpack(struct fixture *f, int fd, silo_unpack_options *o, silo_unpack_stats *st, silo_error *err)
{
        silo_unpack_options def;
        if (!o) {
                silo_unpack_options_init(&def);
                o = &def;
        }
        silo_unpack_stats tmp;
        int r = silo_unpack_layer_fd(fd, f->root_fd, o, st ? st : &tmp, err);
        close(fd);
        return r;
}

static void read_in_root(struct fixture *f, const char *path, char *buf, size_t size)
{
        memset(buf, 0, size);
        int fd = openat(f->root_fd, path, O_RDONLY | O_NOFOLLOW);
        assert_true(fd >= 0);
        assert_true(read(fd, buf, size - 1) >= 0);
        close(fd);
}

/* ---- tests ---- */

static void test_clean_path(void **state)
{
        (void) state;
        char buf[64];
        unsigned depth;
        assert_int_equal(silo_clean_member_path("./a/b/", buf, sizeof(buf), &depth), 0);
        assert_string_equal(buf, "a/b");
        assert_int_equal(depth, 2);
        assert_int_equal(silo_clean_member_path("/etc//passwd", buf, sizeof(buf), NULL), 0);
        assert_string_equal(buf, "etc/passwd");
        assert_int_equal(silo_clean_member_path("a/../b", buf, sizeof(buf), NULL), 0);
        assert_string_equal(buf, "b");
        assert_int_equal(silo_clean_member_path("./", buf, sizeof(buf), &depth), 0);
        assert_string_equal(buf, "");
        assert_int_equal(depth, 0);
        assert_int_equal(silo_clean_member_path("../etc/passwd", buf, sizeof(buf), NULL), -EXDEV);
        assert_int_equal(silo_clean_member_path("a/../../b", buf, sizeof(buf), NULL), -EXDEV);
        assert_int_equal(silo_clean_member_path("/..", buf, sizeof(buf), NULL), -EXDEV);
        assert_int_equal(silo_clean_member_path("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                                buf, sizeof(buf), NULL), -ENAMETOOLONG);
}

static void test_basic(void **state)
{
        struct fixture *f = *state;
        struct tb t;
        tb_init(&t, NULL);
        tb_dir(&t, "./");
        tb_dir(&t, "etc/");
        tb_file(&t, "etc/hostname", "box\n", 0644);
        tb_symlink(&t, "etc/link", "hostname");
        tb_hardlink(&t, "etc/hard", "etc/hostname");
        struct archive_entry *e = tb_entry("usr/bin/owned", AE_IFREG, 0750);
        archive_entry_set_uid(e, 1234);
        archive_entry_set_gid(e, 5678);
        archive_entry_set_size(e, 2);
        tb_add(&t, e, "hi", 2);
        e = tb_entry("fifo", AE_IFIFO, 0600);
        tb_add(&t, e, NULL, 0);

        silo_error err = SILO_ERROR_INIT;
        silo_unpack_stats st;
        assert_int_equal(unpack(f, tb_finish(&t), NULL, &st, &err), 0);

        char buf[64];
        read_in_root(f, "etc/hostname", buf, sizeof(buf));
        assert_string_equal(buf, "box\n");
        struct stat a, b;
        assert_int_equal(fstatat(f->root_fd, "etc/hostname", &a, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(fstatat(f->root_fd, "etc/hard", &b, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(a.st_ino, b.st_ino);
        assert_int_equal(a.st_mtime, 1000000000);
        assert_int_equal(fstatat(f->root_fd, "etc/link", &a, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISLNK(a.st_mode));
        assert_int_equal(fstatat(f->root_fd, "usr/bin/owned", &a, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(a.st_uid, 1234);
        assert_int_equal(a.st_gid, 5678);
        assert_int_equal(a.st_mode & 07777, 0750);
        /* Implicit parents are created like tar does. */
        assert_int_equal(fstatat(f->root_fd, "usr", &a, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISDIR(a.st_mode));
        assert_int_equal(fstatat(f->root_fd, "fifo", &a, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISFIFO(a.st_mode));
        /* Directory times are applied after their children. */
        assert_int_equal(fstatat(f->root_fd, "etc", &a, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(a.st_mtime, 1000000000);
        assert_int_equal(st.hardlinks, 1);
        assert_int_equal(st.entries, 7);
        /* Uncompressed: the blob is the tar. */
        assert_string_equal(st.blob_digest, st.diff_id);
}

static void test_whiteouts(void **state)
{
        struct fixture *f = *state;
        struct tb t;
        tb_init(&t, NULL);
        tb_dir(&t, "etc/");
        tb_file(&t, "etc/.wh.passwd", "", 0644);
        tb_dir(&t, "var/cache/");
        tb_file(&t, "var/cache/.wh..wh..opq", "", 0644);
        tb_file(&t, "var/cache/new", "x", 0644);
        tb_file(&t, "opaque-implicit/.wh..wh..opq", "", 0644);
        tb_file(&t, ".wh..wh.plnk", "", 0644);

        silo_error err = SILO_ERROR_INIT;
        silo_unpack_stats st;
        assert_int_equal(unpack(f, tb_finish(&t), NULL, &st, &err), 0);

        struct stat s;
        assert_int_equal(fstatat(f->root_fd, "etc/passwd", &s, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISCHR(s.st_mode));
        assert_int_equal(s.st_rdev, makedev(0, 0));
        assert_int_equal(fstatat(f->root_fd, "etc/.wh.passwd", &s, AT_SYMLINK_NOFOLLOW), -1);

        char val[8] = {};
        int fd = openat(f->root_fd, "var/cache", O_RDONLY | O_DIRECTORY);
        assert_int_equal(fgetxattr(fd, "trusted.overlay.opaque", val, sizeof(val)), 1);
        assert_string_equal(val, "y");
        close(fd);
        assert_int_equal(fstatat(f->root_fd, "var/cache/new", &s, 0), 0);
        assert_int_equal(fstatat(f->root_fd, "var/cache/.wh..wh..opq", &s, 0), -1);
        fd = openat(f->root_fd, "opaque-implicit", O_RDONLY | O_DIRECTORY);
        assert_int_equal(fgetxattr(fd, "trusted.overlay.opaque", val, sizeof(val)), 1);
        close(fd);
        assert_int_equal(fstatat(f->root_fd, ".wh..wh.plnk", &s, AT_SYMLINK_NOFOLLOW), -1);
        assert_int_equal(st.whiteouts, 1);
        assert_int_equal(st.opaque_dirs, 2);
}

static void test_compressed_digests(void **state)
{
        struct fixture *f = *state;
        const char *filters[] = { "gzip", "zstd" };
        for (size_t i = 0; i < 2; i++) {
                /* Same tar content uncompressed and compressed: same diff_id. */
                struct tb plain, comp;
                tb_init(&plain, NULL);
                tb_file(&plain, "a", "content", 0644);
                int pfd = tb_finish(&plain);
                tb_init(&comp, filters[i]);
                tb_file(&comp, "a", "content", 0644);
                int cfd = tb_finish(&comp);

                silo_error err = SILO_ERROR_INIT;
                silo_unpack_stats ps, cs;
                assert_int_equal(unpack(f, pfd, NULL, &ps, &err), 0);
                assert_int_equal(unpack(f, cfd, NULL, &cs, &err), 0);
                assert_string_equal(ps.diff_id, cs.diff_id);
                assert_string_not_equal(cs.blob_digest, cs.diff_id);
        }
}

static void test_digest_mismatch(void **state)
{
        struct fixture *f = *state;
        struct tb t;
        tb_init(&t, "gzip");
        tb_file(&t, "a", "content", 0644);
        silo_unpack_options o;
        silo_unpack_options_init(&o);
        o.expected_diff_id = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        silo_error err = SILO_ERROR_INIT;
        assert_int_equal(unpack(f, tb_finish(&t), &o, NULL, &err), -EBADMSG);
        assert_non_null(strstr(err.message, "diff_id mismatch"));

        tb_init(&t, "gzip");
        tb_file(&t, "a", "content", 0644);
        silo_unpack_options_init(&o);
        o.expected_blob = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        assert_int_equal(unpack(f, tb_finish(&t), &o, NULL, &err), -EBADMSG);
        assert_non_null(strstr(err.message, "blob digest mismatch"));
}

static void test_truncated(void **state)
{
        struct fixture *f = *state;
        const char *filters[] = { "gzip", "zstd", NULL };
        for (size_t i = 0; i < 3; i++) {
                struct tb t;
                tb_init(&t, filters[i]);
                char big[20000];
                for (size_t k = 0; k < sizeof(big) - 1; k++)
                        big[k] = (char) ('a' + (k * 31 + k / 7) % 26);
                big[sizeof(big) - 1] = '\0';
                tb_file(&t, "big", big, 0644);
                int fd = tb_finish(&t);
                struct stat st;
                fstat(fd, &st);
                assert_int_equal(ftruncate(fd, st.st_size / 2), 0);
                silo_error err = SILO_ERROR_INIT;
                assert_true(unpack(f, fd, NULL, NULL, &err) < 0);
                assert_true(strstr(err.message, "truncated") || strstr(err.message, "Truncated"));
        }
}

static void test_hostile_dotdot(void **state)
{
        struct fixture *f = *state;
        struct tb t;
        tb_init(&t, NULL);
        tb_file(&t, "../outside/victim", "pwned", 0644);
        silo_error err = SILO_ERROR_INIT;
        assert_int_equal(unpack(f, tb_finish(&t), NULL, NULL, &err), -EXDEV);
        assert_non_null(strstr(err.message, "entry '../outside/victim': path escapes the layer root"));
        assert_outside_untouched(f);

        tb_init(&t, NULL);
        tb_file(&t, "a/b/../../../outside/victim", "pwned", 0644);
        assert_int_equal(unpack(f, tb_finish(&t), NULL, NULL, &err), -EXDEV);
        assert_outside_untouched(f);
}

static void test_hostile_absolute(void **state)
{
        struct fixture *f = *state;
        char abs[256];
        snprintf(abs, sizeof(abs), "%s/victim", f->outside);
        struct tb t;
        tb_init(&t, NULL);
        tb_file(&t, abs, "pwned", 0644);
        silo_error err = SILO_ERROR_INIT;
        /* Neutralised: the absolute path lands inside the root. */
        assert_int_equal(unpack(f, tb_finish(&t), NULL, NULL, &err), 0);
        assert_outside_untouched(f);
        char buf[16];
        read_in_root(f, abs + 1, buf, sizeof(buf));
        assert_string_equal(buf, "pwned");
}

static void test_hostile_symlink_write_through(void **state)
{
        struct fixture *f = *state;
        silo_error err = SILO_ERROR_INIT;

        /* Symlink to an outside directory, then a file written "through" it. */
        struct tb t;
        tb_init(&t, NULL);
        tb_symlink(&t, "evil", f->outside);
        tb_file(&t, "evil/victim", "pwned", 0644);
        assert_true(unpack(f, tb_finish(&t), NULL, NULL, &err) < 0);
        assert_non_null(strstr(err.message, "evil"));
        assert_outside_untouched(f);

        /* Relative escape through a symlink: resolves inside the root. */
        tb_init(&t, NULL);
        tb_symlink(&t, "up", "../../../../../../..");
        char p[300];
        snprintf(p, sizeof(p), "up%s/victim", f->outside);
        tb_file(&t, p, "pwned", 0644);
        int fd = tb_finish(&t);
        int r = unpack(f, fd, NULL, NULL, &err);
        assert_outside_untouched(f);
        if (r == 0) {
                char buf[16];
                read_in_root(f, p + 3, buf, sizeof(buf));
                assert_string_equal(buf, "pwned");
        }

        /* Symlink to an outside file, then a regular file of the same name:
         * the symlink is replaced, not written through. */
        char victim[256];
        snprintf(victim, sizeof(victim), "%s/victim", f->outside);
        tb_init(&t, NULL);
        tb_symlink(&t, "file", victim);
        tb_file(&t, "file", "pwned", 0644);
        assert_int_equal(unpack(f, tb_finish(&t), NULL, NULL, &err), 0);
        assert_outside_untouched(f);
        struct stat st;
        assert_int_equal(fstatat(f->root_fd, "file", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISREG(st.st_mode));
}

static void test_hostile_hardlink(void **state)
{
        struct fixture *f = *state;
        silo_error err = SILO_ERROR_INIT;
        char victim[256];
        snprintf(victim, sizeof(victim), "%s/victim", f->outside);

        /* Out of the root by "..". */
        struct tb t;
        tb_init(&t, NULL);
        tb_hardlink(&t, "h", "../outside/victim");
        assert_int_equal(unpack(f, tb_finish(&t), NULL, NULL, &err), -EXDEV);
        assert_non_null(strstr(err.message, "outside the layer"));

        /* By absolute path: resolved inside the root, where it does not exist. */
        tb_init(&t, NULL);
        tb_hardlink(&t, "h", victim);
        assert_int_equal(unpack(f, tb_finish(&t), NULL, NULL, &err), -ENOENT);
        assert_non_null(strstr(err.message, "does not exist in this layer"));

        /* Through a symlinked parent: still resolved inside the root. */
        tb_init(&t, NULL);
        tb_symlink(&t, "out", f->outside);
        tb_hardlink(&t, "h", "out/victim");
        assert_int_equal(unpack(f, tb_finish(&t), NULL, NULL, &err), -ENOENT);

        /* To a symlink: links the symlink itself; a later write replaces it. */
        tb_init(&t, NULL);
        tb_symlink(&t, "s", victim);
        tb_hardlink(&t, "h", "s");
        tb_file(&t, "h", "pwned", 0644);
        assert_int_equal(unpack(f, tb_finish(&t), NULL, NULL, &err), 0);
        struct stat st;
        assert_int_equal(fstatat(f->root_fd, "s", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISLNK(st.st_mode));
        assert_int_equal(fstatat(f->root_fd, "h", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISREG(st.st_mode));

        /* A hardlink, then a file of the same name: the link target keeps its content. */
        tb_init(&t, NULL);
        tb_file(&t, "orig", "original", 0644);
        tb_hardlink(&t, "alias", "orig");
        tb_file(&t, "alias", "changed", 0644);
        assert_int_equal(unpack(f, tb_finish(&t), NULL, NULL, &err), 0);
        char buf[16];
        read_in_root(f, "orig", buf, sizeof(buf));
        assert_string_equal(buf, "original");

        /* To a directory. */
        tb_init(&t, NULL);
        tb_dir(&t, "d/");
        tb_hardlink(&t, "h2", "d");
        assert_int_equal(unpack(f, tb_finish(&t), NULL, NULL, &err), -EPERM);
        assert_outside_untouched(f);
}

static void test_hostile_dir_replaces_symlink(void **state)
{
        struct fixture *f = *state;
        struct tb t;
        tb_init(&t, NULL);
        tb_symlink(&t, "d", f->outside);
        tb_dir(&t, "d/");
        tb_file(&t, "d/victim", "pwned", 0644);
        silo_error err = SILO_ERROR_INIT;
        assert_int_equal(unpack(f, tb_finish(&t), NULL, NULL, &err), 0);
        assert_outside_untouched(f);
        struct stat st;
        assert_int_equal(fstatat(f->root_fd, "d", &st, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISDIR(st.st_mode));
        char buf[16];
        read_in_root(f, "d/victim", buf, sizeof(buf));
        assert_string_equal(buf, "pwned");

        /* The same one level down, where the parent is the cached directory fd. */
        tb_init(&t, NULL);
        tb_dir(&t, "p/");
        tb_symlink(&t, "p/d", f->outside);
        tb_dir(&t, "p/d/");
        tb_file(&t, "p/d/victim", "pwned", 0644);
        tb_symlink(&t, "p/d2", "d");
        tb_symlink(&t, "p/d2", "elsewhere");
        tb_file(&t, "p/after", "ok", 0644);
        assert_int_equal(unpack(f, tb_finish(&t), NULL, NULL, &err), 0);
        assert_outside_untouched(f);
        read_in_root(f, "p/d/victim", buf, sizeof(buf));
        assert_string_equal(buf, "pwned");
        read_in_root(f, "p/after", buf, sizeof(buf));
        assert_string_equal(buf, "ok");

        /* And the reverse: a symlink replacing a populated directory. */
        tb_init(&t, NULL);
        tb_dir(&t, "x/");
        tb_file(&t, "x/a", "a", 0644);
        tb_symlink(&t, "x", f->outside);
        tb_file(&t, "x/victim", "pwned", 0644);
        assert_true(unpack(f, tb_finish(&t), NULL, NULL, &err) < 0);
        assert_outside_untouched(f);
}

static void test_devices_and_setuid(void **state)
{
        struct fixture *f = *state;
        struct tb t;
        tb_init(&t, NULL);
        tb_char(&t, "dev/sda", 8, 0);
        tb_char(&t, "dev/null", 1, 3);
        tb_file(&t, "bin/su", "elf", 04755);
        tb_file(&t, "bin/wall", "elf", 02755);
        silo_error err = SILO_ERROR_INIT;
        silo_unpack_stats st;
        assert_int_equal(unpack(f, tb_finish(&t), NULL, &st, &err), 0);
        struct stat s;
        assert_int_equal(fstatat(f->root_fd, "dev/sda", &s, AT_SYMLINK_NOFOLLOW), -1);
        assert_int_equal(fstatat(f->root_fd, "dev/null", &s, AT_SYMLINK_NOFOLLOW), -1);
        assert_int_equal(st.skipped_devices, 2);
        /* setuid/setgid are kept on purpose (su, passwd need them); the
         * store keeps layers in a 0700 directory. */
        assert_int_equal(fstatat(f->root_fd, "bin/su", &s, 0), 0);
        assert_int_equal(s.st_mode & 07777, 04755);
        assert_int_equal(fstatat(f->root_fd, "bin/wall", &s, 0), 0);
        assert_int_equal(s.st_mode & 07777, 02755);

        /* Explicitly allowed. */
        tb_init(&t, NULL);
        tb_char(&t, "dev/null", 1, 3);
        silo_unpack_options o;
        silo_unpack_options_init(&o);
        o.allow_devices = true;
        assert_int_equal(unpack(f, tb_finish(&t), &o, &st, &err), 0);
        assert_int_equal(fstatat(f->root_fd, "dev/null", &s, AT_SYMLINK_NOFOLLOW), 0);
        assert_true(S_ISCHR(s.st_mode));
        assert_int_equal(s.st_rdev, makedev(1, 3));
}

static void test_modes_and_owners(void **state)
{
        struct fixture *f = *state;
        struct tb t;
        tb_init(&t, NULL);
        tb_file(&t, "m0666", "x", 0666);        /* the umask would strip these bits */
        tb_file(&t, "m0777", "x", 0777);
        tb_file(&t, "m0400", "x", 0400);
        tb_file(&t, "sticky", "x", 01755);
        struct archive_entry *e = tb_entry("sgid/", AE_IFDIR, 02775);
        archive_entry_set_gid(e, 4321);
        tb_add(&t, e, NULL, 0);
        tb_file(&t, "sgid/child", "x", 0644);  /* uid/gid 0:0 in the tar, parent is setgid 4321 */
        silo_error err = SILO_ERROR_INIT;
        assert_int_equal(unpack(f, tb_finish(&t), NULL, NULL, &err), 0);
        const struct { const char *path; mode_t mode; } want[] = {
                { "m0666", 0666 }, { "m0777", 0777 }, { "m0400", 0400 }, { "sticky", 01755 }, { "sgid", 02775 },
        };
        for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
                struct stat st;
                assert_int_equal(fstatat(f->root_fd, want[i].path, &st, AT_SYMLINK_NOFOLLOW), 0);
                if ((st.st_mode & 07777) != want[i].mode)
                        fail_msg("%s: mode %o, want %o", want[i].path, st.st_mode & 07777, want[i].mode);
        }
        struct stat st;
        assert_int_equal(fstatat(f->root_fd, "sgid/child", &st, 0), 0);
        assert_int_equal(st.st_gid, 0);         /* as the tar says, not inherited */
        assert_int_equal(st.st_uid, 0);
}

static void test_xattrs(void **state)
{
        struct fixture *f = *state;
        struct tb t;
        tb_init(&t, NULL);
        struct archive_entry *e = tb_entry("d", AE_IFDIR, 0755);
        archive_entry_xattr_add_entry(e, "trusted.overlay.opaque", "y", 1);
        archive_entry_xattr_add_entry(e, "user.note", "hello", 5);
        tb_add(&t, e, NULL, 0);
        e = tb_entry("f", AE_IFREG, 0755);
        archive_entry_xattr_add_entry(e, "trusted.overlay.redirect", "/etc", 4);
        archive_entry_set_size(e, 0);
        tb_add(&t, e, NULL, 0);
        silo_error err = SILO_ERROR_INIT;
        silo_unpack_stats st;
        assert_int_equal(unpack(f, tb_finish(&t), NULL, &st, &err), 0);
        char val[16] = {};
        int fd = openat(f->root_fd, "d", O_RDONLY | O_DIRECTORY);
        assert_int_equal(fgetxattr(fd, "trusted.overlay.opaque", val, sizeof(val)), -1);
        assert_int_equal(fgetxattr(fd, "user.note", val, sizeof(val)), 5);
        close(fd);
        /* pax writes each xattr twice (LIBARCHIVE. and SCHILY. keys). */
        assert_true(st.skipped_xattrs >= 2);
}

static void test_limits_depth_entries(void **state)
{
        struct fixture *f = *state;
        silo_error err = SILO_ERROR_INIT;

        /* Deeply nested: refused at the default depth limit. */
        struct tb t;
        tb_init(&t, NULL);
        char path[PATH_MAX] = "";
        for (unsigned i = 0; i < SILO_UNPACK_MAX_DEPTH + 10; i++)
                strcat(path, "d/");
        strcat(path, "f");
        tb_file(&t, path, "x", 0644);
        assert_int_equal(unpack(f, tb_finish(&t), NULL, NULL, &err), -ELOOP);
        assert_non_null(strstr(err.message, "nested deeper than"));

        /* Too many entries. */
        tb_init(&t, NULL);
        for (int i = 0; i < 20; i++) {
                char n[16];
                snprintf(n, sizeof(n), "f%d", i);
                tb_file(&t, n, "", 0644);
        }
        silo_unpack_options o;
        silo_unpack_options_init(&o);
        o.max_entries = 10;
        assert_int_equal(unpack(f, tb_finish(&t), &o, NULL, &err), -EFBIG);
        assert_non_null(strstr(err.message, "more than 10 entries"));
}

static void test_decompression_bomb(void **state)
{
        struct fixture *f = *state;
        const char *filters[] = { "gzip", "zstd" };
        for (size_t i = 0; i < 2; i++) {
                struct tb t;
                tb_init(&t, filters[i]);
                const size_t size = 64u << 20;
                char *zeros = calloc(1, size);
                struct archive_entry *e = tb_entry("zeros", AE_IFREG, 0644);
                archive_entry_set_size(e, (la_int64_t) size);
                tb_add(&t, e, zeros, size);
                free(zeros);

                silo_error err = SILO_ERROR_INIT;
                silo_unpack_options o;
                silo_unpack_options_init(&o);
                o.limits.ratio_floor = 8u << 20;
                assert_int_equal(unpack(f, tb_finish(&t), &o, NULL, &err), -EFBIG);
                assert_non_null(strstr(err.message, "decompression bomb"));

                tb_init(&t, filters[i]);
                tb_file(&t, "small", "0123456789", 0644);
                silo_unpack_options_init(&o);
                o.limits.max_bytes = 1024;      /* smaller than the tar framing */
                assert_int_equal(unpack(f, tb_finish(&t), &o, NULL, &err), -EFBIG);
                assert_non_null(strstr(err.message, "limit of 1024 uncompressed bytes"));
        }
}

static void test_not_a_tar(void **state)
{
        struct fixture *f = *state;
        int fd = memfd_create("junk", MFD_CLOEXEC);
        char junk[4096];
        memset(junk, 'A', sizeof(junk));
        assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t) sizeof(junk));
        lseek(fd, 0, SEEK_SET);
        silo_error err = SILO_ERROR_INIT;
        assert_true(unpack(f, fd, NULL, NULL, &err) < 0);
        assert_true(strlen(err.message) > 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_clean_path),
                cmocka_unit_test_setup_teardown(test_basic, setup, teardown),
                cmocka_unit_test_setup_teardown(test_whiteouts, setup, teardown),
                cmocka_unit_test_setup_teardown(test_compressed_digests, setup, teardown),
                cmocka_unit_test_setup_teardown(test_digest_mismatch, setup, teardown),
                cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hostile_dotdot, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hostile_absolute, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hostile_symlink_write_through, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hostile_hardlink, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hostile_dir_replaces_symlink, setup, teardown),
                cmocka_unit_test_setup_teardown(test_devices_and_setuid, setup, teardown),
                cmocka_unit_test_setup_teardown(test_modes_and_owners, setup, teardown),
                cmocka_unit_test_setup_teardown(test_xattrs, setup, teardown),
                cmocka_unit_test_setup_teardown(test_limits_depth_entries, setup, teardown),
                cmocka_unit_test_setup_teardown(test_decompression_bomb, setup, teardown),
                cmocka_unit_test_setup_teardown(test_not_a_tar, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
