/* /_ping, /version, /info. */
#include <stdio.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "image/image.h"
#include "silo-config.h"
#include "silod.h"
#include "util/cleanup.h"

enum MHD_Result handle_ping(struct silod *d, struct MHD_Connection *c, bool head)
{
        (void) d;
        struct MHD_Response *resp = MHD_create_response_from_buffer(head ? 0 : 2, (void *) "OK",
                                                                    MHD_RESPMEM_PERSISTENT);
        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache, no-store, must-revalidate");
        MHD_add_response_header(resp, "Builder-Version", "1");
        add_common_headers(resp);
        enum MHD_Result r = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return r;
}

static const char *arch(void)
{
        struct utsname u;
        if (uname(&u) == 0 && strcmp(u.machine, "aarch64") == 0)
                return "arm64";
        return "amd64";
}

enum MHD_Result handle_version(struct silod *d, struct MHD_Connection *c)
{
        (void) d;
        struct utsname u;
        uname(&u);
        json_t *details = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ApiVersion",
                                    SILOD_API_VERSION, "MinAPIVersion", SILOD_API_MIN, "GitCommit", "silo",
                                    "GoVersion", "n/a (C)", "Os", "linux", "Arch", arch(), "KernelVersion",
                                    u.release, "BuildTime", "", "Experimental", "false");
        json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s}, s:[{s:s, s:s, s:o}]}",
                                "Version", SILO_VERSION, "ApiVersion", SILOD_API_VERSION, "MinAPIVersion",
                                SILOD_API_MIN, "GitCommit", "silo", "GoVersion", "n/a (C)", "Os", "linux", "Arch",
                                arch(), "KernelVersion", u.release, "BuildTime", "", "Platform", "Name",
                                "silo engine", "Components", "Name", "Engine", "Version", SILO_VERSION, "Details",
                                details);
        return reply_json(c, 200, doc);
}

enum MHD_Result handle_info(struct silod *d, struct MHD_Connection *c)
{
        unsigned total = 0, running = 0, stopped = 0;
        pthread_mutex_lock(&d->lock);
        for (struct ctr *ct = d->containers; ct; ct = ct->next) {
                ctr_refresh_locked(d, ct);
                total++;
                if (ct->status == CTR_RUNNING)
                        running++;
                else
                        stopped++;
        }
        pthread_mutex_unlock(&d->lock);

        size_t n_images = 0;
        silo_store *s = NULL;
        silo_error err = SILO_ERROR_INIT;
        if (open_store(d, &s, &err) == 0) {
                silo_image **v = NULL;
                if (silo_image_list(s, &v, &n_images, &err) == 0)
                        silo_image_list_free(v, n_images);
                silo_store_free(s);
        }
        struct utsname u;
        uname(&u);
        struct sysinfo si;
        sysinfo(&si);
        char host[256] = "silo";
        gethostname(host, sizeof(host) - 1);
        json_t *doc = json_pack(
                "{s:s, s:i, s:i, s:i, s:i, s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:s, s:s, s:s, s:s,"
                " s:s, s:o, s:[], s:[], s:{s:[], s:[], s:[]}, s:b, s:b, s:b, s:b, s:s, s:s}",
                "ID", "silo", "Containers", (int) total, "ContainersRunning", (int) running, "ContainersPaused", 0,
                "ContainersStopped", (int) stopped, "Images", (int) n_images, "Driver", "overlay", "DockerRootDir",
                d->root, "OperatingSystem", "silo", "OSType", "linux", "Architecture", u.machine, "KernelVersion",
                u.release, "Name", host, "NCPU", (int) sysconf(_SC_NPROCESSORS_ONLN), "MemTotal",
                (json_int_t) si.totalram * si.mem_unit, "ServerVersion", SILO_VERSION, "CgroupDriver", "cgroupfs",
                "CgroupVersion", access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0 ? "2" : "1", "LoggingDriver",
                "silo-log", "DefaultRuntime", "silo", "Runtimes", json_pack("{s:{s:s}}", "silo", "path", "libsilo"),
                "Warnings", "SecurityOptions", "Plugins", "Volume", "Network", "Log", "MemoryLimit", 1, "PidsLimit",
                1, "Debug", 0, "IPv4Forwarding", 0, "IndexServerAddress", "https://index.docker.io/v1/",
                "Isolation", "process");
        return reply_json(c, 200, doc);
}
