/* Container management routes: resize (through the monitor's control
 * socket), top (the host's ps, filtered to the container's cgroup, as
 * docker does), rename, prune. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "process/container.h"
#include "silod.h"
#include "util/cleanup.h"
#include "util/json.h"

extern char **environ;

#define PS_OUTPUT_MAX (4u << 20)
#define PS_ARGS_MAX 32
#define PS_TIMEOUT_MS 10000

/* ---- resize ---- */

enum MHD_Result container_resize(struct silod *d, struct MHD_Connection *c, struct ctr *ct)
{
        unsigned rows, cols;
        char msg[256];
        if (parse_resize_query(c, &rows, &cols, msg, sizeof(msg)) < 0)
                return reply_error(c, 400, "%s", msg);
        pthread_mutex_lock(&d->lock);
        ctr_refresh_locked(d, ct);
        bool running = ct->status == CTR_RUNNING;
        pthread_mutex_unlock(&d->lock);
        if (!running)
                return reply_error(c, 409, "Container %s is not running", ct->id);
        if (!ctr_tty(ct))
                return reply_error(c, 409, "Container %s has no TTY (created without Tty)", ct->id);
        _cleanup_close_ int dirfd = open(ct->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return reply_error(c, 500, "open %s: %s", ct->dir, strerror(errno));
        silo_error err = SILO_ERROR_INIT;
        int r = silo_engine_resize(dirfd, rows, cols, &err);
        if (r == -ESRCH)
                return reply_error(c, 409, "Container %s is not running (%s)", ct->id, err.message);
        if (r < 0)
                return reply_error(c, r == -EINVAL ? 409 : 500, "resize container %s: %s", ct->id, err.message);
        return reply_empty(c, 200);
}

/* ---- top ---- */

/* Runs ps with the caller's arguments; its stdout (and stderr) in *ret. */
static int run_ps(char **args, char **ret, size_t *ret_len, int *ret_status, silo_error *err)
{
        int pfd[2];
        if (pipe2(pfd, O_CLOEXEC) < 0)
                return silo_error_set(err, errno, "pipe");
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
        posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
        posix_spawnattr_t attr;
        spawnattr_init_clean_signals(&attr);
        pid_t pid;
        int r = posix_spawnp(&pid, "ps", &fa, &attr, args, environ);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        close(pfd[1]);
        _cleanup_close_ int rfd = pfd[0];
        if (r != 0)
                return silo_error_set(err, r, "run ps");
        _cleanup_free_ char *buf = malloc(PS_OUTPUT_MAX + 1);
        size_t len = 0;
        r = buf ? 0 : silo_error_set(err, ENOMEM, "ps output");
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        while (r == 0) {
                struct timespec now;
                clock_gettime(CLOCK_MONOTONIC, &now);
                long left = PS_TIMEOUT_MS - ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000);
                struct pollfd p = { rfd, POLLIN, 0 };
                if (left <= 0 || poll(&p, 1, (int) left) == 0) {
                        r = silo_error_msg(err, ETIMEDOUT, "ps did not finish in %d ms", PS_TIMEOUT_MS);
                        break;
                }
                ssize_t n = read(rfd, buf + len, PS_OUTPUT_MAX - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = silo_error_set(err, errno, "read ps output");
                        break;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len == PS_OUTPUT_MAX) {
                        r = silo_error_msg(err, E2BIG, "ps output larger than %u bytes", PS_OUTPUT_MAX);
                        break;
                }
        }
        if (r < 0)
                kill(pid, SIGKILL);
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (r < 0)
                return r;
        buf[len] = 0;
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        *ret_status = status;
        return 0;
}

/* Splits a line into at most max whitespace-separated fields, the last one
 * taking the rest of the line (CMD has spaces). */
static size_t split_fields(char *line, char **fields, size_t max)
{
        size_t n = 0;
        char *p = line;
        while (n < max) {
                while (*p == ' ' || *p == '\t')
                        p++;
                if (!*p)
                        break;
                fields[n++] = p;
                if (n == max)
                        break;
                while (*p && *p != ' ' && *p != '\t')
                        p++;
                if (*p)
                        *p++ = 0;
        }
        if (n == max) {
                /* Trailing blanks of the last field. */
                char *end = fields[n - 1] + strlen(fields[n - 1]);
                while (end > fields[n - 1] && (end[-1] == ' ' || end[-1] == '\t'))
                        *--end = 0;
        }
        return n;
}

