/* progress: the model-load report — terminal bar, log lines, systemd STATUS=. */
#include "server/progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "server/http.h"

#define LINE_EVERY_S 1.0 /* plain lines and STATUS=: at most this often */
#define BAR_WIDTH    24

/* "512 B", "1.5 KiB", … */
static void human_bytes(double b, char *buf, size_t cap)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) b /= 1024, u++;
    snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

size_t progress_format(const struct load_status *s, double elapsed, char *buf, size_t cap)
{
    char done[24], total[24], rate[24], eta[24] = "-";
    double r = elapsed > 0 ? (double)s->n_bytes / elapsed : 0;
    human_bytes((double)s->n_bytes, done, sizeof done);
    human_bytes((double)s->n_bytes_total, total, sizeof total);
    human_bytes(r, rate, sizeof rate);
    if (r > 0) snprintf(eta, sizeof eta, "%.0fs", (double)(s->n_bytes_total - s->n_bytes) / r);
    int n = snprintf(buf, cap, "%lld/%lld tensors, %s/%s, %s/s, ETA %s", (long long)s->n_tensors,
                     (long long)s->n_tensors_total, done, total, rate, eta);
    return n < 0 ? 0 : (size_t)n;
}

/* The last report of a stage: the mapping ("done") or a GPU backend's upload ("uploaded"). */
static int stage_end(const struct load_status *s)
{
    return strcmp(s->stage, "done") == 0 || strcmp(s->stage, "uploaded") == 0;
}

static void draw_bar(const struct load_status *s, const char *text)
{
    int done = stage_end(s); /* unused (MTP) tensors are never bound */
    double f = done || !s->n_bytes_total ? 1 : (double)s->n_bytes / (double)s->n_bytes_total;
    char bar[BAR_WIDTH + 1];
    int fill = (int)(f * BAR_WIDTH + 0.5);
    for (int i = 0; i < BAR_WIDTH; i++) bar[i] = i < fill ? '#' : '.';
    bar[BAR_WIDTH] = 0;
    fprintf(stderr, "\r%s [%s] %3.0f%% %s\033[K%s", strncmp(s->stage, "upload", 6) ? "loading" : "uploading",
            bar, f * 100, text, done ? "\n" : "");
}

static void report(void *arg, const struct load_status *s)
{
    struct progress *p = arg;
    double now = http_now(), elapsed = now - p->t0;
    int done = stage_end(s), upload = strncmp(s->stage, "upload", 6) == 0;
    char text[160];
    progress_format(s, elapsed, text, sizeof text);
    if (p->tty) draw_bar(s, text);
    notify_send(p->nt, "WATCHDOG=1"); /* loading is progress */
    if (!done && now - p->last_line < LINE_EVERY_S) return;
    p->last_line = now;
    notify_send(p->nt, upload ? "STATUS=Uploading weights: %s" : "STATUS=Loading model: %s", text);
    if (done) {
        char size[24];
        human_bytes((double)s->n_bytes_total, size, sizeof size);
        if (upload)
            log_msg(p->log, LOGL_INFO, "weights uploaded to the device: %lld tensors, %s, %.2fs "
                    "after the load began", (long long)s->n_tensors, size, elapsed);
        else
            log_msg(p->log, LOGL_INFO, "model mapped: %lld tensors, %s in %.2fs (no copy)",
                    (long long)s->n_tensors, size, elapsed);
    } else if (!p->tty)
        log_msg(p->log, LOGL_INFO, "%s: %s", upload ? "uploading" : "loading", text);
}

void progress_init(struct progress *p, struct log *log, struct notify *nt, int tty)
{
    *p = (struct progress){.log = log, .nt = nt, .tty = tty, .t0 = http_now()};
    p->cb = (struct load_progress){.fn = report, .arg = p};
}
