/* vm/share.c: the host's FUSE server of live mapped directories, driven
 * with crafted requests against a temporary directory, as a hostile guest
 * would: round trips, escape attempts (names with '/', "..", symlinks out
 * of the share, device nodes), bad lengths, unknown nodes and handles, and
 * a random-bytes loop that must neither crash (ASan/UBSan watch it) nor
 * touch anything outside the share. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/cleanup.h"
#include "vm/share.h"

struct fixture {
        char top[64];           /* holds the share "d", the file share "f", and an outside sentinel */
        char dir[96];
        struct silo_vm_share *s;
        uint64_t unique;
        uint8_t out[SILO_VM_SHARE_MSG_MAX];
        size_t out_len;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        snprintf(f->top, sizeof(f->top), "/tmp/silo-share-test-XXXXXX");
        assert_non_null(mkdtemp(f->top));
        snprintf(f->dir, sizeof(f->dir), "%s/d", f->top);
        assert_int_equal(mkdir(f->dir, 0755), 0);
        char path[160];
        snprintf(path, sizeof(path), "%s/outside", f->top);
        FILE *o = fopen(path, "w");
        fputs("sentinel\n", o);
        fclose(o);
        snprintf(path, sizeof(path), "%s/file", f->top);
        o = fopen(path, "w");
        fputs("single file\n", o);
        fclose(o);
        silo_error e = SILO_ERROR_INIT;
        assert_int_equal(silo_vm_share_new(0, &f->s, &e), 0);
        _cleanup_close_ int dfd = open(f->dir, O_PATH | O_CLOEXEC);
        _cleanup_close_ int ffd = open(path, O_RDONLY | O_CLOEXEC);
        assert_int_equal(silo_vm_share_add(f->s, "d", dfd, &e), 0);
        assert_int_equal(silo_vm_share_add(f->s, "f", ffd, &e), 0);
        assert_int_not_equal(silo_vm_share_add(f->s, "d", dfd, &e), 0);        /* taken */
        assert_int_not_equal(silo_vm_share_add(f->s, "../x", dfd, &e), 0);     /* not a name */
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        silo_vm_share_free(f->s);
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", f->top);
        assert_int_equal(system(cmd), 0);
        free(f);
        return 0;
}

/* Sends one request; returns the reply's error (0 or -errno), or 1 when
 * there is no reply; a protocol violation fails the test. */
static int call(struct fixture *f, uint32_t opcode, uint64_t nodeid, const void *arg, size_t arg_len, const char *s1,
                const char *s2)
{
        uint8_t msg[SILO_VM_SHARE_MSG_MAX];
        struct fuse_in_header h = { .opcode = opcode, .unique = ++f->unique, .nodeid = nodeid };
        size_t len = sizeof(h);
        if (arg_len)
                memcpy(msg + len, arg, arg_len);
        len += arg_len;
        for (const char *s = s1; s; s = s == s1 ? s2 : NULL) {
                memcpy(msg + len, s, strlen(s) + 1);
                len += strlen(s) + 1;
        }
        h.len = (uint32_t) len;
        memcpy(msg, &h, sizeof(h));
        silo_error e = SILO_ERROR_INIT;
        ssize_t n = silo_vm_share_handle(f->s, msg, len, f->out, &e);
        if (n < 0)
                fail_msg("opcode %u: protocol violation: %s", opcode, e.message);
        if (n == 0)
                return 1;
        struct fuse_out_header o;
        memcpy(&o, f->out, sizeof(o));
        assert_int_equal(o.len, n);
        assert_int_equal(o.unique, f->unique);
        f->out_len = (size_t) n - sizeof(o);
        return o.error;
}

static void *payload(struct fixture *f)
{
        return f->out + sizeof(struct fuse_out_header);
}

