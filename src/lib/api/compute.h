/* The compute API: Windows' Host Compute Service shape on silo.
 *
 * A compute system is created from an HCS schema-2 ComputeSystem document
 * and, for a `Container` system, backed by a silo-runtime container whose
 * bundle the library generates.  Handles are in-process objects; the
 * system itself lives in the state directory and outlives the process
 * that created it, so another process (the CLI, silod) can open it by id.
 *
 * Documents and answers are JSON text with HCS field names (see
 * docs/API.md).  Every call returns 0 or a negative errno with a one-line
 * message in *err naming the offending field or the failing operation.
 *
 * The library forks helper processes (the container's init, one monitor
 * per created process).  Waiting never depends on SIGCHLD: completion is
 * observed through pidfds and records in the state directory, so a wait
 * cannot miss an exit that happened before it began. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "util/error.h"

#define SILO_COMPUTE_DEFAULT_STATE_ROOT "/run/silo/compute"
#define SILO_COMPUTE_DEFAULT_CGROUP_PARENT "/silo-compute"

struct silo_compute_context {
        const char *state_root;         /* NULL: SILO_COMPUTE_DEFAULT_STATE_ROOT */
        const char *cgroup_parent;      /* absolute; NULL: SILO_COMPUTE_DEFAULT_CGROUP_PARENT */
        const char *cgroup_root;        /* cgroup hierarchy root; NULL: /sys/fs/cgroup */
        const char *init_path;          /* static init binary; NULL: $libexecdir/silo-compute-init */
        const char *store_root;         /* image store for Storage.Image; NULL: $SILO_ROOT or /var/lib/silo */
};

typedef struct silo_compute_system silo_compute_system;
typedef struct silo_compute_process silo_compute_process;

/* Systems. */
int silo_compute_system_create(const struct silo_compute_context *ctx, const char *id, const char *document,
                               silo_compute_system **ret, silo_error *err);
int silo_compute_system_open(const struct silo_compute_context *ctx, const char *id, silo_compute_system **ret,
                             silo_error *err);
/* Frees the handle; the system keeps running. */
void silo_compute_system_close(silo_compute_system *sys);
const char *silo_compute_system_id(const silo_compute_system *sys);

int silo_compute_system_start(silo_compute_system *sys, silo_error *err);
/* Graceful: SIGTERM to the init (which passes it on to every process and
 * exits when they are gone), then waits up to timeout_ms (-1: forever).
 * -ETIMEDOUT if the system is still running; terminate it then. */
int silo_compute_system_shutdown(silo_compute_system *sys, int timeout_ms, silo_error *err);
/* Forced: SIGKILL to every process, then waits for the init to go. */
int silo_compute_system_terminate(silo_compute_system *sys, silo_error *err);
int silo_compute_system_pause(silo_compute_system *sys, silo_error *err);
int silo_compute_system_resume(silo_compute_system *sys, silo_error *err);
/* PropertyQuery {"PropertyTypes": [...]} (NULL or "" for the basic
 * properties) -> Properties JSON in *ret (malloc'd). */
int silo_compute_system_get_properties(silo_compute_system *sys, const char *query, char **ret,
                                       silo_error *err);
/* ModifySettingRequest {"ResourcePath", "RequestType", "Settings"}. */
int silo_compute_system_modify(silo_compute_system *sys, const char *request, silo_error *err);
/* 0 once the system has stopped, -ETIMEDOUT after timeout_ms (-1: forever). */
int silo_compute_system_wait(silo_compute_system *sys, int timeout_ms, silo_error *err);
/* Exit notification for event loops: a pollable fd (a pidfd of the init)
 * that becomes readable once the system has stopped, then stays readable;
 * collect with silo_compute_system_wait(sys, 0, ...).  -ESRCH if the system
 * is already stopped.  The caller owns the fd. */
int silo_compute_system_exit_fd(silo_compute_system *sys, int *ret_fd, silo_error *err);
/* SystemQuery {"Ids", "Names", "Types", "Owners"} (NULL: all) -> array of
 * {Id, SystemType, Owner, State, RuntimeOsType} in *ret (malloc'd). */
int silo_compute_system_enumerate(const struct silo_compute_context *ctx, const char *query, char **ret,
                                  silo_error *err);
/* Not in HCS (which deletes with the last handle): removes a stopped
 * system's container, root filesystem mount and state; force terminates a
 * running one first. */
int silo_compute_system_delete(const struct silo_compute_context *ctx, const char *id, bool force,
                               silo_error *err);

/* Processes.  The fds in info belong to the handle (closed by _close or a
 * CloseHandle modify); -1 where no pipe was asked for.  With EmulateConsole
 * std_input and std_output are the same pty master and std_error is -1. */
struct silo_compute_process_info {
        pid_t process_id;               /* host pid */
        int std_input, std_output, std_error;
};

int silo_compute_process_create(silo_compute_system *sys, const char *parameters, silo_compute_process **ret,
                                struct silo_compute_process_info *ret_info, silo_error *err);
int silo_compute_process_open(silo_compute_system *sys, pid_t process_id, silo_compute_process **ret,
                              silo_error *err);
void silo_compute_process_close(silo_compute_process *proc);
pid_t silo_compute_process_id(const silo_compute_process *proc);
int silo_compute_process_signal(silo_compute_process *proc, int sig, silo_error *err);
int silo_compute_process_terminate(silo_compute_process *proc, silo_error *err);
/* ProcessStatus {ProcessId, Exited, ExitCode} in *ret (malloc'd). */
int silo_compute_process_get_properties(silo_compute_process *proc, char **ret, silo_error *err);
/* {"Operation": "ConsoleSize", "ConsoleSize": {"Height", "Width"}} or
 * {"Operation": "CloseHandle", "CloseHandle": {"Handle": "StdIn"|"StdOut"|"StdErr"|"All"}}. */
int silo_compute_process_modify(silo_compute_process *proc, const char *request, silo_error *err);
/* Like silo_compute_system_exit_fd() for a process: readable once its exit
 * code is recorded (a pidfd of its monitor); -ESRCH if it already is. */
int silo_compute_process_exit_fd(silo_compute_process *proc, int *ret_fd, silo_error *err);
/* 0 with the exit code (128+signal if killed) once the process exited,
 * -ETIMEDOUT after timeout_ms (-1: forever). */
int silo_compute_process_wait(silo_compute_process *proc, int timeout_ms, int *ret_exit_code, silo_error *err);
