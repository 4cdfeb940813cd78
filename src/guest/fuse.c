/* Live mapped directories, guest side: the FUSE file system at /run/share
 * whose server is the host's shim (src/lib/vm/share.c).  A forked pump
 * copies each request read from /dev/fuse (one read, one whole request) to
 * the "silo.fs" port, and each reply from the port (framed by its
 * fuse_out_header.len) to /dev/fuse.  It runs apart from the agent's loop
 * because the agent waits for the container runtime, which looks the
 * shares up while it creates the container.  Both directions move
 * independently: a reply is never held up behind a request the host has
 * not read yet, so neither side can stall the other. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fuse.h"
#include "vm/share.h"

static uint8_t req[SILO_VM_SHARE_MSG_MAX];
static uint8_t rep[2 * SILO_VM_SHARE_MSG_MAX];

static __attribute__((noreturn)) void pump(int dev, int port)
{
        for (int fd = 3; fd < 1024; fd++)
                if (fd != dev && fd != port)
                        close(fd);
        fcntl(dev, F_SETFL, fcntl(dev, F_GETFL) | O_NONBLOCK);
        fcntl(port, F_SETFL, fcntl(port, F_GETFL) | O_NONBLOCK);
        size_t req_len = 0, req_off = 0, rep_len = 0;
        for (;;) {
                struct pollfd p[2] = {
                        { .fd = dev, .events = req_len ? 0 : POLLIN },
                        { .fd = port, .events = POLLIN | (req_len ? POLLOUT : 0) },
                };
                if (poll(p, 2, 1000) < 0 && errno != EINTR)
                        _exit(1);
                if (!req_len && p[0].revents) {
                        ssize_t n = read(dev, req, sizeof(req));
                        if (n > 0) {
                                req_len = (size_t) n;
                                req_off = 0;
                        } else if (n < 0 && errno == ENODEV) {
                                _exit(0);       /* unmounted or aborted */
                        }
                }
                if (req_len) {
                        ssize_t n = write(port, req + req_off, req_len - req_off);
                        if (n > 0)
                                req_off += (size_t) n;
                        if (req_off == req_len)
                                req_len = 0;
                }
                if (p[1].revents & POLLIN) {
                        ssize_t n = read(port, rep + rep_len, sizeof(rep) - rep_len);
                        if (n > 0)
                                rep_len += (size_t) n;
                        else if (n == 0)
                                usleep(10000);  /* the host end is not connected */
                } else if (p[1].revents & (POLLHUP | POLLERR)) {
                        usleep(10000);
                }
                while (rep_len >= sizeof(struct fuse_out_header)) {
                        struct fuse_out_header h;
                        memcpy(&h, rep, sizeof(h));
                        if (h.len < sizeof(h) || h.len > SILO_VM_SHARE_MSG_MAX)
                                _exit(1);       /* out of step: the mount fails (ENOTCONN) */
                        if (rep_len < h.len)
                                break;
                        /* ENOENT: the request was interrupted meanwhile. */
                        (void) !write(dev, rep, h.len);
                        memmove(rep, rep + h.len, rep_len - h.len);
                        rep_len -= h.len;
                }
        }
}

/* fuse.ko is in the initramfs but not loaded at boot: only VMs with
 * read-write mapped directories pay for it. */
static int load_fuse(void)
{
        if (access("/dev/fuse", F_OK) == 0)
                return 0;
        int fd = open("/lib/modules/on-demand/fuse.ko", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        int r = syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST ? -errno : 0;
        close(fd);
        if (r == 0)
                unlink("/lib/modules/on-demand/fuse.ko");     /* guest memory */
        /* devtmpfs makes the node as the device registers; wait a little anyway. */
        for (int i = 0; r == 0 && i < 100 && access("/dev/fuse", F_OK) < 0; i++)
                nanosleep(&(struct timespec) { 0, 10 * 1000 * 1000 }, NULL);
        return r;
}

/* The port named "silo.fs" (docs/VM.md): its /dev/vportNpM. */
static int open_port(void)
{
        for (int attempt = 0; attempt < 500; attempt++) {
                DIR *d = opendir("/sys/class/virtio-ports");
                for (struct dirent *de; d && (de = readdir(d));) {
                        if (de->d_name[0] == '.' || strlen(de->d_name) > 64)
                                continue;
                        char path[128], name[32] = "";
                        snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", de->d_name);
                        int fd = open(path, O_RDONLY | O_CLOEXEC);
                        ssize_t n = fd >= 0 ? read(fd, name, sizeof(name) - 1) : -1;
                        if (fd >= 0)
                                close(fd);
                        if (n <= 0 || strncmp(name, "silo.fs\n", 8))
                                continue;
                        snprintf(path, sizeof(path), "/dev/%s", de->d_name);
                        closedir(d);
                        fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
                        return fd < 0 ? -errno : fd;
                }
                if (d)
                        closedir(d);
                nanosleep(&(struct timespec) { 0, 10 * 1000 * 1000 }, NULL);
        }
        return -ENODEV;
}

int guest_share_mount(char *errbuf, size_t errlen)
{
        static bool mounted;
        if (mounted)
                return 0;
        int port = open_port();
        if (port < 0) {
                snprintf(errbuf, errlen, "shares: the silo.fs port: %s", strerror(-port));
                return port;
        }
        int r = load_fuse();
        if (r < 0) {
                close(port);
                snprintf(errbuf, errlen, "shares: loading fuse.ko: %s", strerror(-r));
                return r;
        }
        int dev = open("/dev/fuse", O_RDWR | O_CLOEXEC);
        if (dev < 0) {
                r = -errno;
                close(port);
                snprintf(errbuf, errlen, "shares: open /dev/fuse: %s", strerror(-r));
                return r;
        }
        pid_t pid = fork();
        if (pid < 0) {
                r = -errno;
                close(dev);
                close(port);
                snprintf(errbuf, errlen, "shares: fork: %s", strerror(-r));
                return r;
        }
        if (pid == 0)
                pump(dev, port);
        close(port);
        /* default_permissions: the guest's kernel checks modes, owners and
         * the container's capabilities, as for a bind mount on a host. */
        char opts[160];
        snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions", dev);
        mkdir(SILO_VM_SHARE_DIR, 0755);
        r = mount("silo", SILO_VM_SHARE_DIR, "fuse", 0, opts) < 0 ? -errno : 0;
        close(dev);     /* the pump's copy is the connection's only one */
        if (r < 0) {
                kill(pid, SIGKILL);
                snprintf(errbuf, errlen, "shares: mount fuse on " SILO_VM_SHARE_DIR ": %s", strerror(-r));
                return r;
        }
        mounted = true;
        return 0;
}
