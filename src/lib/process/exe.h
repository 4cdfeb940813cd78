#pragma once

#include "util/error.h"

/* Protects the runtime binary from being overwritten through
 * /proc/self/exe by a container process (CVE-2019-5736): unless the running
 * image already is one, copies the binary into a sealed memfd and re-executes
 * from it.  Returns 0 if already protected; on success it does not return. */
int silo_exe_ensure_sealed(char **argv, char **envp, silo_error *err);
