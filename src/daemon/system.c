/* /_ping, /version, /info, /system/df, /auth. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "image/image.h"
#include "registry/registry.h"
#include "silo-config.h"
#include "silod.h"
#include "util/cleanup.h"
#include "util/json.h"

enum MHD_Result handle_ping(struct silod *d, struct MHD_Connection *c, bool head)
{
        (void) d;
        struct MHD_Response *resp = MHD_create_response_from_buffer(head ? 0 : 2, (void *) "OK",
                                                                    MHD_RESPMEM_PERSISTENT);
        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache, no-store, must-revalidate");
        MHD_add_response_header(resp, "Builder-Version", "1");
        add_common_headers(resp);
        enum MHD_Result r = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return r;
}

static const char *arch(void)
{
        struct utsname u;
        if (uname(&u) == 0 && strcmp(u.machine, "aarch64") == 0)
                return "arm64";
        return "amd64";
}

enum MHD_Result handle_version(struct silod *d, struct MHD_Connection *c)
{
        (void) d;
        struct utsname u;
        uname(&u);
        json_t *details = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ApiVersion",
                                    SILOD_API_VERSION, "MinAPIVersion", SILOD_API_MIN, "GitCommit", "silo",
                                    "GoVersion", "n/a (C)", "Os", "linux", "Arch", arch(), "KernelVersion",
                                    u.release, "BuildTime", "", "Experimental", "false");
        json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s}, s:[{s:s, s:s, s:o}]}",
                                "Version", SILO_VERSION, "ApiVersion", SILOD_API_VERSION, "MinAPIVersion",
                                SILOD_API_MIN, "GitCommit", "silo", "GoVersion", "n/a (C)", "Os", "linux", "Arch",
                                arch(), "KernelVersion", u.release, "BuildTime", "", "Platform", "Name",
                                "silo engine", "Components", "Name", "Engine", "Version", SILO_VERSION, "Details",
                                details);
        return reply_json(c, 200, doc);
}

enum MHD_Result handle_info(struct silod *d, struct MHD_Connection *c)
{
        unsigned total = 0, running = 0, stopped = 0;
        pthread_mutex_lock(&d->lock);
        for (struct ctr *ct = d->containers; ct; ct = ct->next) {
                ctr_refresh_locked(d, ct);
                total++;
                if (ct->status == CTR_RUNNING)
                        running++;
                else
                        stopped++;
        }
        pthread_mutex_unlock(&d->lock);

        size_t n_images = 0;
        silo_store *s = NULL;
        silo_error err = SILO_ERROR_INIT;
        if (open_store(d, &s, &err) == 0) {
                silo_image **v = NULL;
                if (silo_image_list(s, &v, &n_images, &err) == 0)
                        silo_image_list_free(v, n_images);
                silo_store_free(s);
        }
        struct utsname u;
        uname(&u);
        struct sysinfo si;
        sysinfo(&si);
        char host[256] = "silo";
        gethostname(host, sizeof(host) - 1);
        json_t *doc = json_pack(
                "{s:s, s:i, s:i, s:i, s:i, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:s, s:s, s:s, s:s,"
                " s:s, s:o, s:[], s:[], s:{s:[], s:[], s:[]}, s:b, s:b, s:b, s:b, s:s, s:s}",
                "ID", "silo", "Containers", (int) total, "ContainersRunning", (int) running, "ContainersPaused", 0,
                "ContainersStopped", (int) stopped, "Images", (int) n_images, "Driver", "overlay", "DockerRootDir",
                d->root, "OperatingSystem", "silo", "OSType", "linux", "Architecture", u.machine, "KernelVersion",
                u.release, "Name", host, "NCPU", (int) sysconf(_SC_NPROCESSORS_ONLN), "MemTotal",
                (json_int_t) si.totalram * si.mem_unit, "ServerVersion", SILO_VERSION, "CgroupDriver", "cgroupfs",
                "CgroupVersion", access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0 ? "2" : "1", "LoggingDriver",
                "silo-log", "DefaultRuntime", "silo", "Runtimes", json_pack("{s:{s:s}}", "silo", "path", "libsilo"),
                "Warnings", "SecurityOptions", "Plugins", "Volume", "Network", "Log", "MemoryLimit", 1, "PidsLimit",
                1, "Debug", 0, "IPv4Forwarding", 0, "IndexServerAddress", "https://index.docker.io/v1/",
                "Isolation", "process");
        return reply_json(c, 200, doc);
}

/* ---- /system/df ---- */

#define DU_MAX_DEPTH 256
#define DU_MAX_ENTRIES 1000000

/* Bytes of regular files and symlinks under dirfd (consumed), never
 * following symlinks; bounded in depth and entries (a container's upper dir
 * is its own to fill). */