static void init(struct fixture *f)
{
        struct fuse_init_in in = { .major = 7, .minor = 37, .max_readahead = 1 << 20, .flags = 0xffffffff };
        assert_int_equal(call(f, FUSE_INIT, 0, &in, sizeof(in), NULL, NULL), 0);
        struct fuse_init_out *o = payload(f);
        assert_int_equal(o->major, 7);
        assert_int_equal(o->minor, 37);
        assert_int_equal(o->max_write, SILO_VM_SHARE_MAX_WRITE);
        assert_false(o->flags & FUSE_WRITEBACK_CACHE);
}

static uint64_t lookup(struct fixture *f, uint64_t parent, const char *name, struct fuse_attr *ret_attr)
{
        int r = call(f, FUSE_LOOKUP, parent, NULL, 0, name, NULL);
        if (r < 0)
                return 0;
        struct fuse_entry_out *e = payload(f);
        if (ret_attr)
                *ret_attr = e->attr;
        return e->nodeid;
}

static uint64_t create(struct fixture *f, uint64_t dir, const char *name, uint64_t *ret_fh)
{
        struct fuse_create_in in = { .flags = O_RDWR | O_CREAT | O_EXCL, .mode = S_IFREG | 0644 };
        assert_int_equal(call(f, FUSE_CREATE, dir, &in, sizeof(in), name, NULL), 0);
        struct fuse_entry_out e;
        struct fuse_open_out o;
        memcpy(&e, payload(f), sizeof(e));
        memcpy(&o, (uint8_t *) payload(f) + sizeof(e), sizeof(o));
        *ret_fh = o.fh;
        return e.nodeid;
}

