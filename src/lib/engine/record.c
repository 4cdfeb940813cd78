/* State files of the engine: atomic JSON documents and timestamps. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "engine/engine.h"
#include "util/cleanup.h"
#include "util/fs.h"
#include "util/json.h"

#define ENGINE_JSON_MAX (4u << 20)

int64_t silo_engine_now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void silo_engine_format_time(int64_t ns, char buf[48])
{
        if (ns <= 0) {
                snprintf(buf, 48, "0001-01-01T00:00:00Z");
                return;
        }
        time_t sec = (time_t) (ns / 1000000000);
        struct tm tm;
        gmtime_r(&sec, &tm);
        char date[32];
        strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf, 48, "%s.%09lldZ", date, (long long) (ns % 1000000000));
}

int silo_engine_write_json_at(int dirfd, const char *name, json_t *doc, silo_error *err)
{
        _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT);
        if (!text)
                return silo_error_set(err, ENOMEM, "encode %s", name);
        return silo_write_file_atomic_at(dirfd, name, text, strlen(text), 0600, err);
}

int silo_engine_read_json_at(int dirfd, const char *name, json_t **ret, silo_error *err)
{
        if (faccessat(dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
                return -ENOENT;
        return silo_json_load_file_at(dirfd, name, ENGINE_JSON_MAX, ret, err);
}

int silo_engine_exit_load(int dirfd, struct silo_engine_exit *ret, silo_error *err)
{
        _cleanup_json_ json_t *doc = NULL;
        int r = silo_engine_read_json_at(dirfd, SILO_ENGINE_EXIT, &doc, err);
        if (r < 0)
                return r;
        const char *error = NULL;
        struct { int code; int64_t finished; } v = { 0, 0 };
        const struct silo_json_field fields[] = {
                { "ExitCode", SILO_JSON_INT, offsetof(typeof(v), code), SILO_JSON_REQUIRED },
                { "FinishedAt", SILO_JSON_INT64, offsetof(typeof(v), finished), 0 },
                {}
        };
        r = silo_json_dispatch(doc, SILO_ENGINE_EXIT, fields, &v, err);
        if (r < 0)
                return r;
        json_t *e = json_object_get(doc, "Error");
        if (json_is_string(e))
                error = json_string_value(e);
        *ret = (struct silo_engine_exit) { .exit_code = v.code, .finished_at = v.finished };
        snprintf(ret->error, sizeof(ret->error), "%s", error ? error : "");
        return 0;
}

int silo_engine_started_load(int dirfd, struct silo_engine_started *ret, silo_error *err)
{
        _cleanup_json_ json_t *doc = NULL;
        int r = silo_engine_read_json_at(dirfd, SILO_ENGINE_STARTED, &doc, err);
        if (r < 0)
                return r;
        struct { int pid, monitor; int64_t started; } v = { 0, 0, 0 };
        const struct silo_json_field fields[] = {
                { "Pid", SILO_JSON_INT, offsetof(typeof(v), pid), SILO_JSON_REQUIRED },
                { "MonitorPid", SILO_JSON_INT, offsetof(typeof(v), monitor), SILO_JSON_REQUIRED },
                { "StartedAt", SILO_JSON_INT64, offsetof(typeof(v), started), 0 },
                {}
        };
        r = silo_json_dispatch(doc, SILO_ENGINE_STARTED, fields, &v, err);
        if (r < 0)
                return r;
        *ret = (struct silo_engine_started) { .pid = v.pid, .monitor_pid = v.monitor, .started_at = v.started };
        return 0;
}
