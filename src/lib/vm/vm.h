/* VM isolation (docs/VM.md): a container in its own QEMU microvm utility VM,
 * driven by the silo-guest agent over the framed protocol of vm/proto.h.
 *
 * Devices: virtio-serial ports "silo.control" (protocol), "silo.stdout" and
 * "silo.stderr" (the process's output, raw bytes), each a socketpair whose
 * other end QEMU inherits; a read-only virtio-blk rootfs image.  QEMU dies
 * with its parent (PR_SET_PDEATHSIG) and the image is unlinked before QEMU
 * starts, so nothing outlives a run even if the caller is SIGKILLed. */
#pragma once

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

struct silo_vm_config {
        const char *qemu;               /* NULL: qemu-system-x86_64 from PATH */
        const char *kernel;
        const char *initrd;
        int rootfs_fd;                  /* block image, passed to QEMU; -1 for none */
        unsigned mem_mb;
        unsigned cpus;
        enum silo_vm_accel accel;       /* resolved: KVM or TCG */
        bool debug_console;             /* guest console to our stderr instead of nowhere */
        const char *extra_cmdline;      /* appended to the kernel command line, may be NULL */
};

struct silo_vm {
        pid_t pid;
        int pidfd;
        int control_fd;                 /* non-blocking */
        int stdout_fd;
        int stderr_fd;
        enum silo_vm_accel accel;
};

#define SILO_VM_INIT { .pid = 0, .pidfd = -1, .control_fd = -1, .stdout_fd = -1, .stderr_fd = -1 }

int silo_vm_launch(const struct silo_vm_config *cfg, struct silo_vm *ret, silo_error *err);
/* Kills QEMU if still running, reaps it, closes everything; idempotent. */
void silo_vm_destroy(struct silo_vm *vm);

/* The host side of the protocol over one channel. */
#define SILO_VM_MAX_EXITS 16

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
/* Copies whatever guest output is pending, for up to idle_ms of silence. */
void silo_vm_session_drain(struct silo_vm_session *s, int idle_ms);

/* Builds a read-only block image of a rootfs directory (erofs, else ext4)
 * and returns an fd to it; the file itself is already unlinked. */
int silo_vm_rootfs_image(const char *rootfs, int *ret_fd, silo_error *err);

/* `silo-runtime run` of a bundle that asked for VM isolation: boots a VM,
 * runs the process in it, copies its output to our stdout/stderr, forwards
 * SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2, and returns its exit status. */
int silo_vm_container_run(const struct silo_runtime *rt, const char *id, const struct silo_create_options *opts,
                          bool detach, int *ret_status, silo_error *err);