static char *read_host(struct fixture *f, const char *name)
{
        static char buf[256];
        char path[256];
        snprintf(path, sizeof(path), "%s/%s", f->dir, name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        buf[n > 0 ? n : 0] = 0;
        return buf;
}

static void test_round_trip(void **state)
{
        struct fixture *f = *state;
        init(f);
        uint64_t d = lookup(f, FUSE_ROOT_ID, "d", NULL);
        assert_true(d > 1);
        assert_int_equal(lookup(f, FUSE_ROOT_ID, "d", NULL), d);       /* one node per inode */
        uint64_t fh;
        uint64_t hello = create(f, d, "hello", &fh);
        assert_true(hello > 1);
        char data[] = "hello world\n";
        uint8_t w[sizeof(struct fuse_write_in) + sizeof(data) - 1];
        struct fuse_write_in win = { .fh = fh, .size = sizeof(data) - 1 };
        memcpy(w, &win, sizeof(win));
        memcpy(w + sizeof(win), data, sizeof(data) - 1);
        assert_int_equal(call(f, FUSE_WRITE, hello, w, sizeof(w), NULL, NULL), 0);
        assert_int_equal(((struct fuse_write_out *) payload(f))->size, sizeof(data) - 1);
        assert_string_equal(read_host(f, "hello"), data);      /* on the host at once */
        struct fuse_read_in rd = { .fh = fh, .offset = 6, .size = 100 };
        assert_int_equal(call(f, FUSE_READ, hello, &rd, sizeof(rd), NULL, NULL), 0);
        assert_int_equal(f->out_len, 6);
        assert_memory_equal(payload(f), "world\n", 6);
        struct fuse_release_in rel = { .fh = fh };
        assert_int_equal(call(f, FUSE_RELEASE, hello, &rel, sizeof(rel), NULL, NULL), 0);
        assert_int_equal(call(f, FUSE_READ, hello, &rd, sizeof(rd), NULL, NULL), -EBADF);

        /* setattr: size, mode, owner, times. */
        struct fuse_setattr_in sa = { .valid = FATTR_SIZE | FATTR_MODE | FATTR_UID | FATTR_GID | FATTR_MTIME,
                                      .size = 5, .mode = 0600, .uid = 1234, .gid = 5678, .mtime = 1000000 };
        assert_int_equal(call(f, FUSE_SETATTR, hello, &sa, sizeof(sa), NULL, NULL), 0);
        struct stat st;
        char path[256];
        snprintf(path, sizeof(path), "%s/hello", f->dir);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_size, 5);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(st.st_uid, 1234);
        assert_int_equal(st.st_gid, 5678);
        assert_int_equal(st.st_mtime, 1000000);

        /* mkdir, symlink, hard link, rename, readdir, unlink, rmdir. */
        struct fuse_mkdir_in mk = { .mode = 0750 };
        assert_int_equal(call(f, FUSE_MKDIR, d, &mk, sizeof(mk), "sub", NULL), 0);
        uint64_t sub = ((struct fuse_entry_out *) payload(f))->nodeid;
        assert_int_equal(call(f, FUSE_SYMLINK, d, NULL, 0, "ln", "/etc/passwd"), 0);
        char target[64] = "";
        snprintf(path, sizeof(path), "%s/ln", f->dir);
        assert_int_equal(readlink(path, target, sizeof(target) - 1), 11);
        assert_string_equal(target, "/etc/passwd");
        struct fuse_link_in ln = { .oldnodeid = hello };
        assert_int_equal(call(f, FUSE_LINK, sub, &ln, sizeof(ln), "hard", NULL), 0);
        assert_int_equal(((struct fuse_entry_out *) payload(f))->nodeid, hello);
        struct fuse_rename_in rn = { .newdir = d };
        assert_int_equal(call(f, FUSE_RENAME, sub, &rn, sizeof(rn), "hard", "moved"), 0);
        assert_non_null(read_host(f, "moved"));
        struct fuse_rename2_in rn2 = { .newdir = d, .flags = RENAME_NOREPLACE };
        assert_int_equal(call(f, FUSE_RENAME2, d, &rn2, sizeof(rn2), "moved", "hello"), -EEXIST);
        rn2.flags = 4;  /* RENAME_WHITEOUT: refused */
        assert_int_equal(call(f, FUSE_RENAME2, d, &rn2, sizeof(rn2), "moved", "x"), -EINVAL);

        struct fuse_open_in op = { .flags = O_RDONLY };
        assert_int_equal(call(f, FUSE_OPENDIR, d, &op, sizeof(op), NULL, NULL), 0);
        uint64_t dh = ((struct fuse_open_out *) payload(f))->fh;
        char names[512] = "";
        uint64_t off = 0;
        for (int round = 0; round < 100; round++) {
                struct fuse_read_in rr = { .fh = dh, .offset = off, .size = 64 };   /* a few entries at a time */
                assert_int_equal(call(f, FUSE_READDIR, d, &rr, sizeof(rr), NULL, NULL), 0);
                if (f->out_len == 0)
                        break;
                for (size_t p = 0; p < f->out_len;) {
                        struct fuse_dirent de;
                        memcpy(&de, (uint8_t *) payload(f) + p, sizeof(de));
                        strncat(names, (char *) payload(f) + p + FUSE_NAME_OFFSET, de.namelen);
                        strcat(names, " ");
                        off = de.off;
                        p += FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + de.namelen);
                }
        }
        assert_non_null(strstr(names, "hello "));
        assert_non_null(strstr(names, "moved "));
        assert_non_null(strstr(names, "sub "));
        assert_non_null(strstr(names, "ln "));
        struct fuse_release_in rd_rel = { .fh = dh };
        assert_int_equal(call(f, FUSE_RELEASEDIR, d, &rd_rel, sizeof(rd_rel), NULL, NULL), 0);

        assert_int_equal(call(f, FUSE_UNLINK, d, NULL, 0, "moved", NULL), 0);
        assert_int_equal(call(f, FUSE_UNLINK, d, NULL, 0, "hello", NULL), 0);
        assert_null(read_host(f, "hello"));
        assert_int_equal(call(f, FUSE_RMDIR, d, NULL, 0, "sub", NULL), 0);

        /* The root: its entries, read-only. */
        assert_int_equal(call(f, FUSE_OPENDIR, FUSE_ROOT_ID, &op, sizeof(op), NULL, NULL), 0);
        dh = ((struct fuse_open_out *) payload(f))->fh;
        struct fuse_read_in rr = { .fh = dh, .size = 4096 };
        assert_int_equal(call(f, FUSE_READDIR, FUSE_ROOT_ID, &rr, sizeof(rr), NULL, NULL), 0);
        assert_true(f->out_len > 0);
        assert_int_equal(call(f, FUSE_MKDIR, FUSE_ROOT_ID, &mk, sizeof(mk), "new", NULL), -EPERM);
        assert_int_equal(call(f, FUSE_UNLINK, FUSE_ROOT_ID, NULL, 0, "d", NULL), -EPERM);
        assert_int_equal(call(f, FUSE_RENAME, FUSE_ROOT_ID, &rn, sizeof(rn), "d", "e"), -EPERM);
        assert_int_equal(call(f, FUSE_LOOKUP, FUSE_ROOT_ID, NULL, 0, "nope", NULL), -ENOENT);

        /* The file share: the entry is the file itself. */
        struct fuse_attr a;
        uint64_t file = lookup(f, FUSE_ROOT_ID, "f", &a);
        assert_true(S_ISREG(a.mode));
        assert_int_equal(call(f, FUSE_OPEN, file, &op, sizeof(op), NULL, NULL), 0);
        rd = (struct fuse_read_in) { .fh = ((struct fuse_open_out *) payload(f))->fh, .size = 100 };
        assert_int_equal(call(f, FUSE_READ, file, &rd, sizeof(rd), NULL, NULL), 0);
        assert_memory_equal(payload(f), "single file\n", 12);

        /* Forgetting every lookup frees the nodes (the share roots stay). */
        size_t nodes, handles;
        silo_vm_share_counts(f->s, &nodes, &handles);
        assert_int_equal(handles, 2);   /* the root directory's and the file's: none leaked */
        struct fuse_forget_in fg = { .nlookup = 100 };
        assert_int_equal(call(f, FUSE_FORGET, hello, &fg, sizeof(fg), NULL, NULL), 1);
        silo_vm_share_counts(f->s, &nodes, &handles);
        struct {
                struct fuse_batch_forget_in in;
                struct fuse_forget_one one[2];
        } bf = { .in = { .count = 2 }, .one = { { d, 100 }, { file, 100 } } };
        assert_int_equal(call(f, FUSE_BATCH_FORGET, 0, &bf, sizeof(bf), NULL, NULL), 1);
        size_t after;
        silo_vm_share_counts(f->s, &after, &handles);
        assert_true(after <= nodes);
        assert_true(after >= 2);        /* "d" and "f" are pinned */
}

