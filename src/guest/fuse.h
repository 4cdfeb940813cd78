/* The guest side of live mapped directories (docs/VM.md): one FUSE mount
 * at /run/share, served by the host's shim through the "silo.fs" port. */
#pragma once

#include <stddef.h>

/* Mounts /run/share once per VM and starts the process that copies FUSE
 * messages between /dev/fuse and the "silo.fs" port (which the host adds
 * only to VMs that may share); later calls do nothing. */
int guest_share_mount(char *errbuf, size_t errlen);
