/* Mapped directories: the bind mounts of a VM container's config.  The
 * guest kernel has no 9p and the host no virtiofsd (docs/VM.md), so a
 * read-only bind becomes an erofs snapshot of the source on an extra
 * virtio-blk device (unlinked as soon as it is open), and a read-write bind
 * a live share: an entry of the guest's FUSE mount served by the shim from
 * an O_PATH fd on the source (share.c). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "vm/share.h"
#include "vm/vm.h"


int silo_vm_run_tool(char *const argv[], int keep_fd, silo_error *err)
{
        pid_t pid = fork();
        if (pid < 0)
                return silo_error_set(err, errno, "fork %s", argv[0]);
        if (pid == 0) {
                int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (devnull >= 0) {
                        dup2(devnull, 0);
                        dup2(devnull, 1);
                        dup2(devnull, 2);
                }
                if (keep_fd >= 0)
                        fcntl(keep_fd, F_SETFD, 0);
                execvp(argv[0], argv);
                _exit(127);
        }
        int status = 0;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return silo_error_set(err, errno, "waitpid %s", argv[0]);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return silo_error_msg(err, EIO, "%s failed (status %d%s)", argv[0],
                                      WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
                                      WIFEXITED(status) && WEXITSTATUS(status) == 127 ? ", is it installed?" : "");
        return 0;
}

int silo_vm_tempdir(char ret[PATH_MAX], silo_error *err)
{
        const char *tmp = getenv("TMPDIR");
        if (snprintf(ret, PATH_MAX, "%s/silo-vm-XXXXXX", tmp && *tmp == '/' ? tmp : "/tmp") >= PATH_MAX) {
                ret[0] = 0;
                return silo_error_msg(err, ENAMETOOLONG, "TMPDIR too long");
        }
        if (!mkdtemp(ret)) {
                int r = silo_error_set(err, errno, "mkdtemp %s", ret);
                ret[0] = 0;
                return r;
        }
        return 0;
}

static void remove_tree(const char *path)
{
        char *const argv[] = { "rm", "-rf", "--one-file-system", (char *) path, NULL };
        silo_vm_run_tool(argv, -1, NULL);
}

static bool is_bind(json_t *m)
{
        const char *type = json_string_value(json_object_get(m, "type"));
        bool bind = type && !strcmp(type, "bind");
        json_t *opts = json_object_get(m, "options");
        for (size_t k = 0; json_is_array(opts) && k < json_array_size(opts); k++) {
                const char *o = json_string_value(json_array_get(opts, k));
                bind |= o && (!strcmp(o, "bind") || !strcmp(o, "rbind"));
        }
        return bind;
}

static bool is_readonly(json_t *m)
{
        json_t *opts = json_object_get(m, "options");
        bool ro = false;
        for (size_t k = 0; json_is_array(opts) && k < json_array_size(opts); k++) {
                const char *o = json_string_value(json_array_get(opts, k));
                if (o && !strcmp(o, "ro"))
                        ro = true;
                else if (o && !strcmp(o, "rw"))
                        ro = false;
        }
        return ro;
}

/* A file bind: the image of a directory holding a copy of the file. */
static int file_image(struct silo_vm_mapping *mp, silo_error *err)
{
        char dir[PATH_MAX], copy[PATH_MAX + NAME_MAX + 2];
        int r = silo_vm_tempdir(dir, err);
        if (r < 0)
                return r;
        snprintf(copy, sizeof(copy), "%s/%s", dir, mp->file_name);
        char *const argv[] = { "cp", "-a", "--", mp->host_path, copy, NULL };
        r = silo_vm_run_tool(argv, -1, err);
        if (r == 0)
                r = silo_vm_erofs_image(dir, &mp->fd, err);
        remove_tree(dir);
        return r;
}

