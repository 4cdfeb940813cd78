/* /containers/...: records, lifecycle through the monitor, wait, list,
 * inspect.  The table is guarded by d->lock; slow work (bundles, removal,
 * spawning monitors) happens with the lock released and a reference held. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "image/bundle.h"
#include "image/image.h"
#include "process/container.h"
#include "silod.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

extern char **environ;

void spawnattr_init_clean_signals(posix_spawnattr_t *attr)
{
        sigset_t none, all;
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawnattr_init(attr);
        posix_spawnattr_setsigmask(attr, &none);
        posix_spawnattr_setsigdefault(attr, &all);
        posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
}

/* ---- the table ---- */

void ctr_free(struct ctr *ct)
{
        if (!ct)
                return;
        silo_close_reset(&ct->monitor_pidfd);
        free(ct->name);
        while (ct->retired_names) {
                struct retired_name *rn = ct->retired_names;
                ct->retired_names = rn->next;
                free(rn->name);
                free(rn);
        }
        free(ct->dir);
        json_decref(ct->record);
        free(ct);
}

void ctr_unref(struct silod *d, struct ctr *ct)
{
        if (!ct)
                return;
        pthread_mutex_lock(&d->lock);
        bool last = --ct->refs == 0;
        pthread_mutex_unlock(&d->lock);
        if (last)
                ctr_free(ct);
}

struct ctr *lookup_locked(struct silod *d, const char *ref)
{
        if (!ref || !*ref)
                return NULL;
        const char *name = ref[0] == '/' ? ref + 1 : ref;
        struct ctr *prefix = NULL;
        unsigned n_prefix = 0;
        size_t len = strlen(ref);
        for (struct ctr *ct = d->containers; ct; ct = ct->next) {
                if (strcmp(ct->id, ref) == 0 || strcmp(ct->name, name) == 0)
                        return ct;
                if (len < 64 && strncmp(ct->id, ref, len) == 0) {
                        prefix = ct;
                        n_prefix++;
                }
        }
        return n_prefix == 1 ? prefix : NULL;
}

struct ctr *ctr_lookup(struct silod *d, const char *ref)
{
        pthread_mutex_lock(&d->lock);
        struct ctr *ct = lookup_locked(d, ref);
        if (ct)
                ct->refs++;
        pthread_mutex_unlock(&d->lock);
        return ct;
}

bool ctr_vm_isolated(const struct ctr *ct)
{
        const char *iso = json_string_value(json_object_get(json_object_get(ct->record, "HostConfig"), "Isolation"));
        return iso && (strcasecmp(iso, "hyperv") == 0 || strcasecmp(iso, "vm") == 0);
}

bool ctr_tty(const struct ctr *ct)
{
        return json_is_true(json_object_get(json_object_get(ct->record, "Config"), "Tty"));
}

static bool auto_remove(const struct ctr *ct)
{
        return json_is_true(json_object_get(json_object_get(ct->record, "HostConfig"), "AutoRemove"));
}

/* A monitor that exited may linger as a zombie until its new parent reaps
 * it: that counts as dead. */
static bool pid_alive(pid_t pid)
{
        if (pid <= 0 || (kill(pid, 0) < 0 && errno != EPERM))
                return false;
        char path[64], buf[256];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
                return false;
        buf[n] = 0;
        const char *end = strrchr(buf, ')');
        return !(end && end[1] == ' ' && (end[2] == 'Z' || end[2] == 'X'));
}

/* True once the process behind a pidfd has exited (or is a zombie). */
static bool pidfd_exited(int pidfd)
{
        struct pollfd p = { pidfd, POLLIN, 0 };
        return poll(&p, 1, 0) != 0;
}

/* Applies exit.json if present; true if it was, or if it could not be read
 * (a transient error must not turn into a made-up exit: look again later). */
static bool apply_exit_locked(struct silod *d, struct ctr *ct, int dirfd)
{
        struct silo_engine_exit ex;
        int r = silo_engine_exit_load(dirfd, &ex, NULL);
        if (r == -ENOENT)
                return false;
        if (r < 0)
                return true;
        ct->paused = false;
        if (ct->status != CTR_EXITED || ct->finished_at != ex.finished_at) {
                ct->status = CTR_EXITED;
                ct->exit_code = ex.exit_code;
                ct->finished_at = ex.finished_at;
                snprintf(ct->error, sizeof(ct->error), "%s", ex.error);
                ct->exits++;
                events_container(d, ct, "die", NULL);
                pthread_cond_broadcast(&d->changed);
        }
        struct silo_engine_started st;
        if (silo_engine_started_load(dirfd, &st, NULL) == 0)
                ct->started_at = st.started_at;
        ct->pid = 0;
        return true;
}

