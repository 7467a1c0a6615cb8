/* command.c -- the agent's commands on a pipe (see command.h).
 *
 * Lines are short and few (a handful per task); a partial line waits in a
 * small buffer for the rest, a line too long for it is dropped whole and
 * said so. */
#include "command.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct {
    cl_client *cl;
    ev_io io;
    void (*on_stop)(struct ev_loop *loop);
    char buf[512];
    size_t len;
    bool overlong;
} cmd;

static void run_line(struct ev_loop *loop, char *line)
{
    cl_client *cl = cmd.cl;
    unsigned long long q;
    long long at;
    if (sscanf(line, "qps %llu %lld", &q, &at) == 2) {
        if (q > (unsigned long long)cl->cfg.users) {
            hb_log("agent: qps %llu refused: above --users", q);
            return;
        }
        int64_t got = cl_set_qps(cl, q, at);
        if (got < 0)
            hb_log("agent: qps %llu from second %lld refused: %d changes already waiting", q, at, CL_CHANGES_MAX);
        else if (got != at)
            hb_log("agent: qps %llu from second %lld came late: applied from second %lld", q, at, (long long)got);
        else
            hb_log("agent: qps %llu from second %lld", q, at);
    } else if (!strcmp(line, "pause")) {
        atomic_store(&cl->paused, true);
        cl_client_nudge(cl);
        hb_log("agent: paused");
    } else if (!strcmp(line, "resume")) {
        atomic_store(&cl->paused, false);
        cl_client_nudge(cl);
        hb_log("agent: resumed");
    } else if (!strcmp(line, "stop")) {
        hb_log("agent: stop");
        cmd.on_stop(loop);
    } else if (*line) {
        hb_log("agent: unknown command '%s'", line);
    }
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    ssize_t n = read(w->fd, cmd.buf + cmd.len, sizeof cmd.buf - 1 - cmd.len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        hb_log("agent: its pipe %s: stopping", n == 0 ? "closed (agent gone)" : strerror(errno));
        ev_io_stop(loop, w);
        cmd.on_stop(loop);
        return;
    }
    cmd.len += (size_t)n;
    cmd.buf[cmd.len] = 0;
    char *p = cmd.buf, *nl;
    while ((nl = strchr(p, '\n'))) {
        *nl = 0;
        if (!cmd.overlong)
            run_line(loop, p);
        cmd.overlong = false;
        p = nl + 1;
    }
    cmd.len -= (size_t)(p - cmd.buf);
    memmove(cmd.buf, p, cmd.len);
    if (cmd.len == sizeof cmd.buf - 1) {
        hb_log("agent: command line longer than %zu bytes dropped", sizeof cmd.buf - 2);
        cmd.len = 0;
        cmd.overlong = true;
    }
}

void cl_command_start(cl_client *cl, struct ev_loop *loop, int fd, void (*on_stop)(struct ev_loop *loop))
{
    cmd.cl = cl;
    cmd.on_stop = on_stop;
    ev_io_init(&cmd.io, on_read, fd, EV_READ);
    ev_io_start(loop, &cmd.io);
}
