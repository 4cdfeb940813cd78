/* silo images, pull, push, load, save, tag, rmi through silod.  Used when
 * the CLI talks to the daemon (see main.c for the rule); the same verbs on
 * the local store are in image.c and registry.c. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "util/cleanup.h"

/* Docker's JSON message stream (pull, push, load): one object per line. */
struct messages {
        char line[65536];
        size_t len;
        FILE *out;
        char error[SILO_ERROR_MAX];
};

static void message(struct messages *m)
{
        json_error_t je;
        _cleanup_json_ json_t *msg = json_loadb(m->line, m->len, 0, &je);
        if (!msg)
                return;
        const char *error = json_string_value(json_object_get(msg, "error"));
        if (error) {
                snprintf(m->error, sizeof(m->error), "%s", error);
                return;
        }
        if (!m->out)
                return;
        const char *stream = json_string_value(json_object_get(msg, "stream"));
        if (stream) {
                fputs(stream, m->out);
                fflush(m->out);
                return;
        }
        const char *status = json_string_value(json_object_get(msg, "status"));
        /* Progress bars repeat; their start and end lines carry the news. */
        if (!status || json_object_get(msg, "progress"))
                return;
        const char *id = json_string_value(json_object_get(msg, "id"));
        if (id)
                fprintf(m->out, "%s: %s\n", id, status);
        else
                fprintf(m->out, "%s\n", status);
        fflush(m->out);
}

static int messages_sink(void *userdata, const char *data, size_t len)
{
        struct messages *m = userdata;
        for (size_t i = 0; i < len; i++) {
                if (data[i] == '\n') {
                        message(m);
                        m->len = 0;
                } else if (m->len < sizeof(m->line))
                        m->line[m->len++] = data[i];
        }
        return 0;
}

static int messages_call(engine *e, engine_req *rq, FILE *out, silo_error *err)
{
        _cleanup_free_ struct messages *m = calloc(1, sizeof(*m));
        if (!m)
                return silo_error_set(err, ENOMEM, "%s", rq->path);
        m->out = out;
        rq->sink = messages_sink;
        rq->userdata = m;
        int r = engine_call(e, rq, NULL, NULL, err);
        if (r == 0 && m->len)
                message(m);
        if (r == 0 && m->error[0])
                r = silo_error_msg(err, EIO, "%s", m->error);
        return r;
}

/* "name:tag" -> name, tag (a colon after the last slash). */
static void split_ref(const char *ref, char **ret_name, char **ret_tag)
{
        const char *slash = strrchr(ref, '/');
        const char *at = strchr(ref, '@');
        const char *colon = at ? NULL : strrchr(slash ? slash : ref, ':');
        *ret_name = colon ? strndup(ref, (size_t) (colon - ref)) : strdup(ref);
        *ret_tag = colon ? strdup(colon + 1) : NULL;
}

int engine_pull(engine *e, const char *ref, FILE *out, silo_error *err)
{
        _cleanup_free_ char *name = NULL, *tag = NULL, *ename = NULL, *etag = NULL, *path = NULL;
        split_ref(ref, &name, &tag);
        ename = name ? engine_escape(name) : NULL;
        etag = engine_escape(tag ? tag : (strchr(ref, '@') ? "" : "latest"));
        if (!ename || !etag || asprintf(&path, "/images/create?fromImage=%s%s%s", ename, *etag ? "&tag=" : "", etag) < 0)
                return silo_error_set(err, ENOMEM, "pull");
        static const char *const auth[] = { "X-Registry-Auth: e30=", NULL };
        engine_req rq = { .method = "POST", .path = path, .upload_fd = -1, .headers = auth };
        return messages_call(e, &rq, out, err);
}

static int opt_quiet(int argc, char **argv, bool *quiet, const char **input, const char **output)
{
        static const struct option lo[] = {
                { "quiet", no_argument, NULL, 'q' }, { "input", required_argument, NULL, 'i' },
                { "output", required_argument, NULL, 'o' }, { "help", no_argument, NULL, 'h' },
                /* accepted for compatibility with the local verbs */
                { "all-tags", no_argument, NULL, 'a' }, {},
        };
        optind = 1;
        int c;
        while ((c = getopt_long(argc, argv, "+qhai:o:", lo, NULL)) != -1)
                switch (c) {
                case 'q': *quiet = true; break;
                case 'a': break;
                case 'i':
                        if (!input)
                                return cli_usage(argv[0]) ? -1 : -1;
                        *input = optarg;
                        break;
                case 'o':
                        if (!output)
                                return cli_usage(argv[0]) ? -1 : -1;
                        *output = optarg;
                        break;
                case 'h': engine_help(argv[0]); return -2;
                default: cli_usage(argv[0]); return -1;
                }
        return optind;
}

