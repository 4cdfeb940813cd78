/* The silo command line front end: a thin layer over libsilo.  Each verb
 * group lives in its own file and registers rows in the command table
 * (main.c); later a daemon client can route the same rows over a socket. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "image/image.h"
#include "image/progress.h"
#include "storage/store.h"
#include "util/error.h"

typedef struct cli_ctx {
        const char *root;               /* --root, else $SILO_ROOT, else the default */
        bool quiet;                     /* --quiet: results only, no progress */
        silo_store *store;              /* opened on first use */
        const char *host;               /* -H/--host: silod's socket (engine.h) */
        bool local;                     /* --local: image verbs on the store, never silod */
} cli_ctx;

typedef int (*cli_fn)(cli_ctx *ctx, int argc, char **argv);

typedef struct cli_command {
        const char *name;               /* "images", "image ls", "rootfs mount" */
        cli_fn run;
        const char *usage;              /* arguments, after the name */
        const char *summary;
} cli_command;

#define CLI_EXIT_USAGE 2

/* Tables exported by the verb files. */
extern const cli_command cli_image_commands[];
extern const cli_command cli_rootfs_commands[];
extern const cli_command cli_registry_commands[];

/* Opens the store (once); prints the error and returns negative on failure. */
int cli_store(cli_ctx *ctx, silo_store **ret);

/* Prints "silo: <message>" and returns 1 (the exit status). */
int cli_fail(const silo_error *err);

/* An archive written to a file (-o PATH: a temporary file beside it, renamed
 * into place only when complete, so no half archive ever carries its name)
 * or to stdout (refused if that is a terminal). */
typedef struct cli_output {
        int fd;
        char *tmp;              /* NULL when writing to stdout */
        const char *path;
} cli_output;

/* Returns 0 or an exit code after reporting. `what` names the data for the
 * terminal refusal ("an archive", "a tarball"). */
int cli_output_open(cli_output *o, const char *path, const char *verb, const char *what);
/* Completes (fsync + rename) if r == 0, else removes the temporary file; returns r. */
int cli_output_finish(cli_output *o, int r, silo_error *err);
int cli_failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int cli_usage(const char *command);

/* ---- compute.c, shared by the local and the silod compute verbs ---- */
/* A document argument: inline JSON, "-" (stdin) or a file (at most 1 MiB). */
int cli_compute_read_doc(const char *arg, char **ret, silo_error *err);
struct cli_compute_opts {
        int timeout_ms;
        bool force, detach;
};
/* --timeout SEC, --force, --detach: the first operand's index; -1 for an
 * unknown option, -2 for --help, -3 for a bad --timeout (reported). */
int cli_compute_parse_opts(int argc, char **argv, struct cli_compute_opts *o);

/* Unpack limits from the environment (SILO_UNPACK_MAX_*), defaults otherwise. */
void cli_register_options(cli_ctx *ctx, silo_register_options *o);

/* Human-readable sizes and times. */
const char *cli_format_size(char buf[32], uint64_t bytes);
const char *cli_format_ago(char buf[64], const char *rfc3339);

/* Progress display: bars on a terminal, plain lines otherwise, nothing with --quiet. */
typedef struct cli_progress cli_progress;
cli_progress *cli_progress_new(bool quiet);
void cli_progress_free(cli_progress *p);
void cli_progress_cb(void *userdata, const silo_progress_event *ev);
/* Moves below the bars so that normal output can follow. */
void cli_progress_finish(cli_progress *p);

/* --change "CMD [...]" and friends, merged into a JSON "config" object. */
int cli_parse_change(const char *change, json_t *config, silo_error *err);