static uint64_t du_fd(int fd, unsigned depth, unsigned long *budget)
{
        DIR *dir = fdopendir(fd);
        if (!dir) {
                close(fd);
                return 0;
        }
        uint64_t total = 0;
        struct dirent *de;
        while ((de = readdir(dir)) && *budget > 0) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                (*budget)--;
                struct stat st;
                if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode))
                        total += (uint64_t) st.st_size;
                else if (S_ISDIR(st.st_mode) && depth < DU_MAX_DEPTH) {
                        int sub = openat(dirfd(dir), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub >= 0)
                                total += du_fd(sub, depth + 1, budget);
                }
        }
        closedir(dir);
        return total;
}

static uint64_t du_path(const char *path)
{
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        unsigned long budget = DU_MAX_ENTRIES;
        return fd < 0 ? 0 : du_fd(fd, 0, &budget);
}

struct df_ctr {
        char id[65];
        char *name, *image, *image_id, *command;
        int64_t created;
        const char *state;
        json_t *labels;
        json_t *mount_points;           /* the record's MountPoints (volumes.c) */
};

/* Named volumes (STATE/volumes/<name>/, managed by the volume code) with
 * their size and how many containers name them. */
static json_t *df_volumes(struct silod *d, const struct df_ctr *ctrs, size_t n_ctrs)
{
        json_t *out = json_array();
        _cleanup_free_ char *dirpath = NULL;
        if (!out || asprintf(&dirpath, "%s/volumes", d->state) < 0)
                return out;
        _cleanup_closedir_ DIR *dir = opendir(dirpath);
        struct dirent *de;
        while (dir && (de = readdir(dir))) {
                if (de->d_name[0] == '.')
                        continue;
                struct stat st;
                if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
                        continue;
                _cleanup_free_ char *vol = NULL, *data = NULL;
                if (asprintf(&vol, "%s/%s", dirpath, de->d_name) < 0 || asprintf(&data, "%s/_data", vol) < 0)
                        continue;
                bool has_data = access(data, F_OK) == 0;
                json_int_t refs = 0;
                for (size_t i = 0; i < n_ctrs; i++) {
                        json_t *mp;
                        size_t k;
                        bool used = false;
                        json_array_foreach(ctrs[i].mount_points, k, mp) {
                                const char *name = json_string_value(json_object_get(mp, "Name"));
                                used |= name && strcmp(name, de->d_name) == 0;
                        }
                        refs += used;
                }
                _cleanup_json_ json_t *meta = NULL;
                _cleanup_close_ int vfd = openat(dirfd(dir), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (vfd < 0 || silo_json_load_file_at(vfd, "volume.json", 1 << 20, &meta, NULL) < 0)
                        meta = NULL;
                json_t *labels = json_object_get(meta, "Labels");
                const char *created = json_string_value(json_object_get(meta, "CreatedAt"));
                json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:o, s:s, s:{}, s:s, s:{s:I, s:I}}", "Name",
                                                     de->d_name, "Driver", "local", "Mountpoint",
                                                     has_data ? data : vol, "Labels",
                                                     json_is_object(labels) ? json_deep_copy(labels) : json_object(),
                                                     "Scope", "local", "Options", "CreatedAt", created ? created : "",
                                                     "UsageData", "Size", (json_int_t) du_path(has_data ? data : vol),
                                                     "RefCount", refs));
        }
        return out;
}

enum MHD_Result handle_system_df(struct silod *d, struct MHD_Connection *c)
{
        /* A snapshot of the table; sizes are computed without the lock. */
        size_t n = 0, cap = 0;
        struct df_ctr *ctrs = NULL;
        pthread_mutex_lock(&d->lock);
        for (struct ctr *ct = d->containers; ct; ct = ct->next) {
                if (ct->removing)
                        continue;
                ctr_refresh_locked(d, ct);
                if (n == cap) {
                        size_t nc = cap ? cap * 2 : 16;
                        struct df_ctr *nv = realloc(ctrs, nc * sizeof(*nv));
                        if (!nv)
                                break;
                        ctrs = nv;
                        cap = nc;
                }
                struct df_ctr *x = &ctrs[n++];
                *x = (struct df_ctr) {};
                memcpy(x->id, ct->id, sizeof(x->id));
                x->name = strdup(ct->name);
                x->image = strdup(json_string_value(json_object_get(ct->record, "Image")) ?: "");
                x->image_id = strdup(json_string_value(json_object_get(ct->record, "ImageID")) ?: "");
                const char *path = json_string_value(json_object_get(ct->record, "Path"));
                x->command = strdup(path ? path : "");
                x->created = ct->created;
                x->state = ct->paused ? "paused" : ctr_status_name(ct);
                x->labels = json_deep_copy(json_object_get(json_object_get(ct->record, "Config"), "Labels"));
                x->mount_points = json_deep_copy(json_object_get(ct->record, "MountPoints"));
        }
        pthread_mutex_unlock(&d->lock);

