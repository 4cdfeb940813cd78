#include "image/compress.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>
#include <zstd.h>

#include "util/cleanup.h"

#define IN_CHUNK (128u * 1024)
#define OUT_CHUNK (256u * 1024)

struct silo_decompressor {
        int fd;
        silo_compression comp;
        silo_decompress_limits limits;

        unsigned char *in;
        size_t in_len, in_pos;
        bool in_eof;
        unsigned char *out;

        z_stream z;
        bool z_init;
        bool member_end;        /* gzip: the last member ended cleanly */
        ZSTD_DStream *zs;
        size_t zstd_hint;       /* 0 once a zstd frame is complete */
        bool started;

        silo_sha256 *h_in;
        silo_sha256 *h_out;
        uint64_t in_bytes, out_bytes;

        silo_read_progress_fn progress;
        void *progress_userdata;
};

struct silo_layer_writer {
        silo_blob_writer *blob;
        silo_compression comp;
        z_stream z;
        bool z_init;
        ZSTD_CStream *zc;
        silo_sha256 *h_diff;
        unsigned char *out;
};

const char *silo_compression_name(silo_compression c)
{
        switch (c) {
        case SILO_COMPRESSION_NONE: return "none";
        case SILO_COMPRESSION_GZIP: return "gzip";
        case SILO_COMPRESSION_ZSTD: return "zstd";
        case SILO_COMPRESSION_AUTO: return "auto";
        case _SILO_COMPRESSION_MAX:
        case _SILO_COMPRESSION_INVALID:
                break;
        }
        return "invalid";
}

silo_compression silo_compression_sniff(const void *buf, size_t len)
{
        const unsigned char *p = buf;
        if (len >= 2 && p[0] == 0x1f && p[1] == 0x8b)
                return SILO_COMPRESSION_GZIP;
        if (len >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f && p[3] == 0xfd)
                return SILO_COMPRESSION_ZSTD;
        return SILO_COMPRESSION_NONE;
}

static int fill_input(silo_decompressor *d, silo_error *err)
{
        if (d->in_pos < d->in_len || d->in_eof)
                return 0;
        for (;;) {
                ssize_t n = read(d->fd, d->in, IN_CHUNK);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return silo_error_set(err, errno, "read layer");
                }
                d->in_pos = 0;
                d->in_len = (size_t) n;
                if (n == 0) {
                        d->in_eof = true;
                        return 0;
                }
                silo_sha256_update(d->h_in, d->in, (size_t) n);
                d->in_bytes += (uint64_t) n;
                if (d->progress)
                        d->progress(d->progress_userdata, d->in_bytes);
                return 0;
        }
}

int silo_decompressor_new(int fd, silo_compression c, const silo_decompress_limits *limits,
                          silo_decompressor **ret, silo_error *err)
{
        _cleanup_free_ silo_decompressor *d = calloc(1, sizeof(*d));
        if (!d)
                return silo_error_set(err, ENOMEM, "decompressor");
        d->fd = fd;
        d->limits = *limits;
        d->in = malloc(IN_CHUNK);
        d->out = malloc(OUT_CHUNK);
        d->h_in = silo_sha256_new();
        d->h_out = silo_sha256_new();
        if (!d->in || !d->out || !d->h_in || !d->h_out) {
                silo_decompressor_free(TAKE_PTR(d));
                return silo_error_set(err, ENOMEM, "decompressor");
        }

        int r = fill_input(d, err);
        if (r < 0) {
                silo_decompressor_free(TAKE_PTR(d));
                return r;
        }
        if (c == SILO_COMPRESSION_AUTO)
                c = silo_compression_sniff(d->in, d->in_len);
        d->comp = c;

        if (c == SILO_COMPRESSION_GZIP) {
                /* 16 + MAX_WBITS: gzip framing only. */
                if (inflateInit2(&d->z, 16 + MAX_WBITS) != Z_OK) {
                        silo_decompressor_free(TAKE_PTR(d));
                        return silo_error_msg(err, ENOMEM, "inflateInit failed");
                }
                d->z_init = true;
        } else if (c == SILO_COMPRESSION_ZSTD) {
                d->zs = ZSTD_createDStream();
                if (!d->zs || ZSTD_isError(ZSTD_initDStream(d->zs))) {
                        silo_decompressor_free(TAKE_PTR(d));
                        return silo_error_msg(err, ENOMEM, "ZSTD_initDStream failed");
                }
                /* Refuse frames that need a huge window: memory stays bounded. */
                ZSTD_DCtx_setParameter(d->zs, ZSTD_d_windowLogMax, 27);
        } else if (c != SILO_COMPRESSION_NONE) {
                silo_decompressor_free(TAKE_PTR(d));
                return silo_error_msg(err, EINVAL, "unsupported compression %d", (int) c);
        }
        *ret = TAKE_PTR(d);
        return 0;
}

