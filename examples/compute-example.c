/* compute-example: the life of a compute system through libsilo's
 * HCS-style API (see docs/API.md).
 *
 *   compute-example LAYER_DIR SCRATCH_DIR
 *
 * LAYER_DIR is a root filesystem with /bin/sh and tr (a busybox tree will
 * do), used read-only; SCRATCH_DIR receives the writable layer.  Needs root.
 * SILO_COMPUTE_STATE, SILO_COMPUTE_CGROUP_PARENT and SILO_COMPUTE_INIT
 * override the context's defaults, as they do for `silo compute`. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "api/compute.h"

static int fail(const char *what, const silo_error *err)
{
        fprintf(stderr, "compute-example: %s: %s\n", what, err->message);
        return 1;
}

int main(int argc, char **argv)
{
        if (argc != 3) {
                fprintf(stderr, "usage: %s LAYER_DIR SCRATCH_DIR\n", argv[0]);
                return 2;
        }
        struct silo_compute_context ctx = {
                .state_root = getenv("SILO_COMPUTE_STATE"),
                .cgroup_parent = getenv("SILO_COMPUTE_CGROUP_PARENT"),
                .init_path = getenv("SILO_COMPUTE_INIT"),
        };
        silo_error err = SILO_ERROR_INIT;

        /* 1. A ComputeSystem document (schema 2): one read-only layer, a
         *    scratch directory, 128 MB and half a processor. */
        json_t *doc = json_pack("{s:s, s:{s:i, s:i}, s:{s:{s:s}, s:{s:[{s:s, s:s}], s:s}, s:{s:i}, s:{s:i}}}",
                                "Owner", "compute-example", "SchemaVersion", "Major", 2, "Minor", 1,
                                "Container", "GuestOs", "HostName", "example",
                                "Storage", "Layers", "Id", "base", "Path", argv[1], "Path", argv[2],
                                "Memory", "SizeInMB", 128, "Processor", "Maximum", 5000 / (int) sysconf(_SC_NPROCESSORS_ONLN));
        char *text = json_dumps(doc, 0);
        json_decref(doc);

        silo_compute_system *sys = NULL;
        int r = silo_compute_system_create(&ctx, "compute-example", text, &sys, &err);
        free(text);
        if (r < 0)
                return fail("create", &err);
        if (silo_compute_system_start(sys, &err) < 0)
                goto fail_system;

        /* 2. A process with stdin and stdout pipes. */
        silo_compute_process *proc = NULL;
        struct silo_compute_process_info info;
        r = silo_compute_process_create(sys,
                                        "{\"CommandArgs\": [\"tr\", \"a-z\", \"A-Z\"],"
                                        " \"CreateStdInPipe\": true, \"CreateStdOutPipe\": true}",
                                        &proc, &info, &err);
        if (r < 0)
                goto fail_system;
        printf("process %d started\n", (int) info.process_id);
        static const char msg[] = "hello from the host\n";
        if (write(info.std_input, msg, strlen(msg)) < 0)
                perror("write");
        /* Closing stdin is a request, as in HCS: the handle owns the fd. */
        silo_compute_process_modify(proc, "{\"Operation\": \"CloseHandle\", \"CloseHandle\": {\"Handle\": \"StdIn\"}}",
                                    &err);
        char buf[256];
        ssize_t n;
        while ((n = read(info.std_output, buf, sizeof(buf))) > 0)
                fwrite(buf, 1, (size_t) n, stdout);
        int code = -1;
        r = silo_compute_process_wait(proc, 5000, &code, &err);
        silo_compute_process_close(proc);
        if (r < 0)
                goto fail_system;
        printf("process exited with %d\n", code);

        /* 3. Properties, a limit change, and a graceful shutdown. */
        char *props = NULL;
        if (silo_compute_system_get_properties(sys, "{\"PropertyTypes\": [\"Statistics\", \"Memory\"]}", &props,
                                               &err) < 0)
                goto fail_system;
        printf("%s\n", props);
        free(props);
        if (silo_compute_system_modify(sys, "{\"ResourcePath\": \"Container/Memory/SizeInMB\","
                                            " \"RequestType\": \"Update\", \"Settings\": 256}", &err) < 0)
                goto fail_system;
        if (silo_compute_system_shutdown(sys, 5000, &err) < 0 && silo_compute_system_terminate(sys, &err) < 0)
                goto fail_system;
        if (silo_compute_system_wait(sys, 5000, &err) < 0)
                goto fail_system;
        silo_compute_system_close(sys);
        if (silo_compute_system_delete(&ctx, "compute-example", false, &err) < 0)
                return fail("delete", &err);
        printf("done\n");
        return code == 0 ? 0 : 1;

fail_system:
        fail(silo_compute_system_id(sys), &err);
        silo_compute_system_close(sys);
        silo_compute_system_delete(&ctx, "compute-example", true, NULL);
        return 1;
}
