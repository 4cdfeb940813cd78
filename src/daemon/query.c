/* GET /containers/json and /containers/{id}/json: list and inspect. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "silod.h"
#include "util/cleanup.h"
#include "util/json.h"

/* ---- list / inspect ---- */

const char *ctr_status_name(const struct ctr *ct)
{
        switch (ct->status) {
        case CTR_CREATED: return "created";
        case CTR_RUNNING: return ct->paused ? "paused" : "running";
        case CTR_EXITED: return ct->restart_at || ct->restart_in_flight ? "restarting" : "exited"; /* policy */
        }
        return "dead";
}

static void human_duration(int64_t secs, char *buf, size_t size)
{
        if (secs < 1)
                snprintf(buf, size, "Less than a second");
        else if (secs < 60)
                snprintf(buf, size, "%lld second%s", (long long) secs, secs == 1 ? "" : "s");
        else if (secs < 3600)
                snprintf(buf, size, "%lld minute%s", (long long) secs / 60, secs / 60 == 1 ? "" : "s");
        else if (secs < 48 * 3600)
                snprintf(buf, size, "%lld hours", (long long) secs / 3600);
        else
                snprintf(buf, size, "%lld days", (long long) secs / 86400);
}

static json_t *command_line(const struct ctr *ct)
{
        const char *path = json_string_value(json_object_get(ct->record, "Path"));
        size_t cap = 256, len = 0;
        char *s = calloc(1, cap);
        json_t *args = json_object_get(ct->record, "Args");
        for (size_t i = 0; s && i <= json_array_size(args); i++) {
                const char *a = i == 0 ? (path ? path : "") : json_string_value(json_array_get(args, i - 1));
                size_t n = a ? strlen(a) : 0;
                if (len + n + 2 > cap) {
                        cap = (len + n + 2) * 2;
                        char *ns = realloc(s, cap);
                        if (!ns) {
                                free(s);
                                return json_string("");
                        }
                        s = ns;
                }
                if (i)
                        s[len++] = ' ';
                memcpy(s + len, a ? a : "", n);
                len += n;
                s[len] = 0;
        }
        json_t *j = json_string(s ? s : "");
        free(s);
        return j;
}

static json_t *list_entry(const struct ctr *ct)
{
        char status[128], dur[64];
        int64_t now = silo_engine_now_ns();
        switch (ct->status) {
        case CTR_RUNNING:
                human_duration((now - ct->started_at) / 1000000000, dur, sizeof(dur));
                snprintf(status, sizeof(status), "Up %s%s", dur, ct->paused ? " (Paused)" : "");
                break;
        case CTR_EXITED:
                human_duration((now - ct->finished_at) / 1000000000, dur, sizeof(dur));
                snprintf(status, sizeof(status), "Exited (%d) %s ago", ct->exit_code, dur);
                break;
        case CTR_CREATED:
        default:
                snprintf(status, sizeof(status), "Created");
                break;
        }
        char name[160];
        snprintf(name, sizeof(name), "/%s", ct->name);
        json_t *labels = json_object_get(json_object_get(ct->record, "Config"), "Labels");
        return json_pack("{s:s, s:[s], s:O, s:O, s:o, s:I, s:s, s:s, s:[], s:o, s:{s:s}, s:{s:{}}, s:[]}", "Id",
                         ct->id, "Names", name, "Image", json_object_get(ct->record, "Image"), "ImageID",
                         json_object_get(ct->record, "ImageID"), "Command", command_line(ct), "Created",
                         (json_int_t) (ct->created / 1000000000), "State", ctr_status_name(ct), "Status", status,
                         "Ports", "Labels", json_is_object(labels) ? json_incref(labels) : json_object(), "HostConfig",
                         "NetworkMode", "none", "NetworkSettings", "Networks", "Mounts");
}

static bool filters_match(json_t *filters, const struct ctr *ct)
{
        if (!filters)
                return true;
        if (json_object_get(filters, "id")) {
                bool ok = false;
                const char *want;
                json_t *v;
                json_t *f = json_object_get(filters, "id");
                if (json_is_object(f)) {
                        json_object_foreach(f, want, v)
                                ok |= strncmp(ct->id, want, strlen(want)) == 0;
                }
                if (!ok)
                        return false;
        }
        return filter_passes(filters, "name", ct->name, FILTER_SUBSTRING) &&
               filter_passes(filters, "status", ctr_status_name(ct), FILTER_EXACT);
}

