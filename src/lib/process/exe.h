#pragma once

#include "util/error.h"

/* Protects the runtime binary from being overwritten through /proc/self/exe
 * by a container process (CVE-2019-5736).  Unless the running image already
 * is out of reach (a read-only mount, an immutable file, a sealed memfd),
 * re-executes it from a
 * detached, read-only clone of its own mount: no copy is made, and any
 * write through /proc/PID/exe fails with EROFS.  Falls back to a sealed
 * memfd copy where the mount API is unavailable.  Returns 0 if already
 * protected; on success otherwise it does not return. */
int silo_exe_ensure_protected(char **argv, char **envp, silo_error *err);