static int map_one(const struct silo_runtime *rt, json_t *mounts, size_t i, const char *bundle,
                   const char *layer_prefix, struct silo_vm_mappings *maps, json_t *mapped, silo_error *err)
{
        json_t *m = json_array_get(mounts, i);
        const char *src = json_string_value(json_object_get(m, "source"));
        const char *dst = json_string_value(json_object_get(m, "destination"));
        if (!src || !dst)
                return silo_error_msg(err, EINVAL, "mounts[%zu]: a bind mount needs a source and a destination", i);
        if (maps->n >= SILO_VM_MAX_DISKS)
                return silo_error_msg(err, E2BIG, "mounts: VM isolation maps at most %d bind mounts",
                                      SILO_VM_MAX_DISKS);
        struct silo_vm_mapping *mp = &maps->m[maps->n];
        *mp = (struct silo_vm_mapping) { .fd = -1, .readonly = is_readonly(m) };
        char joined[PATH_MAX];
        if (snprintf(joined, sizeof(joined), "%s/%s", src[0] == '/' ? "" : bundle, src) >= (int) sizeof(joined))
                return silo_error_msg(err, ENAMETOOLONG, "mounts[%zu]: bind source too long", i);
        if (!realpath(joined, mp->host_path))
                return silo_error_set(err, errno, "mounts[%zu]: bind source %s", i, src);
        struct stat st;
        if (stat(mp->host_path, &st) < 0)
                return silo_error_set(err, errno, "mounts[%zu]: stat %s", i, mp->host_path);
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
                /* Sockets and devices of the host mean nothing inside the VM. */
                if (rt && rt->warn) {
                        char msg[PATH_MAX + 128];
                        snprintf(msg, sizeof(msg), "VM isolation: bind mount of %s (not a file or directory) left out",
                                 mp->host_path);
                        rt->warn(rt->userdata, msg);
                }
                json_array_remove(mounts, i);
                return 0;
        }
        if (S_ISREG(st.st_mode)) {
                const char *slash = strrchr(mp->host_path, '/');
                snprintf(mp->file_name, sizeof(mp->file_name), "%s", slash ? slash + 1 : mp->host_path);
                mp->is_file = true;
        }
        char guest_src[PATH_MAX + 64];
        if (!mp->readonly) {
                /* Live: the root entry is the directory, or the file itself. */
                mp->fd = open(mp->host_path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
                if (mp->fd < 0)
                        return silo_error_set(err, errno, "mounts[%zu]: open %s", i, mp->host_path);
                mp->shared = true;
                if (layer_prefix)
                        snprintf(mp->share, sizeof(mp->share), "%s.s%u", layer_prefix, maps->n_shares);
                else
                        snprintf(mp->share, sizeof(mp->share), "%u", maps->n_shares);
                maps->n_shares++;
                maps->n++;
                snprintf(guest_src, sizeof(guest_src), SILO_VM_SHARE_DIR "/%s", mp->share);
                if (json_object_set_new(m, "source", json_string(guest_src)) < 0)
                        return silo_error_set(err, ENOMEM, "mapped directories");
                return 0;
        }
        int r = mp->is_file ? file_image(mp, err) : silo_vm_erofs_image(mp->host_path, &mp->fd, err);
        if (r < 0)
                return silo_error_prefix(err, "mounts[%zu]: mapping %s into the VM", i, mp->host_path);
        unsigned disk = maps->n_disks++;
        maps->n++;
        char serial[32];
        if (layer_prefix) {
                snprintf(mp->layer, sizeof(mp->layer), "%s.map%u", layer_prefix, disk);
                snprintf(guest_src, sizeof(guest_src), SILO_VM_LAYERS_DIR "/%s%s%s", mp->layer,
                         mp->is_file ? "/" : "", mp->is_file ? mp->file_name : "");
        } else {
                snprintf(guest_src, sizeof(guest_src), "/run/mapped/%u%s%s", disk, mp->is_file ? "/" : "",
                         mp->is_file ? mp->file_name : "");
        }
        snprintf(serial, sizeof(serial), SILO_VM_MAPPED_SERIAL "%u", disk);
        if (json_object_set_new(m, "source", json_string(guest_src)) < 0 ||
            json_array_append_new(mapped, json_pack("{ss sb sI sI si}", "Serial", serial, "ReadOnly", true,
                                                    "Uid", (json_int_t) st.st_uid, "Gid", (json_int_t) st.st_gid,
                                                    "Mode", (int) (st.st_mode & 07777))) < 0)
                return silo_error_set(err, ENOMEM, "mapped directories");
        return 0;
}

int silo_vm_map_binds(const struct silo_runtime *rt, json_t *config, const char *bundle, const char *layer_prefix,
                      struct silo_vm_mappings *ret, json_t **ret_mapped, silo_error *err)
{
        ret->n = ret->n_disks = ret->n_shares = 0;
        _cleanup_json_ json_t *mapped = json_array();
        if (!mapped)
                return silo_error_set(err, ENOMEM, "mapped directories");
        json_t *mounts = json_object_get(config, "mounts");
        size_t n = json_is_array(mounts) ? json_array_size(mounts) : 0;
        /* Forwards (disk numbers follow the config's order); a removed mount shifts the rest. */
        for (size_t i = 0; i < n;) {
                if (!is_bind(json_array_get(mounts, i))) {
                        i++;
                        continue;
                }
                int r = map_one(rt, mounts, i, bundle, layer_prefix, ret, mapped, err);
                if (r < 0) {
                        silo_vm_mappings_done(ret);
                        return r;
                }
                if (json_array_size(mounts) < n)
                        n--;
                else
                        i++;
        }
        *ret_mapped = TAKE_PTR(mapped);
        return 0;
}

void silo_vm_mappings_done(struct silo_vm_mappings *m)
{
        for (unsigned i = 0; i < m->n; i++)
                silo_closep(&m->m[i].fd);
        m->n = m->n_disks = m->n_shares = 0;
}