static bool pid_in(pid_t pid, const pid_t *pids, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (pids[i] == pid)
                        return true;
        return false;
}

enum MHD_Result container_top(struct silod *d, struct MHD_Connection *c, struct ctr *ct)
{
        const char *ps_args = query(c, "ps_args");
        if (!ps_args || !*ps_args)
                ps_args = "-ef";
        if (strlen(ps_args) > 1024)
                return reply_error(c, 400, "ps_args: longer than 1024 bytes");
        pthread_mutex_lock(&d->lock);
        ctr_refresh_locked(d, ct);
        bool running = ct->status == CTR_RUNNING;
        pthread_mutex_unlock(&d->lock);
        if (!running)
                return reply_error(c, 409, "Container %s is not running", ct->id);

        silo_error err = SILO_ERROR_INIT;
        struct silo_runtime rt = { .state_root = d->runtime_root };
        _cleanup_free_ pid_t *pids = NULL;
        size_t npids = 0;
        int r = silo_container_pids(&rt, ct->id, &pids, &npids, &err);
        if (r < 0)
                return reply_errno(c, r == -ENOENT ? -EBUSY : r, &err);

        _cleanup_free_ char *argbuf = strdup(ps_args);
        if (!argbuf)
                return reply_error(c, 500, "out of memory");
        char *argv[PS_ARGS_MAX + 2] = { "ps" };
        size_t argc = 1;
        for (char *save = NULL, *tok = strtok_r(argbuf, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
                if (argc > PS_ARGS_MAX)
                        return reply_error(c, 400, "ps_args: more than %d arguments", PS_ARGS_MAX);
                argv[argc++] = tok;
        }
        argv[argc] = NULL;
        _cleanup_free_ char *out = NULL;
        size_t len = 0;
        int status = 0;
        r = run_ps(argv, &out, &len, &status, &err);
        if (r < 0)
                return reply_errno(c, r, &err);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                size_t l = strlen(out);
                while (l > 0 && (out[l - 1] == '\n' || out[l - 1] == ' '))
                        out[--l] = 0;
                return reply_error(c, 500, "ps %s failed: %.400s", ps_args, out);
        }

        char *save = NULL;
        char *header = strtok_r(out, "\n", &save);
        if (!header)
                return reply_error(c, 500, "ps %s: no output", ps_args);
        char *titles[64];
        size_t ntitles = split_fields(header, titles, ARRAY_SIZE(titles));
        ssize_t pid_col = -1;
        json_t *jtitles = json_array();
        for (size_t i = 0; i < ntitles; i++) {
                json_array_append_new(jtitles, json_string(titles[i]));
                if (strcmp(titles[i], "PID") == 0)
                        pid_col = (ssize_t) i;
        }
        if (pid_col < 0) {
                json_decref(jtitles);
                return reply_error(c, 500, "Couldn't find PID field in ps output");
        }
        json_t *procs = json_array();
        for (char *line = strtok_r(NULL, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *fields[64];
                size_t n = split_fields(line, fields, ntitles);
                if (n <= (size_t) pid_col)
                        continue;
                char *end;
                long pid = strtol(fields[pid_col], &end, 10);
                if (*end || !pid_in((pid_t) pid, pids, npids))
                        continue;
                json_t *row = json_array();
                for (size_t i = 0; i < n; i++)
                        json_array_append_new(row, json_string(fields[i]));
                json_array_append_new(procs, row);
        }
        return reply_json(c, 200, json_pack("{s:o, s:o}", "Titles", jtitles, "Processes", procs));
}

/* ---- rename ---- */

static bool container_name_valid(const char *name)
{
        if (!name[0] || strlen(name) > 128 || !((name[0] >= 'a' && name[0] <= 'z') ||
                                                 (name[0] >= 'A' && name[0] <= 'Z') || (name[0] >= '0' && name[0] <= '9')))
                return false;
        for (const char *p = name; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
                      *p == '.' || *p == '-'))
                        return false;
        return true;
}

