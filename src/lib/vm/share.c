/* The host side of live mapped directories: a FUSE server (protocol 7.31
 * and later) over the guest's "silo.fs" port (share.h, docs/VM.md).
 *
 * Node 1 is a synthetic read-only directory whose entries are the shares;
 * every other node is an O_PATH|O_NOFOLLOW fd on the host, found by
 * (st_dev, st_ino) so a host inode has one node.  Files and directories are
 * opened by reopening /proc/self/fd/N of their node, and only when the
 * node is a regular file or a directory (its type cannot change while the
 * fd pins the inode): a symlink is never followed on the host, a device or
 * a FIFO never opened.  Names are single components.  What the guest's
 * kernel never sends is a protocol violation. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fuse.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "vm/share.h"

#define MIN_MINOR 31                    /* kernels from 5.10 on */
#define TIMEOUT_S 1                     /* entry and attribute cache timeouts */
#define HASH_BUCKETS 4096
#define NO_REPLY 1                      /* a handler's "nothing to send" */
#define PROTO_ERROR (-10000)            /* a handler's "violation, err is set" */
#define MAX_READS_PER_PUMP 16

struct node {
        int fd;                         /* O_PATH | O_NOFOLLOW; -1: free */
        dev_t dev;
        ino_t ino;
        mode_t type;                    /* S_IFMT bits */
        uint64_t nlookup;
        bool pinned;                    /* a share's root: lives while the share does */
        int32_t next;                   /* hash chain, or free list */
};

struct handle {
        int fd;                         /* -1: free */
        DIR *dir;                       /* a directory's stream (owns fd) */
        bool root;                      /* the synthetic root directory */
        int32_t next_free;
};

struct entry {
        char name[SILO_VM_SHARE_NAME_MAX + 1];
        uint32_t node;
};

struct silo_vm_share {
        struct node *nodes;             /* [0] is the root */
        uint32_t n_nodes, cap_nodes;
        int32_t free_node;
        int32_t buckets[HASH_BUCKETS];
        struct handle *handles;
        uint32_t n_handles, cap_handles;
        int32_t free_handle;
        size_t fds, fd_budget;
        struct entry entries[SILO_VM_SHARES_MAX];
        bool initialized;
        uint32_t minor;
        struct timespec born;
        uint8_t in[SILO_VM_SHARE_MSG_MAX];
        size_t in_off, in_len;          /* unhandled bytes: in[in_off .. in_len) */
        uint8_t out[SILO_VM_SHARE_MSG_MAX];
        size_t out_len, out_off;
};

/* A request being handled: its header and body, and where the reply goes. */
struct req {
        const struct fuse_in_header *h;
        const uint8_t *body;
        size_t len;
        uint8_t *out;                   /* payload after the reply header */
        silo_error *err;
};

static uint32_t bucket_of(dev_t dev, ino_t ino)
{
        uint64_t x = (uint64_t) ino * 0x9e3779b97f4a7c15ull ^ (uint64_t) dev;
        return (uint32_t) (x >> 40) % HASH_BUCKETS;
}

int silo_vm_share_new(size_t fd_budget, struct silo_vm_share **ret, silo_error *err)
{
        struct silo_vm_share *s = calloc(1, sizeof(*s));
        if (!s)
                return silo_error_set(err, ENOMEM, "VM share");
        s->cap_nodes = 64;
        s->nodes = calloc(s->cap_nodes, sizeof(*s->nodes));
        if (!s->nodes) {
                free(s);
                return silo_error_set(err, ENOMEM, "VM share");
        }
        s->nodes[0] = (struct node) { .fd = -1, .type = S_IFDIR, .pinned = true, .next = -1 };
        s->n_nodes = 1;
        s->free_node = s->free_handle = -1;
        for (int i = 0; i < HASH_BUCKETS; i++)
                s->buckets[i] = -1;
        if (!fd_budget) {
                /* Whatever the fd limit leaves once the rest of the process has its share. */
                struct rlimit rl;
                rlim_t soft = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
                fd_budget = soft > 512 + 64 ? (size_t) (soft - 512) : 64;
        }
        s->fd_budget = fd_budget;
        clock_gettime(CLOCK_REALTIME, &s->born);
        *ret = s;
        return 0;
}

struct silo_vm_share *silo_vm_share_free(struct silo_vm_share *s)
{
        if (!s)
                return NULL;
        for (uint32_t i = 0; i < s->n_nodes; i++)
                if (s->nodes[i].fd >= 0)
                        close(s->nodes[i].fd);
        for (uint32_t i = 0; i < s->n_handles; i++) {
                if (s->handles[i].dir)
                        closedir(s->handles[i].dir);
                else if (s->handles[i].fd >= 0)
                        close(s->handles[i].fd);
        }
        free(s->nodes);
        free(s->handles);
        free(s);
        return NULL;
}

void silo_vm_share_counts(const struct silo_vm_share *s, size_t *ret_nodes, size_t *ret_handles)
{
        size_t n = 0, h = 0;
        for (uint32_t i = 1; i < s->n_nodes; i++)
                n += s->nodes[i].fd >= 0;
        for (uint32_t i = 0; i < s->n_handles; i++)
                h += s->handles[i].fd >= 0 || s->handles[i].root;
        *ret_nodes = n;
        *ret_handles = h;
}

/* ---- nodes ---- */

static struct node *node_of(struct silo_vm_share *s, uint64_t nodeid)
{
        if (nodeid < 1 || nodeid > s->n_nodes)
                return NULL;
        struct node *n = &s->nodes[nodeid - 1];
        return nodeid == FUSE_ROOT_ID || n->fd >= 0 ? n : NULL;
}

static uint64_t nodeid_of(const struct silo_vm_share *s, const struct node *n)
{
        return (uint64_t) (n - s->nodes) + 1;
}

