/* Shared between the parts of the compute API.  Not public: the pure
 * document mapping is exposed here so the unit tests can reach it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "api/compute.h"
#include "process/container.h"

#define COMPUTE_DOC_MAX (1024 * 1024)
#define COMPUTE_MAX_LAYERS 128
#define COMPUTE_MAX_MAPPED 128
#define COMPUTE_MAX_ARGS 4096
/* Where the init binary is bound inside the container: /dev is a tmpfs the
 * runtime mounts, so nothing is left in the user's root filesystem. */
#define COMPUTE_INIT_TARGET "/dev/.silo-init"
#define COMPUTE_CPU_PERIOD 100000       /* cfs period, microseconds */

struct compute_storage {
        char **layers;                  /* read-only lower dirs, topmost first (NULL-terminated) */
        char *path;                     /* scratch (with layers) or the root itself; NULL with image */
        char *image;                    /* Storage.Image: an image of the store instead */
};

void compute_storage_done(struct compute_storage *s);

struct compute_spec_options {
        const char *id;
        const char *cgroup_parent;      /* absolute */
        const char *init_path;          /* host path of the static init */
        const char *rootfs;             /* absolute path the root will be at (overlay mountpoint) */
        unsigned ncpu;                  /* online processors, for Processor.Maximum/Count */
};

/* ComputeSystem document -> OCI runtime spec (+ what to mount for the root).
 * *ret_owner is borrowed from doc. */
int compute_document_to_spec(json_t *doc, const struct compute_spec_options *o, json_t **ret_spec,
                             struct compute_storage *ret_storage, silo_error *err);

/* Settings of Container/Memory/SizeInMB and Container/Processor ->
 * linux.resources fragments. */
int compute_memory_resources(json_t *size_mb, const char *path, json_t **ret, silo_error *err);
int compute_processor_resources(json_t *processor, const char *path, unsigned ncpu, json_t **ret, silo_error *err);

/* ProcessParameters -> OCI process object; `base` is the system's process
 * (capabilities, rlimits, noNewPrivileges are inherited from it); rootfd
 * (or -1) is the system's root, for user and group names. */
struct compute_process_params {
        bool stdin_pipe, stdout_pipe, stderr_pipe, console;
};
int compute_process_to_oci(json_t *params, json_t *base, int rootfd, json_t **ret,
                           struct compute_process_params *ret_params, silo_error *err);

/* Splits a CommandLine into words: POSIX shell quoting ('...', "...", \),
 * no expansion.  NULL-terminated, malloc'd. */
int compute_split_command_line(const char *line, const char *path, char ***ret, silo_error *err);

/* PropertyQuery -> bit set of COMPUTE_PROP_*. */
enum {
        COMPUTE_PROP_STATISTICS = 1 << 0,
        COMPUTE_PROP_PROCESS_LIST = 1 << 1,
        COMPUTE_PROP_MEMORY = 1 << 2,
};
int compute_property_query_parse(json_t *query, unsigned *ret, silo_error *err);

/* ModifySettingRequest: the resource it names and the request type. */
enum compute_modify_resource {
        COMPUTE_MODIFY_MEMORY,
        COMPUTE_MODIFY_PROCESSOR,
        COMPUTE_MODIFY_MAPPED_DIRECTORY,
};
enum compute_request_type { COMPUTE_REQUEST_ADD, COMPUTE_REQUEST_REMOVE, COMPUTE_REQUEST_UPDATE };
struct compute_modify {
        enum compute_modify_resource resource;
        enum compute_request_type type;
        json_t *settings;               /* borrowed */
};
int compute_modify_parse(json_t *request, struct compute_modify *ret, silo_error *err);

/* A MappedDirectory {HostPath, ContainerPath, ReadOnly} -> OCI bind mount. */
int compute_mapped_directory(json_t *md, const char *path, json_t **ret_mount, silo_error *err);

/* State paths. */
struct silo_compute_system {
        struct silo_compute_context ctx;
        char *state_root;
        char *runtime_root;
        char *id;
        struct silo_runtime rt;
        int handle_lock;                /* shared flock on STATE/systems/<id>/handles */
};

int compute_runtime_init(const struct silo_compute_context *ctx, char **ret_state_root, char **ret_runtime_root,
                         struct silo_runtime *rt, silo_error *err);

/* network.c: Container.Networking.Network (and Ports) -- a namespace of the
 * system's own attached to a silo network, joined by the spec; released at
 * delete.  Ports are "[ip:]host:container[/proto]" strings. */
struct silo_net_port;
int compute_network_ports(json_t *ports, const char *path, struct silo_net_port **ret, size_t *ret_n,
                          silo_error *err);
int compute_network_attach(const char *id, const char *dir, json_t *doc, json_t *spec, silo_error *err);
int compute_network_release(const char *id, const char *dir, silo_error *err);
