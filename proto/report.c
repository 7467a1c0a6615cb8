/* report.c -- UDP counter reports. */
#include "report.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "net.h"

#define REPORT_HIST_CAP 1000 /* non-zero buckets per report; ~5 KiB at most */

int hb_reporter_init(hb_reporter *r, const char *monitor, Hb__Role role, const char *instance, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    r->fd = -1;
    r->role = role;
    r->boot_id = hb_seed();
    snprintf(r->instance, sizeof r->instance, "%s", instance);
    if (!monitor || !*monitor)
        return 0;
    struct sockaddr_in sa;
    if (hb_parse_hostport(monitor, &sa, err, errlen) < 0)
        return -1;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        snprintf(err, errlen, "monitor %s: %s", monitor, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    r->fd = fd;
    return 0;
}

void hb_report_put_hist(Hb__Report *rep, const hb_hist *h, uint32_t *idx, uint64_t *cnt, size_t cap)
{
    size_t n = 0;
    for (unsigned i = 0; h && i < HB_HIST_BUCKETS; i++) {
        if (!h->b[i])
            continue;
        if (n == cap) { /* fold the rest into the last kept bucket: rare, and errs high */
            cnt[n - 1] += h->b[i];
            idx[n - 1] = i;
            continue;
        }
        idx[n] = i;
        cnt[n] = h->b[i];
        n++;
    }
    rep->n_lat_index = n;
    rep->lat_index = idx;
    rep->n_lat_count = n;
    rep->lat_count = cnt;
}

void hb_report_get_hist(const Hb__Report *rep, hb_hist *h)
{
    size_t n = rep->n_lat_index < rep->n_lat_count ? rep->n_lat_index : rep->n_lat_count;
    for (size_t i = 0; i < n; i++)
        if (rep->lat_index[i] < HB_HIST_BUCKETS)
            hb_hist_record_n(h, hb_hist_high(rep->lat_index[i]), rep->lat_count[i]);
}

int hb_reporter_send(hb_reporter *r, Hb__Report *rep, int64_t second, const hb_hist *lat)
{
    if (r->fd < 0)
        return -1;
    static _Thread_local uint32_t idx[REPORT_HIST_CAP];
    static _Thread_local uint64_t cnt[REPORT_HIST_CAP];
    static _Thread_local uint8_t buf[HB_REPORT_MAX + HB_FRAME_PREFIX_MAX];
    rep->role = r->role;
    rep->instance = r->instance;
    rep->boot_id = r->boot_id;
    rep->second = second;
    rep->reports_dropped = HB_GET(r->dropped);
    hb_report_put_hist(rep, lat, idx, cnt, REPORT_HIST_CAP);
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_REPORT;
    f.report = rep;
    size_t n = hb_frame_pack(&f, buf, sizeof buf);
    if (n == 0 || send(r->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)n) {
        HB_INC(r->dropped);
        return -1;
    }
    HB_INC(r->sent);
    return 0;
}

void hb_reporter_close(hb_reporter *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
}