static void hash_unlink(struct silo_vm_share *s, uint32_t idx)
{
        int32_t *p = &s->buckets[bucket_of(s->nodes[idx].dev, s->nodes[idx].ino)];
        for (uint32_t guard = 0; *p >= 0 && guard <= s->n_nodes; guard++) {
                if ((uint32_t) *p == idx) {
                        *p = s->nodes[idx].next;
                        return;
                }
                p = &s->nodes[*p].next;
        }
}

static void node_release(struct silo_vm_share *s, struct node *n)
{
        uint32_t idx = (uint32_t) (n - s->nodes);
        if (idx == 0 || n->fd < 0 || n->pinned || n->nlookup > 0)
                return;
        hash_unlink(s, idx);
        close(n->fd);
        s->fds--;
        *n = (struct node) { .fd = -1, .next = s->free_node };
        s->free_node = (int32_t) idx;
}

/* The node of the inode `fd` (an O_PATH fd, taken over) refers to: the one
 * we have for it, or a new one.  Counts a lookup. */
static int node_get(struct silo_vm_share *s, int fd, const struct stat *st, struct node **ret)
{
        uint32_t b = bucket_of(st->st_dev, st->st_ino);
        for (int32_t i = s->buckets[b], guard = 0; i >= 0 && (uint32_t) guard <= s->n_nodes; i = s->nodes[i].next, guard++) {
                struct node *n = &s->nodes[i];
                if (n->dev == st->st_dev && n->ino == st->st_ino) {
                        close(fd);
                        n->nlookup++;
                        *ret = n;
                        return 0;
                }
        }
        uint32_t idx;
        if (s->fds >= s->fd_budget) {
                close(fd);
                return -ENFILE;
        }
        if (s->free_node >= 0) {
                idx = (uint32_t) s->free_node;
                s->free_node = s->nodes[idx].next;
        } else {
                if (s->n_nodes >= SILO_VM_SHARE_NODES_MAX) {
                        close(fd);
                        return -ENFILE;
                }
                if (s->n_nodes == s->cap_nodes) {
                        struct node *grown = reallocarray(s->nodes, s->cap_nodes * 2, sizeof(*grown));
                        if (!grown) {
                                close(fd);
                                return -ENOMEM;
                        }
                        s->nodes = grown;
                        s->cap_nodes *= 2;
                }
                idx = s->n_nodes++;
        }
        s->nodes[idx] = (struct node) { .fd = fd, .dev = st->st_dev, .ino = st->st_ino, .type = st->st_mode & S_IFMT,
                                        .nlookup = 1, .next = s->buckets[b] };
        s->buckets[b] = (int32_t) idx;
        s->fds++;
        *ret = &s->nodes[idx];
        return 0;
}

/* ---- handles ---- */

static int handle_new(struct silo_vm_share *s, struct handle **ret)
{
        uint32_t idx;
        if (s->fds >= s->fd_budget)
                return -EMFILE;
        if (s->free_handle >= 0) {
                idx = (uint32_t) s->free_handle;
                s->free_handle = s->handles[idx].next_free;
        } else {
                if (s->n_handles >= SILO_VM_SHARE_HANDLES_MAX)
                        return -EMFILE;
                if (s->n_handles == s->cap_handles) {
                        uint32_t cap = s->cap_handles ? s->cap_handles * 2 : 64;
                        struct handle *grown = reallocarray(s->handles, cap, sizeof(*grown));
                        if (!grown)
                                return -ENOMEM;
                        s->handles = grown;
                        s->cap_handles = cap;
                }
                idx = s->n_handles++;
        }
        s->handles[idx] = (struct handle) { .fd = -1, .next_free = -1 };
        *ret = &s->handles[idx];
        return 0;
}

static uint64_t fh_of(const struct silo_vm_share *s, const struct handle *h)
{
        return (uint64_t) (h - s->handles) + 1;
}

static struct handle *handle_of(struct silo_vm_share *s, uint64_t fh)
{
        if (fh < 1 || fh > s->n_handles)
                return NULL;
        struct handle *h = &s->handles[fh - 1];
        return h->fd >= 0 || h->root ? h : NULL;
}

static void handle_free(struct silo_vm_share *s, struct handle *h)
{
        if (h->dir)
                closedir(h->dir);
        else if (h->fd >= 0)
                close(h->fd);
        if (h->fd >= 0)
                s->fds--;
        *h = (struct handle) { .fd = -1, .next_free = s->free_handle };
        s->free_handle = (int32_t) (h - s->handles);
}

/* ---- shares (the root's entries) ---- */

static bool share_name_valid(const char *name)
{
        size_t n = name ? strlen(name) : 0;
        return n >= 1 && n <= SILO_VM_SHARE_NAME_MAX && strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                                     "0123456789._-") == n &&
               strcmp(name, ".") && strcmp(name, "..");
}

int silo_vm_share_add(struct silo_vm_share *s, const char *name, int fd, silo_error *err)
{
        if (!share_name_valid(name))
                return silo_error_msg(err, EINVAL, "share name \"%.64s\": expected [A-Za-z0-9._-], at most %d bytes",
                                      name ? name : "", SILO_VM_SHARE_NAME_MAX);
        struct entry *free_slot = NULL;
        for (int i = 0; i < SILO_VM_SHARES_MAX; i++) {
                if (!s->entries[i].name[0] && !free_slot)
                        free_slot = &s->entries[i];
                if (s->entries[i].name[0] && !strcmp(s->entries[i].name, name))
                        return silo_error_msg(err, EEXIST, "share %s exists already", name);
        }
        if (!free_slot)
                return silo_error_msg(err, E2BIG, "more than %d shares", SILO_VM_SHARES_MAX);
        char proc[64];
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
        int pfd = open(proc, O_PATH | O_CLOEXEC);
        struct stat st;
        if (pfd < 0 || fstat(pfd, &st) < 0) {
                int r = silo_error_set(err, errno, "share %s", name);
                if (pfd >= 0)
                        close(pfd);
                return r;
        }
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
                close(pfd);
                return silo_error_msg(err, EINVAL, "share %s: not a directory or a regular file", name);
        }
        struct node *n = NULL;
        int r = node_get(s, pfd, &st, &n);
        if (r < 0)
                return silo_error_set(err, -r, "share %s", name);
        /* Only the guest's lookups count; the entry pins it. */
        n->nlookup--;
        n->pinned = true;
        snprintf(free_slot->name, sizeof(free_slot->name), "%s", name);
        free_slot->node = (uint32_t) (n - s->nodes);
        return 0;
}