#define OPEN_ENGINE(i)                                                  \
        if ((i) == -2)                                                  \
                return 0;                                               \
        if ((i) < 0)                                                    \
                return CLI_EXIT_USAGE;                                  \
        engine e;                                                       \
        if (engine_open(ctx, &e))                                       \
                return 1;                                               \
        silo_error err = SILO_ERROR_INIT;                               \
        int ret = 0

static int cmd_pull(cli_ctx *ctx, int argc, char **argv)
{
        bool quiet = ctx->quiet;
        int i = opt_quiet(argc, argv, &quiet, NULL, NULL);
        if (i >= 0 && i != argc - 1)
                return cli_usage(argv[0]);
        OPEN_ENGINE(i);
        if (engine_pull(&e, argv[i], quiet ? NULL : stdout, &err) < 0)
                ret = cli_fail(&err);
        else if (quiet)
                printf("%s\n", argv[i]);
        engine_close(&e);
        return ret;
}

static int cmd_push(cli_ctx *ctx, int argc, char **argv)
{
        bool quiet = ctx->quiet;
        int i = opt_quiet(argc, argv, &quiet, NULL, NULL);
        if (i >= 0 && i != argc - 1)
                return cli_usage(argv[0]);
        OPEN_ENGINE(i);
        _cleanup_free_ char *name = NULL, *tag = NULL, *etag = NULL, *path = NULL;
        split_ref(argv[i], &name, &tag);
        etag = tag ? engine_escape(tag) : NULL;
        if (!name || asprintf(&path, "/images/%s/push%s%s", name, etag ? "?tag=" : "", etag ? etag : "") < 0) {
                engine_close(&e);
                return cli_failf("out of memory");
        }
        static const char *const auth[] = { "X-Registry-Auth: e30=", NULL };
        engine_req rq = { .method = "POST", .path = path, .upload_fd = -1, .headers = auth };
        if (messages_call(&e, &rq, quiet ? NULL : stdout, &err) < 0)
                ret = cli_fail(&err);
        engine_close(&e);
        return ret;
}

static int cmd_load(cli_ctx *ctx, int argc, char **argv)
{
        bool quiet = ctx->quiet;
        const char *input = NULL;
        int i = opt_quiet(argc, argv, &quiet, &input, NULL);
        if (i >= 0 && i == argc - 1 && !input)
                input = argv[i++];
        if (i >= 0 && i != argc)
                return cli_usage(argv[0]);
        _cleanup_close_ int fd = -1;
        if (i >= 0 && input && strcmp(input, "-")) {
                fd = open(input, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0)
                        return cli_failf("open %s: %s", input, strerror(errno));
        } else if (i >= 0 && isatty(STDIN_FILENO))
                return cli_failf("load: refusing to read an archive from a terminal (use -i FILE)");
        OPEN_ENGINE(i);
        engine_req rq = { .method = "POST", .path = quiet ? "/images/load?quiet=1" : "/images/load?quiet=0",
                          .upload_fd = fd >= 0 ? fd : STDIN_FILENO, .content_type = "application/x-tar" };
        /* Loaded image lines are the result: printed even with -q. */
        if (messages_call(&e, &rq, stdout, &err) < 0)
                ret = cli_fail(&err);
        engine_close(&e);
        return ret;
}

