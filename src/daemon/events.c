/* The event bus and GET /events.
 *
 * Events live in a bounded in-memory ring (SILOD_EVENTS_MAX, oldest
 * overwritten) under their own mutex, so emitters may hold d->lock (the lock
 * order is d->lock, then events_lock).  Every event gets a sequence number;
 * a streaming reader remembers the next number it wants and skips ahead if
 * the ring overtook it.  Nothing is persisted: a restarted silod starts with
 * an empty history, like dockerd. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "silod.h"
#include "util/cleanup.h"
#include "util/json.h"

#define EVENTS_FILTER_MAX 64            /* values per filter key */

/* Kept serialized: a jansson object of a dozen small strings costs several
 * KiB of heap, a compact line a few hundred bytes.  A filtered stream parses
 * the lines it scans; an unfiltered one sends them as they are.  Lines live
 * in the slots themselves (one allocation for the whole ring, outside the
 * heap: long-lived lines scattered among requests' short-lived allocations
 * would pin heap pages that malloc_trim could otherwise give back); only a
 * longer one (many labels) is allocated on its own. */
#define EVENT_INLINE 480

struct silod_event {
        uint64_t seq;
        int64_t time_ns;
        char *line;                     /* the message as sent, compact JSON without newline: */
        size_t len;                     /* slot->text, or allocated when longer */
        char text[EVENT_INLINE];
};

static void event_clear(struct silod_event *e)
{
        if (e->line != e->text)
                free(e->line);
        e->line = NULL;
}

static int64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void events_init(struct silod *d)
{
        pthread_mutex_init(&d->events_lock, NULL);
        pthread_cond_init(&d->events_cond, NULL);
        d->events = calloc(SILOD_EVENTS_MAX, sizeof(struct silod_event));
        d->events_next = 1;
}

void events_free(struct silod *d)
{
        if (d->events)
                for (size_t i = 0; i < SILOD_EVENTS_MAX; i++)
                        event_clear(&d->events[i]);
        free(d->events);
        d->events = NULL;
        pthread_mutex_destroy(&d->events_lock);
        pthread_cond_destroy(&d->events_cond);
}

void events_emit(struct silod *d, const char *type, const char *action, const char *id, json_t *attributes)
{
        if (!d->events || !type || !action) {
                json_decref(attributes);
                return;
        }
        int64_t t = now_ns();
        json_t *attrs = attributes ? attributes : json_object();
        /* Every string attribute: docker's Attributes is map[string]string. */
        json_t *msg = json_pack("{s:s, s:s, s:{s:s, s:o}, s:s, s:I, s:I}", "Type", type, "Action", action, "Actor",
                                "ID", id ? id : "", "Attributes", attrs, "scope", "local", "time",
                                (json_int_t) (t / 1000000000), "timeNano", (json_int_t) t);
        if (!msg)
                return;
        /* The pre-1.22 fields, still read by old clients (and `docker events`'s
         * default template for containers and images). */
        if (strcmp(type, "container") == 0 || strcmp(type, "image") == 0) {
                json_object_set_new(msg, "status", json_string(action));
                json_object_set_new(msg, "id", json_string(id ? id : ""));
                const char *from = json_string_value(json_object_get(attrs, "image"));
                if (from)
                        json_object_set_new(msg, "from", json_string(from));
        }
        pthread_mutex_lock(&d->events_lock);
        /* Stamped under the lock: times never go backwards along the ring,
         * which the since/until scan relies on. */
        t = now_ns();
        if (d->events_next > 1) {
                int64_t last = d->events[(d->events_next - 1) % SILOD_EVENTS_MAX].time_ns;
                if (t <= last)
                        t = last + 1;
        }
        json_object_set_new(msg, "time", json_integer((json_int_t) (t / 1000000000)));
        json_object_set_new(msg, "timeNano", json_integer((json_int_t) t));
        struct silod_event *e = &d->events[d->events_next % SILOD_EVENTS_MAX];
        event_clear(e);
        size_t need = json_dumpb(msg, NULL, 0, JSON_COMPACT);
        char *line = need == 0 ? NULL : need <= sizeof(e->text) ? e->text : malloc(need);
        if (line && json_dumpb(msg, line, need, JSON_COMPACT) != need) {
                if (line != e->text)
                        free(line);
                line = NULL;
        }
        json_decref(msg);
        if (!line) {
                e->seq = 0;
                pthread_mutex_unlock(&d->events_lock);
                return;
        }
        e->seq = d->events_next++;
        e->time_ns = t;
        e->line = line;
        e->len = need;
        pthread_cond_broadcast(&d->events_cond);
        pthread_mutex_unlock(&d->events_lock);
}