void silo_vm_share_remove(struct silo_vm_share *s, const char *name)
{
        for (int i = 0; name && i < SILO_VM_SHARES_MAX; i++) {
                struct entry *e = &s->entries[i];
                if (!e->name[0] || strcmp(e->name, name))
                        continue;
                struct node *n = &s->nodes[e->node];
                bool still_shared = false;
                for (int k = 0; k < SILO_VM_SHARES_MAX; k++)
                        still_shared |= k != i && s->entries[k].name[0] && s->entries[k].node == e->node;
                *e = (struct entry) { .name = "" };
                if (!still_shared) {
                        n->pinned = false;
                        node_release(s, n);
                }
        }
}

/* ---- replies ---- */

static void fill_attr(const struct stat *st, struct fuse_attr *a)
{
        *a = (struct fuse_attr) {
                .ino = st->st_ino, .size = (uint64_t) st->st_size, .blocks = (uint64_t) st->st_blocks,
                .atime = (uint64_t) st->st_atim.tv_sec, .mtime = (uint64_t) st->st_mtim.tv_sec,
                .ctime = (uint64_t) st->st_ctim.tv_sec, .atimensec = (uint32_t) st->st_atim.tv_nsec,
                .mtimensec = (uint32_t) st->st_mtim.tv_nsec, .ctimensec = (uint32_t) st->st_ctim.tv_nsec,
                .mode = st->st_mode, .nlink = (uint32_t) st->st_nlink, .uid = st->st_uid, .gid = st->st_gid,
                /* The kernel's new_decode_dev() format. */
                .rdev = (minor(st->st_rdev) & 0xff) | (major(st->st_rdev) << 8) | ((minor(st->st_rdev) & ~0xffu) << 12),
                .blksize = (uint32_t) st->st_blksize,
        };
}

static void root_stat(const struct silo_vm_share *s, struct stat *st)
{
        *st = (struct stat) { .st_ino = FUSE_ROOT_ID, .st_mode = S_IFDIR | 0555, .st_nlink = 2, .st_blksize = 4096,
                              .st_atim = s->born, .st_mtim = s->born, .st_ctim = s->born };
}

