/* The last steps before execve: limits, identity, capabilities, seccomp. */
#pragma once

#include <stddef.h>

#include "seccomp/seccomp.h"
#include "spec/spec.h"
#include "util/error.h"

/* Parent side, before anything is created: a hard limit above the current
 * one needs CAP_SYS_RESOURCE, which this host may not give us. */
int silo_rlimits_check(const struct silo_process *p, silo_error *err);
int silo_rlimits_apply(const struct silo_process *p, silo_error *err);

int silo_oom_score_adj_apply(const struct silo_process *p, silo_error *err);

/* Resolves args[0] against PATH from the process env inside the current
 * root, as execvp would, but at create time so errors surface early. */
int silo_find_executable(const struct silo_process *p, char *ret_path, size_t size, silo_error *err);

/* Switches to the process's user and capabilities; loads seccomp at the
 * point that keeps it enforceable (see creds.c).  If the profile has a
 * listener, its fd is sent on notify_sock (SILO_SYNC_FD) right after the
 * load, before any syscall the profile might itself route to the listener. */
int silo_process_finalize(const struct silo_process *p, silo_seccomp *seccomp, int notify_sock, silo_error *err);

/* Adds HOME from the container's /etc/passwd (or "/") when env has none,
 * as runc does.  Call inside the container's root. */
int silo_process_default_home(struct silo_process *p, silo_error *err);

/* Gives a process about to exec a clean signal state: nothing blocked (the
 * runtime blocks the signals it forwards) and every disposition default
 * (the runtime ignores SIGPIPE); both would otherwise survive execve. */
void silo_signals_reset(void);

/* Whether the calling process has cap in its effective set. */
bool silo_have_cap(int cap);
