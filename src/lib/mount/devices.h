#pragma once

#include <stdbool.h>

#include "spec/spec.h"
#include "util/error.h"

/* Creates the default devices (null, zero, full, random, urandom, tty), the
 * spec's linux.devices and the /dev symlinks inside the rootfs.  In a user
 * namespace, where mknod is not allowed, the host nodes are bind-mounted. */
int silo_devices_setup(int rootfd, const struct silo_spec *spec, bool in_userns, silo_error *err);
