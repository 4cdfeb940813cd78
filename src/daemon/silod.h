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
#define SILOD_EVENTS_MAX 1024           /* events kept for `docker events --since` */

enum ctr_status {
        CTR_CREATED,
        CTR_RUNNING,
        CTR_EXITED,
};

struct retired_name {
        struct retired_name *next;
        char *name;
};

/* One container, refcounted: requests hold references while they wait. */
struct ctr {
        struct ctr *next;
        unsigned refs;
        char id[65];
        char *name;                     /* without the leading '/'; see retired_names */
        /* Names a rename replaced: code holding a reference may read
         * ct->name without the lock, so an old string lives as long as the
         * container does (renames are rare; freed by ctr_free). */
        struct retired_name *retired_names;
        char *dir;                      /* absolute container directory */
        json_t *record;                 /* Config, HostConfig, Image, ImageID, Created, ... */
        enum ctr_status status;
        bool removed;                   /* gone from the table (waiters see it) */
        bool starting, removing;
        bool paused;                    /* frozen through the runtime (not persisted) */
        pid_t pid, monitor_pid;
        int monitor_pidfd;              /* while running: a pidfd of the monitor, or -1 */
        int exit_code;
        unsigned exits;                 /* bumped on every recorded exit */
        int64_t created, started_at, finished_at;
        char error[SILO_ERROR_MAX];
        /* Restart policy (containers.c poller): record.json keeps RestartCount
         * and HasBeenManuallyStopped across silod restarts. */
        unsigned restart_count;
        unsigned restart_seen_exits;    /* exits the policy has decided on */
        int64_t restart_at;             /* CLOCK_MONOTONIC ns of a pending restart; 0: none */
        bool restart_in_flight;         /* the policy's start is under way */
        int64_t restart_delay_ms;       /* current backoff */
        bool manually_stopped;
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
        bool restarts_armed;            /* the poller applied the policies at start (under lock) */
        unsigned attach_threads;        /* hijacked connections still streaming */
        pthread_t poller;
        /* watch.c: monitor pidfds of running containers (epoll) */
        int watch_fd, watch_wake;
        pthread_t watcher;
        int64_t started;
        /* events.c: the event ring (own lock; taken after d->lock, never before) */
        pthread_mutex_t events_lock;
        pthread_cond_t events_cond;     /* an event was added */
        struct silod_event *events;     /* SILOD_EVENTS_MAX slots, slot = seq % SILOD_EVENTS_MAX */
        uint64_t events_next;           /* sequence number of the next event (first is 1) */
        struct networks *networks;      /* networks.c; NULL before networks_init() */
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
        /* Set with an upgrade response: request_end() calls it when the
         * client left before the upgrade (the upgrade handler clears it),
         * so the session prepared for the connection is not leaked. */
        void (*abandoned)(void *cls);
        void *abandoned_cls;
};

/* ---- watch.c: exit notifications ---- */
int watch_start(struct silod *d, silo_error *err);
void watch_add_locked(struct silod *d, int pidfd);
void watch_stop(struct silod *d);

/* ---- http.c ---- */
enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, json_t *doc);   /* steals doc */
/* Takes data (malloc'd), also on failure; type may be NULL. */
enum MHD_Result reply_buffer(struct MHD_Connection *c, unsigned status, char *data, size_t len, const char *type);
/* A hijacked connection's thread ends (silod's shutdown waits for them all). */
void attach_thread_done(struct silod *d);
enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
enum MHD_Result reply_errno(struct MHD_Connection *c, int r, const silo_error *err);
enum MHD_Result reply_empty(struct MHD_Connection *c, unsigned status);
enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *text);
/* The fall-through of every router: 405 on a known path (wrong method), else 404. */
enum MHD_Result reply_no_route(struct MHD_Connection *c, const char *method, const char *path_fmt, ...)
        __attribute__((format(printf, 3, 4)));
bool route_known(const char *path);
/* A 101 answer to attach/exec start: Upgrade: tcp and the stream's content type. */
void add_hijack_headers(struct MHD_Response *resp, bool tty);
/* Sends all of data on a (possibly non-blocking) socket; false once the peer is gone. */
bool socket_send_all(int sock, const void *data, size_t len);
void add_common_headers(struct MHD_Response *resp);
const char *query(struct MHD_Connection *c, const char *key);
bool query_bool(struct MHD_Connection *c, const char *key);
/* Docker's list filters, {"key":{"v":true}} or {"key":["v"]}: true if the
 * filter has no such key or value matches one of its values. */
enum filter_match { FILTER_EXACT, FILTER_SUBSTRING, FILTER_PREFIX };
bool filter_passes(json_t *filters, const char *key, const char *value, enum filter_match how);
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
enum MHD_Result handle_system_df(struct silod *d, struct MHD_Connection *c);
enum MHD_Result handle_auth(struct silod *d, struct MHD_Connection *c, struct request *req);