void events_container(struct silod *d, const struct ctr *ct, const char *action, json_t *attributes)
{
        json_t *attrs = attributes ? attributes : json_object();
        if (!attrs)
                return;
        json_t *labels = json_object_get(json_object_get(ct->record, "Config"), "Labels");
        const char *k;
        json_t *v;
        json_object_foreach(labels, k, v)
                if (json_is_string(v) && !json_object_get(attrs, k))
                        json_object_set(attrs, k, v);
        const char *image = json_string_value(json_object_get(ct->record, "Image"));
        if (image)
                json_object_set_new(attrs, "image", json_string(image));
        if (!json_object_get(attrs, "name"))     /* rename passes the new one */
                json_object_set_new(attrs, "name", json_string(ct->name));
        if (strcmp(action, "die") == 0 && !json_object_get(attrs, "exitCode")) {
                char code[16];
                snprintf(code, sizeof(code), "%d", ct->exit_code);
                json_object_set_new(attrs, "exitCode", json_string(code));
        }
        events_emit(d, "container", action, ct->id, attrs);
}

void events_exec_locked(struct silod *d, const char *container_id, const char *action, json_t *process,
                        const char *exec_id, int exit_code)
{
        json_t *attrs = json_pack("{s:s}", "execID", exec_id ? exec_id : "");
        if (!attrs)
                return;
        if (exit_code >= 0) {
                char code[16];
                snprintf(code, sizeof(code), "%d", exit_code);
                json_object_set_new(attrs, "exitCode", json_string(code));
        }
        /* docker: "exec_start: sh -c date" (exec_die has no command). */
        char text[512];
        size_t len = (size_t) snprintf(text, sizeof(text), "%s", action);
        json_t *args = strcmp(action, "exec_die") != 0 ? json_object_get(process, "args") : NULL;
        size_t i;
        json_t *a;
        json_array_foreach(args, i, a) {
                if (len >= sizeof(text) - 1)
                        break;
                len += (size_t) snprintf(text + len, sizeof(text) - len, "%s%s", i == 0 ? ": " : " ",
                                         json_string_value(a) ?: "");
        }
        struct ctr *ct = lookup_locked(d, container_id);
        if (ct && strcmp(ct->id, container_id) == 0)
                events_container(d, ct, text, attrs);
        else
                events_emit(d, "container", text, container_id, attrs);
}

void events_exec(struct silod *d, const char *container_id, const char *action, json_t *process,
                 const char *exec_id, int exit_code)
{
        pthread_mutex_lock(&d->lock);
        events_exec_locked(d, container_id, action, process, exec_id, exit_code);
        pthread_mutex_unlock(&d->lock);
}

void events_container_lock(struct silod *d, const struct ctr *ct, const char *action, json_t *attributes)
{
        pthread_mutex_lock(&d->lock);
        events_container(d, ct, action, attributes);
        pthread_mutex_unlock(&d->lock);
}

/* ---- GET /events ---- */

/* "1700000000", "1700000000.123456789" (what the CLI sends), or RFC 3339. */
static int parse_time(const char *s, int64_t *ret_ns)
{
        if (!s || !*s)
                return -EINVAL;
        char *end;
        errno = 0;
        long long sec = strtoll(s, &end, 10);
        if (end != s && errno == 0 && (*end == 0 || *end == '.')) {
                int64_t ns = 0;
                if (*end == '.') {
                        const char *f = end + 1;
                        int digits = 0;
                        for (; *f >= '0' && *f <= '9'; f++)
                                if (digits < 9) {
                                        ns = ns * 10 + (*f - '0');
                                        digits++;
                                }
                        if (*f || f == end + 1)
                                return -EINVAL;
                        for (; digits < 9; digits++)
                                ns *= 10;
                }
                if (sec < 0 || sec > 253402300799LL)
                        return -EINVAL;
                *ret_ns = (int64_t) sec * 1000000000 + ns;
                return 0;
        }
        struct tm tm = {};
        const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!rest)
                return -EINVAL;
        int64_t ns = 0;
        if (*rest == '.') {
                int digits = 0;
                for (rest++; *rest >= '0' && *rest <= '9'; rest++)
                        if (digits < 9) {
                                ns = ns * 10 + (*rest - '0');
                                digits++;
                        }
                for (; digits < 9; digits++)
                        ns *= 10;
        }
        long off = 0;
        if (*rest == '+' || *rest == '-') {
                int hh, mm;
                if (sscanf(rest + 1, "%2d:%2d", &hh, &mm) != 2)
                        return -EINVAL;
                off = (hh * 3600 + mm * 60) * (*rest == '-' ? -1 : 1);
        } else if (*rest != 'Z' && *rest != 0)
                return -EINVAL;
        *ret_ns = ((int64_t) timegm(&tm) - off) * 1000000000 + ns;
        return 0;
}

