/* Container log files: time-stamped stdcopy frames appended by the monitor. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "engine/engine.h"
#include "util/cleanup.h"

int silo_log_append(int fd, int stream, const void *data, size_t len, silo_error *err)
{
        const char *p = data;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t now = (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
        while (len > 0) {
                size_t n = len > SILO_LOG_FRAME_MAX ? SILO_LOG_FRAME_MAX : len;
                unsigned char hdr[SILO_LOG_HEADER_TIMED];
                silo_log_header(hdr, stream, 'T', n);
                for (int i = 0; i < 8; i++)
                        hdr[8 + i] = (unsigned char) (now >> (56 - 8 * i));
                struct iovec iov[2] = { { hdr, sizeof(hdr) }, { (void *) p, n } };
                /* One writev on an O_APPEND file: readers see whole frames or
                 * a short tail they treat as "not yet written". */
                ssize_t w = writev(fd, iov, 2);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return silo_error_set(err, errno, "write log");
                }
                if ((size_t) w != sizeof(hdr) + n)
                        return silo_error_msg(err, EIO, "write log: short write");
                p += n;
                len -= n;
        }
        return 0;
}

static int pread_full(int fd, void *buf, size_t len, uint64_t off, size_t *ret_got)
{
        size_t got = 0;
        while (got < len) {
                ssize_t r = pread(fd, (char *) buf + got, len - got, (off_t) (off + got));
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (r == 0)
                        break;
                got += (size_t) r;
        }
        *ret_got = got;
        return 0;
}

int silo_log_read_frame_timed(int fd, uint64_t *offset, int *ret_stream, char **ret_data, size_t *ret_len,
                              int64_t *ret_time_ns, silo_error *err)
{
        unsigned char hdr[SILO_LOG_HEADER_TIMED];
        size_t got;
        int r = pread_full(fd, hdr, SILO_LOG_HEADER, *offset, &got);
        if (r < 0)
                return silo_error_set(err, -r, "read log");
        if (got < SILO_LOG_HEADER)
                return 0;
        size_t len = (size_t) hdr[4] << 24 | (size_t) hdr[5] << 16 | (size_t) hdr[6] << 8 | hdr[7];
        if ((hdr[0] != 1 && hdr[0] != 2) || (hdr[1] != 0 && hdr[1] != 'T') || hdr[2] || hdr[3] ||
            len > SILO_LOG_FRAME_MAX)
                return silo_error_msg(err, EBADMSG, "log: corrupt frame header at offset %llu",
                                      (unsigned long long) *offset);
        size_t hdr_len = hdr[1] == 'T' ? SILO_LOG_HEADER_TIMED : SILO_LOG_HEADER;
        uint64_t time_ns = 0;
        if (hdr_len == SILO_LOG_HEADER_TIMED) {
                r = pread_full(fd, hdr + SILO_LOG_HEADER, SILO_LOG_HEADER_TIMED - SILO_LOG_HEADER,
                               *offset + SILO_LOG_HEADER, &got);
                if (r < 0)
                        return silo_error_set(err, -r, "read log");
                if (got < SILO_LOG_HEADER_TIMED - SILO_LOG_HEADER)
                        return 0;
                for (int i = 0; i < 8; i++)
                        time_ns = time_ns << 8 | hdr[8 + i];
        }
        _cleanup_free_ char *data = malloc(len ? len : 1);
        if (!data)
                return silo_error_set(err, ENOMEM, "read log");
        r = pread_full(fd, data, len, *offset + hdr_len, &got);
        if (r < 0)
                return silo_error_set(err, -r, "read log");
        if (got < len)
                return 0;
        *offset += hdr_len + len;
        *ret_stream = hdr[0];
        *ret_len = len;
        *ret_data = TAKE_PTR(data);
        if (ret_time_ns)
                *ret_time_ns = time_ns > INT64_MAX ? INT64_MAX : (int64_t) time_ns;
        return 1;
}

int silo_log_read_frame(int fd, uint64_t *offset, int *ret_stream, char **ret_data, size_t *ret_len,
                        silo_error *err)
{
        return silo_log_read_frame_timed(fd, offset, ret_stream, ret_data, ret_len, NULL, err);
}
