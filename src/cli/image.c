/* silo images, image inspect, history, tag, rmi, image prune, load, save, import. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "image/archive.h"
#include "image/image.h"
#include "image/reference.h"
#include "util/cleanup.h"
#include "util/fs.h"

/* ---- --change ---- */

static int change_value(const char *rest, json_t **ret, silo_error *err)
{
        while (isspace((unsigned char) *rest))
                rest++;
        if (*rest == '[') {
                json_error_t je;
                json_t *v = json_loads(rest, 0, &je);
                if (!v || !json_is_array(v)) {
                        json_decref(v);
                        return silo_error_msg(err, EINVAL, "--change: '%s' is not a JSON array of strings", rest);
                }
                for (size_t i = 0; i < json_array_size(v); i++)
                        if (!json_is_string(json_array_get(v, i))) {
                                json_decref(v);
                                return silo_error_msg(err, EINVAL, "--change: '%s' is not a JSON array of strings", rest);
                        }
                *ret = v;
                return 0;
        }
        /* Shell form, as in a Dockerfile. */
        *ret = json_pack("[s, s, s]", "/bin/sh", "-c", rest);
        return *ret ? 0 : silo_error_set(err, ENOMEM, "--change");
}

int cli_parse_change(const char *change, json_t *config, silo_error *err)
{
        char word[16];
        size_t n = 0;
        while (change[n] && !isspace((unsigned char) change[n]) && n < sizeof(word) - 1) {
                word[n] = (char) toupper((unsigned char) change[n]);
                n++;
        }
        word[n] = '\0';
        const char *rest = change + n;
        while (isspace((unsigned char) *rest))
                rest++;
        json_t *v = NULL;
        int r;

        if (!strcmp(word, "CMD") || !strcmp(word, "ENTRYPOINT")) {
                r = change_value(rest, &v, err);
                if (r < 0)
                        return r;
                json_object_set_new(config, !strcmp(word, "CMD") ? "Cmd" : "Entrypoint", v);
        } else if (!strcmp(word, "ENV")) {
                if (!strchr(rest, '='))
                        return silo_error_msg(err, EINVAL, "--change: ENV needs NAME=VALUE");
                json_t *env = json_object_get(config, "Env");
                if (!json_is_array(env)) {
                        env = json_array();
                        json_object_set_new(config, "Env", env);
                }
                json_array_append_new(env, json_string(rest));
        } else if (!strcmp(word, "WORKDIR") || !strcmp(word, "USER") || !strcmp(word, "STOPSIGNAL")) {
                if (!*rest)
                        return silo_error_msg(err, EINVAL, "--change: %s needs a value", word);
                json_object_set_new(config, !strcmp(word, "WORKDIR") ? "WorkingDir" :
                                            !strcmp(word, "USER") ? "User" : "StopSignal", json_string(rest));
        } else if (!strcmp(word, "LABEL")) {
                const char *eq = strchr(rest, '=');
                if (!eq || eq == rest)
                        return silo_error_msg(err, EINVAL, "--change: LABEL needs KEY=VALUE");
                json_t *labels = json_object_get(config, "Labels");
                if (!json_is_object(labels)) {
                        labels = json_object();
                        json_object_set_new(config, "Labels", labels);
                }
                _cleanup_free_ char *key = strndup(rest, (size_t) (eq - rest));
                json_object_set_new(labels, key, json_string(eq + 1));
        } else if (!strcmp(word, "EXPOSE") || !strcmp(word, "VOLUME")) {
                if (!*rest)
                        return silo_error_msg(err, EINVAL, "--change: %s needs a value", word);
                const char *key = !strcmp(word, "EXPOSE") ? "ExposedPorts" : "Volumes";
                json_t *o = json_object_get(config, key);
                if (!json_is_object(o)) {
                        o = json_object();
                        json_object_set_new(config, key, o);
                }
                char port[64];
                if (!strcmp(word, "EXPOSE") && !strchr(rest, '/')) {
                        snprintf(port, sizeof(port), "%s/tcp", rest);
                        rest = port;
                }
                json_object_set_new(o, rest, json_object());
        } else
                return silo_error_msg(err, EINVAL, "--change: unsupported instruction '%s' "
                                      "(CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL)", word);
        return 0;
}

/* ---- images ---- */

