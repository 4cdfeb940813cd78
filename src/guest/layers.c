/* Layers of a utility VM (docs/VM.md, "Utility VMs"): a hosted container's
 * read-only root (and its read-only mapped directories) arrive after boot
 * as erofs images on the "silo.data" port, since microvm's virtio-mmio
 * disks cannot be hot-plugged.  Each image lands in the guest's tmpfs, is
 * attached to a loop device and mounted at /run/layers/<name>. */
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "layers.h"

#define LAYER_STALL_MS 10000            /* the host stopped sending: give up */
#define LOOP_WAIT_MS 2000

bool guest_layer_name_valid(const char *name)
{
        size_t n = name ? strlen(name) : 0;
        if (n == 0 || n > GUEST_LAYER_NAME_MAX || name[0] == '.')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
                      (name[i] >= '0' && name[i] <= '9') || name[i] == '.' || name[i] == '_' || name[i] == '-'))
                        return false;
        return true;
}

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Exactly `size` bytes from the port into fd; every stall is bounded. */
static int receive(int data_fd, int fd, uint64_t size, char *errbuf, size_t errlen)
{
        static char buf[64 * 1024];
        while (size > 0) {
                struct pollfd p = { .fd = data_fd, .events = POLLIN };
                int n = poll(&p, 1, LAYER_STALL_MS);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        snprintf(errbuf, errlen, "layer upload stalled with %llu bytes to go",
                                 (unsigned long long) size);
                        return -ETIMEDOUT;
                }
                ssize_t k = read(data_fd, buf, size < sizeof(buf) ? (size_t) size : sizeof(buf));
                if (k < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (k <= 0) {
                        snprintf(errbuf, errlen, "layer upload: the data port closed");
                        return -EPIPE;
                }
                for (ssize_t off = 0; fd >= 0 && off < k;) {
                        ssize_t w = write(fd, buf + off, (size_t) (k - off));
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w <= 0) {
                                /* Keep reading to stay in step with the host. */
                                snprintf(errbuf, errlen, "layer upload: %s", strerror(w < 0 ? errno : ENOSPC));
                                fd = -1;
                                break;
                        }
                        off += w;
                }
                size -= (uint64_t) k;
        }
        return errbuf[0] ? -ENOSPC : 0;
}

/* Returns the loop device's fd: AUTOCLEAR detaches it with its last
 * close, so it stays open until the mount holds the device. */
static int loop_attach(int file_fd, char ret_dev[32], char *errbuf, size_t errlen)
{
        int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        if (ctl < 0) {
                snprintf(errbuf, errlen, "/dev/loop-control: %s (is the loop module in the initramfs?)",
                         strerror(errno));
                return -errno;
        }
        int r = 0;
        for (int attempt = 0; attempt < 8; attempt++) {
                int n = ioctl(ctl, LOOP_CTL_GET_FREE);
                if (n < 0) {
                        r = -errno;
                        break;
                }
                snprintf(ret_dev, 32, "/dev/loop%d", n);
                int fd = -1;
                for (int64_t deadline = now_ms() + LOOP_WAIT_MS; fd < 0 && now_ms() < deadline;)
                        if ((fd = open(ret_dev, O_RDONLY | O_CLOEXEC)) < 0)
                                usleep(1000);
                if (fd < 0) {
                        r = -ENODEV;
                        break;
                }
                struct loop_config cfg = { .fd = (uint32_t) file_fd };
                cfg.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
                r = ioctl(fd, LOOP_CONFIGURE, &cfg) < 0 ? -errno : 0;
                if (r == 0) {
                        close(ctl);
                        return fd;
                }
                close(fd);
                if (r != -EBUSY)        /* someone took it between GET_FREE and CONFIGURE */
                        break;
        }
        close(ctl);
        if (r < 0)
                snprintf(errbuf, errlen, "attach a loop device: %s", strerror(-r));
        return r;
}

int guest_layer_add(int data_fd, const char *name, uint64_t size, char *errbuf, size_t errlen)
{
        char image[64 + GUEST_LAYER_NAME_MAX], target[64 + GUEST_LAYER_NAME_MAX], dev[32];
        snprintf(image, sizeof(image), GUEST_LAYERS_DIR "/.%s.img", name);
        snprintf(target, sizeof(target), GUEST_LAYERS_DIR "/%s", name);
        errbuf[0] = 0;
        /* A tmpfs of its own: the initramfs's root (ramfs) is no place for
         * a file a loop device reads. */
        if (mkdir(GUEST_LAYERS_DIR, 0700) == 0 &&
            mount("tmpfs", GUEST_LAYERS_DIR, "tmpfs", MS_NODEV | MS_NOSUID, "mode=0700") < 0)
                snprintf(errbuf, errlen, "mount a tmpfs on %s: %s", GUEST_LAYERS_DIR, strerror(errno));
        int fd = open(image, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
                snprintf(errbuf, errlen, "layer %s: %s", name, errno == EEXIST ? "exists already" : strerror(errno));
        /* Received even when it cannot be kept: the bytes are on their way. */
        int r = receive(data_fd, fd, size, errbuf, errlen);
        if (fd < 0)
                return -EEXIST;
        int loop = r < 0 ? r : loop_attach(fd, dev, errbuf, errlen);
        /* The loop device holds the file now: its name can go. */
        close(fd);
        unlink(image);
        if (loop < 0)
                return loop;
        mkdir(target, 0755);
        r = 0;
        if (mount(dev, target, "erofs", MS_RDONLY | MS_NODEV | MS_NOSUID, NULL) < 0 &&
            mount(dev, target, "ext4", MS_RDONLY | MS_NODEV | MS_NOSUID, "noload") < 0) {
                r = -errno;
                snprintf(errbuf, errlen, "mount layer %s: %s", name, strerror(errno));
                rmdir(target);
        }
        close(loop);    /* the mount holds it; without one, AUTOCLEAR detaches it */
        return r;
}

int guest_layer_remove(const char *name, char *errbuf, size_t errlen)
{
        char target[64 + GUEST_LAYER_NAME_MAX];
        snprintf(target, sizeof(target), GUEST_LAYERS_DIR "/%s", name);
        /* Detached: a container still using it keeps it until it is gone;
         * the loop device clears itself with the last user. */
        if (umount2(target, MNT_DETACH) < 0) {
                snprintf(errbuf, errlen, "layer %s: %s", name, errno == EINVAL || errno == ENOENT ? "not mounted"
                                                                                        : strerror(errno));
                return errno == EINVAL ? -ENOENT : -errno;
        }
        rmdir(target);
        return 0;
}