/* ---- events.c ---- */
void events_init(struct silod *d);
void events_free(struct silod *d);
/* Adds an event (Type, Action, Actor.ID, Actor.Attributes) and wakes the
 * /events streams.  attributes (string values) is stolen, may be NULL.  May
 * be called with d->lock held. */
void events_emit(struct silod *d, const char *type, const char *action, const char *id, json_t *attributes);
/* A container event: adds name, image, the container's labels and (for
 * "die") exitCode to attributes (stolen, may be NULL).  Reads ct's record
 * and name: call with d->lock held or a reference that keeps them stable. */
void events_container(struct silod *d, const struct ctr *ct, const char *action, json_t *attributes);
/* The same, taking d->lock (a rename may change ct->name meanwhile). */
void events_container_lock(struct silod *d, const struct ctr *ct, const char *action, json_t *attributes);
/* exec_create / exec_start (the command goes into the action, as docker
 * does: "exec_start: sh -c date") and exec_die (exit_code >= 0), as
 * container events; the _locked variant needs d->lock held. */
void events_exec(struct silod *d, const char *container_id, const char *action, json_t *process,
                 const char *exec_id, int exit_code);
void events_exec_locked(struct silod *d, const char *container_id, const char *action, json_t *process,
                        const char *exec_id, int exit_code);
enum MHD_Result handle_events(struct silod *d, struct MHD_Connection *c);

/* ---- images.c ---- */
enum MHD_Result handle_images(struct silod *d, struct MHD_Connection *c, struct request *req, const char *method,
                              const char *path);
char *image_display_name(const char *name);
/* Registry credentials from the docker CLI: the X-Registry-Auth header
 * (base64url of a JSON AuthConfig) or the /auth body. */
struct registry_auth {
        char *username;
        char *password;
        char *server;
};
int registry_auth_from_header(const char *header, struct registry_auth *ret, silo_error *err);
int registry_auth_from_json(json_t *doc, struct registry_auth *ret, silo_error *err);
void registry_auth_done(struct registry_auth *a);
/* Summary documents as GET /images/json lists them (Containers: -1). */
json_t *images_summary(silo_store *s, silo_error *err);

/* ---- transfer.c ---- */
enum MHD_Result image_create(struct silod *d, struct MHD_Connection *c, struct request *req);
enum MHD_Result image_push(struct silod *d, struct MHD_Connection *c, const char *name);
/* Streams a docker-archive of names (stolen, NULL-terminated). */
enum MHD_Result image_save(struct silod *d, struct MHD_Connection *c, char **names);

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
/* HostConfig.Isolation hyperv or vm: runs in a utility VM (no host netns). */
bool ctr_vm_isolated(const struct ctr *ct);
/* Table internals shared by the container files; *_locked need d->lock. */
struct ctr *lookup_locked(struct silod *d, const char *ref);
struct ctr *ctr_from_record(struct silod *d, const char *id, json_t *record);
void ctr_free(struct ctr *ct);
void unlink_locked(struct silod *d, struct ctr *ct);
int record_save(struct ctr *ct, silo_error *err);
/* Removes a stopped container's files and takes it out of the table; -EBUSY
 * if a removal is already in progress.  The caller holds a reference. */
int ctr_remove(struct silod *d, struct ctr *ct, silo_error *err);

/* ---- create.c ---- */
enum MHD_Result container_create(struct silod *d, struct MHD_Connection *c, struct request *req);
enum MHD_Result container_start(struct silod *d, struct MHD_Connection *c, struct ctr *ct);
/* Starts the container through a new monitor: 0, 1 if it was running or
 * starting already, negative errno (the failure is recorded as an exit). */
int ctr_start(struct silod *d, struct ctr *ct, silo_error *err);
/* docker stop/kill set it (the restart policy then leaves the container
 * alone), start clears it; persisted in record.json.  Lock not held. */
void ctr_set_manually_stopped(struct silod *d, struct ctr *ct, bool stopped);

/* ---- hostconfig.c ---- */
/* Validates HostConfig before anything is created: EINVAL naming the field.
 * Warnings (strings) are appended to warnings. */
int hostconfig_check(json_t *host_config, json_t *warnings, silo_error *err);
/* Applies body.HostConfig (and body.Volumes) to the bundle's spec: mounts and
 * volumes (created, filled from rootfd), resources, capabilities, seccomp,
 * ... *ret_mount_points is the record's MountPoints (inspect's Mounts). */
int hostconfig_apply(struct silod *d, const char *id, json_t *body, json_t *image_volumes, int rootfd, json_t *spec,
                     json_t *warnings, json_t **ret_mount_points, silo_error *err);
