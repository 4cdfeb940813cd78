/* silod's memory footprint: idle detection and trimming (trim.c). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Requests in flight and the time of the last activity, updated from
 * libmicrohttpd's threads (atomics, no lock). */
/* libmicrohttpd's connection threads: not glibc's 8 MiB, as hundreds of
 * connections can wait at once (docker run, wait, logs -f, attach); 1 MiB
 * leaves room for jansson's recursion at its depth limit. */
#define SILOD_THREAD_STACK ((size_t) 1 << 20)

/* Trim after this long without a request. */
#define SILOD_IDLE_TRIM_MS 5000

struct silod_idle {
        unsigned active;                /* requests begun and not yet ended */
        int64_t last_ns;                /* CLOCK_MONOTONIC of the last begin/end */
        bool trimmed;                   /* trimmed since the last activity */
};

void silod_idle_begin(struct silod_idle *idle);
void silod_idle_end(struct silod_idle *idle);

/* Trims once per idle period: when no request is in flight and none began or
 * ended for idle_ms.  Called now and then by the main thread. */
void silod_idle_tick(struct silod_idle *idle, int64_t idle_ms);

/* Gives free heap memory back and drops the clean pages of read-only file
 * mappings (code, constants) from the resident set. */
void silod_trim(void);