enum MHD_Result container_rename(struct silod *d, struct MHD_Connection *c, struct ctr *ct)
{
        const char *name = query(c, "name");
        if (!name || !*name)
                return reply_error(c, 400, "Neither old nor new names may be empty");
        if (name[0] == '/')
                name++;
        if (!container_name_valid(name))
                return reply_error(c, 400, "Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                                   name);
        char *copy = strdup(name);
        _cleanup_free_ struct retired_name *retired = calloc(1, sizeof(*retired));
        if (!copy || !retired) {
                free(copy);
                return reply_error(c, 500, "out of memory");
        }
        pthread_mutex_lock(&d->lock);
        if (strcmp(ct->name, name) == 0) {
                pthread_mutex_unlock(&d->lock);
                free(copy);
                return reply_error(c, 400, "Renaming a container with the same name as its current name");
        }
        struct ctr *other = NULL;
        for (struct ctr *o = d->containers; o && !other; o = o->next)
                if (o != ct && strcmp(o->name, name) == 0)
                        other = o;
        if (other) {
                char other_id[65];
                snprintf(other_id, sizeof(other_id), "%s", other->id);
                pthread_mutex_unlock(&d->lock);
                free(copy);
                return reply_error(c, 409, "Conflict. The container name \"/%s\" is already in use by container \"%s\". "
                                           "You have to remove (or rename) that container to be able to reuse that name.",
                                   name, other_id);
        }
        if (ct->removing || ct->removed) {
                pthread_mutex_unlock(&d->lock);
                free(copy);
                return reply_error(c, 409, "container %s is being removed", ct->id);
        }
        /* Under the lock: the table's name and the record change together,
         * and the record is saved before anyone sees the new name. */
        json_t *old_name = json_incref(json_object_get(ct->record, "Name"));
        json_object_set_new(ct->record, "Name", json_string(name));
        silo_error err = SILO_ERROR_INIT;
        int r = record_save(ct, &err);
        if (r < 0) {
                if (old_name)
                        json_object_set(ct->record, "Name", old_name);
                else
                        json_object_del(ct->record, "Name");
                json_decref(old_name);
                pthread_mutex_unlock(&d->lock);
                free(copy);
                return reply_errno(c, r, &err);
        }
        json_decref(old_name);
        events_container(d, ct, "rename", json_pack("{s:s, s:s+}", "name", name, "oldName", "/", ct->name));
        /* Readers without the lock may still hold the old pointer. */
        retired->name = ct->name;
        retired->next = ct->retired_names;
        ct->retired_names = TAKE_PTR(retired);
        __atomic_store_n(&ct->name, copy, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&d->changed);
        pthread_mutex_unlock(&d->lock);
        return reply_empty(c, 204);
}

/* ---- prune ---- */

/* until: a Unix time ("1700000000", "1700000000.5"), an RFC 3339 time, or
 * a Go duration back from now ("10m", "1h30m", "45s"). */
static int parse_until(const char *s, int64_t now_ns, int64_t *ret_ns)
{
        char *end;
        double v = strtod(s, &end);
        if (end != s && *end == 0) {
                *ret_ns = (int64_t) (v * 1e9);
                return 0;
        }
        struct tm tm = {};
        const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!rest)
                rest = strptime(s, "%Y-%m-%d", &tm);
        if (rest) {
                if (*rest == '.')
                        while (*++rest >= '0' && *rest <= '9')
                                ;
                if (*rest && strcmp(rest, "Z") != 0)
                        return -EINVAL;
                *ret_ns = (int64_t) timegm(&tm) * 1000000000;
                return 0;
        }
        int64_t total = 0;
        const char *p = s;
        if (!*p)
                return -EINVAL;
        while (*p) {
                double n = strtod(p, &end);
                if (end == p || n < 0)
                        return -EINVAL;
                p = end;
                double unit;
                if (strncmp(p, "ms", 2) == 0) {
                        unit = 1e6;
                        p += 2;
                } else if (*p == 'h') {
                        unit = 3600e9;
                        p++;
                } else if (*p == 'm') {
                        unit = 60e9;
                        p++;
                } else if (*p == 's') {
                        unit = 1e9;
                        p++;
                } else
                        return -EINVAL;
                total += (int64_t) (n * unit);
        }
        *ret_ns = now_ns - total;
        return 0;
}