static int node_stat(struct silo_vm_share *s, struct node *n, struct stat *st)
{
        if (n == s->nodes) {
                root_stat(s, st);
                return 0;
        }
        return fstatat(n->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static int reply_entry(struct silo_vm_share *s, struct req *q, struct node *n)
{
        struct stat st;
        int r = node_stat(s, n, &st);
        if (r < 0) {
                n->nlookup--;
                node_release(s, n);
                return r;
        }
        struct fuse_entry_out e = { .nodeid = nodeid_of(s, n), .entry_valid = TIMEOUT_S, .attr_valid = TIMEOUT_S };
        fill_attr(&st, &e.attr);
        memcpy(q->out, &e, sizeof(e));
        return sizeof(e);
}

static int reply_attr(struct req *q, const struct stat *st)
{
        struct fuse_attr_out a = { .attr_valid = TIMEOUT_S };
        fill_attr(st, &a.attr);
        memcpy(q->out, &a, sizeof(a));
        return sizeof(a);
}

/* ---- parsing ---- */

static int violation(struct req *q, const char *what)
{
        silo_error_msg(q->err, EPROTO, "guest fs port: %s (opcode %u, %u bytes)", what, q->h->opcode, q->h->len);
        return PROTO_ERROR;
}

/* The fixed-size argument of a request: at least `size` bytes. */
#define ARG(q, type, var)                                                       \
        type var;                                                               \
        do {                                                                    \
                if ((q)->len < sizeof(type))                                    \
                        return violation(q, "request too short");               \
                memcpy(&var, (q)->body, sizeof(type));                          \
        } while (0)

/* A NUL-terminated string at *off inside the body; moves *off past it. */
static int take_string(struct req *q, size_t *off, const char **ret)
{
        if (*off >= q->len)
                return violation(q, "string missing");
        const uint8_t *p = q->body + *off, *nul = memchr(p, 0, q->len - *off);
        if (!nul)
                return violation(q, "string not NUL-terminated");
        *ret = (const char *) p;
        *off += (size_t) (nul - p) + 1;
        return 0;
}

/* A name the kernel may send: one component of a path. */
static int name_ok(const char *name)
{
        size_t n = strlen(name);
        if (n == 0 || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
                return -EINVAL;
        return n > NAME_MAX ? -ENAMETOOLONG : 0;
}

static int take_name(struct req *q, size_t *off, const char **ret)
{
        int r = take_string(q, off, ret);
        return r < 0 ? r : name_ok(*ret);
}

/* A real directory the guest may change (the synthetic root is read-only). */
static int dir_node(struct silo_vm_share *s, uint64_t nodeid, struct node **ret)
{
        struct node *n = node_of(s, nodeid);
        if (!n)
                return -ENOENT;
        if (n == s->nodes)
                return -EPERM;
        if (n->type != S_IFDIR)
                return -ENOTDIR;
        *ret = n;
        return 0;
}

static void proc_path(char buf[32], int fd)
{
        snprintf(buf, 32, "/proc/self/fd/%d", fd);
}

/* Makes the new node and its entry reply from a name just created in dir. */
static int created_entry(struct silo_vm_share *s, struct req *q, struct node *dir, const char *name, int fd)
{
        int pfd = fd >= 0 ? -1 : openat(dir->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) {
                char proc[32];
                proc_path(proc, fd);
                pfd = open(proc, O_PATH | O_CLOEXEC);
        }
        if (pfd < 0)
                return -errno;
        struct stat parent, st;
        /* The caller's owner; the group of a set-group-ID directory stays. */
        gid_t gid = fstat(dir->fd, &parent) == 0 && parent.st_mode & S_ISGID ? (gid_t) -1 : q->h->gid;
        if (fchownat(pfd, "", q->h->uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ||
            fstat(pfd, &st) < 0) {
                int r = -errno;
                close(pfd);
                return r;
        }
        struct node *n = NULL;
        int r = node_get(s, pfd, &st, &n);
        return r < 0 ? r : reply_entry(s, q, n);
}

/* ---- operations ---- */

static int op_init(struct silo_vm_share *s, struct req *q)
{
        if (q->len < 16)
                return violation(q, "INIT too short");
        struct fuse_init_in in = { 0 };
        memcpy(&in, q->body, q->len < sizeof(in) ? q->len : sizeof(in));
        if (s->initialized)
                return violation(q, "a second INIT");
        if (in.major != FUSE_KERNEL_VERSION || in.minor < MIN_MINOR) {
                silo_error_msg(q->err, EPROTONOSUPPORT, "guest fs port: FUSE %u.%u, need %d.%d or later", in.major,
                               in.minor, FUSE_KERNEL_VERSION, MIN_MINOR);
                return PROTO_ERROR;
        }
        s->minor = in.minor < FUSE_KERNEL_MINOR_VERSION ? in.minor : FUSE_KERNEL_MINOR_VERSION;
        s->initialized = true;
        /* No writeback cache and no kept page cache: writes reach the host
         * at once, and each open sees the host's current data. */
        uint32_t want = FUSE_ASYNC_READ | FUSE_ATOMIC_O_TRUNC | FUSE_BIG_WRITES | FUSE_AUTO_INVAL_DATA;
        struct fuse_init_out out = {
                .major = FUSE_KERNEL_VERSION, .minor = s->minor,
                .max_readahead = in.max_readahead < SILO_VM_SHARE_MAX_WRITE ? in.max_readahead : SILO_VM_SHARE_MAX_WRITE,
                .flags = in.flags & want, .max_background = 16, .congestion_threshold = 12,
                .max_write = SILO_VM_SHARE_MAX_WRITE, .time_gran = 1,
        };
        memcpy(q->out, &out, sizeof(out));
        return sizeof(out);
}

static int op_lookup(struct silo_vm_share *s, struct req *q)
{
        size_t off = 0;
        const char *name;
        int r = take_name(q, &off, &name);
        if (r < 0)
                return r;
        struct node *dir = node_of(s, q->h->nodeid);
        if (!dir)
                return -ENOENT;
        if (dir == s->nodes) {
                for (int i = 0; i < SILO_VM_SHARES_MAX; i++)
                        if (s->entries[i].name[0] && !strcmp(s->entries[i].name, name)) {
                                struct node *n = &s->nodes[s->entries[i].node];
                                n->nlookup++;
                                return reply_entry(s, q, n);
                        }
                return -ENOENT;
        }
        if (dir->type != S_IFDIR)
                return -ENOTDIR;
        int fd = openat(dir->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) {
                r = -errno;
                if (fd >= 0)
                        close(fd);
                return r;
        }
        struct node *n = NULL;
        r = node_get(s, fd, &st, &n);
        return r < 0 ? r : reply_entry(s, q, n);
}

static void forget(struct silo_vm_share *s, uint64_t nodeid, uint64_t nlookup)
{
        struct node *n = node_of(s, nodeid);
        if (!n || n == s->nodes)
                return;
        n->nlookup -= nlookup < n->nlookup ? nlookup : n->nlookup;
        node_release(s, n);
}

static int op_forget(struct silo_vm_share *s, struct req *q)
{
        ARG(q, struct fuse_forget_in, in);
        forget(s, q->h->nodeid, in.nlookup);
        return NO_REPLY;
}

static int op_batch_forget(struct silo_vm_share *s, struct req *q)
{
        ARG(q, struct fuse_batch_forget_in, in);
        if (in.count > (q->len - sizeof(in)) / sizeof(struct fuse_forget_one))
                return violation(q, "BATCH_FORGET count beyond the message");
        for (uint32_t i = 0; i < in.count; i++) {
                struct fuse_forget_one one;
                memcpy(&one, q->body + sizeof(in) + i * sizeof(one), sizeof(one));
                forget(s, one.nodeid, one.nlookup);
        }
        return NO_REPLY;
}

static int op_getattr(struct silo_vm_share *s, struct req *q)
{
        ARG(q, struct fuse_getattr_in, in);
        struct node *n = node_of(s, q->h->nodeid);
        if (!n)
                return -ENOENT;
        struct stat st;
        struct handle *h = in.getattr_flags & FUSE_GETATTR_FH ? handle_of(s, in.fh) : NULL;
        int r = h && h->fd >= 0 ? (fstat(h->fd, &st) < 0 ? -errno : 0) : node_stat(s, n, &st);
        return r < 0 ? r : reply_attr(q, &st);
}

static int set_times(struct node *n, const struct fuse_setattr_in *in)
{
        struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };
        if (in->valid & FATTR_ATIME)
                ts[0] = in->valid & FATTR_ATIME_NOW ? (struct timespec) { .tv_nsec = UTIME_NOW }
                                                     : (struct timespec) { (time_t) in->atime, in->atimensec };
        if (in->valid & FATTR_MTIME)
                ts[1] = in->valid & FATTR_MTIME_NOW ? (struct timespec) { .tv_nsec = UTIME_NOW }
                                                     : (struct timespec) { (time_t) in->mtime, in->mtimensec };
        if ((!(in->valid & FATTR_ATIME) || in->valid & FATTR_ATIME_NOW || in->atimensec < 1000000000) &&
            (!(in->valid & FATTR_MTIME) || in->valid & FATTR_MTIME_NOW || in->mtimensec < 1000000000) &&
            utimensat(n->fd, "", ts, AT_EMPTY_PATH) == 0)
                return 0;
        if (errno != EINVAL || n->type == S_IFLNK)
                return -errno;
        /* Kernels before AT_EMPTY_PATH support for utimensat: the inode through /proc (not a symlink). */
        char proc[32];
        proc_path(proc, n->fd);
        return utimensat(AT_FDCWD, proc, ts, 0) < 0 ? -errno : 0;
}

static int op_setattr(struct silo_vm_share *s, struct req *q)
{
        ARG(q, struct fuse_setattr_in, in);
        struct node *n = node_of(s, q->h->nodeid);
        if (!n)
                return -ENOENT;
        if (n == s->nodes)
                return -EPERM;
        struct handle *h = in.valid & FATTR_FH ? handle_of(s, in.fh) : NULL;
        int hfd = h && !h->dir ? h->fd : -1;
        char proc[32];
        proc_path(proc, n->fd);
        if (in.valid & FATTR_MODE) {
                if (n->type == S_IFLNK)
                        return -EOPNOTSUPP;
                if (fchmodat(AT_FDCWD, proc, in.mode & 07777, 0) < 0)
                        return -errno;
        }
        if (in.valid & (FATTR_UID | FATTR_GID) &&
            fchownat(n->fd, "", in.valid & FATTR_UID ? in.uid : (uid_t) -1, in.valid & FATTR_GID ? in.gid : (gid_t) -1,
                     AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        if (in.valid & FATTR_SIZE) {
                if (in.size > (uint64_t) INT64_MAX)
                        return -EFBIG;
                if (hfd < 0 && n->type != S_IFREG)
                        return n->type == S_IFDIR ? -EISDIR : -EINVAL;
                _cleanup_close_ int fd = hfd < 0 ? open(proc, O_WRONLY | O_CLOEXEC | O_NONBLOCK) : -1;
                if (hfd < 0 && fd < 0)
                        return -errno;
                if (ftruncate(hfd >= 0 ? hfd : fd, (off_t) in.size) < 0)
                        return -errno;
        }
        if (in.valid & (FATTR_ATIME | FATTR_MTIME)) {
                int r = set_times(n, &in);
                if (r < 0)
                        return r;
        }
        struct stat st;
        int r = node_stat(s, n, &st);
        return r < 0 ? r : reply_attr(q, &st);
}

static int op_readlink(struct silo_vm_share *s, struct req *q)
{
        struct node *n = node_of(s, q->h->nodeid);
        if (!n)
                return -ENOENT;
        if (n->type != S_IFLNK)
                return -EINVAL;
        ssize_t k = readlinkat(n->fd, "", (char *) q->out, PATH_MAX);
        return k < 0 ? -errno : (int) k;
}

static int op_mknod(struct silo_vm_share *s, struct req *q)
{
        ARG(q, struct fuse_mknod_in, in);
        size_t off = sizeof(in);
        const char *name;
        struct node *dir;
        int r = take_name(q, &off, &name);
        if (r < 0 || (r = dir_node(s, q->h->nodeid, &dir)) < 0)
                return r;
        /* No device nodes on the host: whoever opens one there opens the host's device. */
        mode_t type = in.mode & S_IFMT;
        if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK)
                return -EPERM;
        if (mknodat(dir->fd, name, type | (in.mode & 07777), 0) < 0)
                return -errno;
        return created_entry(s, q, dir, name, -1);
}

static int op_mkdir(struct silo_vm_share *s, struct req *q)
{
        ARG(q, struct fuse_mkdir_in, in);
        size_t off = sizeof(in);
        const char *name;
        struct node *dir;
        int r = take_name(q, &off, &name);
        if (r < 0 || (r = dir_node(s, q->h->nodeid, &dir)) < 0)
                return r;
        if (mkdirat(dir->fd, name, in.mode & 07777) < 0)
                return -errno;
        return created_entry(s, q, dir, name, -1);
}

static int op_symlink(struct silo_vm_share *s, struct req *q)
{
        size_t off = 0;
        const char *name, *target;
        struct node *dir;
        int r = take_name(q, &off, &name);
        if (r < 0 || (r = take_string(q, &off, &target)) < 0 || (r = dir_node(s, q->h->nodeid, &dir)) < 0)
                return r;
        if (!*target || strlen(target) >= PATH_MAX)
                return -ENAMETOOLONG;
        if (symlinkat(target, dir->fd, name) < 0)
                return -errno;
        return created_entry(s, q, dir, name, -1);
}

static int op_unlink(struct silo_vm_share *s, struct req *q, bool rmdir)
{
        size_t off = 0;
        const char *name;
        struct node *dir;
        int r = take_name(q, &off, &name);
        if (r < 0 || (r = dir_node(s, q->h->nodeid, &dir)) < 0)
                return r;
        return unlinkat(dir->fd, name, rmdir ? AT_REMOVEDIR : 0) < 0 ? -errno : 0;
}

static int op_rename(struct silo_vm_share *s, struct req *q, bool two)
{
        uint64_t newdir;
        uint32_t flags = 0;
        size_t off;
        if (two) {
                ARG(q, struct fuse_rename2_in, in);
                newdir = in.newdir;
                flags = in.flags;
                off = sizeof(in);
        } else {
                ARG(q, struct fuse_rename_in, in);
                newdir = in.newdir;
                off = sizeof(in);
        }
        const char *oldname, *newname;
        struct node *from, *to;
        int r = take_name(q, &off, &oldname);
        if (r < 0 || (r = take_name(q, &off, &newname)) < 0 || (r = dir_node(s, q->h->nodeid, &from)) < 0 ||
            (r = dir_node(s, newdir, &to)) < 0)
                return r;
        if (flags & ~(unsigned) (RENAME_NOREPLACE | RENAME_EXCHANGE))
                return -EINVAL;
        return renameat2(from->fd, oldname, to->fd, newname, flags) < 0 ? -errno : 0;
}

static int op_link(struct silo_vm_share *s, struct req *q)
{
        ARG(q, struct fuse_link_in, in);
        size_t off = sizeof(in);
        const char *name;
        struct node *dir, *old = node_of(s, in.oldnodeid);
        int r = take_name(q, &off, &name);
        if (r < 0 || (r = dir_node(s, q->h->nodeid, &dir)) < 0)
                return r;
        if (!old || old == s->nodes)
                return -ENOENT;
        if (old->type == S_IFDIR)
                return -EPERM;
        /* The node's own inode, never a path (needs CAP_DAC_READ_SEARCH: we are root). */
        if (linkat(old->fd, "", dir->fd, name, AT_EMPTY_PATH) < 0)
                return -errno;
        old->nlookup++;
        return reply_entry(s, q, old);
}

/* Opens a regular file or directory node through /proc: the inode itself. */
static int reopen(struct node *n, int flags)
{
        char proc[32];
        proc_path(proc, n->fd);
        int fd = open(proc, flags | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

static int open_flags(uint32_t guest)
{
        /* Only what means something for a host file; never O_CREAT/O_DIRECT/O_PATH. */
        return (int) (guest & (O_ACCMODE | O_APPEND | O_TRUNC | O_SYNC | O_DSYNC | O_NOATIME)) | O_NONBLOCK;
}

static int reply_open(struct silo_vm_share *s, struct req *q, struct handle *h, size_t off)
{
        struct fuse_open_out o = { .fh = fh_of(s, h) };
        memcpy(q->out + off, &o, sizeof(o));
        return (int) (off + sizeof(o));
}

static int op_open(struct silo_vm_share *s, struct req *q, bool dir)
{
        ARG(q, struct fuse_open_in, in);
        struct node *n = node_of(s, q->h->nodeid);
        if (!n)
                return -ENOENT;
        if (dir ? n->type != S_IFDIR : n->type != S_IFREG)
                return dir ? -ENOTDIR : n->type == S_IFDIR ? -EISDIR : -EACCES;
        struct handle *h;
        int r = handle_new(s, &h);
        if (r < 0)
                return r;
        if (dir && n == s->nodes) {
                h->root = true;
                return reply_open(s, q, h, 0);
        }
        int fd = dir ? reopen(n, O_RDONLY | O_DIRECTORY) : reopen(n, open_flags(in.flags));
        if (fd >= 0 && dir && !(h->dir = fdopendir(fd))) {
                close(fd);
                fd = -errno;
        }
        if (fd < 0) {
                handle_free(s, h);
                return fd;
        }
        h->fd = fd;
        s->fds++;
        return reply_open(s, q, h, 0);
}

static int op_create(struct silo_vm_share *s, struct req *q)
{
        ARG(q, struct fuse_create_in, in);
        size_t off = sizeof(in);
        const char *name;
        struct node *dir;
        int r = take_name(q, &off, &name);
        if (r < 0 || (r = dir_node(s, q->h->nodeid, &dir)) < 0)
                return r;
        if ((in.mode & S_IFMT) && (in.mode & S_IFMT) != S_IFREG)
                return -EINVAL;
        struct handle *h;
        r = handle_new(s, &h);
        if (r < 0)
                return r;
        /* The guest's kernel applied its umask already; ours must not. */
        mode_t old = umask(0);
        int fd = openat(dir->fd, name, open_flags(in.flags) | (int) (in.flags & O_EXCL) | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
                        in.mode & 07777);
        int e = errno;
        umask(old);
        if (fd < 0) {
                handle_free(s, h);
                return -e;
        }
        h->fd = fd;
        s->fds++;
        r = created_entry(s, q, dir, name, fd);
        if (r < 0) {
                handle_free(s, h);
                return r;
        }
        return reply_open(s, q, h, (size_t) r);
}

static int op_read(struct silo_vm_share *s, struct req *q)
{
        ARG(q, struct fuse_read_in, in);
        struct handle *h = handle_of(s, in.fh);
        if (!h || h->dir || h->root)
                return -EBADF;
        if (in.offset > (uint64_t) INT64_MAX)
                return -EINVAL;
        size_t size = in.size < SILO_VM_SHARE_MAX_WRITE ? in.size : SILO_VM_SHARE_MAX_WRITE;
        size_t done = 0;
        while (done < size) {
                ssize_t k = pread(h->fd, q->out + done, size - done, (off_t) (in.offset + done));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0 && done == 0)
                        return -errno;
                if (k <= 0)
                        break;
                done += (size_t) k;
        }
        return (int) done;
}

static int op_write(struct silo_vm_share *s, struct req *q)
{
        ARG(q, struct fuse_write_in, in);
        if (in.size != q->len - sizeof(in) || in.size > SILO_VM_SHARE_MAX_WRITE)
                return violation(q, "WRITE size does not match the message");
        struct handle *h = handle_of(s, in.fh);
        if (!h || h->dir || h->root)
                return -EBADF;
        if (in.offset > (uint64_t) INT64_MAX)
                return -EINVAL;
        size_t done = 0;
        while (done < in.size) {
                ssize_t k = pwrite(h->fd, q->body + sizeof(in) + done, in.size - done, (off_t) (in.offset + done));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0 && done == 0)
                        return -errno;
                if (k <= 0)
                        break;
                done += (size_t) k;
        }
        struct fuse_write_out o = { .size = (uint32_t) done };
        memcpy(q->out, &o, sizeof(o));
        return sizeof(o);
}

static int op_statfs(struct silo_vm_share *s, struct req *q)
{
        struct node *n = node_of(s, q->h->nodeid);
        if (!n)
                return -ENOENT;
        struct fuse_statfs_out o = { .st = { .bsize = 4096, .frsize = 4096, .namelen = NAME_MAX } };
        struct statfs st;
        if (n != s->nodes) {
                if (fstatfs(n->fd, &st) < 0)
                        return -errno;
                o.st = (struct fuse_kstatfs) {
                        .blocks = st.f_blocks, .bfree = st.f_bfree, .bavail = st.f_bavail, .files = st.f_files,
                        .ffree = st.f_ffree, .bsize = (uint32_t) st.f_bsize, .namelen = (uint32_t) st.f_namelen,
                        .frsize = (uint32_t) st.f_frsize,
                };
        }
        memcpy(q->out, &o, sizeof(o));
        return sizeof(o);
}

static int op_release(struct silo_vm_share *s, struct req *q)
{
        ARG(q, struct fuse_release_in, in);
        struct handle *h = handle_of(s, in.fh);
        if (h)
                handle_free(s, h);
        return 0;
}

static int op_fsync(struct silo_vm_share *s, struct req *q)
{
        ARG(q, struct fuse_fsync_in, in);
        struct handle *h = handle_of(s, in.fh);
        if (!h || h->root)
                return h ? 0 : -EBADF;
        int fd = h->dir ? dirfd(h->dir) : h->fd;
        return (in.fsync_flags & FUSE_FSYNC_FDATASYNC ? fdatasync(fd) : fsync(fd)) < 0 ? -errno : 0;
}

static int op_fallocate(struct silo_vm_share *s, struct req *q)
{
        ARG(q, struct fuse_fallocate_in, in);
        struct handle *h = handle_of(s, in.fh);
        if (!h || h->dir || h->root)
                return -EBADF;
        if (in.mode & ~(unsigned) (FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE))
                return -EOPNOTSUPP;
        if (in.offset > (uint64_t) INT64_MAX || in.length > (uint64_t) INT64_MAX)
                return -EINVAL;
        return fallocate(h->fd, (int) in.mode, (off_t) in.offset, (off_t) in.length) < 0 ? -errno : 0;
}

/* One fuse_dirent; false when it does not fit. */
static bool add_dirent(uint8_t *buf, size_t size, size_t *used, uint64_t ino, uint64_t off, unsigned type,
                       const char *name)
{
        size_t namelen = strlen(name), rec = FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET + namelen);
        if (*used + rec > size)
                return false;
        struct fuse_dirent d = { .ino = ino, .off = off, .namelen = (uint32_t) namelen, .type = type };
        memcpy(buf + *used, &d, FUSE_NAME_OFFSET);
        memcpy(buf + *used + FUSE_NAME_OFFSET, name, namelen);
        memset(buf + *used + FUSE_NAME_OFFSET + namelen, 0, rec - FUSE_NAME_OFFSET - namelen);
        *used += rec;
        return true;
}

static int readdir_root(struct silo_vm_share *s, struct req *q, uint64_t offset, size_t size)
{
        size_t used = 0;
        /* Offsets: 1 ".", 2 "..", 3 + i the i-th entry slot. */
        for (uint64_t i = offset; i < 2 + SILO_VM_SHARES_MAX; i++) {
                const char *name = i == 0 ? "." : i == 1 ? ".." : s->entries[i - 2].name;
                uint64_t ino = i < 2 ? FUSE_ROOT_ID : 0;
                unsigned type = DT_DIR;
                if (i >= 2) {
                        if (!name[0])
                                continue;
                        struct node *n = &s->nodes[s->entries[i - 2].node];
                        ino = n->ino;
                        type = n->type == S_IFDIR ? DT_DIR : DT_REG;
                }
                if (!add_dirent(q->out, size, &used, ino, i + 1, type, name))
                        break;
        }
        return (int) used;
}

static int op_readdir(struct silo_vm_share *s, struct req *q)
{
        ARG(q, struct fuse_read_in, in);
        struct handle *h = handle_of(s, in.fh);
        if (!h || (!h->dir && !h->root))
                return -EBADF;
        size_t size = in.size < SILO_VM_SHARE_MAX_WRITE ? in.size : SILO_VM_SHARE_MAX_WRITE;
        if (h->root)
                return readdir_root(s, q, in.offset, size);
        if (in.offset > (uint64_t) LONG_MAX)
                return -EINVAL;
        if (in.offset == 0)
                rewinddir(h->dir);
        else if ((uint64_t) telldir(h->dir) != in.offset)
                seekdir(h->dir, (long) in.offset);
        size_t used = 0;
        for (;;) {
                long before = telldir(h->dir);
                errno = 0;
                struct dirent *d = readdir(h->dir);
                if (!d) {
                        if (errno && used == 0)
                                return -errno;
                        break;
                }
                if (!add_dirent(q->out, size, &used, d->d_ino, (uint64_t) telldir(h->dir), d->d_type, d->d_name)) {
                        seekdir(h->dir, before);
                        break;
                }
        }
        return (int) used;
}

static int dispatch(struct silo_vm_share *s, struct req *q)
{
        uint32_t op = q->h->opcode;
        if (!s->initialized && op != FUSE_INIT)
                return violation(q, "request before INIT");
        switch (op) {
        case FUSE_INIT:
                return op_init(s, q);
        case FUSE_LOOKUP:
                return op_lookup(s, q);
        case FUSE_FORGET:
                return op_forget(s, q);
        case FUSE_BATCH_FORGET:
                return op_batch_forget(s, q);
        case FUSE_GETATTR:
                return op_getattr(s, q);
        case FUSE_SETATTR:
                return op_setattr(s, q);
        case FUSE_READLINK:
                return op_readlink(s, q);
        case FUSE_SYMLINK:
                return op_symlink(s, q);
        case FUSE_MKNOD:
                return op_mknod(s, q);
        case FUSE_MKDIR:
                return op_mkdir(s, q);
        case FUSE_UNLINK:
                return op_unlink(s, q, false);
        case FUSE_RMDIR:
                return op_unlink(s, q, true);
        case FUSE_RENAME:
                return op_rename(s, q, false);
        case FUSE_RENAME2:
                return op_rename(s, q, true);
        case FUSE_LINK:
                return op_link(s, q);
        case FUSE_OPEN:
                return op_open(s, q, false);
        case FUSE_OPENDIR:
                return op_open(s, q, true);
        case FUSE_CREATE:
                return op_create(s, q);
        case FUSE_READ:
                return op_read(s, q);
        case FUSE_WRITE:
                return op_write(s, q);
        case FUSE_READDIR:
                return op_readdir(s, q);
        case FUSE_STATFS:
                return op_statfs(s, q);
        case FUSE_RELEASE:
        case FUSE_RELEASEDIR:
                return op_release(s, q);
        case FUSE_FSYNC:
        case FUSE_FSYNCDIR:
                return op_fsync(s, q);
        case FUSE_FALLOCATE:
                return op_fallocate(s, q);
        case FUSE_FLUSH:
        case FUSE_DESTROY:
                return 0;
        case FUSE_INTERRUPT:
                return NO_REPLY;        /* every request is answered before the next is read */
        default:
                /* xattrs, locks (the guest's kernel keeps them), ACCESS
                 * (default_permissions), ioctl, poll, lseek, ...: the kernel
                 * remembers ENOSYS and stops asking. */
                return -ENOSYS;
        }
}

ssize_t silo_vm_share_handle(struct silo_vm_share *s, const uint8_t *msg, size_t len, uint8_t *out,
                             silo_error *err)
{
        struct fuse_in_header h;
        if (len < sizeof(h))
                return silo_error_msg(err, EPROTO, "guest fs port: message of %zu bytes", len);
        memcpy(&h, msg, sizeof(h));
        if (h.len != len || len > SILO_VM_SHARE_MSG_MAX)
                return silo_error_msg(err, EPROTO, "guest fs port: message length %u, framed %zu", h.len, len);
        if (h.total_extlen)
                return silo_error_msg(err, EPROTO, "guest fs port: request extensions were not negotiated");
        struct req q = { .h = &h, .body = msg + sizeof(h), .len = len - sizeof(h),
                         .out = out + sizeof(struct fuse_out_header), .err = err };
        int r = dispatch(s, &q);
        if (r == PROTO_ERROR)
                return -EPROTO;
        if (r == NO_REPLY)
                return 0;
        struct fuse_out_header o = { .unique = h.unique, .len = sizeof(o) };
        if (r < 0)
                o.error = r;
        else
                o.len += (uint32_t) r;
        memcpy(out, &o, sizeof(o));
        return o.len;
}

short silo_vm_share_events(const struct silo_vm_share *s)
{
        return s->out_off < s->out_len ? POLLOUT : POLLIN;
}

int silo_vm_share_pump(struct silo_vm_share *s, int fd, silo_error *err)
{
        for (int reads = 0;;) {
                while (s->out_off < s->out_len) {
                        ssize_t k = write(fd, s->out + s->out_off, s->out_len - s->out_off);
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k < 0 && errno == EAGAIN)
                                return 0;       /* POLLOUT: no new request until this reply left */
                        if (k <= 0)
                                return silo_error_set(err, k < 0 ? errno : EPIPE, "writing to the guest's fs port");
                        s->out_off += (size_t) k;
                }
                s->out_off = s->out_len = 0;
                if (s->in_len - s->in_off >= sizeof(uint32_t)) {
                        uint32_t len;
                        memcpy(&len, s->in + s->in_off, sizeof(len));
                        if (len < sizeof(struct fuse_in_header) || len > SILO_VM_SHARE_MSG_MAX)
                                return silo_error_msg(err, EPROTO, "guest fs port: message of %u bytes", len);
                        if (s->in_len - s->in_off >= len) {
                                ssize_t n = silo_vm_share_handle(s, s->in + s->in_off, len, s->out, err);
                                if (n < 0)
                                        return (int) n;
                                s->out_len = (size_t) n;
                                s->in_off += len;
                                continue;
                        }
                }
                /* Only here, with no whole request buffered, may we wait for the port. */
                if (reads++ == MAX_READS_PER_PUMP)
                        return 0;
                memmove(s->in, s->in + s->in_off, s->in_len - s->in_off);
                s->in_len -= s->in_off;
                s->in_off = 0;
                ssize_t k = read(fd, s->in + s->in_len, sizeof(s->in) - s->in_len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0 && errno == EAGAIN)
                        return 0;
                if (k <= 0)
                        return silo_error_msg(err, EPIPE, "the guest's fs port closed");
                s->in_len += (size_t) k;
        }
}