struct events_reader {
        struct silod *d;
        struct MHD_Connection *conn;
        json_t *filters;                /* key -> array of strings */
        uint64_t next;                  /* next sequence number wanted */
        int64_t since_ns, until_ns;     /* 0: unset */
        char *pending;                  /* rendered, not yet sent */
        size_t pending_len, pending_off;
};

/* Docker sends filters as {"key": ["v", ...]} (older clients: {"key": {"v": true}}). */
static int filters_parse(const char *text, json_t **ret, silo_error *err)
{
        _cleanup_json_ json_t *out = json_object();
        if (!out)
                return silo_error_set(err, ENOMEM, "filters");
        if (text && *text) {
                _cleanup_json_ json_t *in = NULL;
                if (silo_json_load_buffer(text, strlen(text), "filters", &in, err) < 0)
                        return -EINVAL;
                if (!json_is_object(in))
                        return silo_error_msg(err, EINVAL, "filters: expected a JSON object");
                const char *key;
                json_t *v;
                json_object_foreach(in, key, v) {
                        static const char *const known[] = { "type", "event", "container", "image", "label",
                                                             "volume", "network", "daemon", "scope", "config",
                                                             "node", "plugin", "secret", "service" };
                        bool ok = false;
                        for (size_t i = 0; i < ARRAY_SIZE(known); i++)
                                ok |= strcmp(key, known[i]) == 0;
                        if (!ok)
                                return silo_error_msg(err, EINVAL, "invalid filter '%s'", key);
                        json_t *vals = json_array();
                        if (!vals || json_object_set_new(out, key, vals) < 0)
                                return silo_error_set(err, ENOMEM, "filters");
                        size_t i;
                        json_t *x;
                        const char *name;
                        if (json_is_array(v)) {
                                json_array_foreach(v, i, x) {
                                        if (!json_is_string(x))
                                                return silo_error_msg(err, EINVAL, "filters.%s[%zu]: expected a string",
                                                                      key, i);
                                        if (json_array_size(vals) < EVENTS_FILTER_MAX)
                                                json_array_append(vals, x);
                                }
                        } else if (json_is_object(v)) {
                                json_object_foreach(v, name, x)
                                        if (json_is_true(x) && json_array_size(vals) < EVENTS_FILTER_MAX)
                                                json_array_append_new(vals, json_string(name));
                        } else
                                return silo_error_msg(err, EINVAL, "filters.%s: expected an array", key);
                }
        }
        *ret = TAKE_PTR(out);
        return 0;
}

static bool any_value(json_t *vals, bool (*match)(const char *want, void *userdata), void *userdata)
{
        size_t i;
        json_t *v;
        json_array_foreach(vals, i, v)
                if (match(json_string_value(v), userdata))
                        return true;
        return false;
}

static bool match_equal(const char *want, void *userdata)
{
        return strcmp(want, (const char *) userdata) == 0;
}

/* "exec_start: sh -c x" matches the filter "exec_start". */
static bool match_action(const char *want, void *userdata)
{
        const char *action = userdata;
        size_t n = strlen(want);
        return strncmp(action, want, n) == 0 && (action[n] == 0 || action[n] == ':');
}

struct actor {
        const char *type, *id;
        json_t *attrs;
};