/* label=KEY or label=KEY=VALUE. */
static bool label_matches(const struct ctr *ct, const char *want)
{
        json_t *labels = json_object_get(json_object_get(ct->record, "Config"), "Labels");
        const char *eq = strchr(want, '=');
        size_t klen = eq ? (size_t) (eq - want) : strlen(want);
        const char *key;
        json_t *v;
        json_object_foreach(labels, key, v) {
                if (strlen(key) != klen || strncmp(key, want, klen) != 0)
                        continue;
                return !eq || (json_is_string(v) && strcmp(json_string_value(v), eq + 1) == 0);
        }
        return false;
}

/* The values of one filter key, as docker sends them ({"v":true} or ["v"]). */
static size_t filter_values(json_t *filters, const char *key, const char **out, size_t max)
{
        json_t *f = json_object_get(filters, key), *v;
        size_t n = 0, i;
        const char *k;
        if (json_is_object(f)) {
                json_object_foreach(f, k, v)
                        if (n < max)
                                out[n++] = k;
        } else if (json_is_array(f)) {
                json_array_foreach(f, i, v)
                        if (n < max && json_is_string(v))
                                out[n++] = json_string_value(v);
        }
        return n;
}

struct prune_filter {
        bool until_set;
        int64_t until_ns;
        const char *labels[16], *not_labels[16];
        size_t n_labels, n_not_labels;
};

static bool prune_match(const struct prune_filter *f, const struct ctr *ct)
{
        if (f->until_set && ct->created >= f->until_ns)
                return false;
        for (size_t i = 0; i < f->n_labels; i++)
                if (!label_matches(ct, f->labels[i]))
                        return false;
        for (size_t i = 0; i < f->n_not_labels; i++)
                if (label_matches(ct, f->not_labels[i]))
                        return false;
        return true;
}

enum MHD_Result containers_prune(struct silod *d, struct MHD_Connection *c)
{
        struct prune_filter f = {};
        _cleanup_json_ json_t *filters = NULL;
        const char *text = query(c, "filters");
        if (text && *text) {
                json_error_t jerr;
                filters = json_loads(text, 0, &jerr);
                if (!json_is_object(filters))
                        return reply_error(c, 400, "filters: invalid JSON: %s", filters ? "not an object" : jerr.text);
                const char *key;
                json_t *v;
                json_object_foreach(filters, key, v)
                        if (strcmp(key, "until") != 0 && strcmp(key, "label") != 0 && strcmp(key, "label!") != 0)
                                return reply_error(c, 400, "Invalid filter '%s'", key);
                const char *until[2];
                size_t n = filter_values(filters, "until", until, 2);
                if (n > 1)
                        return reply_error(c, 400, "filters: more than one until filter");
                if (n == 1) {
                        if (parse_until(until[0], silo_engine_now_ns(), &f.until_ns) < 0)
                                return reply_error(c, 400, "filters: invalid until value %s", until[0]);
                        f.until_set = true;
                }
                f.n_labels = filter_values(filters, "label", f.labels, ARRAY_SIZE(f.labels));
                f.n_not_labels = filter_values(filters, "label!", f.not_labels, ARRAY_SIZE(f.not_labels));
        }

        /* Candidates under the lock, removal without it (a reference each). */
        size_t n = 0, cap = 0;
        struct ctr **victims = NULL;
        pthread_mutex_lock(&d->lock);
        for (struct ctr *ct = d->containers; ct; ct = ct->next) {
                ctr_refresh_locked(d, ct);
                if (ct->status == CTR_RUNNING || ct->starting || ct->removing || !prune_match(&f, ct))
                        continue;
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 16;
                        struct ctr **nv = realloc(victims, ncap * sizeof(*nv));
                        if (!nv)
                                break;
                        victims = nv;
                        cap = ncap;
                }
                ct->refs++;
                victims[n++] = ct;
        }
        pthread_mutex_unlock(&d->lock);
        json_t *deleted = json_array();
        for (size_t i = 0; i < n; i++) {
                if (ctr_remove(d, victims[i], NULL) == 0)
                        json_array_append_new(deleted, json_string(victims[i]->id));
                ctr_unref(d, victims[i]);
        }
        free(victims);
        return reply_json(c, 200, json_pack("{s:o, s:i}", "ContainersDeleted", deleted, "SpaceReclaimed", 0));
}