silo_decompressor *silo_decompressor_free(silo_decompressor *d)
{
        if (!d)
                return NULL;
        if (d->z_init)
                inflateEnd(&d->z);
        if (d->zs)
                ZSTD_freeDStream(d->zs);
        silo_sha256_free(d->h_in);
        silo_sha256_free(d->h_out);
        free(d->in);
        free(d->out);
        free(d);
        return NULL;
}

void silo_decompressor_set_progress(silo_decompressor *d, silo_read_progress_fn fn, void *userdata)
{
        d->progress = fn;
        d->progress_userdata = userdata;
}

static int account(silo_decompressor *d, size_t n, silo_error *err)
{
        d->out_bytes += n;
        if (d->limits.max_bytes && d->out_bytes > d->limits.max_bytes)
                return silo_error_msg(err, EFBIG, "layer is larger than the limit of %llu uncompressed bytes "
                                      "(decompression bomb?)", (unsigned long long) d->limits.max_bytes);
        if (d->limits.max_ratio && d->out_bytes > d->limits.ratio_floor &&
            d->out_bytes / (d->in_bytes ? d->in_bytes : 1) > d->limits.max_ratio)
                return silo_error_msg(err, EFBIG, "layer expands more than %u:1 after %llu bytes "
                                      "(decompression bomb?)", d->limits.max_ratio,
                                      (unsigned long long) d->out_bytes);
        return 0;
}

static ssize_t read_gzip(silo_decompressor *d, silo_error *err)
{
        for (;;) {
                int r = fill_input(d, err);
                if (r < 0)
                        return r;
                if (d->in_pos == d->in_len) {
                        if (d->started && !d->member_end)
                                return silo_error_msg(err, EPIPE, "gzip stream is truncated");
                        if (!d->started)
                                return silo_error_msg(err, EINVAL, "empty gzip stream");
                        return 0;
                }
                if (d->member_end) {
                        /* Tolerate zero padding after the last member. */
                        while (d->in_pos < d->in_len && d->in[d->in_pos] == 0)
                                d->in_pos++;
                        if (d->in_pos == d->in_len)
                                continue;
                        inflateReset(&d->z);
                        d->member_end = false;
                }
                d->started = true;
                d->z.next_in = d->in + d->in_pos;
                d->z.avail_in = (uInt) (d->in_len - d->in_pos);
                d->z.next_out = d->out;
                d->z.avail_out = OUT_CHUNK;
                int zr = inflate(&d->z, Z_NO_FLUSH);
                d->in_pos = d->in_len - d->z.avail_in;
                size_t produced = OUT_CHUNK - d->z.avail_out;
                if (zr == Z_STREAM_END)
                        d->member_end = true;
                else if (zr == Z_BUF_ERROR && produced == 0)
                        continue;       /* needs more input */
                else if (zr != Z_OK)
                        return silo_error_msg(err, EBADMSG, "corrupt gzip data: %s", d->z.msg ? d->z.msg : "inflate failed");
                if (produced > 0)
                        return (ssize_t) produced;
        }
}

