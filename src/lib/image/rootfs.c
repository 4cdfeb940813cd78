#include "image/rootfs.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "image/compress.h"
#include "image/tarwrite.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

#ifndef OVERLAYFS_SUPER_MAGIC
#define OVERLAYFS_SUPER_MAGIC 0x794c7630
#endif

#define CONTAINER_JSON "container.json"
#define MOUNTPOINT_FILE "mountpoint"

bool silo_container_id_valid(const char *id)
{
        size_t n = id ? strlen(id) : 0;
        if (n == 0 || n > SILO_CONTAINER_ID_MAX || !isalnum((unsigned char) id[0]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char) id[i]) && id[i] != '_' && id[i] != '.' && id[i] != '-')
                        return false;
        return true;
}

static int check_id(const char *id, silo_error *err)
{
        if (!silo_container_id_valid(id))
                return silo_error_msg(err, EINVAL, "invalid container id '%.140s' (letters, digits, '_', '.', '-'; "
                                      "at most %d characters)", id ? id : "", SILO_CONTAINER_ID_MAX);
        return 0;
}

void silo_rootfs_info_free(silo_rootfs_info *info)
{
        if (!info)
                return;
        free(info->id);
        silo_strv_free(info->layers);
        free(info->mountpoint);
        free(info);
}

void silo_rootfs_list_free(silo_rootfs_info **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                silo_rootfs_info_free(v[i]);
        free(v);
}

static int container_dir(silo_store *s, const char *id, int *ret_fd, silo_error *err)
{
        int r = check_id(id, err);
        if (r < 0)
                return r;
        int fd = openat(silo_store_dir_fd(s, "containers"), id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT)
                        return silo_error_msg(err, ENOENT, "container rootfs '%s' does not exist", id);
                return silo_error_set(err, errno, "container rootfs '%s'", id);
        }
        *ret_fd = fd;
        return 0;
}

int silo_rootfs_info_load(silo_store *s, const char *id, silo_rootfs_info **ret, silo_error *err)
{
        _cleanup_close_ int dfd = -1;
        int r = container_dir(s, id, &dfd, err);
        if (r < 0)
                return r;
        _cleanup_json_ json_t *j = NULL;
        r = silo_json_load_file_at(dfd, CONTAINER_JSON, 1 << 20, &j, err);
        if (r < 0)
                return silo_error_prefix(err, "container rootfs '%s'", id);

        silo_rootfs_info *info = calloc(1, sizeof(*info));
        if (!info)
                return silo_error_set(err, ENOMEM, "container rootfs");
        info->id = strdup(id);
        json_t *image = json_object_get(j, "image");
        json_t *layers = json_object_get(j, "layers");
        if (!json_is_string(image) || !silo_digest_valid(json_string_value(image)) || !json_is_array(layers)) {
                silo_rootfs_info_free(info);
                return silo_error_msg(err, EINVAL, "container rootfs '%s': %s is malformed", id, CONTAINER_JSON);
        }
        snprintf(info->image, sizeof(info->image), "%s", json_string_value(image));
        info->layers = calloc(json_array_size(layers) + 1, sizeof(char *));
        for (size_t i = 0; info->layers && i < json_array_size(layers); i++) {
                json_t *l = json_array_get(layers, i);
                if (!json_is_string(l) || !silo_digest_valid(json_string_value(l))) {
                        silo_rootfs_info_free(info);
                        return silo_error_msg(err, EINVAL, "container rootfs '%s': layers[%zu] is malformed", id, i);
                }
                info->layers[i] = strdup(json_string_value(l));
        }
        json_t *created = json_object_get(j, "created");
        info->created = json_is_integer(created) ? json_integer_value(created) : 0;

        _cleanup_free_ char *mp = NULL;
        if (silo_read_file_at(dfd, MOUNTPOINT_FILE, PATH_MAX, &mp, NULL, NULL) == 0)
                info->mountpoint = TAKE_PTR(mp);
        if (!info->id || !info->layers) {
                silo_rootfs_info_free(info);
                return silo_error_set(err, ENOMEM, "container rootfs");
        }
        *ret = info;
        return 0;
}