enum MHD_Result containers_list(struct silod *d, struct MHD_Connection *c)
{
        bool all = query_bool(c, "all");
        _cleanup_json_ json_t *filters = NULL;
        const char *ftext = query(c, "filters");
        if (ftext && *ftext) {
                silo_error err = SILO_ERROR_INIT;
                if (silo_json_load_buffer(ftext, strlen(ftext), "filters", &filters, &err) < 0 ||
                    !json_is_object(filters))
                        return reply_error(c, 400, "invalid filters: %s", err.message[0] ? err.message : ftext);
                if (json_object_get(filters, "status"))
                        all = true;
                /* As docker: an unknown status is an error, not an empty list. */
                static const char *const statuses[] = { "created", "restarting", "running", "removing",
                                                        "paused", "exited", "dead" };
                json_t *f = json_object_get(filters, "status"), *v;
                const char *want;
                size_t i;
                json_object_foreach(json_is_object(f) ? f : NULL, want, v) {
                        bool known = false;
                        for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
                                known |= strcmp(want, statuses[i]) == 0;
                        if (!known)
                                return reply_error(c, 400, "invalid filter 'status=%s'", want);
                }
                json_array_foreach(json_is_array(f) ? f : NULL, i, v) {
                        bool known = false;
                        want = json_string_value(v);
                        for (size_t j = 0; want && j < sizeof(statuses) / sizeof(statuses[0]); j++)
                                known |= strcmp(want, statuses[j]) == 0;
                        if (!known)
                                return reply_error(c, 400, "invalid filter 'status=%s'", want ? want : "?");
                }
        }
        json_t *out = json_array();
        pthread_mutex_lock(&d->lock);
        for (struct ctr *ct = d->containers; ct; ct = ct->next) {
                if (ct->starting && ct->status == CTR_CREATED && !json_object_get(ct->record, "Path"))
                        continue;       /* still being created */
                ctr_refresh_locked(d, ct);
                if ((!all && ct->status != CTR_RUNNING) || !filters_match(filters, ct))
                        continue;
                json_array_append_new(out, list_entry(ct));
        }
        pthread_mutex_unlock(&d->lock);
        networks_list_fill(d, out);
        return reply_json(c, 200, out);
}

enum MHD_Result container_inspect(struct silod *d, struct MHD_Connection *c, struct ctr *ct)
{
        pthread_mutex_lock(&d->lock);
        ctr_refresh_locked(d, ct);
        char created[48], started[48], finished[48], name[160];
        silo_engine_format_time(ct->created, created);
        silo_engine_format_time(ct->started_at, started);
        silo_engine_format_time(ct->finished_at, finished);
        snprintf(name, sizeof(name), "/%s", ct->name);
        json_t *state = json_pack("{s:s, s:b, s:b, s:b, s:b, s:b, s:b, s:i, s:i, s:s, s:s, s:s}", "Status",
                                  ctr_status_name(ct), "Running", ct->status == CTR_RUNNING, "Paused", ct->paused, "Restarting", ct->restart_at != 0 || ct->restart_in_flight,
                                  "OOMKilled", 0, "Dead", 0, "Removing", ct->removing, "Pid", (int) ct->pid,
                                  "ExitCode", ct->exit_code, "Error", ct->error, "StartedAt", started, "FinishedAt",
                                  finished);
        json_t *doc = json_pack("{s:s, s:s, s:O, s:O, s:o, s:O, s:s, s:i, s:s, s:s, s:s, s:s, s:O, s:O, s:[],"
                                " s:{s:s, s:{}}, s:{s:{}}}",
                                "Id", ct->id, "Created", created, "Path", json_object_get(ct->record, "Path"), "Args",
                                json_object_get(ct->record, "Args"), "State", state, "Image",
                                json_object_get(ct->record, "ImageID"), "Name", name, "RestartCount", 0, "Driver",
                                "overlay", "Platform", "linux", "LogPath", "", "ResolvConfPath", "", "Config",
                                json_object_get(ct->record, "Config"), "HostConfig",
                                json_object_get(ct->record, "HostConfig"), "Mounts", "GraphDriver", "Name",
                                "overlay", "Data", "NetworkSettings", "Networks");
        pthread_mutex_unlock(&d->lock);
        if (!doc)
                return reply_error(c, 500, "inspect: out of memory");
        char log[512];
        snprintf(log, sizeof(log), "%s/" SILO_ENGINE_LOG, ct->dir);
        json_object_set_new(doc, "LogPath", json_string(log));
        /* hostconfig.c's MountPoints and the restart policy's count. */
        json_object_set_new(doc, "RestartCount", json_integer(ct->restart_count));
        if (json_is_array(json_object_get(ct->record, "MountPoints")))
                json_object_set(doc, "Mounts", json_object_get(ct->record, "MountPoints"));
        networks_inspect_fill(d, ct, doc);
        return reply_json(c, 200, doc);
}
