/* Writing tar streams: a directory tree (a rootfs, or an overlay upper dir
 * turned into an OCI layer with whiteouts), or individual files (save). */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

typedef int (*silo_tar_write_fn)(void *userdata, const void *buf, size_t len, silo_error *err);

typedef enum silo_tar_mode {
        SILO_TAR_PLAIN,                 /* everything as it is */
        SILO_TAR_OVERLAY_DIFF,          /* 0:0 char devices -> .wh.NAME, opaque dirs -> .wh..wh..opq */
        _SILO_TAR_MODE_MAX,
        _SILO_TAR_MODE_INVALID = -1,
} silo_tar_mode;

typedef struct silo_tar_writer silo_tar_writer;

int silo_tar_writer_new(silo_tar_write_fn fn, void *userdata, silo_tar_writer **ret, silo_error *err);
/* A tar writer straight to an fd. */
int silo_tar_writer_new_fd(int fd, silo_tar_writer **ret, silo_error *err);
int silo_tar_writer_add_buffer(silo_tar_writer *w, const char *path, const void *data, size_t len, silo_error *err);
int silo_tar_writer_add_fd(silo_tar_writer *w, const char *path, int fd, uint64_t size, silo_error *err);
int silo_tar_writer_add_dir(silo_tar_writer *w, const char *path, silo_error *err);
int silo_tar_writer_add_symlink(silo_tar_writer *w, const char *path, const char *target, silo_error *err);
/* Adds the contents of dirfd (not the directory itself, except for the
 * "./" metadata entry in PLAIN mode) without following symlinks. */
int silo_tar_writer_add_tree(silo_tar_writer *w, int dirfd, silo_tar_mode mode, silo_error *err);
/* Writes the end-of-archive marker. */
int silo_tar_writer_finish(silo_tar_writer *w, silo_error *err);
silo_tar_writer *silo_tar_writer_free(silo_tar_writer *w);

static inline void silo_tar_writer_freep(silo_tar_writer **w)
{
        silo_tar_writer_free(*w);
}
#define _cleanup_tar_writer_ __attribute__((cleanup(silo_tar_writer_freep)))