static void restart_consider_locked(struct ctr *ct, bool boot, int64_t now);
static int64_t monotonic_ns(void);
static void refresh_locked(struct silod *d, struct ctr *ct);

void ctr_refresh_locked(struct silod *d, struct ctr *ct)
{
        refresh_locked(d, ct);
        /* An exit the policy restarts reads "restarting" from the moment it
         * is seen, whoever sees it first (docker's restart manager); before
         * the poller's pass at start, which applies the start-time rules. */
        if (d->restarts_armed)
                restart_consider_locked(ct, false, monotonic_ns());
}

static void refresh_locked(struct silod *d, struct ctr *ct)
{
        /* While removing, the files disappear one by one: the state is final. */
        if (ct->starting || ct->removed || ct->removing)
                return;
        /* A running container changes state only when its monitor exits
         * (exit.json is written last, just before): with a pidfd on the
         * monitor, one poll() instead of reading its files (the poller
         * looks at every running container 20 times a second). */
        if (ct->status == CTR_RUNNING && ct->monitor_pidfd >= 0 && !pidfd_exited(ct->monitor_pidfd))
                return;
        silo_close_reset(&ct->monitor_pidfd);
        _cleanup_close_ int dirfd = open(ct->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return;
        if (apply_exit_locked(d, ct, dirfd))
                return;
        struct silo_engine_started st;
        int r = silo_engine_started_load(dirfd, &st, NULL);
        if (r < 0 && r != -ENOENT)
                return;
        if (r == 0) {
                ct->started_at = st.started_at;
                ct->monitor_pid = st.monitor_pid;
                if (pid_alive(st.monitor_pid)) {
                        ct->status = CTR_RUNNING;
                        ct->pid = st.pid;
                        /* Without one (EMFILE...) the files are read every time. */
                        ct->monitor_pidfd = (int) syscall(SYS_pidfd_open, st.monitor_pid, 0);
                        watch_add_locked(d, ct->monitor_pidfd);
                        return;
                }
                /* The monitor writes exit.json just before it exits: look again. */
                if (apply_exit_locked(d, ct, dirfd))
                        return;
                /* The monitor died without recording an exit (killed). */
                if (ct->status != CTR_EXITED) {
                        ct->status = CTR_EXITED;
                        ct->exit_code = 255;
                        ct->finished_at = silo_engine_now_ns();
                        snprintf(ct->error, sizeof(ct->error), "the container's monitor process died");
                        ct->exits++;
                        events_container(d, ct, "die", NULL);
                        ct->pid = 0;
                        ct->paused = false;
                        pthread_cond_broadcast(&d->changed);
                }
                return;
        }
        if (ct->status == CTR_RUNNING) {
                if (apply_exit_locked(d, ct, dirfd))
                        return;
                ct->status = CTR_EXITED;
                ct->exit_code = 255;
                snprintf(ct->error, sizeof(ct->error), "the container's state files are gone");
                ct->exits++;
                events_container(d, ct, "die", NULL);
                pthread_cond_broadcast(&d->changed);
        }
}

int record_save(struct ctr *ct, silo_error *err)
{
        _cleanup_close_ int dirfd = open(ct->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return silo_error_set(err, errno, "open %s", ct->dir);
        return silo_engine_write_json_at(dirfd, SILO_ENGINE_RECORD, ct->record, err);
}

struct ctr *ctr_from_record(struct silod *d, const char *id, json_t *record)
{
        struct ctr *ct = calloc(1, sizeof(*ct));
        if (!ct)
                return NULL;
        snprintf(ct->id, sizeof(ct->id), "%s", id);
        const char *name = json_string_value(json_object_get(record, "Name"));
        ct->name = strdup(name ? name : id);
        json_t *created = json_object_get(record, "Created");
        ct->created = json_is_integer(created) ? json_integer_value(created) : 0;
        if (asprintf(&ct->dir, "%s/containers/%s", d->state, id) < 0)
                ct->dir = NULL;
        ct->record = json_incref(record);
        ct->refs = 1;
        ct->monitor_pidfd = -1;
        if (!ct->name || !ct->dir) {
                ctr_free(ct);
                return NULL;
        }
        return ct;
}

int containers_load(struct silod *d, silo_error *err)
{
        int r = watch_start(d, err);
        if (r < 0)
                return r;
        int fd = openat(d->containers_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return silo_error_set(err, errno, "open %s/containers", d->state);
        _cleanup_closedir_ DIR *dir = fdopendir(fd);
        if (!dir) {
                close(fd);
                return silo_error_set(err, errno, "opendir %s/containers", d->state);
        }
        struct dirent *de;
        while ((de = readdir(dir))) {
                if (de->d_name[0] == '.' || strlen(de->d_name) != 64)
                        continue;
                _cleanup_close_ int cfd = openat(d->containers_fd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                _cleanup_json_ json_t *record = NULL;
                /* A container whose create never finished has no record: skip it. */
                if (cfd < 0 || silo_engine_read_json_at(cfd, SILO_ENGINE_RECORD, &record, NULL) < 0)
                        continue;
                struct ctr *ct = ctr_from_record(d, de->d_name, record);
                if (!ct)
                        return silo_error_set(err, ENOMEM, "load containers");
                ctr_refresh_locked(d, ct);
                if (ct->status == CTR_RUNNING) {
                        /* Paused while silod was down (or before it restarted). */
                        struct silo_runtime rt = { .state_root = d->runtime_root };
                        _cleanup_json_ json_t *state = NULL;
                        if (silo_container_state(&rt, ct->id, &state, NULL) == 0)
                                ct->paused = strcmp(json_string_value(json_object_get(state, "status")) ?: "",
                                                    "paused") == 0;
                }
                ct->next = d->containers;
                d->containers = ct;
        }
        return 0;
}

void containers_free(struct silod *d)
{
        watch_stop(d);
        while (d->containers) {
                struct ctr *ct = d->containers;
                d->containers = ct->next;
                ctr_unref(d, ct);
        }
}

/* ---- removal ---- */

/* Called with a reference and ct->removing set, lock not held. */
static int ctr_remove_files(struct silod *d, struct ctr *ct, silo_error *err)
{
        silo_store *s = NULL;
        int r = open_store(d, &s, err);
        if (r < 0)
                return r;
        _cleanup_free_ char *bundle = NULL;
        if (asprintf(&bundle, "%s/" SILO_ENGINE_BUNDLE, ct->dir) < 0) {
                silo_store_free(s);
                return silo_error_set(err, ENOMEM, "remove");
        }
        /* A runtime container left by a killed monitor. */
        struct silo_runtime rt = { .state_root = d->runtime_root };
        silo_container_delete(&rt, ct->id, true, NULL);
        r = silo_bundle_remove(s, ct->id, bundle, err);
        silo_store_free(s);
        if (r < 0 && r != -ENOENT)
                return r;
        return silo_rm_rf_at(d->containers_fd, ct->id, err);
}

void unlink_locked(struct silod *d, struct ctr *ct)
{
        for (struct ctr **p = &d->containers; *p; p = &(*p)->next)
                if (*p == ct) {
                        *p = ct->next;
                        ct->removed = true;
                        ct->refs--;     /* the table's reference; the caller still holds one */
                        execs_prune_locked(d, ct->id);
                        break;
                }
        pthread_cond_broadcast(&d->changed);
}

int ctr_remove(struct silod *d, struct ctr *ct, silo_error *err)
{
        pthread_mutex_lock(&d->lock);
        if (ct->removing || ct->removed) {
                pthread_mutex_unlock(&d->lock);
                return silo_error_msg(err, EBUSY, "removal of container %s is already in progress", ct->name);
        }
        ct->removing = true;
        pthread_mutex_unlock(&d->lock);
        int r = ctr_remove_files(d, ct, err);
        if (r == 0)
                events_container_lock(d, ct, "destroy", NULL);
        pthread_mutex_lock(&d->lock);
        if (r == 0)
                unlink_locked(d, ct);
        else
                ct->removing = false;
        pthread_mutex_unlock(&d->lock);
        return r;
}

/* ---- restart policies (Docker's restart manager) ---- */

#define RESTART_DELAY_MIN_MS 100
#define RESTART_DELAY_MAX_MS 60000
#define RESTART_RESET_RAN_MS 10000      /* a run this long resets the backoff */

static int64_t monotonic_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Writes a copy of the record taken under the lock (the file is replaced
 * atomically; the last writer wins, and every writer writes the newest). */
static void record_write_copy(const char *dir, json_t *copy)
{
        _cleanup_close_ int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd >= 0 && copy)
                silo_engine_write_json_at(dirfd, SILO_ENGINE_RECORD, copy, NULL);
        json_decref(copy);
}

static json_t *restart_state_to_record_locked(struct ctr *ct)
{
        json_object_set_new(ct->record, "RestartCount", json_integer(ct->restart_count));
        json_object_set_new(ct->record, "HasBeenManuallyStopped", json_boolean(ct->manually_stopped));
        return json_deep_copy(ct->record);
}

void ctr_set_manually_stopped(struct silod *d, struct ctr *ct, bool stopped)
{
        pthread_mutex_lock(&d->lock);
        ct->restart_at = 0;             /* a pending restart is cancelled either way */
        bool changed = ct->manually_stopped != stopped || (!stopped && ct->restart_count);
        ct->manually_stopped = stopped;
        if (!stopped) {
                /* docker start resets the count and the backoff. */
                ct->restart_count = 0;
                ct->restart_delay_ms = 0;
        }
        json_t *copy = changed && !ct->removing && !ct->removed ? restart_state_to_record_locked(ct) : NULL;
        pthread_mutex_unlock(&d->lock);
        record_write_copy(ct->dir, copy);
}

/* Decides once per exit whether the policy restarts the container, and
 * when.  At silod start (boot) `always` comes back even after a docker stop. */
static void restart_consider_locked(struct ctr *ct, bool boot, int64_t now)
{
        if (ct->status != CTR_EXITED || ct->starting || ct->removing || ct->removed ||
            ct->exits == ct->restart_seen_exits)
                return;
        ct->restart_seen_exits = ct->exits;
        int64_t max = 0;
        const char *policy = hostconfig_restart_policy(json_object_get(ct->record, "HostConfig"), &max);
        bool go = false;
        if (strcmp(policy, "always") == 0)
                go = boot || !ct->manually_stopped;
        else if (strcmp(policy, "unless-stopped") == 0)
                go = !ct->manually_stopped;
        else if (strcmp(policy, "on-failure") == 0)
                go = !ct->manually_stopped && ct->exit_code != 0 && (max <= 0 || ct->restart_count < max);
        if (!go)
                return;
        ct->manually_stopped = false;
        int64_t ran_ms = (ct->finished_at - ct->started_at) / 1000000;
        if (ct->restart_delay_ms == 0 || ran_ms >= RESTART_RESET_RAN_MS)
                ct->restart_delay_ms = RESTART_DELAY_MIN_MS;
        else if (ct->restart_delay_ms < RESTART_DELAY_MAX_MS)
                ct->restart_delay_ms *= 2;
        if (ct->restart_delay_ms > RESTART_DELAY_MAX_MS)
                ct->restart_delay_ms = RESTART_DELAY_MAX_MS;
        ct->restart_at = now + ct->restart_delay_ms * 1000000;
}

/* Runs one due restart with the lock released; true if it did. */
static bool restart_due_locked(struct silod *d, int64_t now)
{
        struct ctr *due = NULL;
        for (struct ctr *ct = d->containers; ct && !due; ct = ct->next)
                if (ct->restart_at && ct->restart_at <= now && ct->status == CTR_EXITED && !ct->manually_stopped &&
                    !ct->starting && !ct->removing && !ct->removed)
                        due = ct;
        if (!due)
                return false;
        /* It reads "restarting", not "exited", until it is back. */
        due->restart_at = 0;
        due->restart_in_flight = true;
        due->restart_count++;
        due->refs++;
        json_t *copy = restart_state_to_record_locked(due);
        pthread_mutex_unlock(&d->lock);
        record_write_copy(due->dir, copy);
        silo_error err = SILO_ERROR_INIT;
        ctr_start(d, due, &err);        /* a failure is recorded as an exit: the policy decides again */
        pthread_mutex_lock(&d->lock);
        due->restart_in_flight = false;
        pthread_mutex_unlock(&d->lock);
        ctr_unref(d, due);
        pthread_mutex_lock(&d->lock);
        return true;
}

void *containers_poll_thread(void *userdata)
{
        struct silod *d = userdata;
        pthread_mutex_lock(&d->lock);
        /* The restart state of the containers silod found at startup. */
        for (struct ctr *ct = d->containers; ct; ct = ct->next) {
                json_t *n = json_object_get(ct->record, "RestartCount");
                ct->restart_count = json_is_integer(n) && json_integer_value(n) > 0 ? (unsigned) json_integer_value(n) : 0;
                ct->manually_stopped = json_is_true(json_object_get(ct->record, "HasBeenManuallyStopped"));
                restart_consider_locked(ct, true, monotonic_ns());
        }
        d->restarts_armed = true;
        while (!d->stopping) {
                struct ctr *to_remove = NULL;
                int64_t now = monotonic_ns();
                for (struct ctr *ct = d->containers; ct; ct = ct->next) {
                        if (ct->status == CTR_RUNNING)
                                ctr_refresh_locked(d, ct);
                        restart_consider_locked(ct, false, now);
                        if (!to_remove && ct->status == CTR_EXITED && !ct->removing && !ct->starting &&
                            auto_remove(ct))
                                to_remove = ct;
                }
                if (to_remove) {
                        to_remove->refs++;
                        json_t *points = json_incref(json_object_get(to_remove->record, "MountPoints"));
                        pthread_mutex_unlock(&d->lock);
                        /* --rm takes the container's anonymous volumes along, as in docker. */
                        if (ctr_remove(d, to_remove, NULL) == 0)
                                volumes_remove_anonymous(d, points);
                        json_decref(points);
                        ctr_unref(d, to_remove);
                        pthread_mutex_lock(&d->lock);
                        continue;
                }
                if (restart_due_locked(d, now))
                        continue;
                networks_poll_locked(d);
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 50 * 1000000;
                if (ts.tv_nsec >= 1000000000) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&d->changed, &d->lock, &ts);
        }
        pthread_mutex_unlock(&d->lock);
        return NULL;
}

static int parse_signal(const char *s)
{
        static const struct { const char *name; int sig; } sigs[] = {
                { "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "KILL", SIGKILL },
                { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "TERM", SIGTERM }, { "STOP", SIGSTOP },
                { "CONT", SIGCONT }, { "WINCH", SIGWINCH }, { "ALRM", SIGALRM },
        };
        if (!s || !*s)
                return SIGKILL;
        char *end;
        long n = strtol(s, &end, 10);
        if (*end == 0)
                return n > 0 && n < 65 ? (int) n : -1;
        if (strncasecmp(s, "SIG", 3) == 0)
                s += 3;
        for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
                if (strcasecmp(s, sigs[i].name) == 0)
                        return sigs[i].sig;
        return -1;
}

/* Waits (lock held) until the container is not running or ms passed. */
static bool wait_exit_locked(struct silod *d, struct ctr *ct, int ms)
{
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += ms / 1000;
        deadline.tv_nsec += (long) (ms % 1000) * 1000000;
        if (deadline.tv_nsec >= 1000000000) {
                deadline.tv_sec++;
                deadline.tv_nsec -= 1000000000;
        }
        for (;;) {
                ctr_refresh_locked(d, ct);
                if (ct->status != CTR_RUNNING)
                        return true;
                if (d->stopping || pthread_cond_timedwait(&d->changed, &d->lock, &deadline) == ETIMEDOUT) {
                        ctr_refresh_locked(d, ct);
                        return ct->status != CTR_RUNNING;
                }
        }
}

static int signal_container(struct silod *d, struct ctr *ct, int sig, silo_error *err)
{
        struct silo_runtime rt = { .state_root = d->runtime_root };
        int r = silo_container_kill(&rt, ct->id, sig, sig == SIGKILL, err);
        /* A frozen container would never see the signal. */
        pthread_mutex_lock(&d->lock);
        bool paused = ct->paused;
        pthread_mutex_unlock(&d->lock);
        if (paused && (sig == SIGKILL || sig == SIGTERM || sig == SIGINT || sig == SIGQUIT) &&
            silo_container_resume(&rt, ct->id, NULL) == 0) {
                pthread_mutex_lock(&d->lock);
                ct->paused = false;
                pthread_mutex_unlock(&d->lock);
        }
        return r;
}

static enum MHD_Result container_pause(struct silod *d, struct MHD_Connection *c, struct ctr *ct, bool pause)
{
        pthread_mutex_lock(&d->lock);
        ctr_refresh_locked(d, ct);
        bool running = ct->status == CTR_RUNNING, paused = ct->paused;
        pthread_mutex_unlock(&d->lock);
        if (!running)
                return reply_error(c, 409, "Container %s is not running", ct->id);
        if (pause && paused)
                return reply_error(c, 409, "Container %s is already paused", ct->id);
        if (!pause && !paused)
                return reply_error(c, 409, "Container %s is not paused", ct->id);
        struct silo_runtime rt = { .state_root = d->runtime_root };
        silo_error err = SILO_ERROR_INIT;
        int r = pause ? silo_container_pause(&rt, ct->id, &err) : silo_container_resume(&rt, ct->id, &err);
        if (r < 0)
                return reply_errno(c, r, &err);
        pthread_mutex_lock(&d->lock);
        ct->paused = pause;
        pthread_mutex_unlock(&d->lock);
        events_container_lock(d, ct, pause ? "pause" : "unpause", NULL);
        return reply_empty(c, 204);
}

/* 304 if not running, 204 once stopped, 400/500 with a message. */
static unsigned stop_container(struct silod *d, struct MHD_Connection *c, struct ctr *ct, char *msg, size_t msg_size)
{
        /* Defaults are the container's own StopTimeout and StopSignal (docker
         * create --stop-timeout/--stop-signal, or the image's STOPSIGNAL). */
        json_t *config = json_object_get(ct->record, "Config");
        json_t *stop_timeout = json_object_get(config, "StopTimeout");
        long timeout = json_is_integer(stop_timeout) ? (long) json_integer_value(stop_timeout) : 10;
        const char *t = query(c, "t");
        if (t && *t) {
                char *end = NULL;
                errno = 0;
                timeout = strtol(t, &end, 10);
                if (*end || errno) {
                        snprintf(msg, msg_size, "invalid value for \"t\": %s", t);
                        return 400;
                }
        }
        if (timeout < 0 || timeout > 3600)
                timeout = 10;
        int sig = parse_signal(json_string_value(json_object_get(config, "StopSignal")));
        if (!json_is_string(json_object_get(config, "StopSignal")) || sig <= 0)
                sig = SIGTERM;
        const char *qs = query(c, "signal");
        if (qs && *qs && (sig = parse_signal(qs)) < 0) {
                snprintf(msg, msg_size, "invalid signal: %s", qs);
                return 400;
        }
        /* The restart policy leaves it stopped; this also cancels a restart
         * waiting out its backoff (docker's "restarting" state). */
        ctr_set_manually_stopped(d, ct, true);
        pthread_mutex_lock(&d->lock);
        while (ct->starting && !d->stopping)    /* a restart in flight: stop what it starts */
                pthread_cond_wait(&d->changed, &d->lock);
        ctr_refresh_locked(d, ct);
        bool running = ct->status == CTR_RUNNING;
        pthread_mutex_unlock(&d->lock);
        if (!running)
                return 304;
        silo_error err = SILO_ERROR_INIT;
        signal_container(d, ct, sig, &err);
        pthread_mutex_lock(&d->lock);
        bool stopped = wait_exit_locked(d, ct, (int) timeout * 1000);
        pthread_mutex_unlock(&d->lock);
        if (!stopped) {
                signal_container(d, ct, SIGKILL, &err);
                pthread_mutex_lock(&d->lock);
                stopped = wait_exit_locked(d, ct, 10000);
                pthread_mutex_unlock(&d->lock);
        }
        if (!stopped) {
                snprintf(msg, msg_size, "container %s did not stop after SIGKILL", ct->name);
                return 500;
        }
        return 204;
}

static enum MHD_Result container_stop(struct silod *d, struct MHD_Connection *c, struct ctr *ct)
{
        char msg[512];
        unsigned status = stop_container(d, c, ct, msg, sizeof(msg));
        if (status >= 400)
                return reply_error(c, status, "%s", msg);
        events_container_lock(d, ct, "stop", NULL);
        return reply_empty(c, status);
}

static enum MHD_Result container_restart(struct silod *d, struct MHD_Connection *c, struct ctr *ct)
{
        char msg[512];
        unsigned status = stop_container(d, c, ct, msg, sizeof(msg));
        if (status >= 400)
                return reply_error(c, status, "%s", msg);
        return container_start(d, c, ct);
}

static enum MHD_Result container_kill(struct silod *d, struct MHD_Connection *c, struct ctr *ct)
{
        int sig = parse_signal(query(c, "signal"));
        if (sig < 0)
                return reply_error(c, 400, "invalid signal: %s", query(c, "signal"));
        pthread_mutex_lock(&d->lock);
        ctr_refresh_locked(d, ct);
        bool running = ct->status == CTR_RUNNING;
        pthread_mutex_unlock(&d->lock);
        if (!running)
                return reply_error(c, 409, "Container %s is not running", ct->id);
        ctr_set_manually_stopped(d, ct, true);  /* as docker kill: no restart by policy */
        silo_error err = SILO_ERROR_INIT;
        int r = signal_container(d, ct, sig, &err);
        if (r < 0 && r != -ESRCH && r != -ENOENT)
                return reply_errno(c, r, &err);
        events_container_lock(d, ct, "kill", json_pack("{s:s}", "signal", query(c, "signal") ?: "SIGKILL"));
        return reply_empty(c, 204);
}

enum wait_mode { WAIT_NOT_RUNNING, WAIT_NEXT_EXIT, WAIT_REMOVED };

struct waiter {
        struct silod *d;
        struct ctr *ct;                 /* reference */
        struct MHD_Connection *conn;
        enum wait_mode mode;
        unsigned exits0;
        bool done;
};

static bool wait_done_locked(struct silod *d, struct waiter *w)
{
        ctr_refresh_locked(d, w->ct);
        switch (w->mode) {
        case WAIT_NOT_RUNNING: return w->ct->status != CTR_RUNNING && !w->ct->starting;
        case WAIT_NEXT_EXIT: return w->ct->exits > w->exits0 || w->ct->removed;
        case WAIT_REMOVED: return w->ct->removed;
        }
        return true;
}

/* The body of /wait: docker sends the headers at once and the status when
 * the condition is met (the CLI starts the container only after the
 * headers arrived). */
static ssize_t wait_read(void *cls, uint64_t pos, char *buf, size_t max)
{
        (void) pos;
        struct waiter *w = cls;
        struct silod *d = w->d;
        if (w->done)
                return MHD_CONTENT_READER_END_OF_STREAM;
        pthread_mutex_lock(&d->lock);
        while (!wait_done_locked(d, w)) {
                if (d->stopping) {
                        pthread_mutex_unlock(&d->lock);
                        return MHD_CONTENT_READER_END_WITH_ERROR;
                }
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 200 * 1000000;
                if (ts.tv_nsec >= 1000000000) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&d->changed, &d->lock, &ts);
                pthread_mutex_unlock(&d->lock);
                bool gone = connection_gone(w->conn, 0);
                pthread_mutex_lock(&d->lock);
                if (gone) {
                        pthread_mutex_unlock(&d->lock);
                        return MHD_CONTENT_READER_END_WITH_ERROR;
                }
        }
        json_t *doc = json_pack("{s:i}", "StatusCode", w->ct->exit_code);
        if (doc && w->ct->error[0])
                json_object_set_new(doc, "Error", json_pack("{s:s}", "Message", w->ct->error));
        pthread_mutex_unlock(&d->lock);
        char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
        json_decref(doc);
        w->done = true;
        if (!text)
                return MHD_CONTENT_READER_END_WITH_ERROR;
        int n = snprintf(buf, max, "%s\n", text);
        free(text);
        return n > 0 && (size_t) n < max ? n : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void wait_free(void *cls)
{
        struct waiter *w = cls;
        ctr_unref(w->d, w->ct);
        free(w);
}

static enum MHD_Result container_wait(struct silod *d, struct MHD_Connection *c, struct ctr *ct)
{
        const char *cond = query(c, "condition");
        enum wait_mode mode = WAIT_NOT_RUNNING;
        if (cond && strcmp(cond, "next-exit") == 0)
                mode = WAIT_NEXT_EXIT;
        else if (cond && strcmp(cond, "removed") == 0)
                mode = WAIT_REMOVED;
        else if (cond && *cond && strcmp(cond, "not-running") != 0)
                return reply_error(c, 400, "invalid condition: %s", cond);
        struct waiter *w = calloc(1, sizeof(*w));
        if (!w)
                return reply_error(c, 500, "out of memory");
        pthread_mutex_lock(&d->lock);
        ctr_refresh_locked(d, ct);
        ct->refs++;
        *w = (struct waiter) { .d = d, .ct = ct, .conn = c, .mode = mode, .exits0 = ct->exits };
        pthread_mutex_unlock(&d->lock);
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, wait_read, w, wait_free);
        if (!resp) {
                wait_free(w);
                return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        add_common_headers(resp);
        enum MHD_Result r = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return r;
}

static enum MHD_Result container_delete(struct silod *d, struct MHD_Connection *c, struct ctr *ct)
{
        bool force = query_bool(c, "force");
        pthread_mutex_lock(&d->lock);
        ctr_refresh_locked(d, ct);
        bool running = ct->status == CTR_RUNNING || ct->starting;
        pthread_mutex_unlock(&d->lock);
        silo_error err = SILO_ERROR_INIT;
        if (running) {
                if (!force)
                        return reply_error(c, 409, "You cannot remove a running container %s. Stop the container "
                                                   "before attempting removal or force remove", ct->id);
                signal_container(d, ct, SIGKILL, &err);
                pthread_mutex_lock(&d->lock);
                bool stopped = wait_exit_locked(d, ct, 10000);
                pthread_mutex_unlock(&d->lock);
                if (!stopped)
                        return reply_error(c, 500, "could not kill container %s", ct->id);
        }
        int r = ctr_remove(d, ct, &err);
        if (r == 0 && query_bool(c, "v"))
                volumes_remove_anonymous(d, json_object_get(ct->record, "MountPoints"));
        if (r == -EBUSY)
                return reply_error(c, 409, "%s", err.message);
        if (r < 0)
                return reply_errno(c, r, &err);
        return reply_empty(c, 204);
}

/* ---- routing ---- */

enum MHD_Result handle_containers(struct silod *d, struct MHD_Connection *c, struct request *req, const char *method,
                                  const char *path)
{
        bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
        if (post && strcmp(path, "create") == 0)
                return container_create(d, c, req);
        if (get && strcmp(path, "json") == 0)
                return containers_list(d, c);
        if (post && strcmp(path, "prune") == 0)
                return containers_prune(d, c);
        const char *slash = strchr(path, '/');
        /* "PUT /containers/create" names a route, not a container (DELETE may still remove one so named). */
        if (!slash && strcmp(method, "DELETE") != 0 &&
            (strcmp(path, "create") == 0 || strcmp(path, "json") == 0 || strcmp(path, "prune") == 0))
                return reply_no_route(c, method, "/containers/%s", path);
        _cleanup_free_ char *ref = slash ? strndup(path, (size_t) (slash - path)) : strdup(path);
        if (!ref)
                return MHD_NO;
        const char *action = slash ? slash + 1 : "";
        struct ctr *ct = ctr_lookup(d, ref);
        if (!ct)
                return reply_error(c, 404, "No such container: %s", ref);
        enum MHD_Result r;
        if (strcmp(method, "DELETE") == 0 && !*action)
                r = container_delete(d, c, ct);
        else if (get && strcmp(action, "json") == 0)
                r = container_inspect(d, c, ct);
        else if (post && strcmp(action, "start") == 0)
                r = container_start(d, c, ct);
        else if (post && strcmp(action, "stop") == 0)
                r = container_stop(d, c, ct);
        else if (post && (strcmp(action, "pause") == 0 || strcmp(action, "unpause") == 0))
                r = container_pause(d, c, ct, strcmp(action, "pause") == 0);
        else if (post && strcmp(action, "restart") == 0)
                r = container_restart(d, c, ct);
        else if (post && strcmp(action, "kill") == 0)
                r = container_kill(d, c, ct);
        else if (post && strcmp(action, "wait") == 0)
                r = container_wait(d, c, ct);
        else if (get && strcmp(action, "stats") == 0)
                r = handle_stats(d, c, ct);
        else if (get && strcmp(action, "logs") == 0)
                r = handle_logs(d, c, ct);
        else if (post && strcmp(action, "exec") == 0)
                r = handle_exec_create(d, c, req, ct);
        else if (post && strcmp(action, "attach") == 0)
                r = handle_attach(d, c, req, ct);
        else if (post && strcmp(action, "resize") == 0)
                r = container_resize(d, c, ct);
        else if (get && strcmp(action, "top") == 0)
                r = container_top(d, c, ct);
        else if (post && strcmp(action, "rename") == 0)
                r = container_rename(d, c, ct);
        else
                r = reply_no_route(c, method, "/containers/%s", path);
        ctr_unref(d, ct);
        return r;
}
