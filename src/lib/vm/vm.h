/* VM isolation (docs/VM.md): a container in its own QEMU microvm utility VM,
 * driven by the silo-guest agent over the framed protocol of vm/proto.h.
 *
 * Devices: virtio-serial ports "silo.control" (protocol), "silo.stdout" and
 * "silo.stderr" (the process's output, raw bytes), "silo.stdio", "silo.data"
 * and, with live shares, "silo.fs" (share.h), each a socketpair whose
 * other end QEMU inherits; a read-only virtio-blk rootfs image.  QEMU dies
 * with its parent (PR_SET_PDEATHSIG) and the image is unlinked before QEMU
 * starts, so nothing outlives a run even if the caller is SIGKILLed. */
#pragma once

#include <limits.h>
#include <netinet/in.h>
#include <net/if.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "process/container.h"
#include "util/error.h"
#include "vm/proto.h"

enum silo_vm_accel {
        SILO_VM_ACCEL_AUTO,
        SILO_VM_ACCEL_KVM,
        SILO_VM_ACCEL_TCG,
        _SILO_VM_ACCEL_MAX,
        _SILO_VM_ACCEL_INVALID = -1,
};

#define SILO_VM_ANNOTATION "io.silo.isolation"
/* A utility VM: boots with no container; containers join it later. */
#define SILO_VM_UTILITY_ANNOTATION "io.silo.vm.utility"
/* A container hosted in a running utility VM: that VM's container id. */
#define SILO_VM_HOST_ANNOTATION "io.silo.vm.host"
#define SILO_VM_KERNEL_ANNOTATION "io.silo.vm.kernel"
#define SILO_VM_INITRD_ANNOTATION "io.silo.vm.initrd"
#define SILO_VM_CMDLINE_ANNOTATION "io.silo.vm.kernel-cmdline"
#define SILO_VM_MEMORY_ANNOTATION "io.silo.vm.memory-mb"
#define SILO_VM_CPUS_ANNOTATION "io.silo.vm.cpus"
/* A utility VM that ends with the last container it hosted ("true"). */
#define SILO_VM_STOP_WHEN_EMPTY_ANNOTATION "io.silo.vm.stop-when-empty"
#define SILO_VM_DEFAULT_MEM_MB 256
#define SILO_VM_MIN_MEM_MB 64
#define SILO_VM_MAX_MEM_MB (64 * 1024)
#define SILO_VM_MAX_CPUS 64
/* Guest memory added to the container's memory limit: kernel + initramfs + agent. */
#define SILO_VM_MEM_OVERHEAD_MB 64

/* Runs a minimal guest on /dev/kvm to check that KVM really executes code. */
int silo_vm_probe_kvm(silo_error *err);
enum silo_vm_accel silo_vm_accel_from_string(const char *s);
const char *silo_vm_accel_to_string(enum silo_vm_accel a);
/* AUTO becomes KVM when the probe passes, TCG otherwise. */
enum silo_vm_accel silo_vm_accel_resolve(enum silo_vm_accel want);

/* Whether the bundle's config asks for VM isolation (annotation
 * io.silo.isolation = "vm" or "hyperv"). */
bool silo_vm_wanted(json_t *config);

#define SILO_VM_MAX_DISKS 16
#define SILO_VM_ROOTFS_SERIAL "silo-rootfs"
#define SILO_VM_MAPPED_SERIAL "silo-map-"

struct silo_vm_disk {
        int fd;                         /* image file, passed to QEMU */
        bool readonly;
};

