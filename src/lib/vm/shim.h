/* The VM container shim (shim.c) and the library side of the lifecycle
 * (lifecycle.c).  Internal to src/lib/vm. */
#pragma once

#include "cgroup/cgroup.h"
#include "vm/vm.h"

#define SILO_VM_SOCKET "vm.sock"
/* Present in the state directory from create until start succeeded. */
#define SILO_VM_CREATED_MARK "vm.created"
/* A hosted container frozen in its guest (its host state has no cgroup). */
#define SILO_VM_PAUSED_MARK "vm.paused"

struct silo_vm_shim_config {
        const struct silo_runtime *rt;
        const char *id;
        struct silo_vm_config vm;
        struct silo_vm_params params;
        json_t *create_body;            /* the Create request; NULL for a utility VM */
        bool utility;                   /* a utility VM: hosts containers created later through vm.sock */
        bool stop_when_empty;           /* utility: power off when the last hosted container is gone */
        json_t *utility_networking;     /* utility: its NIC's settings (ModifySettings Network), or NULL */
        struct silo_vm_mappings *mappings;
        int listen_fd;                  /* vm.sock */
        int ready_fd;                   /* gets "O" once created, or "E<message>" */
        int tty_fd;                     /* the init's terminal (host pty slave), -1 */
        silo_cgroup *cg;                /* the shim and QEMU run in it */
};

/* Runs in the forked shim; never returns. */
__attribute__((noreturn)) void silo_vm_shim_main(struct silo_vm_shim_config *cfg);
/* In the forked shim, before anything else: closes every fd of its creator
 * but those in cfg (and stdio). */
void silo_vm_shim_close_others(const struct silo_vm_shim_config *cfg);
int silo_vm_shim_keep_fds(const struct silo_vm_shim_config *cfg, int *keep, size_t max);
