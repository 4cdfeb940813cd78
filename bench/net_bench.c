/* Times silo_net_attach + silo_net_detach in-process (no exec of the CLI):
 *   net_bench STATE_DIR PID ITERATIONS [PORT_SPEC...]
 * prints one line per cycle: "<attach µs> <detach µs>".  With PID "netns"
 * it does what silod does per container instead: setup = a new namespace
 * bound to a file + attach, teardown = silo_net_release + unmount (the
 * kernel deletes the veth with the namespace, asynchronously).  Run it
 * inside a network namespace that plays the host (bench/network.py does). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/net.h"

static double now_us(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
        if (argc < 4) {
                fprintf(stderr, "usage: net_bench STATE_DIR PID ITERATIONS [PORT...]\n");
                return 2;
        }
        silo_error err = SILO_ERROR_INIT;
        silo_net_options o = { .state_dir = argv[1], .default_subnet = "10.211.9.0/24" };
        silo_net *n = NULL;
        if (silo_net_open(&o, &n, &err) < 0) {
                fprintf(stderr, "%s\n", err.message);
                return 1;
        }
        silo_net_port ports[16];
        size_t n_ports = 0;
        for (int i = 4; i < argc && n_ports < 16; i++)
                if (silo_net_port_parse(argv[i], &ports[n_ports++], &err) < 0) {
                        fprintf(stderr, "%s\n", err.message);
                        return 1;
                }
        int iterations = atoi(argv[3]);
        for (int i = 0; i < iterations; i++) {
                char id[32], ns[4096];
                snprintf(id, sizeof(id), "bench%d", i);
                bool own_ns = strcmp(argv[2], "netns") == 0;
                snprintf(ns, sizeof(ns), "%s/%s.netns", argv[1], id);
                silo_net_attach_options a = { .container_id = id, .pid = own_ns ? 0 : atoi(argv[2]),
                                              .netns_path = own_ns ? ns : NULL, .ports = ports, .n_ports = n_ports };
                double t0 = now_us();
                if ((own_ns && silo_net_netns_create(ns, &err) < 0) || silo_net_attach(n, &a, NULL, &err) < 0) {
                        fprintf(stderr, "attach: %s\n", err.message);
                        return 1;
                }
                double t1 = now_us();
                if (own_ns ? silo_net_release(n, id, &err) < 0 || silo_net_netns_remove(ns, &err) < 0
                           : silo_net_detach(n, id, &err) < 0) {
                        fprintf(stderr, "detach: %s\n", err.message);
                        return 1;
                }
                double t2 = now_us();
                printf("%.0f %.0f\n", t1 - t0, t2 - t1);
        }
        silo_net_free(n);
        return 0;
}