static int write_sink(void *userdata, const char *data, size_t len)
{
        int fd = *(int *) userdata;
        while (len > 0) {
                ssize_t n = write(fd, data, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return -EIO;
                data += n;
                len -= (size_t) n;
        }
        return 0;
}

static int cmd_save(cli_ctx *ctx, int argc, char **argv)
{
        bool quiet = false;
        const char *output = NULL;
        int i = opt_quiet(argc, argv, &quiet, NULL, &output);
        if (i >= 0 && i >= argc)
                return cli_usage(argv[0]);
        OPEN_ENGINE(i);
        size_t len = 64;
        for (int k = i; k < argc; k++)
                len += strlen(argv[k]) * 3 + 8;
        _cleanup_free_ char *path = calloc(1, len);
        if (!path) {
                engine_close(&e);
                return cli_failf("out of memory");
        }
        strcpy(path, "/images/get?");
        for (int k = i; k < argc; k++) {
                _cleanup_free_ char *n = engine_escape(argv[k]);
                if (!n)
                        break;
                if (k > i)
                        strcat(path, "&");
                strcat(path, "names=");
                strcat(path, n);
        }
        cli_output out;
        ret = cli_output_open(&out, output, "save", "an archive");
        if (ret) {
                engine_close(&e);
                return ret;
        }
        engine_req rq = { .method = "GET", .path = path, .upload_fd = -1, .sink = write_sink, .userdata = &out.fd };
        int r = engine_call(&e, &rq, NULL, NULL, &err);
        r = cli_output_finish(&out, r, &err);
        if (r < 0)
                ret = cli_fail(&err);
        engine_close(&e);
        return ret;
}

static int cmd_tag(cli_ctx *ctx, int argc, char **argv)
{
        bool quiet = false;
        int i = opt_quiet(argc, argv, &quiet, NULL, NULL);
        if (i >= 0 && i != argc - 2)
                return cli_usage(argv[0]);
        OPEN_ENGINE(i);
        _cleanup_free_ char *name = NULL, *tag = NULL, *ename = NULL, *etag = NULL, *path = NULL;
        split_ref(argv[i + 1], &name, &tag);
        ename = name ? engine_escape(name) : NULL;
        etag = engine_escape(tag ? tag : "latest");
        if (!ename || !etag || asprintf(&path, "/images/%s/tag?repo=%s&tag=%s", argv[i], ename, etag) < 0) {
                engine_close(&e);
                return cli_failf("out of memory");
        }
        engine_req rq = { .method = "POST", .path = path, .upload_fd = -1 };
        if (engine_call(&e, &rq, NULL, NULL, &err) < 0)
                ret = cli_fail(&err);
        engine_close(&e);
        return ret;
}

static int cmd_rmi(cli_ctx *ctx, int argc, char **argv)
{
        bool force = false;
        optind = 1;
        int c;
        static const struct option lo[] = { { "force", no_argument, NULL, 'f' }, { "help", no_argument, NULL, 'h' }, {} };
        while ((c = getopt_long(argc, argv, "+fh", lo, NULL)) != -1)
                switch (c) {
                case 'f': force = true; break;
                case 'h': return engine_help(argv[0]);
                default: return cli_usage(argv[0]);
                }
        int i = optind;
        if (i >= argc)
                return cli_usage(argv[0]);
        OPEN_ENGINE(i);
        for (; i < argc; i++) {
                _cleanup_free_ char *path = NULL;
                _cleanup_json_ json_t *ans = NULL;
                if (asprintf(&path, "/images/%s%s", argv[i], force ? "?force=1" : "") < 0) {
                        ret = cli_failf("out of memory");
                        break;
                }
                silo_error_clear(&err);
                if (engine_json(&e, "DELETE", path, NULL, &ans, &err) < 0) {
                        ret = cli_fail(&err);
                        continue;
                }
                size_t k;
                json_t *item;
                json_array_foreach(ans, k, item) {
                        const char *key;
                        json_t *v;
                        json_object_foreach(item, key, v)
                                printf("%s: %s\n", key, json_string_value(v) ? json_string_value(v) : "");
                }
        }
        engine_close(&e);
        return ret;
}

static int cmd_images(cli_ctx *ctx, int argc, char **argv)
{
        static const struct option lo[] = {
                { "quiet", no_argument, NULL, 'q' }, { "all", no_argument, NULL, 'a' },
                { "digests", no_argument, NULL, 'D' }, { "no-trunc", no_argument, NULL, 'N' },
                { "format", required_argument, NULL, 'f' }, { "help", no_argument, NULL, 'h' }, {},
        };
        bool quiet = false, all = false, digests = false, no_trunc = false;
        const char *format = NULL;
        optind = 1;
        int c;
        while ((c = getopt_long(argc, argv, "+qah", lo, NULL)) != -1)
                switch (c) {
                case 'q': quiet = true; break;
                case 'a': all = true; break;
                case 'D': digests = true; break;
                case 'N': no_trunc = true; break;
                case 'f': format = optarg; break;
                case 'h': return engine_help(argv[0]);
                default: return cli_usage(argv[0]);
                }
        if (optind < argc - 1)
                return cli_usage(argv[0]);
        const char *repo_filter = optind < argc ? argv[optind] : NULL;
        int i = optind;
        OPEN_ENGINE(i);
        _cleanup_json_ json_t *list = NULL, *rows = json_array();
        if (engine_json(&e, "GET", all ? "/images/json?all=1" : "/images/json", NULL, &list, &err) < 0) {
                engine_close(&e);
                return cli_fail(&err);
        }
        size_t k;
        json_t *img;
        json_array_foreach(list, k, img) {
                const char *id = json_string_value(json_object_get(img, "Id"));
                const char *hex = id && !strncmp(id, "sha256:", 7) ? id + 7 : id ? id : "";
                char idbuf[80], ago[64], created[64] = "", size[32];
                snprintf(idbuf, sizeof(idbuf), "%.*s", no_trunc ? 71 : 12, no_trunc ? (id ? id : "") : hex);
                time_t t = (time_t) json_integer_value(json_object_get(img, "Created"));
                struct tm tm;
                if (gmtime_r(&t, &tm))
                        strftime(created, sizeof(created), "%Y-%m-%d %H:%M:%S +0000 UTC", &tm);
                engine_human_duration(ago, (long long) (time(NULL) - t));
                strncat(ago, " ago", sizeof(ago) - strlen(ago) - 1);
                cli_format_size(size, (uint64_t) json_integer_value(json_object_get(img, "Size")));
                json_t *digs = json_object_get(img, "RepoDigests");
                const char *digest = json_string_value(json_array_get(digs, 0));
                const char *at = digest ? strchr(digest, '@') : NULL;
                json_t *tags = json_object_get(img, "RepoTags");
                size_t n = json_array_size(tags);
                for (size_t x = 0; x < (n ? n : 1); x++) {
                        const char *rt = n ? json_string_value(json_array_get(tags, x)) : "<none>:<none>";
                        _cleanup_free_ char *name = NULL, *tag = NULL;
                        split_ref(rt ? rt : "<none>:<none>", &name, &tag);
                        if (repo_filter && (!name || strcmp(name, repo_filter)))
                                continue;
                        json_array_append_new(rows, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "Repository",
                                                              name ? name : "<none>", "Tag", tag ? tag : "<none>",
                                                              "ID", idbuf, "CreatedSince", ago, "CreatedAt", created,
                                                              "Size", size, "Digest", at ? at + 1 : "<none>"));
                }
        }
        _cleanup_json_ json_t *headers = json_pack("{s:s, s:s}", "ID", "IMAGE ID", "CreatedSince", "CREATED");
        const char *deflt = quiet     ? "{{.ID}}"
                            : digests ? "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
                                      : "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
        ret = cli_print_objects(rows, quiet ? NULL : format, deflt, headers);
        engine_close(&e);
        return ret;
}

