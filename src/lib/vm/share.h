/* Live read-write mapped directories of a VM (docs/VM.md, "Mapped
 * directories"): a FUSE server in the shim, spoken to by the guest's FUSE
 * mount through the "silo.fs" virtio-serial port.  The guest agent copies
 * whole FUSE messages between /dev/fuse and the port; each request is
 * framed by fuse_in_header.len, each reply by fuse_out_header.len.
 *
 * The guest is hostile: every message is checked before any struct is read,
 * names are single path components, every node is an O_PATH|O_NOFOLLOW fd
 * and every operation is relative to one (a symlink is never followed on
 * the host), and the node and handle tables are bounded.  A message that
 * cannot be parsed is a protocol violation (an error: the VM ends); an
 * operation the share refuses is an errno in the reply. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

#define SILO_VM_SHARE_DIR "/run/share"         /* the guest's mount: one entry per share */
#define SILO_VM_SHARE_MAX_WRITE (128 * 1024)   /* negotiated max_write, and the largest read */
/* The largest request (a WRITE of max_write bytes plus headers) and reply. */
#define SILO_VM_SHARE_MSG_MAX (SILO_VM_SHARE_MAX_WRITE + 4096)
#define SILO_VM_SHARE_NAME_MAX 64
#define SILO_VM_SHARES_MAX 256                 /* entries in the root: 16 binds x 16 hosted containers */
#define SILO_VM_SHARE_NODES_MAX 65536
#define SILO_VM_SHARE_HANDLES_MAX 65536

struct silo_vm_share;

/* fd_budget: how many fds the nodes and open handles may hold together
 * (the rest of the process needs its own); 0 for the default, derived from
 * RLIMIT_NOFILE. */
int silo_vm_share_new(size_t fd_budget, struct silo_vm_share **ret, silo_error *err);
struct silo_vm_share *silo_vm_share_free(struct silo_vm_share *s);

/* Adds `fd` (a directory or a regular file, any open mode; duplicated as
 * an O_PATH fd) as the root's entry `name` ([A-Za-z0-9._-], 1..64 bytes). */
int silo_vm_share_add(struct silo_vm_share *s, const char *name, int fd, silo_error *err);
/* Takes the entry out of the root; what the guest still holds stays valid
 * until it forgets or releases it. */
void silo_vm_share_remove(struct silo_vm_share *s, const char *name);

/* One request of `len` bytes (its header's len must be len).  Writes the
 * reply into out (SILO_VM_SHARE_MSG_MAX bytes) and returns its length, 0 when
 * the request takes no reply, or < 0 on a protocol violation. */
ssize_t silo_vm_share_handle(struct silo_vm_share *s, const uint8_t *msg, size_t len, uint8_t *out,
                             silo_error *err);

/* The stream over the port (non-blocking fd): what to poll for, and one
 * round of reading requests and writing replies.  < 0: the guest broke the
 * protocol or the port closed. */
short silo_vm_share_events(const struct silo_vm_share *s);
int silo_vm_share_pump(struct silo_vm_share *s, int fd, silo_error *err);

/* Nodes and handles in use (tests). */
void silo_vm_share_counts(const struct silo_vm_share *s, size_t *ret_nodes, size_t *ret_handles);
