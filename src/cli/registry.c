/* silo pull, push. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "registry/registry.h"
#include "util/cleanup.h"

enum {
        OPT_TLS_VERIFY = 0x100,
        OPT_CA_FILE,
        OPT_AUTHFILE,
        OPT_CREDS,
        OPT_INSECURE,
        OPT_PLATFORM,
        OPT_PARALLEL,
        OPT_RETRIES,
};

static const struct option registry_opts[] = {
        { "tls-verify", required_argument, NULL, OPT_TLS_VERIFY },
        { "ca-file", required_argument, NULL, OPT_CA_FILE },
        { "authfile", required_argument, NULL, OPT_AUTHFILE },
        { "creds", required_argument, NULL, OPT_CREDS },
        { "insecure", no_argument, NULL, OPT_INSECURE },
        { "platform", required_argument, NULL, OPT_PLATFORM },
        { "parallel", required_argument, NULL, OPT_PARALLEL },
        { "retries", required_argument, NULL, OPT_RETRIES },
        { "quiet", no_argument, NULL, 'q' },
        {}
};

/* Parses the shared options; returns the index of the first argument or -1. */
static int parse(cli_ctx *ctx, int argc, char **argv, silo_registry_options *o, char **creds, bool *quiet)
{
        silo_registry_options_init(o);
        cli_register_options(ctx, &o->reg);
        *quiet = ctx->quiet;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "q", registry_opts, NULL)) != -1)
                switch (c) {
                case OPT_TLS_VERIFY:
                        if (!strcmp(optarg, "true"))
                                o->tls_verify = true;
                        else if (!strcmp(optarg, "false"))
                                o->tls_verify = false;
                        else {
                                cli_failf("--tls-verify: expected true or false");
                                return -1;
                        }
                        break;
                case OPT_CA_FILE: o->ca_file = optarg; break;
                case OPT_AUTHFILE: o->authfile = optarg; break;
                case OPT_CREDS: {
                        /* user:password; kept out of the process title is up to the caller */
                        free(*creds);
                        *creds = strdup(optarg);
                        char *colon = *creds ? strchr(*creds, ':') : NULL;
                        if (!colon) {
                                cli_failf("--creds: expected USER:PASSWORD");
                                return -1;
                        }
                        *colon = '\0';
                        o->username = *creds;
                        o->password = colon + 1;
                        break;
                }
                case OPT_INSECURE: o->insecure = true; break;
                case OPT_PLATFORM: o->platform = optarg; break;
                case OPT_PARALLEL: o->parallel = (unsigned) strtoul(optarg, NULL, 10); break;
                case OPT_RETRIES: o->retries = (unsigned) strtoul(optarg, NULL, 10); break;
                case 'q': *quiet = true; break;
                default:
                        cli_usage(argv[0]);
                        return -1;
                }
        if (o->retries == 0)
                o->retries = 1;
        return optind;
}

static int cmd_pull(cli_ctx *ctx, int argc, char **argv)
{
        silo_registry_options o;
        _cleanup_free_ char *creds = NULL;
        bool quiet;
        int i = parse(ctx, argc, argv, &o, &creds, &quiet);
        if (i < 0)
                return CLI_EXIT_USAGE;
        if (i != argc - 1)
                return cli_usage(argv[0]);
        silo_store *s;
        if (cli_store(ctx, &s) < 0)
                return 1;
        cli_progress *p = cli_progress_new(quiet);
        silo_progress prog = SILO_PROGRESS_INIT(cli_progress_cb, p);
        o.progress = &prog;
        o.reg.progress = &prog;
        silo_error err = SILO_ERROR_INIT;
        char digest[SILO_DIGEST_SIZE];
        int r = silo_registry_pull(s, argv[i], &o, digest, &err);
        cli_progress_finish(p);
        cli_progress_free(p);
        if (r < 0)
                return cli_fail(&err);
        if (!quiet)
                fprintf(stderr, "Digest: %s\n", digest);
        _cleanup_image_ silo_image *img = NULL;
        if (silo_image_lookup(s, digest, &img, &err) < 0)
                return cli_fail(&err);
        printf("%s\n", img->id);
        return 0;
}

static int cmd_push(cli_ctx *ctx, int argc, char **argv)
{
        silo_registry_options o;
        _cleanup_free_ char *creds = NULL;
        bool quiet;
        int i = parse(ctx, argc, argv, &o, &creds, &quiet);
        if (i < 0)
                return CLI_EXIT_USAGE;
        if (i != argc - 1 && i != argc - 2)
                return cli_usage(argv[0]);
        silo_store *s;
        if (cli_store(ctx, &s) < 0)
                return 1;
        cli_progress *p = cli_progress_new(quiet);
        silo_progress prog = SILO_PROGRESS_INIT(cli_progress_cb, p);
        o.progress = &prog;
        silo_error err = SILO_ERROR_INIT;
        char digest[SILO_DIGEST_SIZE];
        int r = silo_registry_push(s, argv[i], i + 1 < argc ? argv[i + 1] : NULL, &o, digest, &err);
        cli_progress_finish(p);
        cli_progress_free(p);
        if (r < 0)
                return cli_fail(&err);
        printf("%s\n", digest);
        return 0;
}

#define REGISTRY_USAGE "[--tls-verify=false] [--ca-file PEM] [--authfile FILE] [--creds USER:PASS] [--insecure] [-q]"

const cli_command cli_registry_commands[] = {
        { "pull", cmd_pull, REGISTRY_USAGE " [--platform OS/ARCH] [--parallel N] [--retries N] REF",
          "download an image from a registry" },
        { "image pull", cmd_pull, REGISTRY_USAGE " [--platform OS/ARCH] [--parallel N] [--retries N] REF", NULL },
        { "push", cmd_push, REGISTRY_USAGE " [--retries N] IMAGE [DEST]", "upload an image to a registry" },
        { "image push", cmd_push, REGISTRY_USAGE " [--retries N] IMAGE [DEST]", NULL },
        {}
};
