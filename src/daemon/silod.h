/* silod: the engine daemon speaking the Docker Engine API. */
#pragma once

#include <pthread.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>
#include <microhttpd.h>

#include "storage/store.h"
#include "util/error.h"

#define SILOD_API_VERSION "1.43"
#define SILOD_API_MIN "1.24"
#define SILOD_BODY_MAX (1u << 20)       /* JSON request bodies */

enum ctr_status {
        CTR_CREATED,
        CTR_RUNNING,
        CTR_EXITED,
};

/* One container, refcounted: requests hold references while they wait. */
struct ctr {
        struct ctr *next;
        unsigned refs;
        char id[65];
        char *name;                     /* without the leading '/' */
        char *dir;                      /* absolute container directory */
        json_t *record;                 /* Config, HostConfig, Image, ImageID, Created, ... */
        enum ctr_status status;
        bool removed;                   /* gone from the table (waiters see it) */
        bool starting, removing;
        bool paused;                    /* frozen through the runtime (not persisted) */
        pid_t pid, monitor_pid;
        int exit_code;
        unsigned exits;                 /* bumped on every recorded exit */
        int64_t created, started_at, finished_at;
        char error[SILO_ERROR_MAX];
};

struct silod {
        const char *root;               /* image store */
        const char *state;              /* containers, runtime state */
        const char *cgroup_parent;      /* absolute */
        char *monitor_path;
        char *runtime_root;
        int containers_fd;              /* STATE/containers */
        pthread_mutex_t lock;           /* containers and their fields */
        pthread_cond_t changed;         /* any container changed state */
        struct ctr *containers;
        struct exec_rec *execs;         /* exec instances (in memory only) */
        bool stopping;
        unsigned attach_threads;        /* hijacked connections still streaming */
        pthread_t poller;
        int64_t started;
};

/* Per-request state (MHD's con_cls). */
struct request {
        char *body;
        size_t body_len;
        bool body_too_big;
        int upload_fd;                  /* streamed bodies (image load) */
        char *upload_path;
        bool streaming;                 /* route wants the body on upload_fd */
        bool seen;
};

/* ---- http.c ---- */
enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, json_t *doc);   /* steals doc */
enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
enum MHD_Result reply_errno(struct MHD_Connection *c, int r, const silo_error *err);
enum MHD_Result reply_empty(struct MHD_Connection *c, unsigned status);
enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *text);
void add_common_headers(struct MHD_Response *resp);
const char *query(struct MHD_Connection *c, const char *key);
bool query_bool(struct MHD_Connection *c, const char *key);
/* Parses the request body as a JSON object (empty body: empty object). */
int request_json(struct request *req, json_t **ret, silo_error *err);
/* True once the peer hung up (or the daemon stops). */
bool connection_gone(struct MHD_Connection *c, int timeout_ms);
int open_store(struct silod *d, silo_store **ret, silo_error *err);

/* Spawn attributes giving the child no blocked signal and default handlers:
 * silod blocks signals for sigwait(), and neither may reach monitors or
 * containers (both survive exec).  Destroy with posix_spawnattr_destroy(). */
void spawnattr_init_clean_signals(posix_spawnattr_t *attr);

/* ---- system.c ---- */
enum MHD_Result handle_ping(struct silod *d, struct MHD_Connection *c, bool head);
enum MHD_Result handle_version(struct silod *d, struct MHD_Connection *c);
enum MHD_Result handle_info(struct silod *d, struct MHD_Connection *c);

/* ---- images.c ---- */
enum MHD_Result handle_images(struct silod *d, struct MHD_Connection *c, struct request *req, const char *method,
                              const char *path);
char *image_display_name(const char *name);

/* ---- containers.c ---- */
int containers_load(struct silod *d, silo_error *err);
void *containers_poll_thread(void *userdata);
void containers_free(struct silod *d);
enum MHD_Result handle_containers(struct silod *d, struct MHD_Connection *c, struct request *req, const char *method,
                                  const char *path);
/* Takes a reference; NULL if no container matches id, name or unique prefix. */
struct ctr *ctr_lookup(struct silod *d, const char *ref);
void ctr_unref(struct silod *d, struct ctr *ct);
/* Re-reads the monitor's files; call with the lock held. */
void ctr_refresh_locked(struct silod *d, struct ctr *ct);
bool ctr_tty(const struct ctr *ct);
/* Table internals shared by the container files; *_locked need d->lock. */
struct ctr *lookup_locked(struct silod *d, const char *ref);
struct ctr *ctr_from_record(struct silod *d, const char *id, json_t *record);
void ctr_free(struct ctr *ct);
void unlink_locked(struct silod *d, struct ctr *ct);
int record_save(struct ctr *ct, silo_error *err);

/* ---- create.c ---- */
enum MHD_Result container_create(struct silod *d, struct MHD_Connection *c, struct request *req);
enum MHD_Result container_start(struct silod *d, struct MHD_Connection *c, struct ctr *ct);

/* ---- query.c ---- */
const char *ctr_status_name(const struct ctr *ct);
enum MHD_Result containers_list(struct silod *d, struct MHD_Connection *c);
enum MHD_Result container_inspect(struct silod *d, struct MHD_Connection *c, struct ctr *ct);

/* ---- exec.c ---- */
enum MHD_Result handle_exec_create(struct silod *d, struct MHD_Connection *c, struct request *req, struct ctr *ct);
enum MHD_Result handle_exec(struct silod *d, struct MHD_Connection *c, struct request *req, const char *method,
                            const char *path);
void execs_free(struct silod *d);
void execs_prune_locked(struct silod *d, const char *container_id);

/* ---- stats.c ---- */
enum MHD_Result handle_stats(struct silod *d, struct MHD_Connection *c, struct ctr *ct);

/* ---- streams.c ---- */
enum MHD_Result handle_logs(struct silod *d, struct MHD_Connection *c, struct ctr *ct);
enum MHD_Result handle_attach(struct silod *d, struct MHD_Connection *c, struct ctr *ct);
