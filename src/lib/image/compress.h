/* Layer streams: decompression with digest checks and bomb limits on the
 * way in, compression with diff_id tracking on the way out.  Both hash the
 * compressed and the uncompressed bytes in the same pass, because a layer is
 * named by one digest in the manifest (blob) and another in the config
 * (diff_id). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "storage/digest.h"
#include "storage/store.h"
#include "util/error.h"

typedef enum silo_compression {
        SILO_COMPRESSION_NONE,
        SILO_COMPRESSION_GZIP,
        SILO_COMPRESSION_ZSTD,
        _SILO_COMPRESSION_MAX,
        SILO_COMPRESSION_AUTO = -2,     /* sniff the magic bytes */
        _SILO_COMPRESSION_INVALID = -1,
} silo_compression;

const char *silo_compression_name(silo_compression c);
/* Compression from the first bytes of a stream (NONE if unrecognised). */
silo_compression silo_compression_sniff(const void *buf, size_t len);

typedef struct silo_decompress_limits {
        uint64_t max_bytes;     /* uncompressed size */
        uint32_t max_ratio;     /* uncompressed / compressed, enforced past ratio_floor */
        uint64_t ratio_floor;
} silo_decompress_limits;

typedef void (*silo_read_progress_fn)(void *userdata, uint64_t compressed_bytes);

/* Reader over an fd; hands out uncompressed chunks. */
typedef struct silo_decompressor silo_decompressor;

int silo_decompressor_new(int fd, silo_compression c, const silo_decompress_limits *limits,
                          silo_decompressor **ret, silo_error *err);
silo_decompressor *silo_decompressor_free(silo_decompressor *d);
void silo_decompressor_set_progress(silo_decompressor *d, silo_read_progress_fn fn, void *userdata);
/* Returns the length of the next chunk (0 at the end) or a negative errno. */
ssize_t silo_decompressor_read(silo_decompressor *d, const void **ret_buf, silo_error *err);
/* Reads and hashes whatever is left (trailing tar padding counts in diff_id). */
int silo_decompressor_drain(silo_decompressor *d, silo_error *err);
silo_compression silo_decompressor_compression(const silo_decompressor *d);
uint64_t silo_decompressor_in_bytes(const silo_decompressor *d);
uint64_t silo_decompressor_out_bytes(const silo_decompressor *d);
/* Digests of everything read so far: the compressed blob and the uncompressed stream. */
void silo_decompressor_digests(silo_decompressor *d, char ret_blob[SILO_DIGEST_SIZE], char ret_diff[SILO_DIGEST_SIZE]);

static inline void silo_decompressor_freep(silo_decompressor **d)
{
        silo_decompressor_free(*d);
}
#define _cleanup_decompressor_ __attribute__((cleanup(silo_decompressor_freep)))

/* Writer: uncompressed tar bytes in, a compressed blob in the store out. */
typedef struct silo_layer_writer silo_layer_writer;

int silo_layer_writer_new(silo_store *s, silo_compression c, silo_layer_writer **ret, silo_error *err);
int silo_layer_writer_write(silo_layer_writer *w, const void *data, size_t len, silo_error *err);
/* Flushes, commits the blob, returns both digests and the blob size. */
int silo_layer_writer_finish(silo_layer_writer *w, char ret_blob[SILO_DIGEST_SIZE],
                             char ret_diff[SILO_DIGEST_SIZE], uint64_t *ret_size, silo_error *err);
silo_layer_writer *silo_layer_writer_free(silo_layer_writer *w);

static inline void silo_layer_writer_freep(silo_layer_writer **w)
{
        silo_layer_writer_free(*w);
}
#define _cleanup_layer_writer_ __attribute__((cleanup(silo_layer_writer_freep)))