static void split_name(const char *name, char *repo, size_t rsize, char *tag, size_t tsize)
{
        const char *at = strchr(name, '@');
        if (at) {
                /* pulled by digest: no tag */
                snprintf(repo, rsize, "%.*s", (int) (at - name), name);
                snprintf(tag, tsize, "<none>");
                return;
        }
        const char *slash = strrchr(name, '/');
        const char *colon = strrchr(slash ? slash : name, ':');
        if (colon) {
                snprintf(repo, rsize, "%.*s", (int) (colon - name), name);
                snprintf(tag, tsize, "%s", colon + 1);
        } else {
                snprintf(repo, rsize, "%s", name);
                snprintf(tag, tsize, "<none>");
        }
}

static int cmd_images(cli_ctx *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
                { "quiet", no_argument, NULL, 'q' },
                { "digests", no_argument, NULL, 'd' },
                { "format", required_argument, NULL, 'f' },
                { "no-trunc", no_argument, NULL, 'n' },
                {}
        };
        bool quiet = false, digests = false, json = false, no_trunc = false;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "q", opts, NULL)) != -1)
                switch (c) {
                case 'q': quiet = true; break;
                case 'd': digests = true; break;
                case 'n': no_trunc = true; break;
                case 'f':
                        if (strcmp(optarg, "json") != 0)
                                return cli_failf("--format: only 'json' is supported");
                        json = true;
                        break;
                default: return cli_usage(argv[0]);
                }
        if (optind != argc)
                return cli_usage(argv[0]);

        silo_store *s;
        if (cli_store(ctx, &s) < 0)
                return 1;
        silo_error err = SILO_ERROR_INIT;
        silo_image **v = NULL;
        size_t n = 0;
        if (silo_image_list(s, &v, &n, &err) < 0)
                return cli_fail(&err);

        if (json) {
                json_t *arr = json_array();
                for (size_t i = 0; i < n; i++) {
                        json_t *names = json_array();
                        for (char **x = v[i]->names; x && *x; x++)
                                json_array_append_new(names, json_string(*x));
                        json_array_append_new(arr, json_pack("{s:s, s:s, s:o, s:s?, s:I, s:I}",
                                                             "Id", v[i]->id, "Digest", v[i]->digest, "Names", names,
                                                             "Created", v[i]->config->created,
                                                             "Size", (json_int_t) silo_image_size(s, v[i]),
                                                             "Layers", (json_int_t) v[i]->manifest->n_layers));
                }
                char *text = json_dumps(arr, JSON_INDENT(2));
                puts(text ? text : "[]");
                free(text);
                json_decref(arr);
                silo_image_list_free(v, n);
                return 0;
        }

        if (!quiet)
                printf(digests ? "%-40s %-16s %-73s %-14s %-16s %s\n" : "%-40s %-16s %s%-14s %-16s %s\n",
                       "REPOSITORY", "TAG", digests ? "DIGEST" : "", "IMAGE ID", "CREATED", "SIZE");
        for (size_t i = 0; i < n; i++) {
                silo_image *img = v[i];
                char id[80], size[32], ago[64];
                snprintf(id, sizeof(id), "%.*s", no_trunc ? 80 : 12, no_trunc ? img->id : silo_digest_hex(img->id));
                if (quiet) {
                        printf("%s\n", id);
                        continue;
                }
                cli_format_size(size, silo_image_size(s, img));
                cli_format_ago(ago, img->config->created);
                char *none[] = { (char *) "<none>:<none>", NULL };
                for (char **x = img->names && img->names[0] ? img->names : none; *x; x++) {
                        char repo[300], tag[200];
                        if (!strcmp(*x, "<none>:<none>")) {
                                snprintf(repo, sizeof(repo), "<none>");
                                snprintf(tag, sizeof(tag), "<none>");
                        } else
                                split_name(*x, repo, sizeof(repo), tag, sizeof(tag));
                        if (digests)
                                printf("%-40s %-16s %-73s %-14s %-16s %s\n", repo, tag, img->digest, id, ago, size);
                        else
                                printf("%-40s %-16s %-14s %-16s %s\n", repo, tag, id, ago, size);
                }
        }
        silo_image_list_free(v, n);
        return 0;
}

static int cmd_inspect(cli_ctx *ctx, int argc, char **argv)
{
        if (argc < 2 || argv[1][0] == '-')
                return cli_usage(argv[0]);
        silo_store *s;
        if (cli_store(ctx, &s) < 0)
                return 1;
        json_t *arr = json_array();
        int ret = 0;
        for (int i = 1; i < argc; i++) {
                silo_error err = SILO_ERROR_INIT;
                silo_image *img = NULL;
                json_t *doc = NULL;
                if (silo_image_lookup(s, argv[i], &img, &err) < 0 || silo_image_inspect_json(s, img, &doc, &err) < 0) {
                        ret = cli_fail(&err);
                } else
                        json_array_append_new(arr, doc);
                silo_image_free(img);
        }
        char *text = json_dumps(arr, JSON_INDENT(4));
        puts(text ? text : "[]");
        free(text);
        json_decref(arr);
        return ret;
}

