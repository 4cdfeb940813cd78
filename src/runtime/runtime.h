/* silo-runtime: a runc-compatible command line over libsilo. */
#pragma once

#include <stdbool.h>

#include "process/container.h"
#include "util/error.h"

struct cli {
        struct silo_runtime rt;
        const char *log_path;
        bool log_json;
        bool debug;
        const char *command;
};

struct command {
        const char *name;
        int (*run)(struct cli *cli, int argc, char **argv);
        const char *usage;
        const char *summary;
};

/* Reports an error once: on stderr, and in the --log file if one was given.
 * Returns the exit code to use (1). */
int cli_fail(struct cli *cli, const silo_error *err);
int cli_usage_error(struct cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_warn(void *userdata, const char *message);

/* A boolean flag's value: "--flag" or "--flag=true|false|1|0" (as urfave/cli
 * accepts).  Returns -1 (after reporting) on anything else. */
int cli_bool(struct cli *cli, const char *flag, const char *arg);

/* Parses a signal as runc does: "KILL", "SIGKILL" or "9". -1 if unknown. */
int cli_parse_signal(const char *s);

int cmd_create(struct cli *cli, int argc, char **argv);
int cmd_start(struct cli *cli, int argc, char **argv);
int cmd_run(struct cli *cli, int argc, char **argv);
int cmd_delete(struct cli *cli, int argc, char **argv);
int cmd_kill(struct cli *cli, int argc, char **argv);
int cmd_pause(struct cli *cli, int argc, char **argv);
int cmd_resume(struct cli *cli, int argc, char **argv);
int cmd_state(struct cli *cli, int argc, char **argv);
int cmd_list(struct cli *cli, int argc, char **argv);
int cmd_ps(struct cli *cli, int argc, char **argv);
int cmd_events(struct cli *cli, int argc, char **argv);
int cmd_update(struct cli *cli, int argc, char **argv);
int cmd_exec(struct cli *cli, int argc, char **argv);
int cmd_spec(struct cli *cli, int argc, char **argv);
int cmd_features(struct cli *cli, int argc, char **argv);
