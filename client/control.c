/* control.c -- HTTP control through libmicrohttpd (its own thread).  It only
 * reads the figures (stats.c) and queues rate changes (client.c); both take
 * their own locks, so nothing here blocks a worker for long. */
#include "control.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "net.h"
#include "stats.h"

/* A unix second far enough ahead for any use, small enough that at * 1e6
 * cannot overflow. */
#define CL_AT_MAX 4102444800LL /* 2100-01-01 */

static struct MHD_Daemon *daemon_;
static cl_client *ctl;

typedef struct body {
    char buf[512];
    size_t len;
} body;

static enum MHD_Result reply(struct MHD_Connection *con, unsigned status, const char *json)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(json), (void *)json, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(con, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* A number named `key` in a query argument or in a small JSON body. */
static bool find_num(struct MHD_Connection *con, const body *b, const char *key, long long *out)
{
    const char *v = MHD_lookup_connection_value(con, MHD_GET_ARGUMENT_KIND, key);
    if (!v)
        v = MHD_lookup_connection_value(con, MHD_POSTDATA_KIND, key);
    char *end;
    if (v) {
        *out = strtoll(v, &end, 10);
        return end != v && *end == 0;
    }
    if (!b)
        return false;
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(b->buf, pat);
    if (!p)
        return false;
    p += strlen(pat);
    while (*p == ' ' || *p == ':' || *p == '\t')
        p++;
    *out = strtoll(p, &end, 10);
    return end != p;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *con, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **state)
{
    (void)cls;
    (void)version;
    bool post = !strcmp(method, "POST");
    if (post) { /* gather the (small) body first */
        if (!*state) {
            *state = calloc(1, sizeof(body));
            return *state ? MHD_YES : MHD_NO;
        }
        body *b = *state;
        if (*upload_size) {
            size_t n = *upload_size;
            if (b->len + n >= sizeof b->buf)
                n = sizeof b->buf - 1 - b->len;
            memcpy(b->buf + b->len, upload, n);
            b->len += n;
            *upload_size = 0;
            return MHD_YES;
        }
    }
    body *b = *state;
    char out[4096];
    if (!strcmp(method, "GET") && !strcmp(url, "/stats")) {
        cl_stats_json(ctl, out, sizeof out);
        return reply(con, MHD_HTTP_OK, out);
    }
    if (post && !strcmp(url, "/qps")) {
        long long qps, at = 0;
        if (!find_num(con, b, "qps", &qps) || qps < 0 || (uint64_t)qps > ctl->layout.users)
            return reply(con, MHD_HTTP_BAD_REQUEST, "{\"error\":\"need qps=N (0..users)\"}\n");
        if (find_num(con, b, "at", &at) && (at < 0 || at > CL_AT_MAX))
            return reply(con, MHD_HTTP_BAD_REQUEST, "{\"error\":\"at=T must be a unix second\"}\n");
        int64_t when = cl_set_qps(ctl, (uint64_t)qps, at);
        if (when < 0) {
            snprintf(out, sizeof out,
                     "{\"error\":\"rate change queue full: %d changes already waiting for their second; "
                     "retry after the first applies\"}\n",
                     CL_CHANGES_MAX);
            return reply(con, MHD_HTTP_CONFLICT, out);
        }
        snprintf(out, sizeof out, "{\"qps\":%lld,\"at\":%lld}\n", qps, (long long)when);
        return reply(con, MHD_HTTP_OK, out);
    }
    if (post && !strcmp(url, "/pause")) {
        atomic_store(&ctl->paused, true);
        cl_client_nudge(ctl);
        return reply(con, MHD_HTTP_OK, "{\"paused\":true}\n");
    }
    if (post && !strcmp(url, "/resume")) {
        atomic_store(&ctl->paused, false);
        cl_client_nudge(ctl);
        return reply(con, MHD_HTTP_OK, "{\"paused\":false}\n");
    }
    return reply(con, MHD_HTTP_NOT_FOUND,
                 "{\"error\":\"unknown; use GET /stats, POST /qps?qps=N[&at=T], POST /pause, POST /resume\"}\n");
}

static void done(void *cls, struct MHD_Connection *con, void **state, enum MHD_RequestTerminationCode tc)
{
    (void)cls;
    (void)con;
    (void)tc;
    free(*state);
    *state = NULL;
}

int cl_control_start(cl_client *cl, const char *addr, char *err, size_t errlen)
{
    struct sockaddr_in sa;
    if (hb_parse_hostport(addr, &sa, err, errlen) < 0)
        return -1;
    ctl = cl;
    daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, ntohs(sa.sin_port), NULL, NULL,
                               handle, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                               MHD_OPTION_NOTIFY_COMPLETED, done, NULL, MHD_OPTION_CONNECTION_LIMIT, 64u,
                               MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (!daemon_) {
        snprintf(err, errlen, "--control %s: cannot listen (in use?)", addr);
        return -1;
    }
    return 0;
}

void cl_control_stop(void)
{
    if (daemon_)
        MHD_stop_daemon(daemon_);
    daemon_ = NULL;
}