static void test_escapes_are_refused(void **state)
{
        struct fixture *f = *state;
        init(f);
        uint64_t d = lookup(f, FUSE_ROOT_ID, "d", NULL);
        char path[256];
        snprintf(path, sizeof(path), "%s/etc", f->dir);
        assert_int_equal(symlink("/etc", path), 0);
        snprintf(path, sizeof(path), "%s/up", f->dir);
        assert_int_equal(symlink("..", path), 0);
        snprintf(path, sizeof(path), "%s/pw", f->dir);
        assert_int_equal(symlink("/etc/passwd", path), 0);

        /* Names are one component. */
        assert_int_equal(call(f, FUSE_LOOKUP, d, NULL, 0, "..", NULL), -EINVAL);
        assert_int_equal(call(f, FUSE_LOOKUP, d, NULL, 0, ".", NULL), -EINVAL);
        assert_int_equal(call(f, FUSE_LOOKUP, d, NULL, 0, "etc/passwd", NULL), -EINVAL);
        assert_int_equal(call(f, FUSE_LOOKUP, d, NULL, 0, "", NULL), -EINVAL);
        assert_int_equal(call(f, FUSE_LOOKUP, FUSE_ROOT_ID, NULL, 0, "..", NULL), -EINVAL);
        char longname[300];
        memset(longname, 'a', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = 0;
        assert_int_equal(call(f, FUSE_LOOKUP, d, NULL, 0, longname, NULL), -ENAMETOOLONG);
        struct fuse_mkdir_in mk = { .mode = 0755 };
        assert_int_equal(call(f, FUSE_MKDIR, d, &mk, sizeof(mk), "../escape", NULL), -EINVAL);
        struct fuse_rename_in rn = { .newdir = d };
        assert_int_equal(call(f, FUSE_RENAME, d, &rn, sizeof(rn), "etc", "../../x"), -EINVAL);

        /* Symlinks are nodes of their own, never followed on the host. */
        struct fuse_attr a;
        uint64_t etc = lookup(f, d, "etc", &a);
        assert_true(S_ISLNK(a.mode));
        assert_int_equal(call(f, FUSE_LOOKUP, etc, NULL, 0, "passwd", NULL), -ENOTDIR);
        struct fuse_open_in op = { .flags = O_RDONLY };
        assert_int_equal(call(f, FUSE_OPENDIR, etc, &op, sizeof(op), NULL, NULL), -ENOTDIR);
        struct fuse_create_in cr = { .flags = O_RDWR | O_CREAT, .mode = S_IFREG | 0644 };
        assert_int_equal(call(f, FUSE_CREATE, etc, &cr, sizeof(cr), "evil", NULL), -ENOTDIR);
        assert_int_equal(call(f, FUSE_READLINK, etc, NULL, 0, NULL, NULL), 0);
        assert_int_equal(f->out_len, 4);
        assert_memory_equal(payload(f), "/etc", 4);
        uint64_t pw = lookup(f, d, "pw", &a);
        assert_int_not_equal(call(f, FUSE_OPEN, pw, &op, sizeof(op), NULL, NULL), 0);
        op.flags = O_WRONLY | O_TRUNC;
        assert_int_not_equal(call(f, FUSE_OPEN, pw, &op, sizeof(op), NULL, NULL), 0);
        struct fuse_setattr_in sa = { .valid = FATTR_SIZE, .size = 0 };
        assert_int_not_equal(call(f, FUSE_SETATTR, pw, &sa, sizeof(sa), NULL, NULL), 0);
        sa = (struct fuse_setattr_in) { .valid = FATTR_MODE, .mode = 0777 };
        assert_int_not_equal(call(f, FUSE_SETATTR, pw, &sa, sizeof(sa), NULL, NULL), 0);
        /* A create over a symlink's name does not write through it. */
        cr.flags = O_RDWR | O_CREAT | O_TRUNC;
        assert_int_not_equal(call(f, FUSE_CREATE, d, &cr, sizeof(cr), "pw", NULL), 0);
        uint64_t up = lookup(f, d, "up", &a);
        assert_true(S_ISLNK(a.mode));
        assert_int_equal(call(f, FUSE_MKDIR, up, &mk, sizeof(mk), "x", NULL), -ENOTDIR);
        struct stat st;
        assert_int_equal(stat("/etc/passwd", &st), 0);
        assert_true(st.st_size > 0);
        assert_int_not_equal(st.st_mode & 07777, 0777);

        /* No device nodes on the host; FIFOs are fine (never opened here). */
        struct fuse_mknod_in mn = { .mode = S_IFCHR | 0666, .rdev = makedev(1, 3) };
        assert_int_equal(call(f, FUSE_MKNOD, d, &mn, sizeof(mn), "null", NULL), -EPERM);
        mn.mode = S_IFBLK | 0666;
        assert_int_equal(call(f, FUSE_MKNOD, d, &mn, sizeof(mn), "disk", NULL), -EPERM);
        mn.mode = S_IFIFO | 0600;
        assert_int_equal(call(f, FUSE_MKNOD, d, &mn, sizeof(mn), "fifo", NULL), 0);
        uint64_t fifo = ((struct fuse_entry_out *) payload(f))->nodeid;
        op.flags = O_RDONLY;
        assert_int_not_equal(call(f, FUSE_OPEN, fifo, &op, sizeof(op), NULL, NULL), 0);

        /* Unknown nodes and handles are errors, not crashes. */
        struct fuse_getattr_in ga = { 0 };
        assert_int_equal(call(f, FUSE_GETATTR, 0, &ga, sizeof(ga), NULL, NULL), -ENOENT);
        assert_int_equal(call(f, FUSE_GETATTR, 99999, &ga, sizeof(ga), NULL, NULL), -ENOENT);
        assert_int_equal(call(f, FUSE_GETATTR, UINT64_MAX, &ga, sizeof(ga), NULL, NULL), -ENOENT);
        struct fuse_read_in rd = { .fh = 12345, .size = 10 };
        assert_int_equal(call(f, FUSE_READ, d, &rd, sizeof(rd), NULL, NULL), -EBADF);
        rd.fh = 0;
        assert_int_equal(call(f, FUSE_READDIR, d, &rd, sizeof(rd), NULL, NULL), -EBADF);
        struct fuse_link_in ln = { .oldnodeid = FUSE_ROOT_ID };
        assert_int_equal(call(f, FUSE_LINK, d, &ln, sizeof(ln), "rootlink", NULL), -ENOENT);
        ln.oldnodeid = d;
        assert_int_equal(call(f, FUSE_LINK, d, &ln, sizeof(ln), "dirlink", NULL), -EPERM);
        assert_int_equal(call(f, 4242, d, NULL, 0, NULL, NULL), -ENOSYS);
        assert_int_equal(call(f, FUSE_GETXATTR, d, &ga, 8, "user.x", NULL), -ENOSYS);
}

/* Raw bytes: the handler must refuse them as a protocol violation. */
static int raw(struct fixture *f, const void *msg, size_t len)
{
        silo_error e = SILO_ERROR_INIT;
        ssize_t n = silo_vm_share_handle(f->s, msg, len, f->out, &e);
        if (n < 0)
                assert_non_null(strstr(e.message, "guest fs port"));
        return (int) n;
}

static void test_bad_lengths(void **state)
{
        struct fixture *f = *state;
        uint8_t msg[256] = { 0 };
        struct fuse_in_header h = { .len = sizeof(h), .opcode = FUSE_GETATTR, .nodeid = 1 };
        memcpy(msg, &h, sizeof(h));
        assert_int_equal(raw(f, msg, sizeof(h)), -EPROTO);     /* before INIT */
        init(f);
        assert_int_equal(raw(f, msg, 10), -EPROTO);            /* shorter than a header */
        assert_int_equal(raw(f, msg, sizeof(h) + 16), -EPROTO);        /* header says otherwise */
        assert_int_equal(raw(f, msg, sizeof(h)), -EPROTO);     /* GETATTR without its argument */
        /* A name without its NUL. */
        h = (struct fuse_in_header) { .len = sizeof(h) + 4, .opcode = FUSE_LOOKUP, .nodeid = 1 };
        memcpy(msg, &h, sizeof(h));
        memcpy(msg + sizeof(h), "abcd", 4);
        assert_int_equal(raw(f, msg, h.len), -EPROTO);
        /* A WRITE whose size is not its data. */
        struct fuse_write_in w = { .fh = 1, .size = 1000 };
        h = (struct fuse_in_header) { .len = sizeof(h) + sizeof(w) + 10, .opcode = FUSE_WRITE, .nodeid = 1 };
        memcpy(msg, &h, sizeof(h));
        memcpy(msg + sizeof(h), &w, sizeof(w));
        assert_int_equal(raw(f, msg, h.len), -EPROTO);
        /* A BATCH_FORGET counting more than it carries. */
        struct fuse_batch_forget_in bf = { .count = 0x10000000 };
        h = (struct fuse_in_header) { .len = sizeof(h) + sizeof(bf) + 16, .opcode = FUSE_BATCH_FORGET };
        memcpy(msg, &h, sizeof(h));
        memcpy(msg + sizeof(h), &bf, sizeof(bf));
        assert_int_equal(raw(f, msg, h.len), -EPROTO);
        /* A second INIT, extensions nobody negotiated. */
        struct fuse_init_in in = { .major = 7, .minor = 37 };
        h = (struct fuse_in_header) { .len = sizeof(h) + sizeof(in), .opcode = FUSE_INIT };
        memcpy(msg, &h, sizeof(h));
        memcpy(msg + sizeof(h), &in, sizeof(in));
        assert_int_equal(raw(f, msg, h.len), -EPROTO);
        h = (struct fuse_in_header) { .len = sizeof(h) + 8, .opcode = FUSE_STATFS, .nodeid = 1, .total_extlen = 1 };
        memcpy(msg, &h, sizeof(h));
        assert_int_equal(raw(f, msg, h.len), -EPROTO);
}

static void test_old_protocol_is_refused(void **state)
{
        struct fixture *f = *state;
        uint8_t msg[128] = { 0 };
        struct fuse_init_in in = { .major = 7, .minor = 8 };
        struct fuse_in_header h = { .len = sizeof(h) + sizeof(in), .opcode = FUSE_INIT };
        memcpy(msg, &h, sizeof(h));
        memcpy(msg + sizeof(h), &in, sizeof(in));
        assert_int_equal(raw(f, msg, h.len), -EPROTO);
}

static void test_tables_are_bounded(void **state)
{
        struct fixture *f = *state;
        silo_vm_share_free(f->s);
        silo_error e = SILO_ERROR_INIT;
        assert_int_equal(silo_vm_share_new(6, &f->s, &e), 0);
        _cleanup_close_ int dfd = open(f->dir, O_PATH | O_CLOEXEC);
        assert_int_equal(silo_vm_share_add(f->s, "d", dfd, &e), 0);
        init(f);
        uint64_t d = lookup(f, FUSE_ROOT_ID, "d", NULL);
        int refused = 0;
        for (int i = 0; i < 20; i++) {
                char name[16];
                snprintf(name, sizeof(name), "n%d", i);
                struct fuse_mkdir_in mk = { .mode = 0755 };
                int r = call(f, FUSE_MKDIR, d, &mk, sizeof(mk), name, NULL);
                assert_true(r == 0 || r == -ENFILE);
                refused += r == -ENFILE;
        }
        assert_true(refused >= 14);
        size_t nodes, handles;
        silo_vm_share_counts(f->s, &nodes, &handles);
        assert_true(nodes <= 6);
}

static void test_random_bytes(void **state)
{
        struct fixture *f = *state;
        init(f);
        uint64_t d = lookup(f, FUSE_ROOT_ID, "d", NULL);
        srand(7);
        uint8_t msg[1024];
        size_t violations = 0, replies = 0;
        for (int i = 0; i < 30000; i++) {
                size_t len = (size_t) rand() % sizeof(msg);
                for (size_t k = 0; k < len; k++)
                        msg[k] = (uint8_t) rand();
                if (len >= sizeof(struct fuse_in_header) && rand() % 4) {
                        /* Mostly well framed, so the operations themselves get exercised. */
                        struct fuse_in_header h;
                        memcpy(&h, msg, sizeof(h));
                        h.len = (uint32_t) len;
                        h.opcode = (uint32_t) (rand() % 53);
                        h.total_extlen = 0;
                        uint64_t ids[] = { 0, 1, d, d + 1, d + 2, (uint64_t) rand() % 64, h.nodeid };
                        h.nodeid = ids[rand() % 7];
                        if (h.opcode == FUSE_INIT)
                                h.opcode = FUSE_LOOKUP;
                        /* Names: printable, NUL-terminated, so some creates succeed. */
                        if (rand() % 2)
                                for (size_t k = sizeof(h) + 16; k < len; k++)
                                        msg[k] = k + 1 == len ? 0 : (uint8_t) ('a' + msg[k] % 26);
                        memcpy(msg, &h, sizeof(h));
                }
                silo_error e = SILO_ERROR_INIT;
                ssize_t n = silo_vm_share_handle(f->s, msg, len, f->out, &e);
                if (n < 0)
                        violations++;
                else if (n > 0)
                        replies++;
                assert_true(n <= (ssize_t) SILO_VM_SHARE_MSG_MAX);
        }
        assert_true(violations > 0 && replies > 0);
        /* Whatever happened inside the share, nothing outside changed. */
        char path[160], buf[32] = "";
        snprintf(path, sizeof(path), "%s/outside", f->top);
        FILE *o = fopen(path, "r");
        assert_non_null(o);
        assert_non_null(fgets(buf, sizeof(buf), o));
        fclose(o);
        assert_string_equal(buf, "sentinel\n");
        DIR *top = opendir(f->top);
        int entries = 0;
        for (struct dirent *de; (de = readdir(top));)
                entries += de->d_name[0] != '.';
        closedir(top);
        assert_int_equal(entries, 3);   /* d, file, outside */
}

static void test_pump_over_a_socket(void **state)
{
        struct fixture *f = *state;
        int sp[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp), 0);
        uint8_t msg[512];
        size_t len = 0;
        struct fuse_init_in in = { .major = 7, .minor = 36 };
        struct fuse_in_header h = { .len = sizeof(h) + sizeof(in), .opcode = FUSE_INIT, .unique = 1 };
        memcpy(msg, &h, sizeof(h));
        memcpy(msg + sizeof(h), &in, sizeof(in));
        len += h.len;
        h = (struct fuse_in_header) { .len = sizeof(h) + 2, .opcode = FUSE_LOOKUP, .unique = 2, .nodeid = 1 };
        memcpy(msg + len, &h, sizeof(h));
        memcpy(msg + len + sizeof(h), "d", 2);
        len += h.len;
        /* Split mid-header: the pump waits for the rest. */
        assert_int_equal(write(sp[1], msg, 30), 30);
        silo_error e = SILO_ERROR_INIT;
        assert_int_equal(silo_vm_share_pump(f->s, sp[0], &e), 0);
        assert_int_equal(write(sp[1], msg + 30, len - 30), (ssize_t) (len - 30));
        assert_int_equal(silo_vm_share_pump(f->s, sp[0], &e), 0);
        assert_int_equal(silo_vm_share_events(f->s), POLLIN);
        uint8_t reply[1024];
        ssize_t n = read(sp[1], reply, sizeof(reply));
        struct fuse_out_header o;
        memcpy(&o, reply, sizeof(o));
        assert_int_equal(o.unique, 1);
        assert_int_equal(o.error, 0);
        assert_int_equal(n, o.len + sizeof(struct fuse_out_header) + sizeof(struct fuse_entry_out));
        memcpy(&o, reply + o.len, sizeof(o));
        assert_int_equal(o.unique, 2);
        assert_int_equal(o.error, 0);
        /* A huge length ends it, before anything is awaited or allocated. */
        h = (struct fuse_in_header) { .len = 0xfffffff0, .opcode = FUSE_LOOKUP, .unique = 3 };
        assert_int_equal(write(sp[1], &h, sizeof(h)), sizeof(h));
        assert_int_equal(silo_vm_share_pump(f->s, sp[0], &e), -EPROTO);
        assert_non_null(strstr(e.message, "message of"));
        /* And a hang-up is an error too. */
        close(sp[1]);
        struct silo_vm_share *fresh;
        assert_int_equal(silo_vm_share_new(0, &fresh, &e), 0);
        assert_true(silo_vm_share_pump(fresh, sp[0], &e) < 0);
        silo_vm_share_free(fresh);
        close(sp[0]);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
                cmocka_unit_test_setup_teardown(test_escapes_are_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_lengths, setup, teardown),
                cmocka_unit_test_setup_teardown(test_old_protocol_is_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tables_are_bounded, setup, teardown),
                cmocka_unit_test_setup_teardown(test_random_bytes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pump_over_a_socket, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