struct silo_vm_config {
        const char *qemu;               /* NULL: qemu-system-x86_64 from PATH */
        const char *kernel;
        const char *initrd;
        int rootfs_fd;                  /* block image, passed to QEMU; -1 for none */
        struct silo_vm_disk disks[SILO_VM_MAX_DISKS];   /* mapped directories */
        unsigned n_disks;
        unsigned mem_mb;
        unsigned cpus;
        enum silo_vm_accel accel;       /* resolved: KVM or TCG */
        bool debug_console;             /* guest console to our stderr instead of nowhere */
        const char *extra_cmdline;      /* appended to the kernel command line, may be NULL */
        int tap_fd;                     /* the container's network (net.c), -1: no NIC */
        bool fs_port;                   /* the "silo.fs" port: live shares (read-write binds, utility VMs) */
        char mac[18];                   /* the guest NIC's MAC, with tap_fd */
        unsigned mtu;                   /* the guest NIC's MTU, with tap_fd */
};

struct silo_vm {
        pid_t pid;
        int pidfd;
        int control_fd;                 /* non-blocking */
        int stdout_fd;
        int stderr_fd;
        int stdio_fd;                   /* the multiplexed "silo.stdio" port, non-blocking */
        int data_fd;                    /* "silo.data": layer uploads to a utility VM, non-blocking */
        int fs_fd;                      /* "silo.fs": FUSE messages of the live shares (share.h), non-blocking */
        enum silo_vm_accel accel;
};

#define SILO_VM_INIT { .pid = 0, .pidfd = -1, .control_fd = -1, .stdout_fd = -1, .stderr_fd = -1, .stdio_fd = -1, \
                       .data_fd = -1, .fs_fd = -1 }

int silo_vm_launch(const struct silo_vm_config *cfg, struct silo_vm *ret, silo_error *err);
/* Kills QEMU if still running, reaps it, closes everything; idempotent. */
void silo_vm_destroy(struct silo_vm *vm);

/* The host side of the protocol over one channel. */
#define SILO_VM_MAX_EXITS 16
#define SILO_VM_SESSION_EXTRA_MAX 48

struct silo_vm_exit {
        uint32_t process_id;
        int exit_code;          /* 0..255; 128+N when killed by signal N */
};

struct silo_vm_session {
        int fd;                         /* control channel, non-blocking, borrowed */
        int vm_pidfd;                   /* -1 if none: its readiness means the VM died */
        int stdout_in, stderr_in;       /* guest output ports, -1 if none */
        int stdout_out, stderr_out;     /* where to copy them */
        int sigfd;                      /* signalfd to watch, -1 if none */
        uint64_t pending_signals;       /* bit N-1: signal N arrived on sigfd */
        struct silo_vm_reader reader;
        uint64_t next_id;
        uint32_t guest_version;
        struct silo_vm_exit exits[SILO_VM_MAX_EXITS];
        size_t n_exits;
        /* More fds to poll with the channels (the shim's stdio port, API
         * sockets, stdin); on_extra gets their revents.  in_request: a
         * request is waiting for its response (no new request may start). */
        struct pollfd *extra;
        size_t n_extra;
        int (*on_extra)(void *userdata, bool in_request, silo_error *err);
        void *userdata;
        bool in_request;
};

int silo_vm_session_init(struct silo_vm_session *s, int fd, silo_error *err);
void silo_vm_session_done(struct silo_vm_session *s);

/* Sends a request and waits up to timeout_ms for its response, meanwhile
 * copying guest output and collecting exit notifications.  A response with
 * Result != 0 becomes an error carrying the guest's (sanitized) message.
 * Any protocol violation (unknown type, bad size, invalid JSON, a response
 * nobody asked for, wrong field types) is an error: -EPROTO. */
int silo_vm_session_request(struct silo_vm_session *s, enum silo_vm_op op, json_t *body, int timeout_ms,
                            json_t **ret_response, silo_error *err);
/* NegotiateProtocol; fails unless the guest speaks our version. */
int silo_vm_session_negotiate(struct silo_vm_session *s, int timeout_ms, silo_error *err);
/* Waits (timeout_ms, -1 forever) until process_id's exit notification;
 * returns -EINTR (no message) when a signal arrived on sigfd first. */
int silo_vm_session_wait_exit(struct silo_vm_session *s, uint32_t process_id, int timeout_ms, int *ret_code,
                              silo_error *err);