static int cmd_history(cli_ctx *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
                { "no-trunc", no_argument, NULL, 'n' },
                { "quiet", no_argument, NULL, 'q' },
                {}
        };
        bool no_trunc = false, quiet = false;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "q", opts, NULL)) != -1)
                switch (c) {
                case 'n': no_trunc = true; break;
                case 'q': quiet = true; break;
                default: return cli_usage(argv[0]);
                }
        if (optind + 1 != argc)
                return cli_usage(argv[0]);
        silo_store *s;
        if (cli_store(ctx, &s) < 0)
                return 1;
        silo_error err = SILO_ERROR_INIT;
        _cleanup_image_ silo_image *img = NULL;
        if (silo_image_lookup(s, argv[optind], &img, &err) < 0)
                return cli_fail(&err);

        json_t *h = img->config->history;
        size_t n = json_is_array(h) ? json_array_size(h) : 0;
        /* History entries that are not empty_layer map to layers in order. */
        size_t layer = 0;
        size_t *layer_of = calloc(n + 1, sizeof(size_t));
        for (size_t i = 0; layer_of && i < n; i++) {
                json_t *empty = json_object_get(json_array_get(h, i), "empty_layer");
                layer_of[i] = json_is_true(empty) ? SIZE_MAX : layer++;
        }
        if (!quiet)
                printf("%-14s %-18s %-50s %-10s %s\n", "IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT");
        for (size_t k = n; k-- > 0; ) {
                json_t *e = json_array_get(h, k);
                const char *created = json_string_value(json_object_get(e, "created"));
                const char *by = json_string_value(json_object_get(e, "created_by"));
                const char *comment = json_string_value(json_object_get(e, "comment"));
                char ago[64], size[32] = "0B", id[16] = "<missing>";
                if (k == n - 1)
                        snprintf(id, sizeof(id), "%.12s", silo_digest_hex(img->id));
                size_t li = layer_of ? layer_of[k] : SIZE_MAX;
                if (li != SIZE_MAX && li < img->manifest->n_layers) {
                        uint64_t bytes = 0;
                        if (silo_store_layer_size(s, img->config->diff_ids[li], &bytes, NULL) < 0 || !bytes)
                                bytes = (uint64_t) img->manifest->layers[li].size;
                        cli_format_size(size, bytes);
                }
                if (quiet) {
                        printf("%s\n", id);
                        continue;
                }
                char byb[64];
                snprintf(byb, sizeof(byb), "%.*s", no_trunc ? 63 : 50, by ? by : "");
                printf("%-14s %-18s %-50s %-10s %s\n", id, cli_format_ago(ago, created),
                       no_trunc && by ? by : byb, size, comment ? comment : "");
        }
        free(layer_of);
        return 0;
}

static int cmd_tag(cli_ctx *ctx, int argc, char **argv)
{
        if (argc != 3)
                return cli_usage(argv[0]);
        silo_store *s;
        if (cli_store(ctx, &s) < 0)
                return 1;
        silo_error err = SILO_ERROR_INIT;
        if (silo_image_tag(s, argv[1], argv[2], &err) < 0)
                return cli_fail(&err);
        return 0;
}

static void print_gc(const char *what, const silo_gc_stats *st)
{
        char size[32];
        printf("%s %llu image(s), %llu blob(s), %llu layer(s); reclaimed %s\n", what,
               (unsigned long long) st->images, (unsigned long long) st->blobs, (unsigned long long) st->layers,
               cli_format_size(size, st->bytes));
}

static int cmd_rmi(cli_ctx *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
                { "force", no_argument, NULL, 'f' },
                {}
        };
        bool force = false;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "f", opts, NULL)) != -1)
                switch (c) {
                case 'f': force = true; break;
                default: return cli_usage(argv[0]);
                }
        if (optind >= argc)
                return cli_usage(argv[0]);
        silo_store *s;
        if (cli_store(ctx, &s) < 0)
                return 1;
        int ret = 0;
        for (int i = optind; i < argc; i++) {
                silo_error err = SILO_ERROR_INIT;
                silo_gc_stats st = {};
                if (silo_image_remove(s, argv[i], force, &st, &err) < 0) {
                        ret = cli_fail(&err);
                        continue;
                }
                if (st.images)
                        printf("Deleted: %s\n", argv[i]);
                else
                        printf("Untagged: %s\n", argv[i]);
        }
        return ret;
}