int silo_rootfs_list(silo_store *s, silo_rootfs_info ***ret, size_t *ret_n, silo_error *err)
{
        int fd = openat(silo_store_dir_fd(s, "containers"), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return silo_error_set(err, errno, "open containers");
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return silo_error_set(err, errno, "open containers");
        }
        _cleanup_closedir_ DIR *dir = d;
        size_t n = 0, cap = 8;
        silo_rootfs_info **v = calloc(cap, sizeof(*v));
        if (!v)
                return silo_error_set(err, ENOMEM, "list containers");
        struct dirent *de;
        while ((de = readdir(dir))) {
                if (!silo_container_id_valid(de->d_name))
                        continue;       /* ".", "..", ".tmp-*" */
                silo_rootfs_info *info = NULL;
                if (silo_rootfs_info_load(s, de->d_name, &info, NULL) < 0)
                        continue;       /* half-removed or foreign: not ours to judge here */
                if (n == cap) {
                        silo_rootfs_info **nv = realloc(v, 2 * cap * sizeof(*v));
                        if (!nv) {
                                silo_rootfs_info_free(info);
                                silo_rootfs_list_free(v, n);
                                return silo_error_set(err, ENOMEM, "list containers");
                        }
                        v = nv;
                        cap *= 2;
                }
                v[n++] = info;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

struct tmpdir_guard {
        int parent;
        char name[SILO_CONTAINER_ID_MAX + 64];
        bool armed;
};

static void tmpdir_guard_done(struct tmpdir_guard *g)
{
        if (g->armed)
                (void) silo_rm_rf_at(g->parent, g->name, NULL);
}

int silo_rootfs_create(silo_store *s, const char *id, const char *image_ref, silo_error *err)
{
        int r = check_id(id, err);
        if (r < 0)
                return r;
        r = silo_store_begin(s, false, err);
        if (r < 0)
                return r;

        _cleanup_image_ silo_image *img = NULL;
        _cleanup_(tmpdir_guard_done) struct tmpdir_guard g = { .parent = silo_store_dir_fd(s, "containers") };
        _cleanup_close_ int dfd = -1;
        _cleanup_json_ json_t *j = NULL;
        _cleanup_free_ char *text = NULL;

        r = silo_image_lookup(s, image_ref, &img, err);
        if (r < 0)
                goto out;
        /* Repair layers removed behind our back, from their blobs. */
        silo_register_options ro;
        silo_register_options_init(&ro);
        for (size_t i = 0; i < img->manifest->n_layers; i++) {
                r = silo_layer_ensure(s, &img->manifest->layers[i], img->config->diff_ids[i], &ro, err);
                if (r < 0)
                        goto out;
        }

        struct stat st;
        if (fstatat(g.parent, id, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                r = silo_error_msg(err, EEXIST, "container rootfs '%s' already exists", id);
                goto out;
        }
        snprintf(g.name, sizeof(g.name), ".tmp-%s-", id);
        silo_random_hex(g.name + strlen(g.name), 12);
        if (mkdirat(g.parent, g.name, 0700) < 0) {
                r = silo_error_set(err, errno, "mkdir containers/%s", g.name);
                goto out;
        }
        g.armed = true;
        dfd = openat(g.parent, g.name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd < 0 || mkdirat(dfd, "upper", 0755) < 0 || mkdirat(dfd, "work", 0700) < 0 ||
            mkdirat(dfd, "merged", 0755) < 0 || mkdirat(dfd, "empty", 0755) < 0) {
                r = silo_error_set(err, errno, "create container rootfs '%s'", id);
                goto out;
        }

        json_t *layers = json_array();
        for (size_t i = 0; layers && i < img->config->n_diff_ids; i++)
                json_array_append_new(layers, json_string(img->config->diff_ids[i]));
        j = json_pack("{s:s, s:s, s:s, s:o, s:I}", "id", id, "image", img->digest, "image_id", img->id,
                      "layers", layers, "created", (json_int_t) time(NULL));
        text = j ? json_dumps(j, JSON_INDENT(1)) : NULL;
        if (!text) {
                r = silo_error_set(err, ENOMEM, "container.json");
                goto out;
        }
        r = silo_write_file_atomic_at(dfd, CONTAINER_JSON, text, strlen(text), 0600, err);
        if (r < 0)
                goto out;
        if (renameat2(g.parent, g.name, g.parent, id, RENAME_NOREPLACE) < 0) {
                r = errno == EEXIST ? silo_error_msg(err, EEXIST, "container rootfs '%s' already exists", id)
                                    : silo_error_set(err, errno, "rename container rootfs '%s' into place", id);
                goto out;
        }
        g.armed = false;
        (void) fsync(g.parent);
out:
        silo_store_end(s);
        return r;
}

static bool path_is_overlay_mount(const char *path)
{
        struct statx stx;
        struct statfs sfs;
        if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx) < 0)
                return false;
        if (!(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) || !(stx.stx_attributes & STATX_ATTR_MOUNT_ROOT))
                return false;
        return statfs(path, &sfs) == 0 && sfs.f_type == OVERLAYFS_SUPER_MAGIC;
}

bool silo_rootfs_is_mounted(silo_store *s, const char *id)
{
        silo_rootfs_info *info = NULL;
        if (silo_rootfs_info_load(s, id, &info, NULL) < 0)
                return false;
        bool mounted = info->mountpoint && path_is_overlay_mount(info->mountpoint);
        silo_rootfs_info_free(info);
        return mounted;
}

/* The kernel explains fsconfig failures through the fs context fd. */
static void fs_context_message(int fsfd, char *buf, size_t size)
{
        buf[0] = '\0';
        ssize_t n = read(fsfd, buf, size - 1);
        if (n > 0) {
                buf[n] = '\0';
                char *nl = strchr(buf, '\n');
                if (nl)
                        *nl = '\0';
        } else
                buf[0] = '\0';
}

static int set_param(int fsfd, const char *key, const char *value, bool optional, silo_error *err)
{
        if (fsconfig(fsfd, FSCONFIG_SET_STRING, key, value, 0) == 0)
                return 0;
        if (optional && errno == EINVAL) {
                char junk[256];
                fs_context_message(fsfd, junk, sizeof(junk));
                return 0;
        }
        int e = errno;
        char msg[256];
        fs_context_message(fsfd, msg, sizeof(msg));
        return silo_error_msg(err, e, "overlay option %s=%s: %s%s%s", key, value, strerror(e), *msg ? ": " : "", msg);
}

/* lowers: top layer first. */
static int mount_overlay(char **lowers, const char *upper, const char *work, const char *target, bool volatile_upper,
                         silo_error *err)
{
        _cleanup_close_ int fsfd = fsopen("overlay", FSOPEN_CLOEXEC);
        if (fsfd < 0)
                return silo_error_set(err, errno, "fsopen overlay");
        int r = set_param(fsfd, "source", "silo", false, err);
        /* "lowerdir+" adds one layer at a time: no page-size limit on the
         * option string however many layers the image has. */
        for (char **l = lowers; r == 0 && *l; l++)
                r = set_param(fsfd, "lowerdir+", *l, false, err);
        if (r == 0 && upper)
                r = set_param(fsfd, "upperdir", upper, false, err);
        if (r == 0 && work)
                r = set_param(fsfd, "workdir", work, false, err);
        /* The upper dir must stay a plain diff that commit can read. */
        if (r == 0)
                r = set_param(fsfd, "redirect_dir", "off", true, err);
        if (r == 0)
                r = set_param(fsfd, "index", "off", true, err);
        if (r == 0)
                r = set_param(fsfd, "metacopy", "off", true, err);
        if (r < 0)
                return r;
        /* Unmounting an overlay syncs the whole upper filesystem (the host's
         * root, with whatever else is dirty there): tens of ms per container
         * on a busy host.  Kernels before 5.10 do not know the flag. */
        if (volatile_upper && upper && fsconfig(fsfd, FSCONFIG_SET_FLAG, "volatile", NULL, 0) < 0) {
                char junk[256];
                fs_context_message(fsfd, junk, sizeof(junk));
        }
        if (fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
                int e = errno;
                char msg[256];
                fs_context_message(fsfd, msg, sizeof(msg));
                return silo_error_msg(err, e, "create overlay: %s%s%s", strerror(e), *msg ? ": " : "", msg);
        }
        _cleanup_close_ int mfd = fsmount(fsfd, FSMOUNT_CLOEXEC, upper ? 0 : MOUNT_ATTR_RDONLY);
        if (mfd < 0)
                return silo_error_set(err, errno, "fsmount overlay");
        if (move_mount(mfd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                return silo_error_set(err, errno, "mount overlay on %s", target);
        return 0;
}

static int lower_paths(silo_store *s, const silo_rootfs_info *info, int cdir, char ***ret, silo_error *err)
{
        size_t n = 0;
        while (info->layers[n])
                n++;
        _cleanup_strv_ char **v = calloc(n + 2, sizeof(char *));
        if (!v)
                return silo_error_set(err, ENOMEM, "lowerdirs");
        for (size_t i = 0; i < n; i++) {
                const char *d = info->layers[n - 1 - i];
                if (!silo_store_layer_exists(s, d))
                        return silo_error_msg(err, ENOENT, "layer %s of container rootfs '%s' is missing from the store",
                                              d, info->id);
                int r = silo_store_layer_path(s, d, &v[i], err);
                if (r < 0)
                        return r;
        }
        if (n == 0) {
                /* FROM scratch with no layers: overlay wants one lower. */
                (void) cdir;
                if (asprintf(&v[0], "%s/containers/%s/empty", silo_store_root(s), info->id) < 0)
                        return silo_error_set(err, ENOMEM, "lowerdirs");
        }
        *ret = TAKE_PTR(v);
        return 0;
}

static int rootfs_mount(silo_store *s, const char *id, const char *target, bool volatile_upper, char **ret_path,
                        silo_error *err)
{
        silo_rootfs_info *pinfo = NULL;
        int r = silo_rootfs_info_load(s, id, &pinfo, err);
        if (r < 0)
                return r;
        _cleanup_rootfs_info_ silo_rootfs_info *info = pinfo;
        _cleanup_close_ int cdir = -1;
        r = container_dir(s, id, &cdir, err);
        if (r < 0)
                return r;

        if (info->mountpoint && path_is_overlay_mount(info->mountpoint)) {
                if (target) {
                        char *rp = realpath(target, NULL);
                        bool same = rp && !strcmp(rp, info->mountpoint);
                        free(rp);
                        if (!same)
                                return silo_error_msg(err, EBUSY, "container rootfs '%s' is already mounted at %s",
                                                      id, info->mountpoint);
                }
                if (ret_path && !(*ret_path = strdup(info->mountpoint)))
                        return silo_error_set(err, ENOMEM, "mount");
                return 0;
        }

        _cleanup_free_ char *path = NULL;
        if (target) {
                path = realpath(target, NULL);
                if (!path)
                        return silo_error_set(err, errno, "mountpoint %s", target);
        } else if (asprintf(&path, "%s/containers/%s/merged", silo_store_root(s), id) < 0)
                return silo_error_set(err, ENOMEM, "mount");

        _cleanup_strv_ char **lowers = NULL;
        r = lower_paths(s, info, cdir, &lowers, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *upper = NULL, *work = NULL;
        if (asprintf(&upper, "%s/containers/%s/upper", silo_store_root(s), id) < 0 ||
            asprintf(&work, "%s/containers/%s/work", silo_store_root(s), id) < 0)
                return silo_error_set(err, ENOMEM, "mount");

        r = mount_overlay(lowers, upper, work, path, volatile_upper, err);
        if (r < 0)
                return silo_error_prefix(err, "mount container rootfs '%s'", id);
        /* Not fsync'd: the mount it names does not survive a reboot either,
         * and readers check that the path still is an overlay mount. */
        r = silo_write_file_replace_at(cdir, MOUNTPOINT_FILE, path, strlen(path), 0600, err);
        if (r < 0) {
                (void) umount2(path, MNT_DETACH);
                return r;
        }
        if (ret_path)
                *ret_path = TAKE_PTR(path);
        return 0;
}

int silo_rootfs_mount(silo_store *s, const char *id, const char *target, char **ret_path, silo_error *err)
{
        return rootfs_mount(s, id, target, false, ret_path, err);
}

int silo_rootfs_mount_volatile(silo_store *s, const char *id, const char *target, char **ret_path, silo_error *err)
{
        return rootfs_mount(s, id, target, true, ret_path, err);
}

int silo_rootfs_unmount(silo_store *s, const char *id, silo_error *err)
{
        silo_rootfs_info *pinfo = NULL;
        int r = silo_rootfs_info_load(s, id, &pinfo, err);
        if (r < 0)
                return r;
        _cleanup_rootfs_info_ silo_rootfs_info *info = pinfo;
        if (info->mountpoint && path_is_overlay_mount(info->mountpoint)) {
                if (umount2(info->mountpoint, UMOUNT_NOFOLLOW) < 0) {
                        if (errno != EBUSY)
                                return silo_error_set(err, errno, "unmount %s", info->mountpoint);
                        /* Still in use (a process has its cwd there): detach. */
                        if (umount2(info->mountpoint, UMOUNT_NOFOLLOW | MNT_DETACH) < 0)
                                return silo_error_set(err, errno, "unmount %s", info->mountpoint);
                }
        }
        _cleanup_close_ int cdir = -1;
        if (container_dir(s, id, &cdir, NULL) == 0)
                (void) unlinkat(cdir, MOUNTPOINT_FILE, 0);
        return 0;
}

int silo_rootfs_remove(silo_store *s, const char *id, silo_error *err)
{
        int r = check_id(id, err);
        if (r < 0)
                return r;
        struct stat st;
        int containers = silo_store_dir_fd(s, "containers");
        if (fstatat(containers, id, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return silo_error_msg(err, ENOENT, "container rootfs '%s' does not exist", id);
        r = silo_rootfs_unmount(s, id, err);
        if (r < 0 && r != -EINVAL)
                return r;
        char tmp[64] = ".tmp-del-";
        silo_random_hex(tmp + 9, 16);
        if (renameat(containers, id, containers, tmp) < 0)
                return silo_error_set(err, errno, "remove container rootfs '%s'", id);
        r = silo_rm_rf_at(containers, tmp, err);
        if (r < 0)
                return silo_error_prefix(err, "remove container rootfs '%s'", id);
        return 0;
}

/* ---- commit / export ---- */

static int layer_sink(void *userdata, const void *buf, size_t len, silo_error *err)
{
        return silo_layer_writer_write(userdata, buf, len, err);
}

int silo_rootfs_commit(silo_store *s, const char *id, const char *name, const silo_commit_info *info,
                       char ret_digest[SILO_DIGEST_SIZE], silo_error *err)
{
        silo_rootfs_info *pinfo = NULL;
        int r = silo_rootfs_info_load(s, id, &pinfo, err);
        if (r < 0)
                return r;
        _cleanup_rootfs_info_ silo_rootfs_info *ri = pinfo;
        _cleanup_close_ int cdir = -1;
        r = container_dir(s, id, &cdir, err);
        if (r < 0)
                return r;
        _cleanup_close_ int upper = openat(cdir, "upper", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (upper < 0)
                return silo_error_set(err, errno, "container rootfs '%s': open upper", id);

        r = silo_store_begin(s, false, err);
        if (r < 0)
                return r;
        _cleanup_image_ silo_image *base = NULL;
        _cleanup_layer_writer_ silo_layer_writer *lw = NULL;
        _cleanup_tar_writer_ silo_tar_writer *tw = NULL;
        silo_new_layer layer = { .compression = SILO_COMPRESSION_GZIP };

        r = silo_image_load_manifest(s, ri->image, &base, err);
        if (r < 0) {
                silo_error_prefix(err, "container rootfs '%s': its image", id);
                goto out;
        }
        r = silo_layer_writer_new(s, SILO_COMPRESSION_GZIP, &lw, err);
        if (r < 0)
                goto out;
        r = silo_tar_writer_new(layer_sink, lw, &tw, err);
        if (r < 0)
                goto out;
        r = silo_tar_writer_add_tree(tw, upper, SILO_TAR_OVERLAY_DIFF, err);
        if (r < 0)
                goto out;
        r = silo_tar_writer_finish(tw, err);
        if (r < 0)
                goto out;
        r = silo_layer_writer_finish(lw, layer.blob, layer.diff_id, &layer.size, err);
        if (r < 0)
                goto out;
        silo_register_options ro;
        silo_register_options_init(&ro);
        r = silo_image_create(s, base, &layer, info, name, &ro, ret_digest, err);
out:
        silo_store_end(s);
        if (r < 0)
                return silo_error_prefix(err, "commit '%s'", id);
        return 0;
}

int silo_rootfs_export(silo_store *s, const char *id, int out_fd, silo_error *err)
{
        bool was_mounted = silo_rootfs_is_mounted(s, id);
        _cleanup_free_ char *path = NULL;
        int r = silo_rootfs_mount(s, id, NULL, &path, err);
        if (r < 0)
                return r;
        _cleanup_close_ int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                r = silo_error_set(err, errno, "open %s", path);
        _cleanup_tar_writer_ silo_tar_writer *tw = NULL;
        if (r == 0)
                r = silo_tar_writer_new_fd(out_fd, &tw, err);
        if (r == 0)
                r = silo_tar_writer_add_tree(tw, dfd, SILO_TAR_PLAIN, err);
        if (r == 0)
                r = silo_tar_writer_finish(tw, err);
        tw = silo_tar_writer_free(tw);
        if (dfd >= 0) {
                close(dfd);
                dfd = -1;
        }
        if (!was_mounted) {
                silo_error uerr = SILO_ERROR_INIT;
                /* Close our directory fd first, or the unmount is busy. */
                int ur = silo_rootfs_unmount(s, id, r < 0 ? &uerr : err);
                if (r == 0)
                        r = ur;
        }
        if (r < 0)
                return silo_error_prefix(err, "export '%s'", id);
        return 0;
}

int silo_image_export(silo_store *s, const char *image_ref, int out_fd, silo_error *err)
{
        char id[40] = "export-";
        silo_random_hex(id + 7, 16);
        int r = silo_rootfs_create(s, id, image_ref, err);
        if (r < 0)
                return r;
        r = silo_rootfs_export(s, id, out_fd, err);
        silo_error rerr = SILO_ERROR_INIT;
        int rr = silo_rootfs_remove(s, id, r < 0 ? &rerr : err);
        if (r == 0)
                r = rr;
        return r;
}
