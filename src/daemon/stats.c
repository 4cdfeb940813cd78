/* GET /containers/{id}/stats: the runtime's cgroup statistics in Docker's
 * shape, one sample (stream=0) or one per second (stream=1). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "engine/engine.h"
#include "process/container.h"
#include "silod.h"
#include "util/cleanup.h"

/* Host CPU time in nanoseconds (what the CLI divides container time by). */
static uint64_t system_cpu_ns(void)
{
        _cleanup_fclose_ FILE *f = fopen("/proc/stat", "re");
        if (!f)
                return 0;
        unsigned long long v[8] = {};
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
                   &v[7]) < 4)
                return 0;
        unsigned long long sum = 0;
        for (int i = 0; i < 8; i++)
                sum += v[i];
        long tck = sysconf(_SC_CLK_TCK);
        return sum * (1000000000ULL / (unsigned long long) (tck > 0 ? tck : 100));
}

static json_t *cpu_stats(json_t *raw, uint64_t system)
{
        json_t *usage = json_object_get(json_object_get(raw, "cpu"), "usage");
        json_t *percpu = json_object_get(usage, "percpu");
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        return json_pack("{s:{s:I, s:O?, s:I, s:I}, s:I, s:i, s:{s:i, s:i, s:i}}", "cpu_usage", "total_usage",
                         json_integer_value(json_object_get(usage, "total")), "percpu_usage",
                         json_is_array(percpu) ? percpu : NULL, "usage_in_kernelmode",
                         json_integer_value(json_object_get(usage, "kernel")), "usage_in_usermode",
                         json_integer_value(json_object_get(usage, "user")), "system_cpu_usage",
                         (json_int_t) system, "online_cpus", (int) (n > 0 ? n : 1), "throttling_data", "periods", 0,
                         "throttled_periods", 0, "throttled_time", 0);
}

struct sample {
        json_t *raw;
        uint64_t system;
        int64_t at;
};

static int take_sample(struct silod *d, const char *id, struct sample *s, silo_error *err)
{
        struct silo_runtime rt = { .state_root = d->runtime_root };
        json_decref(s->raw);
        s->raw = NULL;
        int r = silo_container_stats(&rt, id, &s->raw, err);
        s->system = system_cpu_ns();
        s->at = silo_engine_now_ns();
        return r;
}

static json_t *docker_stats(const struct ctr *ct, const struct sample *cur, const struct sample *prev)
{
        char read[48], preread[48], name[160];
        silo_engine_format_time(cur->at, read);
        silo_engine_format_time(prev && prev->raw ? prev->at : 0, preread);
        snprintf(name, sizeof(name), "/%s", ct->name);
        json_t *mem = json_object_get(cur->raw, "memory");
        json_t *mu = json_object_get(mem, "usage");
        json_int_t limit = json_integer_value(json_object_get(mu, "limit"));
        struct sysinfo si;
        if (sysinfo(&si) == 0 && (limit <= 0 || (uint64_t) limit > (uint64_t) si.totalram * si.mem_unit))
                limit = (json_int_t) si.totalram * si.mem_unit;
        json_t *raw_mem = json_object_get(mem, "raw");
        return json_pack("{s:s, s:s, s:s, s:s, s:{s:I}, s:o, s:o, s:{s:I, s:I, s:I, s:O?}, s:{}, s:{}}", "read", read,
                         "preread", preread, "name", name, "id", ct->id, "pids_stats", "current",
                         json_integer_value(json_object_get(json_object_get(cur->raw, "pids"), "current")),
                         "cpu_stats", cpu_stats(cur->raw, cur->system), "precpu_stats",
                         prev && prev->raw ? cpu_stats(prev->raw, prev->system) : json_pack("{s:{}, s:{}}",
                                                                                            "cpu_usage",
                                                                                            "throttling_data"),
                         "memory_stats", "usage", json_integer_value(json_object_get(mu, "usage")), "max_usage",
                         json_integer_value(json_object_get(mu, "max")), "limit", limit, "stats",
                         json_is_object(raw_mem) ? raw_mem : NULL, "blkio_stats", "networks");
}