static int cmd_prune(cli_ctx *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
                { "all", no_argument, NULL, 'a' },
                { "force", no_argument, NULL, 'f' },
                {}
        };
        bool all = false;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "af", opts, NULL)) != -1)
                switch (c) {
                case 'a': all = true; break;
                case 'f': break;        /* there is no confirmation prompt to skip */
                default: return cli_usage(argv[0]);
                }
        if (optind != argc)
                return cli_usage(argv[0]);
        silo_store *s;
        if (cli_store(ctx, &s) < 0)
                return 1;
        silo_error err = SILO_ERROR_INIT;
        silo_gc_stats st = {};
        if (silo_image_prune(s, all, &st, &err) < 0)
                return cli_fail(&err);
        print_gc("Deleted", &st);
        return 0;
}

static int cmd_load(cli_ctx *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
                { "input", required_argument, NULL, 'i' },
                { "platform", required_argument, NULL, 'p' },
                { "name", required_argument, NULL, 'n' },
                { "quiet", no_argument, NULL, 'q' },
                {}
        };
        const char *input = NULL;
        silo_load_options o;
        silo_load_options_init(&o);
        bool quiet = ctx->quiet;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "i:q", opts, NULL)) != -1)
                switch (c) {
                case 'i': input = optarg; break;
                case 'p': o.platform = optarg; break;
                case 'n': o.name = optarg; break;
                case 'q': quiet = true; break;
                default: return cli_usage(argv[0]);
                }
        if (optind == argc - 1 && !input)
                input = argv[optind++];
        if (optind != argc)
                return cli_usage(argv[0]);

        _cleanup_close_ int fd = -1;
        bool is_dir = false;
        if (input && strcmp(input, "-") != 0) {
                fd = open(input, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0)
                        return cli_failf("open %s: %s", input, strerror(errno));
                struct stat st;
                is_dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
        } else if (isatty(STDIN_FILENO))
                return cli_failf("load: refusing to read an archive from a terminal (use -i FILE)");

        silo_store *s;
        if (cli_store(ctx, &s) < 0)
                return 1;
        cli_register_options(ctx, &o.reg);
        cli_progress *p = cli_progress_new(quiet);
        silo_progress prog = SILO_PROGRESS_INIT(cli_progress_cb, p);
        o.reg.progress = &prog;
        silo_error err = SILO_ERROR_INIT;
        _cleanup_strv_ char **loaded = NULL;
        int r = is_dir ? silo_archive_load_dir(s, fd, &o, &loaded, &err)
                       : silo_archive_load(s, fd >= 0 ? fd : STDIN_FILENO, &o, &loaded, &err);
        cli_progress_finish(p);
        cli_progress_free(p);
        if (r < 0)
                return cli_fail(&err);
        for (char **l = loaded; l && *l; l++)
                printf("Loaded image: %s\n", *l);
        return 0;
}

static int cmd_save(cli_ctx *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
                { "output", required_argument, NULL, 'o' },
                { "format", required_argument, NULL, 'f' },
                {}
        };
        const char *output = NULL, *format = NULL;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1)
                switch (c) {
                case 'o': output = optarg; break;
                case 'f': format = optarg; break;
                default: return cli_usage(argv[0]);
                }
        if (optind >= argc)
                return cli_usage(argv[0]);
        silo_error err = SILO_ERROR_INIT;
        silo_archive_format fmt;
        if (silo_archive_format_from_string(format, &fmt, &err) < 0)
                return cli_fail(&err);

        if (fmt == SILO_ARCHIVE_OCI_DIR) {
                if (!output || !strcmp(output, "-"))
                        return cli_failf("save: --format oci-dir needs -o DIRECTORY");
                /* A new directory: on failure it is removed, never left half-written. */
                if (mkdir(output, 0755) < 0)
                        return cli_failf("create %s: %s", output, strerror(errno));
                _cleanup_close_ int dfd = open(output, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                silo_store *s;
                if (dfd < 0 || cli_store(ctx, &s) < 0) {
                        rmdir(output);
                        return dfd < 0 ? cli_failf("open %s: %s", output, strerror(errno)) : 1;
                }
                if (silo_archive_save(s, (const char *const *) argv + optind, fmt, dfd, NULL, &err) < 0) {
                        (void) silo_rm_rf_at(AT_FDCWD, output, NULL);
                        return cli_fail(&err);
                }
                return 0;
        }
        cli_output out;
        int r = cli_output_open(&out, output, "save", "an archive");
        if (r)
                return r;
        silo_store *s;
        if (cli_store(ctx, &s) < 0)
                return cli_output_finish(&out, -EIO, &err), 1;
        r = silo_archive_save(s, (const char *const *) argv + optind, fmt, out.fd, NULL, &err);
        r = cli_output_finish(&out, r, &err);
        if (r < 0)
                return cli_fail(&err);
        return 0;
}