/* Container filters match the ID, a unique-looking ID prefix, or the name. */
static bool match_container(const char *want, void *userdata)
{
        struct actor *a = userdata;
        const char *name = json_string_value(json_object_get(a->attrs, "name"));
        size_t n = strlen(want);
        return strcmp(want, a->id) == 0 || (name && strcmp(want, name) == 0) ||
               (n >= 1 && n < 64 && strncmp(want, a->id, n) == 0 && strcmp(a->type, "container") == 0);
}

/* "busybox" matches "busybox:latest", "docker.io/library/busybox:latest". */
static bool image_matches(const char *want, const char *have)
{
        if (!have || !*have)
                return false;
        if (strcmp(want, have) == 0)
                return true;
        _cleanup_free_ char *shown = image_display_name(have);
        if (!shown)
                return false;
        if (strcmp(want, shown) == 0)
                return true;
        size_t n = strlen(want);
        return strncmp(shown, want, n) == 0 && strcmp(shown + n, ":latest") == 0;
}

static bool match_image(const char *want, void *userdata)
{
        struct actor *a = userdata;
        if (strcmp(a->type, "image") == 0 &&
            (image_matches(want, a->id) || image_matches(want, json_string_value(json_object_get(a->attrs, "name")))))
                return true;
        return image_matches(want, json_string_value(json_object_get(a->attrs, "image")));
}

/* "key" (present) or "key=value". */
static bool match_label(const char *want, void *userdata)
{
        struct actor *a = userdata;
        const char *eq = strchr(want, '=');
        if (!eq)
                return json_object_get(a->attrs, want) != NULL;
        _cleanup_free_ char *key = strndup(want, (size_t) (eq - want));
        const char *v = key ? json_string_value(json_object_get(a->attrs, key)) : NULL;
        return v && strcmp(v, eq + 1) == 0;
}

static bool match_volume(const char *want, void *userdata)
{
        struct actor *a = userdata;
        return strcmp(a->type, "volume") == 0 && strcmp(want, a->id) == 0;
}

static bool event_matches(json_t *filters, json_t *msg)
{
        json_t *actor = json_object_get(msg, "Actor");
        struct actor a = {
                .type = json_string_value(json_object_get(msg, "Type")) ?: "",
                .id = json_string_value(json_object_get(actor, "ID")) ?: "",
                .attrs = json_object_get(actor, "Attributes"),
        };
        const char *action = json_string_value(json_object_get(msg, "Action")) ?: "";
        json_t *vals;
        if ((vals = json_object_get(filters, "type")) && json_array_size(vals) &&
            !any_value(vals, match_equal, (void *) a.type))
                return false;
        if ((vals = json_object_get(filters, "event")) && json_array_size(vals) &&
            !any_value(vals, match_action, (void *) action))
                return false;
        if ((vals = json_object_get(filters, "container")) && json_array_size(vals) &&
            !any_value(vals, match_container, &a))
                return false;
        if ((vals = json_object_get(filters, "image")) && json_array_size(vals) && !any_value(vals, match_image, &a))
                return false;
        if ((vals = json_object_get(filters, "label")) && json_array_size(vals)) {
                /* Every label filter must match (docker's semantics for labels). */
                size_t i;
                json_t *v;
                json_array_foreach(vals, i, v)
                        if (!match_label(json_string_value(v), &a))
                                return false;
        }
        if ((vals = json_object_get(filters, "volume")) && json_array_size(vals) && !any_value(vals, match_volume, &a))
                return false;
        if ((vals = json_object_get(filters, "scope")) && json_array_size(vals) &&
            !any_value(vals, match_equal, (void *) "local"))
                return false;
        /* Kinds silod has no events for yet: nothing matches. */
        static const char *const none[] = { "network", "daemon", "config", "node", "plugin", "secret", "service" };
        for (size_t i = 0; i < ARRAY_SIZE(none); i++)
                if ((vals = json_object_get(filters, none[i])) && json_array_size(vals))
                        return false;
        return true;
}

static bool append_pending(struct events_reader *r, const char *line, size_t n)
{
        char *nb = realloc(r->pending, r->pending_len + n + 1);
        if (!nb)
                return false;
        memcpy(nb + r->pending_len, line, n);
        nb[r->pending_len + n] = '\n';
        r->pending = nb;
        r->pending_len += n + 1;
        return true;
}

/* Collects matching events from the ring into r->pending (events_lock held).
 * Returns true once `until` has passed. */