const cli_command cli_engine_image_commands[] = {
        { "images", cmd_images, "[-a] [-q] [--digests] [--no-trunc] [--format TEMPLATE] [REPOSITORY]", "list images" },
        { "image ls", cmd_images, "[-a] [-q] [--digests] [--no-trunc] [--format TEMPLATE] [REPOSITORY]", NULL },
        { "image list", cmd_images, "[-a] [-q] [--digests] [--no-trunc] [--format TEMPLATE] [REPOSITORY]", NULL },
        { "pull", cmd_pull, "[-q] IMAGE", "download an image from a registry" },
        { "image pull", cmd_pull, "[-q] IMAGE", NULL },
        { "push", cmd_push, "[-q] IMAGE", "upload an image to a registry" },
        { "image push", cmd_push, "[-q] IMAGE", NULL },
        { "load", cmd_load, "[-i FILE] [-q]", "load images from a docker or OCI archive" },
        { "image load", cmd_load, "[-i FILE] [-q]", NULL },
        { "save", cmd_save, "[-o FILE] IMAGE...", "write images to an archive" },
        { "image save", cmd_save, "[-o FILE] IMAGE...", NULL },
        { "tag", cmd_tag, "SOURCE TARGET", "give an image another name" },
        { "image tag", cmd_tag, "SOURCE TARGET", NULL },
        { "rmi", cmd_rmi, "[-f] IMAGE...", "remove images" },
        { "image rm", cmd_rmi, "[-f] IMAGE...", NULL },
        { "inspect", engine_inspect_any, "[-f TEMPLATE] [--type container|image] NAME...",
          "show containers or images as JSON" },
        { "image inspect", engine_inspect_any, "[-f TEMPLATE] NAME...", NULL },
        {}
};