/* RestartPolicy.Name ("no" if unset) and MaximumRetryCount. */
const char *hostconfig_restart_policy(json_t *host_config, int64_t *ret_max);

/* ---- seccomp-profile.c ---- */
/* Docker's default profile for a container with these capabilities. */
json_t *seccomp_default_profile(json_t *caps);
/* A Docker-format profile (archMap, includes/excludes) as OCI linux.seccomp. */
int seccomp_from_docker(json_t *profile, json_t *caps, json_t **ret, silo_error *err);

/* ---- volumes.c ---- */
bool volume_name_valid(const char *name);
/* Creates the volume unless it exists; *ret_data is its _data directory. */
int volume_create(struct silod *d, const char *name, bool anonymous, json_t *labels, char **ret_data,
                  bool *ret_created, silo_error *err);
int volume_ensure(struct silod *d, const char *name, bool anonymous, char **ret_data, bool *ret_created,
                  silo_error *err);
/* Copies the image's content at path (inside rootfd) into an empty volume. */
int volume_copy_up(const char *data, int rootfd, const char *path, silo_error *err);
/* Removes the anonymous volumes of a record's MountPoints that no other
 * container uses (docker rm -v, --rm); takes d->lock. */
void volumes_remove_anonymous(struct silod *d, json_t *mount_points);
enum MHD_Result handle_volumes(struct silod *d, struct MHD_Connection *c, struct request *req, const char *method,
                               const char *path);

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
/* The h and w query parameters of a resize; -EINVAL with a message. */
int parse_resize_query(struct MHD_Connection *c, unsigned *ret_rows, unsigned *ret_cols, char *msg, size_t msg_size);

/* ---- tls.c ---- */
struct silod_tls {
        char *ca, *cert, *key;          /* PEM text, alive as long as the HTTPS daemon */
};
/* Reads the three PEM files (all required). */
int tls_load(struct silod_tls *t, const char *ca, const char *cert, const char *key, silo_error *err);
void tls_free(struct silod_tls *t);
/* A listening TCP socket for "HOST:PORT" (the part after tcp://). */
int listen_tcp(const char *hostport, silo_error *err);
/* True for a non-TLS connection or a TLS peer whose certificate verified
 * against the CA; else false with the reason in msg. */
bool tls_peer_verified(struct MHD_Connection *c, char *msg, size_t msg_size);

/* ---- manage.c ---- */
enum MHD_Result container_resize(struct silod *d, struct MHD_Connection *c, struct ctr *ct);
enum MHD_Result container_top(struct silod *d, struct MHD_Connection *c, struct ctr *ct);
enum MHD_Result container_rename(struct silod *d, struct MHD_Connection *c, struct ctr *ct);
enum MHD_Result containers_prune(struct silod *d, struct MHD_Connection *c);

/* ---- stats.c ---- */
enum MHD_Result handle_stats(struct silod *d, struct MHD_Connection *c, struct ctr *ct);

/* ---- compute.c ---- */
enum MHD_Result handle_compute(struct silod *d, struct MHD_Connection *c, struct request *req, const char *method,
                               const char *path);

/* ---- streams.c ---- */
enum MHD_Result handle_logs(struct silod *d, struct MHD_Connection *c, struct ctr *ct);
enum MHD_Result handle_attach(struct silod *d, struct MHD_Connection *c, struct request *req, struct ctr *ct);

/* ---- networks.c ---- */
/* Opens the network library and reconciles leftovers of containers that no
 * longer run (call after containers_load, before serving). */
int networks_init(struct silod *d, silo_error *err);
void networks_free(struct silod *d);
/* SIGTERM, after the poller stopped and before containers_free(): releases
 * what exited or removed containers still hold. */
void networks_shutdown(struct silod *d);
/* create: validates the network fields of HostConfig (NetworkMode, ports,
 * Dns, ExtraHosts), normalises NetworkMode and keeps NetworkingConfig in
 * the record. */
int networks_container_create(struct silod *d, json_t *body, json_t *record, silo_error *err);
/* start (ct->starting set, lock not held): namespace, endpoint, files and
 * config.json, before the monitor creates the container. */
int networks_container_start(struct silod *d, struct ctr *ct, silo_error *err);
/* poller (d->lock held, may drop it): releases what exited or removed
 * containers hold. */
void networks_poll_locked(struct silod *d);
/* query.c: NetworkSettings (and paths) of an inspect document; Ports,
 * NetworkSettings and HostConfig.NetworkMode of list entries. */
void networks_inspect_fill(struct silod *d, struct ctr *ct, json_t *doc);
void networks_list_fill(struct silod *d, json_t *list);
enum MHD_Result handle_networks(struct silod *d, struct MHD_Connection *c, struct request *req, const char *method,
                                const char *path);
