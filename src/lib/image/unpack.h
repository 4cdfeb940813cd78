/* Unpacking one layer tarball into an empty directory, treating the tarball
 * as hostile.  Every file operation is relative to the layer root fd:
 * parents are resolved with openat2(RESOLVE_IN_ROOT) and the final component
 * is always created fresh (O_EXCL/O_NOFOLLOW) after removing what was there,
 * so nothing is ever written through a symlink or an existing hardlink.
 *
 * OCI whiteouts become overlayfs whiteouts: ".wh.NAME" a 0:0 character
 * device NAME, ".wh..wh..opq" the trusted.overlay.opaque=y xattr on the
 * directory.  See docs/STORAGE.md ("Security") for the full policy. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "image/compress.h"
#include "storage/digest.h"
#include "util/error.h"

typedef struct silo_unpack_options {
        silo_compression compression;           /* SILO_COMPRESSION_AUTO sniffs */
        silo_decompress_limits limits;
        uint64_t max_entries;
        unsigned max_depth;                     /* path components */
        bool allow_devices;                     /* create char/block nodes (default: skip them) */
        const char *expected_blob;              /* verify the compressed digest, if set */
        const char *expected_diff_id;           /* verify the uncompressed digest, if set */
        silo_read_progress_fn progress;
        void *progress_userdata;
} silo_unpack_options;

#define SILO_UNPACK_MAX_BYTES (64ull << 30)
#define SILO_UNPACK_MAX_RATIO 250u
#define SILO_UNPACK_RATIO_FLOOR (512ull << 20)
#define SILO_UNPACK_MAX_ENTRIES (2u << 20)
#define SILO_UNPACK_MAX_DEPTH 256u

/* Defaults above, overridable by $SILO_UNPACK_MAX_BYTES, _MAX_ENTRIES,
 * _MAX_DEPTH and _MAX_RATIO (read by the front ends, not the library). */
void silo_unpack_options_init(silo_unpack_options *o);

typedef struct silo_unpack_stats {
        uint64_t entries;
        uint64_t file_bytes;            /* regular file content written */
        uint64_t tar_bytes;             /* uncompressed stream */
        uint64_t blob_bytes;            /* compressed stream */
        uint64_t whiteouts;
        uint64_t opaque_dirs;
        uint64_t hardlinks;
        uint64_t skipped_devices;       /* char/block nodes and sockets not created */
        uint64_t skipped_xattrs;        /* xattrs outside user.* and security.capability */
        char blob_digest[SILO_DIGEST_SIZE];
        char diff_id[SILO_DIGEST_SIZE];
} silo_unpack_stats;

/* Unpacks the (possibly compressed) tar stream read from src_fd into the
 * directory root_fd, which should be empty.  On error the directory is left
 * half-populated: callers unpack into a temp dir and discard it. */
int silo_unpack_layer_fd(int src_fd, int root_fd, const silo_unpack_options *o,
                         silo_unpack_stats *ret_stats, silo_error *err);

/* Cleans a tar member name into a relative path ("" for the root):
 * leading "/" and "./" dropped, "." components removed, ".." resolved
 * lexically.  -EXDEV if ".." would leave the root. */
int silo_clean_member_path(const char *name, char *buf, size_t bufsize, unsigned *ret_depth);
