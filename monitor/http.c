/* http.c -- routes of the monitor's HTTP server (libmicrohttpd: no HTTP
 * parsing of our own).  Answers are rendered under the state lock into a
 * buffer that libmicrohttpd frees; files are streamed from their fd. */
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "buf.h"
#include "json.h"
#include "net.h"
#include "prom.h"
#include "util.h"

static struct MHD_Daemon *daemon_;
static mon_state *state;

static enum MHD_Result send_text(struct MHD_Connection *con, unsigned status, const char *type, const char *text)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(con, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_buf(struct MHD_Connection *con, mon_buf *b, const char *type)
{
    size_t len;
    char *p = mon_buf_take(b, &len);
    if (!p)
        return send_text(con, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", "out of memory\n");
    struct MHD_Response *r = MHD_create_response_from_buffer(len, p, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(con, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static long long num_arg(struct MHD_Connection *con, const char *key, long long def)
{
    const char *v = MHD_lookup_connection_value(con, MHD_GET_ARGUMENT_KIND, key);
    if (!v || !*v)
        return def;
    char *end;
    long long n = strtoll(v, &end, 10);
    return *end ? def : n;
}

static const char *content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},   {".json", "application/json"},
        {".png", "image/png"},                 {".svg", "image/svg+xml"},
        {".map", "application/json"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(dot, types[i].ext))
            return types[i].type;
    return NULL;
}

/* Only plain relative names under the web directory: letters, digits and
 * ._-/, no "..", no hidden files.  Anything else is simply not found. */
static bool safe_path(const char *url)
{
    if (url[0] != '/' || strlen(url) > 200)
        return false;
    for (const char *p = url; *p; p++) {
        char ch = *p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                  ch == '_' || ch == '-' || ch == '/';
        if (!ok || (ch == '/' && (p[1] == '.' || p[1] == '/')))
            return false;
    }
    return true;
}

static enum MHD_Result send_file(struct MHD_Connection *con, const char *url)
{
    const char *type = content_type(url);
    if (!type || !safe_path(url))
        return send_text(con, MHD_HTTP_NOT_FOUND, "text/plain", "not found\n");
    char path[4096];
    snprintf(path, sizeof path, "%s%s", state->web_dir, url);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return send_text(con, MHD_HTTP_NOT_FOUND, "text/plain", "not found\n");
    }
    struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)st.st_size, fd); /* closes fd */
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(con, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *con, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **req)
{
    (void)cls;
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)req;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return send_text(con, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", "only GET and HEAD\n");
    mon_buf b = {0};
    if (!strcmp(url, "/metrics")) {
        pthread_mutex_lock(&state->mu);
        mon_prom_render(&b, state->col, state->start_time);
        pthread_mutex_unlock(&state->mu);
        return send_buf(con, &b, "text/plain; version=0.0.4; charset=utf-8");
    }
    if (!strcmp(url, "/api/series")) {
        long long since = num_arg(con, "since", 0), limit = num_arg(con, "limit", 3600);
        if (limit < 1)
            limit = 1;
        pthread_mutex_lock(&state->mu);
        mon_json_render(&b, state->col, &state->hist, since, (size_t)limit, hb_now_us() / 1000000, state->settle);
        pthread_mutex_unlock(&state->mu);
        return send_buf(con, &b, "application/json");
    }
    if (!strcmp(url, "/"))
        return send_file(con, "/index.html");
    return send_file(con, url);
}

int mon_http_start(mon_state *st, const char *addr, char *err, size_t errlen)
{
    struct sockaddr_in sa;
    char why[256];
    if (hb_parse_hostport(addr, &sa, why, sizeof why) < 0) {
        snprintf(err, errlen, "--http %s", why);
        return -1;
    }
    state = st;
    daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, ntohs(sa.sin_port), NULL, NULL,
                               handle, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                               MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (!daemon_) {
        snprintf(err, errlen, "--http %s: cannot listen (address in use?)", addr);
        return -1;
    }
    return 0;
}

void mon_http_stop(void)
{
    if (daemon_)
        MHD_stop_daemon(daemon_);
    daemon_ = NULL;
}