        silo_error err = SILO_ERROR_INIT;
        silo_store *s = NULL;
        json_t *images = NULL;
        int r = open_store(d, &s, &err);
        if (r == 0) {
                images = images_summary(s, &err);
                if (!images)
                        r = -EIO;
        }
        json_t *containers = json_array();
        json_int_t layers_size = 0;
        size_t i;
        json_t *img;
        json_array_foreach(images, i, img) {
                const char *id = json_string_value(json_object_get(img, "Id"));
                json_int_t used = 0;
                for (size_t k = 0; k < n; k++)
                        used += id && ctrs[k].image_id && strcmp(ctrs[k].image_id, id) == 0;
                json_object_set_new(img, "Containers", json_integer(used));
                layers_size += json_integer_value(json_object_get(img, "Size"));
        }
        for (size_t k = 0; r == 0 && k < n; k++) {
                struct df_ctr *x = &ctrs[k];
                _cleanup_free_ char *upper = NULL, *names = NULL;
                json_int_t rw = 0, image_size = 0;
                if (asprintf(&upper, "%s/containers/%s/upper", d->root, x->id) >= 0)
                        rw = (json_int_t) du_path(upper);
                json_array_foreach(images, i, img)
                        if (x->image_id && strcmp(json_string_value(json_object_get(img, "Id")) ?: "", x->image_id) == 0)
                                image_size = json_integer_value(json_object_get(img, "Size"));
                if (asprintf(&names, "/%s", x->name ? x->name : x->id) < 0)
                        names = NULL;
                json_array_append_new(containers, json_pack(
                        "{s:s, s:[s], s:s, s:s, s:s, s:I, s:s, s:s, s:I, s:I, s:o, s:[], s:{s:s}}", "Id", x->id,
                        "Names", names ? names : "/", "Image", x->image ? x->image : "", "ImageID",
                        x->image_id ? x->image_id : "", "Command", x->command ? x->command : "", "Created",
                        (json_int_t) x->created, "State", x->state, "Status", x->state, "SizeRw", rw, "SizeRootFs",
                        rw + image_size, "Labels", x->labels ? json_incref(x->labels) : json_object(), "Mounts",
                        "HostConfig", "NetworkMode", "none"));
        }
        json_t *volumes = r == 0 ? df_volumes(d, ctrs, n) : NULL;
        for (size_t k = 0; k < n; k++) {
                free(ctrs[k].name);
                free(ctrs[k].image);
                free(ctrs[k].image_id);
                free(ctrs[k].command);
                json_decref(ctrs[k].labels);
                json_decref(ctrs[k].mount_points);
        }
        free(ctrs);
        silo_store_free(s);
        if (r < 0) {
                json_decref(images);
                json_decref(containers);
                return reply_errno(c, r, &err);
        }
        return reply_json(c, 200, json_pack("{s:I, s:o, s:o, s:o, s:[]}", "LayersSize", layers_size, "Images", images,
                                            "Containers", containers, "Volumes", volumes ? volumes : json_array(),
                                            "BuildCache"));
}

/* ---- /auth (docker login) ---- */

enum MHD_Result handle_auth(struct silod *d, struct MHD_Connection *c, struct request *req)
{
        (void) d;
        silo_error err = SILO_ERROR_INIT;
        _cleanup_json_ json_t *body = NULL;
        if (request_json(req, &body, &err) < 0)
                return reply_error(c, 400, "%s", err.message);
        struct registry_auth a = {};
        int r = registry_auth_from_json(body, &a, &err);
        if (r < 0)
                return reply_error(c, 400, "%s", err.message);
        if (!a.server || !*a.server) {
                registry_auth_done(&a);
                return reply_error(c, 400, "serveraddress: required (silod has no default registry to log in to)");
        }
        silo_registry_options o;
        silo_registry_options_init(&o);
        o.authfile = "";                /* only what the client sent, never root's files */
        o.username = a.username;
        o.password = a.password;
        o.retries = 1;
        r = silo_registry_login(a.server, &o, &err);
        registry_auth_done(&a);
        if (r == -EACCES)
                return reply_error(c, 401, "login attempt failed: %s", err.message);
        if (r < 0)
                return reply_error(c, r == -EINVAL ? 400 : 500, "%s", err.message);
        return reply_json(c, 200, json_pack("{s:s, s:s}", "Status", "Login Succeeded", "IdentityToken", ""));
}
