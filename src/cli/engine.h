/* The silo CLI as a client of silod (the Docker Engine API over a unix
 * socket).  engine-client.c: HTTP through libcurl, hijacked connections
 * and the stdcopy demultiplexer; format.c: --format templates; engine*.c:
 * the verbs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "cli.h"
#include "util/error.h"

#define ENGINE_DEFAULT_HOST "unix:///run/silo/silod.sock"
#define ENGINE_API_PREFIX "/v1.43"
/* A buffered (non-streamed) answer larger than this is refused. */
#define ENGINE_BODY_MAX (64u << 20)

typedef struct engine {
        char *socket_path;
        void *curl;                     /* CURL *, reused between requests */
} engine;

/* The daemon's socket: --host, else $SILO_HOST, else $DOCKER_HOST, else the
 * default.  Only unix:// (or a bare absolute path) is accepted. */
int engine_resolve_host(const cli_ctx *ctx, char **ret_path, bool *ret_explicit, silo_error *err);

/* Prints the error and returns nonzero on failure. */
int engine_open(const cli_ctx *ctx, engine *e);
void engine_close(engine *e);
/* A second connection to the same daemon (for another thread). */
int engine_dup(const engine *e, engine *ret);

/* Called with each chunk of a streamed answer; return <0 to stop. */
typedef int (*engine_sink)(void *userdata, const char *data, size_t len);

typedef struct engine_req {
        const char *method;
        const char *path;               /* without the version prefix, with the query */
        const char *body;               /* JSON text, or NULL */
        int upload_fd;                  /* streamed request body (archives); -1 for none */
        const char *content_type;       /* of body/upload; default application/json */
        const char *const *headers;     /* extra "Name: value" lines, NULL-terminated */
        engine_sink sink;               /* 2xx answer body; NULL: buffered into *ret_body */
        void *userdata;
        void (*on_headers)(void *userdata);     /* once the answer's headers are in */
        const volatile int *cancel;     /* nonzero: abort the transfer (checked about every 100 ms) */
} engine_req;

/* Performs the request.  A status >= 400 becomes an error carrying the
 * daemon's message (ENOENT for 404, EEXIST for 409, EINVAL for 400,
 * EOPNOTSUPP for 501, EIO otherwise).  ret_body (may be NULL) gets the
 * buffered answer when no sink is given. */
int engine_call(engine *e, const engine_req *rq, long *ret_status, char **ret_body, silo_error *err);
/* Shorthand: method + path (+ JSON body), answer parsed as JSON if asked. */
int engine_json(engine *e, const char *method, const char *path, json_t *body, json_t **ret, silo_error *err);

/* A hijacked connection: the request is sent with "Upgrade: tcp"; after a
 * 101 (or 200) the socket carries the raw stream.  Bytes read past the
 * headers are kept in pending. */
typedef struct engine_conn {
        int fd;
        char *pending;
        size_t pending_len;
        char *headers;                  /* the answer's status line and headers */
} engine_conn;

/* A header of a hijacked answer (NULL if absent; points into c->headers). */
const char *engine_conn_header(const engine_conn *c, const char *name, size_t *ret_len);

int engine_hijack(engine *e, const char *path, const char *body, engine_conn *ret, silo_error *err);
void engine_conn_close(engine_conn *c);

/* Docker's stdcopy framing: 8-byte headers (stream, 0, 0, 0, big-endian
 * length), payload to stdout (1) or stderr (2; 3 = a daemon error). */
typedef struct stdcopy {
        unsigned char hdr[8];
        size_t hdr_len;
        size_t left;                    /* payload bytes left in the current frame */
        int stream;
        bool raw;                       /* TTY: no framing */
} stdcopy;

/* Writes what it can decode; <0 if an output cannot be written. */
int stdcopy_feed(stdcopy *s, const char *data, size_t len);
int engine_sink_stdcopy(void *userdata, const char *data, size_t len);

/* Interactive session over a hijacked connection: copies stdin to the
 * socket (if forward_stdin; EOF half-closes), demultiplexes the socket to
 * stdout/stderr until it ends.  With tty the local terminal is put in raw
 * mode (restored on every exit path) and SIGWINCH calls resize_path with
 * "?h=H&w=W" appended.  Without a tty, SIGINT/SIGTERM are passed on with
 * kill_path + "?signal=N" (NULL: not passed on). */
typedef struct engine_session {
        bool forward_stdin, tty;
        const char *resize_path;
        const char *kill_path;
} engine_session;

int engine_session_run(engine *e, engine_conn *conn, const engine_session *s, silo_error *err);

/* --format templates (format.c): a Go text/template subset.
 *   {{.Field}} {{.A.B}} {{json .X}} {{json .}} {{upper .X}} {{lower .X}}
 *   {{index .Map "key"}}, literal text, \t and \n escapes; a leading
 *   "table " prints a header row (the field names, or the names in
 *   `headers`) and aligns columns at tabs. */
typedef struct cli_template cli_template;
int cli_template_parse(const char *text, cli_template **ret, silo_error *err);
void cli_template_free(cli_template *t);
bool cli_template_is_table(const cli_template *t);
/* Renders one object into a malloc'd string (no trailing newline). */
int cli_template_render(const cli_template *t, json_t *obj, char **ret, silo_error *err);
/* The header row of a table template: each {{.Field}} replaced by
 * headers[Field] if given (a JSON object of strings), else by FIELD in
 * upper case. */
int cli_template_header(const cli_template *t, json_t *headers, char **ret, silo_error *err);

/* Aligned columns: rows of tab-separated cells, printed with 3 spaces of
 * padding (like Go's tabwriter as docker configures it). */
typedef struct cli_table cli_table;
cli_table *cli_table_new(void);
int cli_table_add(cli_table *t, const char *row);
void cli_table_print(cli_table *t, FILE *f);
void cli_table_free(cli_table *t);

/* Prints objects with a format (table or not); without a format, prints
 * `deflt` (a table template).  headers as for cli_template_header. */
int cli_print_objects(json_t *objects, const char *format, const char *deflt, json_t *headers);

/* Pulls through silod, printing progress lines to `out` (NULL: quiet). */
int engine_pull(engine *e, const char *ref, FILE *out, silo_error *err);

/* Verbs. */
extern const cli_command cli_engine_commands[];          /* daemon only */
extern const cli_command cli_engine_image_commands[];    /* shadow the local image verbs */
extern const cli_command cli_engine_compute_commands[];  /* silo -H HOST compute ... */
int engine_inspect_any(cli_ctx *ctx, int argc, char **argv);
int engine_cmd_run(cli_ctx *ctx, int argc, char **argv);         /* run and create */
int engine_cmd_exec(cli_ctx *ctx, int argc, char **argv);
int engine_cmd_attach(cli_ctx *ctx, int argc, char **argv);

/* Percent-encodes a query value or path segment (malloc'd; NULL on OOM). */
char *engine_escape(const char *s);
/* "5 seconds", "About a minute", ... as docker's units.HumanDuration. */
const char *engine_human_duration(char buf[64], long long seconds);
/* Prints a verb's usage for --help (stdout) and returns 0. */
int engine_help(const char *verb);
