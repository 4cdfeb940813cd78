/* Times silo_net_attach + silo_net_detach in-process (no exec of the CLI):
 *   net_bench STATE_DIR PID ITERATIONS [PORT_SPEC...]
 * prints one line per cycle: "<attach µs> <detach µs>".  Run it inside a
 * network namespace that plays the host (bench/network.py does). */
#include <stdio.h>
#include <stdlib.h>
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
                char id[32];
                snprintf(id, sizeof(id), "bench%d", i);
                silo_net_attach_options a = { .container_id = id, .pid = atoi(argv[2]),
                                              .ports = ports, .n_ports = n_ports };
                double t0 = now_us();
                if (silo_net_attach(n, &a, NULL, &err) < 0) {
                        fprintf(stderr, "attach: %s\n", err.message);
                        return 1;
                }
                double t1 = now_us();
                if (silo_net_detach(n, id, &err) < 0) {
                        fprintf(stderr, "detach: %s\n", err.message);
                        return 1;
                }
                double t2 = now_us();
                printf("%.0f %.0f\n", t1 - t0, t2 - t1);
        }
        silo_net_free(n);
        return 0;
}