struct stats_stream {
        struct silod *d;
        struct ctr *ct;
        struct MHD_Connection *conn;
        struct sample prev, cur;
        bool first;
        char *pend;
        size_t pend_len, pend_off;
};

static void stats_stream_free(void *cls)
{
        struct stats_stream *s = cls;
        json_decref(s->prev.raw);
        json_decref(s->cur.raw);
        free(s->pend);
        ctr_unref(s->d, s->ct);
        free(s);
}

static ssize_t stats_read(void *cls, uint64_t pos, char *buf, size_t max)
{
        (void) pos;
        struct stats_stream *s = cls;
        if (s->pend && s->pend_off < s->pend_len) {
                size_t n = s->pend_len - s->pend_off < max ? s->pend_len - s->pend_off : max;
                memcpy(buf, s->pend + s->pend_off, n);
                s->pend_off += n;
                return (ssize_t) n;
        }
        if (!s->first && connection_gone(s->conn, 1000))
                return MHD_CONTENT_READER_END_WITH_ERROR;
        s->first = false;
        struct sample tmp = s->prev;
        s->prev = s->cur;
        s->cur = tmp;
        if (take_sample(s->d, s->ct->id, &s->cur, NULL) < 0)
                return MHD_CONTENT_READER_END_OF_STREAM;        /* stopped */
        json_t *doc = docker_stats(s->ct, &s->cur, &s->prev);
        free(s->pend);
        s->pend = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
        json_decref(doc);
        if (!s->pend)
                return MHD_CONTENT_READER_END_WITH_ERROR;
        s->pend_len = strlen(s->pend);
        s->pend[s->pend_len++] = '\n';  /* replaces the NUL: the length is what counts */
        s->pend_off = 0;
        return stats_read(cls, pos, buf, max);
}

enum MHD_Result handle_stats(struct silod *d, struct MHD_Connection *c, struct ctr *ct)
{
        const char *stream = query(c, "stream");
        bool streaming = !stream || query_bool(c, "stream");
        pthread_mutex_lock(&d->lock);
        ctr_refresh_locked(d, ct);
        bool running = ct->status == CTR_RUNNING;
        pthread_mutex_unlock(&d->lock);
        silo_error err = SILO_ERROR_INIT;
        if (!running) {
                /* Docker answers zeros for a stopped container. */
                struct sample none = { .at = silo_engine_now_ns() };
                none.raw = json_object();
                json_t *doc = docker_stats(ct, &none, NULL);
                json_decref(none.raw);
                return reply_json(c, 200, doc);
        }
        if (!streaming) {
                struct sample prev = {}, cur = {};
                int r = take_sample(d, ct->id, &prev, &err);
                /* Two samples, so the CLI can compute a CPU percentage. */
                if (r == 0 && !query_bool(c, "one-shot")) {
                        usleep(500000);
                        r = take_sample(d, ct->id, &cur, &err);
                }
                json_t *doc = r < 0 ? NULL : docker_stats(ct, cur.raw ? &cur : &prev, cur.raw ? &prev : NULL);
                json_decref(prev.raw);
                json_decref(cur.raw);
                if (r < 0)
                        return reply_errno(c, r, &err);
                return reply_json(c, 200, doc);
        }
        struct stats_stream *s = calloc(1, sizeof(*s));
        if (!s)
                return reply_error(c, 500, "out of memory");
        pthread_mutex_lock(&d->lock);
        ct->refs++;
        pthread_mutex_unlock(&d->lock);
        *s = (struct stats_stream) { .d = d, .ct = ct, .conn = c, .first = true };
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stats_read, s,
                                                                      stats_stream_free);
        if (!resp) {
                stats_stream_free(s);
                return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        add_common_headers(resp);
        enum MHD_Result r = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return r;
}