static ssize_t read_zstd(silo_decompressor *d, silo_error *err)
{
        for (;;) {
                int r = fill_input(d, err);
                if (r < 0)
                        return r;
                if (d->in_pos == d->in_len) {
                        if (!d->started)
                                return silo_error_msg(err, EINVAL, "empty zstd stream");
                        if (d->zstd_hint != 0)
                                return silo_error_msg(err, EPIPE, "zstd stream is truncated");
                        return 0;
                }
                d->started = true;
                ZSTD_inBuffer in = { d->in, d->in_len, d->in_pos };
                ZSTD_outBuffer out = { d->out, OUT_CHUNK, 0 };
                size_t hint = ZSTD_decompressStream(d->zs, &out, &in);
                if (ZSTD_isError(hint))
                        return silo_error_msg(err, EBADMSG, "corrupt zstd data: %s", ZSTD_getErrorName(hint));
                d->zstd_hint = hint;
                d->in_pos = in.pos;
                if (out.pos > 0)
                        return (ssize_t) out.pos;
        }
}

ssize_t silo_decompressor_read(silo_decompressor *d, const void **ret_buf, silo_error *err)
{
        ssize_t n;
        switch (d->comp) {
        case SILO_COMPRESSION_NONE: {
                int r = fill_input(d, err);
                if (r < 0)
                        return r;
                n = (ssize_t) (d->in_len - d->in_pos);
                *ret_buf = d->in + d->in_pos;
                d->in_pos = d->in_len;
                break;
        }
        case SILO_COMPRESSION_GZIP:
                n = read_gzip(d, err);
                *ret_buf = d->out;
                break;
        case SILO_COMPRESSION_ZSTD:
                n = read_zstd(d, err);
                *ret_buf = d->out;
                break;
        case SILO_COMPRESSION_AUTO:
        case _SILO_COMPRESSION_MAX:
        case _SILO_COMPRESSION_INVALID:
        default:
                return silo_error_msg(err, EINVAL, "bad compression state");
        }
        if (n <= 0)
                return n;
        if (d->comp != SILO_COMPRESSION_NONE)
                silo_sha256_update(d->h_out, *ret_buf, (size_t) n);
        int r = account(d, (size_t) n, err);
        if (r < 0)
                return r;
        return n;
}

int silo_decompressor_drain(silo_decompressor *d, silo_error *err)
{
        for (;;) {
                const void *buf;
                ssize_t n = silo_decompressor_read(d, &buf, err);
                if (n < 0)
                        return (int) n;
                if (n == 0)
                        return 0;
        }
}

silo_compression silo_decompressor_compression(const silo_decompressor *d)
{
        return d->comp;
}

uint64_t silo_decompressor_in_bytes(const silo_decompressor *d)
{
        return d->in_bytes;
}

uint64_t silo_decompressor_out_bytes(const silo_decompressor *d)
{
        return d->out_bytes;
}

void silo_decompressor_digests(silo_decompressor *d, char ret_blob[SILO_DIGEST_SIZE], char ret_diff[SILO_DIGEST_SIZE])
{
        if (ret_blob)
                silo_sha256_peek(d->h_in, ret_blob);
        if (ret_diff) {
                /* Uncompressed: the stream is the blob, hashed once. */
                if (d->comp == SILO_COMPRESSION_NONE)
                        silo_sha256_peek(d->h_in, ret_diff);
                else
                        silo_sha256_peek(d->h_out, ret_diff);
        }
}

/* ---- writer ---- */

