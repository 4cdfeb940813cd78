/* silo rootfs create/mount/umount/rm/ls, commit, export, bundle. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "image/bundle.h"
#include "image/rootfs.h"
#include "util/cleanup.h"

static int cmd_create(cli_ctx *ctx, int argc, char **argv)
{
        if (argc != 3)
                return cli_usage(argv[0]);
        silo_store *s;
        if (cli_store(ctx, &s) < 0)
                return 1;
        silo_error err = SILO_ERROR_INIT;
        if (silo_rootfs_create(s, argv[1], argv[2], &err) < 0)
                return cli_fail(&err);
        printf("%s\n", argv[1]);
        return 0;
}

static int cmd_mount(cli_ctx *ctx, int argc, char **argv)
{
        if (argc != 2 && argc != 3)
                return cli_usage(argv[0]);
        silo_store *s;
        if (cli_store(ctx, &s) < 0)
                return 1;
        silo_error err = SILO_ERROR_INIT;
        _cleanup_free_ char *path = NULL;
        if (silo_rootfs_mount(s, argv[1], argc == 3 ? argv[2] : NULL, &path, &err) < 0)
                return cli_fail(&err);
        printf("%s\n", path);
        return 0;
}

static int cmd_umount(cli_ctx *ctx, int argc, char **argv)
{
        if (argc != 2)
                return cli_usage(argv[0]);
        silo_store *s;
        if (cli_store(ctx, &s) < 0)
                return 1;
        silo_error err = SILO_ERROR_INIT;
        if (silo_rootfs_unmount(s, argv[1], &err) < 0)
                return cli_fail(&err);
        return 0;
}

static int cmd_rm(cli_ctx *ctx, int argc, char **argv)
{
        if (argc < 2)
                return cli_usage(argv[0]);
        silo_store *s;
        if (cli_store(ctx, &s) < 0)
                return 1;
        int ret = 0;
        for (int i = 1; i < argc; i++) {
                silo_error err = SILO_ERROR_INIT;
                if (silo_rootfs_remove(s, argv[i], &err) < 0)
                        ret = cli_fail(&err);
        }
        return ret;
}

static int cmd_ls(cli_ctx *ctx, int argc, char **argv)
{
        if (argc != 1)
                return cli_usage(argv[0]);
        silo_store *s;
        if (cli_store(ctx, &s) < 0)
                return 1;
        silo_error err = SILO_ERROR_INIT;
        silo_rootfs_info **v = NULL;
        size_t n = 0;
        if (silo_rootfs_list(s, &v, &n, &err) < 0)
                return cli_fail(&err);
        printf("%-32s %-14s %-7s %s\n", "ID", "IMAGE", "LAYERS", "MOUNTPOINT");
        for (size_t i = 0; i < n; i++) {
                size_t layers = 0;
                while (v[i]->layers[layers])
                        layers++;
                bool mounted = silo_rootfs_is_mounted(s, v[i]->id);
                printf("%-32s %-14.12s %-7zu %s\n", v[i]->id, silo_digest_hex(v[i]->image), layers,
                       mounted ? v[i]->mountpoint : "-");
        }
        silo_rootfs_list_free(v, n);
        return 0;
}

static int cmd_commit(cli_ctx *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
                { "change", required_argument, NULL, 'c' },
                { "message", required_argument, NULL, 'm' },
                { "author", required_argument, NULL, 'a' },
                {}
        };
        silo_commit_info info = { .created_by = "silo commit" };
        _cleanup_json_ json_t *changes = json_object();
        silo_error err = SILO_ERROR_INIT;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "c:m:a:", opts, NULL)) != -1)
                switch (c) {
                case 'c':
                        if (cli_parse_change(optarg, changes, &err) < 0)
                                return cli_fail(&err);
                        break;
                case 'm': info.comment = optarg; break;
                case 'a': info.author = optarg; break;
                default: return cli_usage(argv[0]);
                }
        if (optind != argc - 1 && optind != argc - 2)
                return cli_usage(argv[0]);
        info.config_changes = json_object_size(changes) ? changes : NULL;
        silo_store *s;
        if (cli_store(ctx, &s) < 0)
                return 1;
        char digest[SILO_DIGEST_SIZE];
        if (silo_rootfs_commit(s, argv[optind], optind + 1 < argc ? argv[optind + 1] : NULL, &info, digest, &err) < 0)
                return cli_fail(&err);
        _cleanup_image_ silo_image *img = NULL;
        if (silo_image_lookup(s, digest, &img, &err) < 0)
                return cli_fail(&err);
        printf("%s\n", img->id);
        return 0;
}

static int cmd_export(cli_ctx *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
                { "output", required_argument, NULL, 'o' },
                { "image", no_argument, NULL, 'i' },
                {}
        };
        const char *output = NULL;
        bool image = false;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1)
                switch (c) {
                case 'o': output = optarg; break;
                case 'i': image = true; break;
                default: return cli_usage(argv[0]);
                }
        if (optind != argc - 1)
                return cli_usage(argv[0]);
        cli_output out;
        int r = cli_output_open(&out, output, "export", "a tarball");
        if (r)
                return r;
        silo_error err = SILO_ERROR_INIT;
        silo_store *s;
        if (cli_store(ctx, &s) < 0)
                return cli_output_finish(&out, -EIO, &err), 1;
        r = image ? silo_image_export(s, argv[optind], out.fd, &err) : silo_rootfs_export(s, argv[optind], out.fd, &err);
        r = cli_output_finish(&out, r, &err);
        if (r < 0)
                return cli_fail(&err);
        return 0;
}

static int cmd_bundle(cli_ctx *ctx, int argc, char **argv)
{
        static const struct option opts[] = {
                { "id", required_argument, NULL, 'i' },
                { "env", required_argument, NULL, 'e' },
                { "tty", no_argument, NULL, 't' },
                { "hostname", required_argument, NULL, 'h' },
                { "workdir", required_argument, NULL, 'w' },
                { "user", required_argument, NULL, 'u' },
                { "read-only", no_argument, NULL, 'r' },
                {}
        };
        silo_bundle_options o = {};
        _cleanup_free_ const char **env = calloc((size_t) argc + 1, sizeof(char *));
        size_t n_env = 0;
        if (!env)
                return cli_failf("out of memory");
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "+e:tu:w:", opts, NULL)) != -1)
                switch (c) {
                case 'i': o.id = optarg; break;
                case 'e': env[n_env++] = optarg; break;
                case 't': o.terminal = true; break;
                case 'h': o.hostname = optarg; break;
                case 'w': o.cwd = optarg; break;
                case 'u': o.user = optarg; break;
                case 'r': o.readonly = true; break;
                default: return cli_usage(argv[0]);
                }
        if (argc - optind < 2)
                return cli_usage(argv[0]);
        const char *image = argv[optind];
        const char *dir = argv[optind + 1];
        o.env = n_env ? env : NULL;
        if (argc - optind > 2)
                o.args = (const char *const *) argv + optind + 2;
        char idbuf[64];
        if (!o.id) {
                snprintf(idbuf, sizeof(idbuf), "bundle-%lld-%d", (long long) time(NULL), (int) getpid());
                o.id = idbuf;
        }
        silo_store *s;
        if (cli_store(ctx, &s) < 0)
                return 1;
        silo_error err = SILO_ERROR_INIT;
        if (silo_bundle_create(s, image, dir, &o, &err) < 0)
                return cli_fail(&err);
        printf("%s\n", o.id);
        return 0;
}

static int cmd_unbundle(cli_ctx *ctx, int argc, char **argv)
{
        if (argc != 3)
                return cli_usage(argv[0]);
        silo_store *s;
        if (cli_store(ctx, &s) < 0)
                return 1;
        silo_error err = SILO_ERROR_INIT;
        if (silo_bundle_remove(s, argv[1], argv[2], &err) < 0)
                return cli_fail(&err);
        return 0;
}

const cli_command cli_rootfs_commands[] = {
        { "rootfs create", cmd_create, "ID IMAGE", "create a container root filesystem (scratch layer) from an image" },
        { "rootfs mount", cmd_mount, "ID [TARGET]", "mount a container root filesystem (overlay) and print where" },
        { "rootfs umount", cmd_umount, "ID", "unmount a container root filesystem" },
        { "rootfs rm", cmd_rm, "ID...", "unmount and delete container root filesystems" },
        { "rootfs ls", cmd_ls, "", "list container root filesystems" },
        { "commit", cmd_commit, "[-c CHANGE]... [-m MSG] [-a AUTHOR] ID [NAME]", "make an image from a container's changes" },
        { "export", cmd_export, "[-o FILE] ID | --image IMAGE", "write a flat tarball of a root filesystem" },
        { "bundle", cmd_bundle, "[--id ID] [-e K=V]... [-t] [-u USER] [-w DIR] [--read-only] IMAGE DIR [CMD...]",
          "create an OCI bundle (config.json + mounted rootfs) for silo-runtime" },
        { "bundle rm", cmd_unbundle, "ID DIR", "unmount and remove a bundle's root filesystem" },
        {}
};
