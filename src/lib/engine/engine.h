/* The engine's per-container side: what silod and the monitor process share.
 *
 * Every container has a directory (DIR below) owned by silod:
 *
 *   DIR/record.json      silod's record (config, host config, name), atomic rename
 *   DIR/bundle/          OCI bundle: config.json + mounted rootfs
 *   DIR/container.log    output frames (see below), appended by the monitor
 *   DIR/started.json     written by the monitor once the container runs
 *   DIR/exit.json        written by the monitor after the container exited and
 *                        the runtime state was deleted: the exit is final
 *
 * The monitor (the conmon role) is a small process of its own, detached
 * from silod: it creates and starts the container with its stdio on pipes,
 * appends what the container writes to the log, waits for the init and
 * records the exit code.  silod only reads these files, so containers keep
 * running (and their exits get recorded) while silod is down.
 *
 * Log frames extend the Docker stdcopy header with the time the monitor read
 * the data: byte 0 the stream (1 stdout, 2 stderr), byte 1 'T', bytes 4..7
 * the payload length big-endian, bytes 8..15 the wall-clock time in ns since
 * the epoch big-endian, then the payload.  Readers also accept the plain
 * 8-byte stdcopy header (byte 1 zero, no time) of logs written before. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>

#include <jansson.h>

#include "util/cleanup.h"
#include "util/error.h"

/* Closes and forgets an fd: silo_closep() now does exactly that. */
static inline void silo_close_reset(int *fd)
{
        silo_closep(fd);
}

#define SILO_ENGINE_RECORD "record.json"
#define SILO_ENGINE_BUNDLE "bundle"
#define SILO_ENGINE_LOG "container.log"
#define SILO_ENGINE_STARTED "started.json"
#define SILO_ENGINE_EXIT "exit.json"
#define SILO_ENGINE_PIDFILE "init.pid"
#define SILO_ENGINE_STDIN_SOCKET "attach.sock"  /* raw stdin bytes; EOF = client closed stdin */
#define SILO_ENGINE_CONTROL_SOCKET "control.sock" /* one command line per connection (resize) */
#define SILO_ENGINE_CONTROL_MAX 64              /* longest control message, newline included */

#define SILO_LOG_HEADER 8              /* stdcopy, as served to clients */
#define SILO_LOG_HEADER_TIMED 16       /* as stored: stdcopy + time */
#define SILO_LOG_FRAME_MAX (64u * 1024)

/* Fills the 8-byte stdcopy header of a frame: stream, three zero bytes, the
 * payload length big-endian. marker goes in byte 1 ('T' in stored, timed frames). */
static inline void silo_log_header(unsigned char hdr[SILO_LOG_HEADER], int stream, unsigned char marker,
                                   size_t len)
{
        hdr[0] = (unsigned char) stream;
        hdr[1] = marker;
        hdr[2] = hdr[3] = 0;
        hdr[4] = (unsigned char) (len >> 24);
        hdr[5] = (unsigned char) (len >> 16);
        hdr[6] = (unsigned char) (len >> 8);
        hdr[7] = (unsigned char) len;
}

struct silo_monitor_options {
        const char *id;                 /* runtime container id */
        const char *dir;                /* the container directory (absolute) */
        const char *runtime_root;       /* silo_runtime state root */
        int sync_fd;                    /* receives "O<pid>\n" or "E<message>\n", then closed */
        bool tty;                       /* process.terminal: output comes from a pty master */
        bool open_stdin;                /* DIR/attach.sock feeds the container's stdin */
        bool stdin_once;                /* close stdin when the first attached client ends it */
        void (*on_running)(void);       /* optional: called once the container runs, before output is pumped */
};

/* Runs in the detached monitor process: create, start, log, wait, delete,
 * record the exit.  Returns 0 once the exit is recorded, or a negative errno
 * if the container could not be started (reported on sync_fd as well). */
int silo_monitor_run(const struct silo_monitor_options *o, silo_error *err);

/* Asks the monitor of the container in dirfd to resize its terminal (the pty
 * master lives there).  -ESRCH if no monitor listens, -EINVAL with the
 * monitor's message if it refused (no terminal). */
int silo_engine_resize(int dirfd, unsigned rows, unsigned cols, silo_error *err);

/* ---- log files ---- */

/* Appends one frame (payload split at SILO_LOG_FRAME_MAX). */
int silo_log_append(int fd, int stream, const void *data, size_t len, silo_error *err);

/* Reads the frame at *offset if it is complete: stream and payload (malloc'd)
 * and advances *offset.  Returns 1 for a frame, 0 at the end (or a frame
 * still being written), negative errno on a corrupt header. */
/* The same with the frame's time (0 for a frame stored without one). */
int silo_log_read_frame_timed(int fd, uint64_t *offset, int *ret_stream, char **ret_data, size_t *ret_len,
                              int64_t *ret_time_ns, silo_error *err);
int silo_log_read_frame(int fd, uint64_t *offset, int *ret_stream, char **ret_data, size_t *ret_len,
                        silo_error *err);

/* ---- state files ---- */

int64_t silo_engine_now_ns(void);
/* RFC 3339 with nanoseconds in UTC; "0001-01-01T00:00:00Z" for 0. */
void silo_engine_format_time(int64_t ns, char buf[48]);

/* Writes a JSON document to dirfd/name with temp file, fsync and rename. */
int silo_engine_write_json_at(int dirfd, const char *name, json_t *doc, silo_error *err);
/* -ENOENT (without a message) if the file does not exist. */
int silo_engine_read_json_at(int dirfd, const char *name, json_t **ret, silo_error *err);

struct silo_engine_exit {
        int exit_code;
        int64_t finished_at;
        char error[SILO_ERROR_MAX];
};

struct silo_engine_started {
        pid_t pid;
        pid_t monitor_pid;
        int64_t started_at;
};

int silo_engine_exit_load(int dirfd, struct silo_engine_exit *ret, silo_error *err);
int silo_engine_started_load(int dirfd, struct silo_engine_started *ret, silo_error *err);
