/* Seccomp (libseccomp) from linux.seccomp of the OCI runtime spec. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>
#include <jansson.h>

#include "util/error.h"

typedef struct silo_seccomp silo_seccomp;

/* Parses and validates linux.seccomp (actions, architectures, flags,
 * syscalls with args); path names obj in messages (NULL: "linux.seccomp").
 * Syscall names unknown to libseccomp are skipped, as runc does; unknown
 * actions/operators/archs/flags are errors, as are errnoRet on an action
 * that takes none, SCMP_ACT_NOTIFY as default action or on "write", and
 * SCMP_ACT_NOTIFY without listenerPath.  Keeps a reference to obj. */
int silo_seccomp_parse(json_t *obj, const char *path, silo_seccomp **ret, silo_error *err);
silo_seccomp *silo_seccomp_free(silo_seccomp *s);
void silo_seccomp_freep(silo_seccomp **s);     /* for _cleanup_(silo_seccomp_freep) */

/* Builds the filter and compiles it to BPF (the slow part: do it before
 * waiting for `start`); checks the flags against the running kernel.
 * Rules whose action equals the default are skipped. */
int silo_seccomp_prepare(silo_seccomp *s, silo_error *err);

/* Loads the filter into the calling thread (prepares it first if needed).
 * Needs no_new_privs or CAP_SYS_ADMIN; never touches no_new_privs itself.
 * If the profile uses SCMP_ACT_NOTIFY, *ret_notify_fd receives the listener
 * fd (O_CLOEXEC), else -1; ret_notify_fd may be NULL only without NOTIFY.
 * After a NOTIFY filter is loaded, hand the fd over with write() (or let the
 * parent take it with pidfd_getfd): write is the one syscall a profile may not
 * notify, any other could block forever waiting for the agent. */
int silo_seccomp_load(silo_seccomp *s, int *ret_notify_fd, silo_error *err);

/* True if a rule uses SCMP_ACT_NOTIFY (load will return a listener fd). */
bool silo_seccomp_uses_notify(const silo_seccomp *s);

/* listenerPath/listenerMetadata, if the profile names them (else NULL). */
const char *silo_seccomp_listener_path(const silo_seccomp *s);
const char *silo_seccomp_listener_metadata(const silo_seccomp *s);

/* Builds the ContainerProcessState for the agent from the container's
 * state object (runtime.md "state"): {ociVersion, fds: ["seccompFd"], pid,
 * metadata (listenerMetadata, if any), state}.  *ret is a new reference. */
int silo_seccomp_process_state(const silo_seccomp *s, json_t *state, pid_t pid, json_t **ret, silo_error *err);

/* Sends the notify fd with the container state (runc's seccomp agent
 * protocol: JSON ContainerProcessState + SCM_RIGHTS, one per connection) to
 * listener_path.  process_state must be a ContainerProcessState (see
 * silo_seccomp_process_state), not the bare container state. */
int silo_seccomp_send_notify_fd(const char *listener_path, json_t *process_state, int notify_fd, silo_error *err);

/* For `features`: the linux.seccomp object {enabled, actions, operators,
 * archs, knownFlags, supportedFlags}; actions and supportedFlags are probed
 * from the running kernel.  NULL on allocation failure. */
json_t *silo_seccomp_features(void);
