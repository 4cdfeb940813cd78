/* Progress display for pull/push/load/save: per-item bars with bytes and
 * rate on a terminal, one plain line per state change otherwise. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define MAX_ITEMS 512
#define BAR_WIDTH 24

struct item {
        char id[80];
        char kind[16];
        silo_progress_phase phase;
        uint64_t current, total;
        double started;         /* seconds, when bytes began to flow */
        uint64_t start_bytes;
};

struct cli_progress {
        bool quiet;
        bool tty;
        struct item items[MAX_ITEMS];
        size_t n;
        size_t drawn;           /* lines currently on screen */
        double last_draw;
};

static double now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

cli_progress *cli_progress_new(bool quiet)
{
        cli_progress *p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        p->quiet = quiet;
        p->tty = isatty(STDERR_FILENO) && getenv("TERM") && strcmp(getenv("TERM"), "dumb") != 0;
        return p;
}

void cli_progress_free(cli_progress *p)
{
        free(p);
}

static const char *short_id(const char *id, char buf[80])
{
        if (silo_digest_valid(id))
                snprintf(buf, 80, "%.12s", silo_digest_hex(id));
        else {
                /* archive member paths: the interesting part is the end */
                size_t n = strlen(id);
                snprintf(buf, 80, "%s", n > 40 ? id + n - 40 : id);
        }
        return buf;
}

static struct item *find(cli_progress *p, const char *id)
{
        for (size_t i = 0; i < p->n; i++)
                if (!strcmp(p->items[i].id, id))
                        return &p->items[i];
        if (p->n == MAX_ITEMS)
                return NULL;
        struct item *it = &p->items[p->n++];
        memset(it, 0, sizeof(*it));
        snprintf(it->id, sizeof(it->id), "%s", id);
        it->phase = _SILO_PROGRESS_PHASE_INVALID;
        return it;
}

static void draw_line(const struct item *it, double t)
{
        char idbuf[80], cur[32], tot[32], rate[32] = "";
        fprintf(stderr, "\r\033[2K%-12s %-11s", short_id(it->id, idbuf), silo_progress_phase_name(it->phase));
        bool moving = it->phase == SILO_PROGRESS_DOWNLOADING || it->phase == SILO_PROGRESS_UPLOADING ||
                      it->phase == SILO_PROGRESS_COPYING || it->phase == SILO_PROGRESS_UNPACKING;
        if (!moving) {
                if (it->phase == SILO_PROGRESS_DONE && it->total)
                        fprintf(stderr, " %s", cli_format_size(tot, it->total));
                fputc('\n', stderr);
                return;
        }
        char bar[BAR_WIDTH + 1];
        size_t fill = it->total ? (size_t) ((double) it->current / (double) it->total * BAR_WIDTH) : 0;
        if (fill > BAR_WIDTH)
                fill = BAR_WIDTH;
        for (size_t i = 0; i < BAR_WIDTH; i++)
                bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
        bar[BAR_WIDTH] = '\0';
        double dt = t - it->started;
        if (dt > 0.2 && it->current > it->start_bytes) {
                char r[32];
                snprintf(rate, sizeof(rate), " %s/s", cli_format_size(r, (uint64_t) ((double) (it->current - it->start_bytes) / dt)));
        }
        fprintf(stderr, " [%s] %s/%s%s\n", bar, cli_format_size(cur, it->current),
                it->total ? cli_format_size(tot, it->total) : "?", rate);
}

static void redraw(cli_progress *p)
{
        double t = now();
        if (p->drawn)
                fprintf(stderr, "\033[%zuA", p->drawn);
        for (size_t i = 0; i < p->n; i++)
                draw_line(&p->items[i], t);
        p->drawn = p->n;
        fflush(stderr);
        p->last_draw = t;
}

void cli_progress_cb(void *userdata, const silo_progress_event *ev)
{
        cli_progress *p = userdata;
        if (!p || p->quiet || !ev->id)
                return;
        struct item *it = find(p, ev->id);
        if (!it)
                return;
        bool changed = it->phase != ev->phase;
        if (changed) {
                it->started = now();
                it->start_bytes = ev->current;
        }
        it->phase = ev->phase;
        it->current = ev->current;
        if (ev->total)
                it->total = ev->total;
        snprintf(it->kind, sizeof(it->kind), "%s", ev->kind ? ev->kind : "");

        if (p->tty) {
                if (changed || now() - p->last_draw > 0.1)
                        redraw(p);
                return;
        }
        if (!changed)
                return;
        char idbuf[80], size[32];
        const char *msg = ev->message;
        if (ev->phase == SILO_PROGRESS_RETRYING)
                fprintf(stderr, "%s %s: retrying: %s\n", it->kind, short_id(it->id, idbuf), msg ? msg : "");
        else if (ev->total && ev->phase != SILO_PROGRESS_WAITING)
                fprintf(stderr, "%s %s: %s (%s)\n", it->kind, short_id(it->id, idbuf),
                        silo_progress_phase_name(ev->phase), cli_format_size(size, ev->total));
        else
                fprintf(stderr, "%s %s: %s\n", it->kind, short_id(it->id, idbuf), silo_progress_phase_name(ev->phase));
}

void cli_progress_finish(cli_progress *p)
{
        if (p && p->tty && !p->quiet && p->n)
                redraw(p);
}