static bool collect_locked(struct events_reader *r)
{
        struct silod *d = r->d;
        if (d->events_next > SILOD_EVENTS_MAX && r->next < d->events_next - SILOD_EVENTS_MAX)
                r->next = d->events_next - SILOD_EVENTS_MAX;    /* overtaken: those are gone */
        for (; r->next < d->events_next; r->next++) {
                struct silod_event *e = &d->events[r->next % SILOD_EVENTS_MAX];
                if (e->seq != r->next || !e->line)
                        continue;
                if (r->until_ns && e->time_ns > r->until_ns)
                        return true;
                if (r->since_ns && e->time_ns < r->since_ns)
                        continue;
                bool match = true;
                if (json_object_size(r->filters) > 0) {
                        _cleanup_json_ json_t *msg = json_loadb(e->line, e->len, 0, NULL);
                        match = msg && event_matches(r->filters, msg);
                }
                if (match && !append_pending(r, e->line, e->len))
                        break;
        }
        return r->until_ns && now_ns() > r->until_ns;
}

static bool daemon_stopping(struct silod *d)
{
        pthread_mutex_lock(&d->lock);
        bool s = d->stopping;
        pthread_mutex_unlock(&d->lock);
        return s;
}

static ssize_t events_read(void *cls, uint64_t pos, char *buf, size_t max)
{
        (void) pos;
        struct events_reader *r = cls;
        struct silod *d = r->d;
        while (r->pending_off == r->pending_len) {
                free(r->pending);
                r->pending = NULL;
                r->pending_len = r->pending_off = 0;
                pthread_mutex_lock(&d->events_lock);
                bool over = collect_locked(r);
                if (r->pending_len == 0 && !over) {
                        struct timespec ts;
                        clock_gettime(CLOCK_REALTIME, &ts);
                        ts.tv_nsec += 250 * 1000000;
                        if (ts.tv_nsec >= 1000000000) {
                                ts.tv_sec++;
                                ts.tv_nsec -= 1000000000;
                        }
                        pthread_cond_timedwait(&d->events_cond, &d->events_lock, &ts);
                        over = collect_locked(r);
                }
                pthread_mutex_unlock(&d->events_lock);
                if (r->pending_len > 0)
                        break;
                if (over)
                        return MHD_CONTENT_READER_END_OF_STREAM;
                if (daemon_stopping(d) || connection_gone(r->conn, 0))
                        return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        size_t n = r->pending_len - r->pending_off;
        if (n > max)
                n = max;
        memcpy(buf, r->pending + r->pending_off, n);
        r->pending_off += n;
        return (ssize_t) n;
}

static void events_reader_free(void *cls)
{
        struct events_reader *r = cls;
        json_decref(r->filters);
        free(r->pending);
        free(r);
}

enum MHD_Result handle_events(struct silod *d, struct MHD_Connection *c)
{
        silo_error err = SILO_ERROR_INIT;
        _cleanup_json_ json_t *filters = NULL;
        if (filters_parse(query(c, "filters"), &filters, &err) < 0)
                return reply_error(c, 400, "%s", err.message);
        int64_t since = 0, until = 0;
        const char *s = query(c, "since"), *u = query(c, "until");
        if (s && *s && parse_time(s, &since) < 0)
                return reply_error(c, 400, "since: invalid timestamp '%s'", s);
        if (u && *u && parse_time(u, &until) < 0)
                return reply_error(c, 400, "until: invalid timestamp '%s'", u);
        if (since && until && until < since)
                return reply_error(c, 400, "until (%s) is before since (%s)", u, s);

        struct events_reader *r = calloc(1, sizeof(*r));
        if (!r)
                return reply_error(c, 500, "out of memory");
        *r = (struct events_reader) { .d = d, .conn = c, .filters = TAKE_PTR(filters), .since_ns = since,
                                      .until_ns = until };
        /* Without since, only what happens from now on (docker's behaviour). */
        pthread_mutex_lock(&d->events_lock);
        r->next = since ? 1 : d->events_next;
        pthread_mutex_unlock(&d->events_lock);
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, events_read, r,
                                                                      events_reader_free);
        if (!resp) {
                events_reader_free(r);
                return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        add_common_headers(resp);
        enum MHD_Result ret = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return ret;
}