static int cmd_import(cli_ctx *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
                { "change", required_argument, NULL, 'c' },
                { "message", required_argument, NULL, 'm' },
                { "author", required_argument, NULL, 'a' },
                { "quiet", no_argument, NULL, 'q' },
                {}
        };
        silo_import_options o;
        silo_import_options_init(&o);
        _cleanup_json_ json_t *changes = json_object();
        silo_error err = SILO_ERROR_INIT;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "c:m:a:q", opts, NULL)) != -1)
                switch (c) {
                case 'c':
                        if (cli_parse_change(optarg, changes, &err) < 0)
                                return cli_fail(&err);
                        break;
                case 'm': o.info.comment = optarg; break;
                case 'a': o.info.author = optarg; break;
                case 'q': break;
                default: return cli_usage(argv[0]);
                }
        if (optind != argc - 1 && optind != argc - 2)
                return cli_usage(argv[0]);
        const char *src = argv[optind];
        o.name = optind + 1 < argc ? argv[optind + 1] : NULL;
        o.info.config_changes = json_object_size(changes) ? changes : NULL;

        silo_store *s;
        if (cli_store(ctx, &s) < 0)
                return 1;
        cli_register_options(ctx, &o.reg);
        char digest[SILO_DIGEST_SIZE];
        int r;
        struct stat st;
        if (strcmp(src, "-") != 0 && stat(src, &st) == 0 && S_ISDIR(st.st_mode)) {
                _cleanup_close_ int dfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd < 0)
                        return cli_failf("open %s: %s", src, strerror(errno));
                r = silo_image_import_dir(s, dfd, &o, digest, &err);
        } else {
                _cleanup_close_ int fd = -1;
                if (strcmp(src, "-") != 0) {
                        fd = open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                        if (fd < 0)
                                return cli_failf("open %s: %s", src, strerror(errno));
                } else if (isatty(STDIN_FILENO))
                        return cli_failf("import: refusing to read a tarball from a terminal");
                r = silo_image_import_fd(s, fd >= 0 ? fd : STDIN_FILENO, &o, digest, &err);
        }
        if (r < 0)
                return cli_fail(&err);
        _cleanup_image_ silo_image *img = NULL;
        if (silo_image_lookup(s, digest, &img, &err) < 0)
                return cli_fail(&err);
        printf("%s\n", img->id);
        return 0;
}

const cli_command cli_image_commands[] = {
        { "images", cmd_images, "[-q] [--digests] [--no-trunc] [--format json]", "list images" },
        { "image ls", cmd_images, "[-q] [--digests] [--no-trunc] [--format json]", NULL },
        { "image list", cmd_images, "[-q] [--digests] [--no-trunc] [--format json]", NULL },
        { "image inspect", cmd_inspect, "IMAGE...", "show an image's configuration as JSON" },
        { "inspect", cmd_inspect, "IMAGE...", NULL },
        { "history", cmd_history, "[--no-trunc] [-q] IMAGE", "show how an image was built" },
        { "image history", cmd_history, "[--no-trunc] [-q] IMAGE", NULL },
        { "tag", cmd_tag, "SOURCE TARGET", "give an image another name" },
        { "image tag", cmd_tag, "SOURCE TARGET", NULL },
        { "rmi", cmd_rmi, "[-f] IMAGE...", "remove images (and data nothing else uses)" },
        { "image rm", cmd_rmi, "[-f] IMAGE...", NULL },
        { "image prune", cmd_prune, "[-a]", "remove unnamed images (all unused with -a) and garbage" },
        { "load", cmd_load, "[-i FILE|DIR] [--platform OS/ARCH] [--name NAME] [-q]", "load images from a docker or OCI archive, or an OCI layout" },
        { "image load", cmd_load, "[-i FILE|DIR] [--platform OS/ARCH] [--name NAME] [-q]", NULL },
        { "save", cmd_save, "[-o FILE] [--format docker-archive|oci-archive|oci-dir] IMAGE...", "write images to an archive" },
        { "image save", cmd_save, "[-o FILE] [--format docker-archive|oci-archive|oci-dir] IMAGE...", NULL },
        { "import", cmd_import, "[-c CHANGE]... [-m MSG] FILE|DIR|- [NAME]", "make a one-layer image from a rootfs tarball or directory" },
        { "image import", cmd_import, "[-c CHANGE]... [-m MSG] FILE|DIR|- [NAME]", NULL },
        {}
};