int silo_layer_writer_new(silo_store *s, silo_compression c, silo_layer_writer **ret, silo_error *err)
{
        _cleanup_free_ silo_layer_writer *w = calloc(1, sizeof(*w));
        if (!w)
                return silo_error_set(err, ENOMEM, "layer writer");
        w->comp = c;
        w->h_diff = silo_sha256_new();
        w->out = malloc(OUT_CHUNK);
        if (!w->h_diff || !w->out) {
                silo_layer_writer_free(TAKE_PTR(w));
                return silo_error_set(err, ENOMEM, "layer writer");
        }
        if (c == SILO_COMPRESSION_GZIP) {
                if (deflateInit2(&w->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
                        silo_layer_writer_free(TAKE_PTR(w));
                        return silo_error_msg(err, ENOMEM, "deflateInit failed");
                }
                w->z_init = true;
        } else if (c == SILO_COMPRESSION_ZSTD) {
                w->zc = ZSTD_createCStream();
                if (!w->zc || ZSTD_isError(ZSTD_initCStream(w->zc, 3))) {
                        silo_layer_writer_free(TAKE_PTR(w));
                        return silo_error_msg(err, ENOMEM, "ZSTD_initCStream failed");
                }
        } else if (c != SILO_COMPRESSION_NONE) {
                silo_layer_writer_free(TAKE_PTR(w));
                return silo_error_msg(err, EINVAL, "unsupported compression %d", (int) c);
        }
        int r = silo_blob_writer_new(s, &w->blob, err);
        if (r < 0) {
                silo_layer_writer_free(TAKE_PTR(w));
                return r;
        }
        *ret = TAKE_PTR(w);
        return 0;
}

static int writer_deflate(silo_layer_writer *w, const void *data, size_t len, int flush, silo_error *err)
{
        w->z.next_in = (Bytef *) data;
        w->z.avail_in = (uInt) len;
        for (;;) {
                w->z.next_out = w->out;
                w->z.avail_out = OUT_CHUNK;
                int zr = deflate(&w->z, flush);
                if (zr == Z_STREAM_ERROR)
                        return silo_error_msg(err, EIO, "deflate failed");
                size_t n = OUT_CHUNK - w->z.avail_out;
                if (n > 0) {
                        int r = silo_blob_writer_write(w->blob, w->out, n, err);
                        if (r < 0)
                                return r;
                }
                if (flush == Z_FINISH ? zr == Z_STREAM_END : (w->z.avail_in == 0 && w->z.avail_out != 0))
                        return 0;
        }
}

static int writer_zstd(silo_layer_writer *w, const void *data, size_t len, ZSTD_EndDirective mode, silo_error *err)
{
        ZSTD_inBuffer in = { data, len, 0 };
        for (;;) {
                ZSTD_outBuffer out = { w->out, OUT_CHUNK, 0 };
                size_t left = ZSTD_compressStream2(w->zc, &out, &in, mode);
                if (ZSTD_isError(left))
                        return silo_error_msg(err, EIO, "zstd compression failed: %s", ZSTD_getErrorName(left));
                if (out.pos > 0) {
                        int r = silo_blob_writer_write(w->blob, w->out, out.pos, err);
                        if (r < 0)
                                return r;
                }
                if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size)
                        return 0;
        }
}

int silo_layer_writer_write(silo_layer_writer *w, const void *data, size_t len, silo_error *err)
{
        silo_sha256_update(w->h_diff, data, len);
        switch (w->comp) {
        case SILO_COMPRESSION_GZIP:
                return writer_deflate(w, data, len, Z_NO_FLUSH, err);
        case SILO_COMPRESSION_ZSTD:
                return writer_zstd(w, data, len, ZSTD_e_continue, err);
        case SILO_COMPRESSION_NONE:
        case SILO_COMPRESSION_AUTO:
        case _SILO_COMPRESSION_MAX:
        case _SILO_COMPRESSION_INVALID:
        default:
                return silo_blob_writer_write(w->blob, data, len, err);
        }
}

int silo_layer_writer_finish(silo_layer_writer *w, char ret_blob[SILO_DIGEST_SIZE],
                             char ret_diff[SILO_DIGEST_SIZE], uint64_t *ret_size, silo_error *err)
{
        int r = 0;
        if (w->comp == SILO_COMPRESSION_GZIP)
                r = writer_deflate(w, NULL, 0, Z_FINISH, err);
        else if (w->comp == SILO_COMPRESSION_ZSTD)
                r = writer_zstd(w, NULL, 0, ZSTD_e_end, err);
        if (r < 0)
                return r;
        if (ret_size)
                *ret_size = silo_blob_writer_size(w->blob);
        silo_sha256_final(w->h_diff, ret_diff);
        return silo_blob_writer_commit(w->blob, NULL, -1, ret_blob, err);
}

silo_layer_writer *silo_layer_writer_free(silo_layer_writer *w)
{
        if (!w)
                return NULL;
        if (w->z_init)
                deflateEnd(&w->z);
        if (w->zc)
                ZSTD_freeCStream(w->zc);
        silo_blob_writer_free(w->blob);
        silo_sha256_free(w->h_diff);
        free(w->out);
        free(w);
        return NULL;
}