/* One round of polling every channel (and the extra fds), up to timeout_ms. */
int silo_vm_session_pump(struct silo_vm_session *s, int timeout_ms, silo_error *err);
/* Takes process_id's exit notification if it arrived. */
bool silo_vm_session_take_exit(struct silo_vm_session *s, uint32_t process_id, int *ret_code);
/* Copies whatever guest output is pending, for up to idle_ms of silence. */
void silo_vm_session_drain(struct silo_vm_session *s, int idle_ms);

/* Builds a read-only block image of a rootfs directory (erofs, else ext4)
 * and returns an fd to it; the file itself is already unlinked. */
int silo_vm_rootfs_image(const char *rootfs, int *ret_fd, silo_error *err);
/* The same for any directory (read-only mapped directories, layers), without
 * the rootfs wording in errors. */
int silo_vm_erofs_image(const char *source, int *ret_fd, silo_error *err);

/* What a VM is made of, from the container's config and the environment
 * (SILO_VM_* variables, docs/VM.md). */
struct silo_vm_params {
        const char *kernel, *initrd, *qemu;
        enum silo_vm_accel accel;
        unsigned mem_mb, cpus;
        int boot_timeout_ms;
        bool debug;
        bool accel_auto;        /* chosen by the probe, not asked for */
        const char *extra_cmdline;
        char kernel_buf[PATH_MAX], initrd_buf[PATH_MAX];       /* storage for computed defaults */
};

struct silo_spec;
int silo_vm_params_get(const struct silo_spec *spec, struct silo_vm_params *p, silo_error *err);

/* Waits up to timeout_ms for QEMU to leave (the guest powered off), then destroys it. */
void silo_vm_stop(struct silo_vm *vm, int timeout_ms);

/* Runs a helper program with stdio on /dev/null; keep_fd (or -1) stays open in it. */
int silo_vm_run_tool(char *const argv[], int keep_fd, silo_error *err);
/* A fresh private directory under $TMPDIR (or /tmp); ret[0] = 0 on failure. */
int silo_vm_tempdir(char ret[PATH_MAX], silo_error *err);

/* Mapped directories (mapped.c): a read-only bind mount becomes a disk
 * image, a read-write one a live share (share.h). */
#define SILO_VM_LAYERS_DIR "/run/layers"   /* where a utility VM mounts uploaded layers */
#define SILO_VM_LAYER_NAME_MAX 128

struct silo_vm_mapping {
        char host_path[PATH_MAX];
        char layer[SILO_VM_LAYER_NAME_MAX + 1]; /* hosted: the layer it is uploaded as */
        char file_name[NAME_MAX + 1];   /* a file bind: its name inside the image */
        char share[65];                 /* shared: its entry in the guest's share root */
        bool readonly, is_file;
        bool shared;                    /* read-write: a live share, fd is O_PATH on the source */
        int fd;                         /* the image (already unlinked), or the share's source */
};

struct silo_vm_mappings {
        struct silo_vm_mapping m[SILO_VM_MAX_DISKS];
        unsigned n, n_disks, n_shares;
};

/* Rewrites config (the guest's copy) so each bind mount's source is its
 * disk or share inside the guest; *ret_mapped is the Create request's
 * MappedDirectories (the disks).  Binds of sockets or devices are dropped
 * with a warning.  With layer_prefix (a container hosted in a utility VM),
 * a read-only bind becomes an uploaded layer "<prefix>.mapN" and a
 * read-write one the share "<prefix>.sN". */
int silo_vm_map_binds(const struct silo_runtime *rt, json_t *config, const char *bundle, const char *layer_prefix,
                      struct silo_vm_mappings *ret, json_t **ret_mapped, silo_error *err);
void silo_vm_mappings_done(struct silo_vm_mappings *m);

/* The container's network namespace handed to the VM (net.c): its first
 * interface with an IPv4 address is bridged, inside that namespace, to a
 * tap device whose fd QEMU gets; the guest's NIC takes the interface's MAC,
 * address, prefix, gateway and MTU. */
