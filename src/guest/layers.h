/* Layers uploaded to a utility VM over "silo.data" (layers.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GUEST_LAYERS_DIR "/run/layers"
#define GUEST_LAYER_NAME_MAX 128

/* [A-Za-z0-9._-], not starting with '.', at most GUEST_LAYER_NAME_MAX. */
bool guest_layer_name_valid(const char *name);
/* Reads exactly `size` bytes from data_fd (even on failure, to stay in step
 * with the host) and mounts them read-only at GUEST_LAYERS_DIR/<name>. */
int guest_layer_add(int data_fd, const char *name, uint64_t size, char *errbuf, size_t errlen);
int guest_layer_remove(const char *name, char *errbuf, size_t errlen);