struct silo_vm_net {
        int tap_fd;                     /* -1: nothing to hand over (loopback only) */
        char ifname[IFNAMSIZ];
        char mac[18];
        char address[INET_ADDRSTRLEN];
        unsigned prefix;
        char gateway[INET_ADDRSTRLEN];  /* "" without a default route */
        unsigned mtu;
};

/* Inspects and rewires the network namespace at netns_path (in a forked
 * child).  ret->tap_fd = -1 when it has no interface but loopback with an
 * IPv4 address.  Refuses the caller's own namespace and a namespace handed
 * to a VM before. */
int silo_vm_net_prepare(const char *netns_path, struct silo_vm_net *ret, silo_error *err);
void silo_vm_net_done(struct silo_vm_net *n);
/* The Create request's Networking: {"Interfaces": [{Name, MacAddress, IPAddress, PrefixLength, Gateway, Mtu}]}. */
json_t *silo_vm_net_to_json(const struct silo_vm_net *n);

/* The lifecycle of a VM container (lifecycle.c, shim.c): libsilo's
 * silo_container_* functions dispatch here when the container's
 * annotations ask for VM isolation. */
struct silo_state;
struct silo_exec_options;
bool silo_vm_annotated(json_t *annotations);
/* Handles create if the bundle's config asks for VM isolation (*ret_handled). */
int silo_vm_container_dispatch_create(const struct silo_runtime *rt, const char *id,
                                      const struct silo_create_options *opts, bool *ret_handled, silo_error *err);
int silo_vm_container_create(const struct silo_runtime *rt, const char *id, const struct silo_create_options *opts,
                             silo_error *err);
/* The same; die_with_parent for a foreground run; *ret_pid: the shim, our child. */
int silo_vm_container_create_shim(const struct silo_runtime *rt, const char *id,
                                  const struct silo_create_options *opts, bool die_with_parent, pid_t *ret_pid,
                                  silo_error *err);
/* statefd: the container's locked state directory. */
int silo_vm_status(int statefd, const struct silo_state *st);
int silo_vm_container_start(int statefd, const struct silo_state *st, silo_error *err);
int silo_vm_container_kill(int statefd, const struct silo_state *st, int sig, bool all, silo_error *err);
/* Before delete --force of a running VM: a clean power-off; the teardown
 * kills whatever is left. */
void silo_vm_container_before_delete(int statefd, const struct silo_state *st);
/* GetProperties from the guest: MemTotalKiB, MemAvailableKiB, ContainerMemoryBytes, ContainerPids. */
int silo_vm_container_stats(int statefd, const struct silo_state *st, json_t **ret, silo_error *err);
/* A container hosted in a utility VM (annotation io.silo.vm.host): no host
 * cgroup of its own; its figures all come from the guest. */
bool silo_vm_hosted(json_t *annotations);
/* Pause/resume of a hosted container: its cgroup in the guest. */
int silo_vm_hosted_freeze(int statefd, const struct silo_state *st, bool frozen, silo_error *err);
int silo_vm_hosted_stats(int statefd, const struct silo_state *st, json_t **ret, silo_error *err);
/* Into `stats` (runc events --stats data of the host cgroup, i.e. QEMU's):
 * memory.usage.usage and pids.current of the container inside the guest,
 * and "vm": {guest, hostMemoryBytes}. */
void silo_vm_stats_merge(int statefd, const struct silo_state *st, json_t *stats);
/* Takes over locked_statefd (closed once the process runs, so other
 * commands are not locked out). */
int silo_vm_container_exec(int locked_statefd, const struct silo_state *st, json_t *process,
                           const struct silo_exec_options *opts, int *ret_status, silo_error *err);

/* `silo-runtime run` of a bundle that asked for VM isolation: create and
 * start through the shim; unless detach, waits for it forwarding
 * SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2, deletes the container and
 * returns its exit status. */
int silo_vm_container_run(const struct silo_runtime *rt, const char *id, const struct silo_create_options *opts,
                          bool detach, int *ret_status, silo_error *err);
