/* reap.c -- hb-reap CMD...: run a shell test so that nothing it started
 * outlives it (ctest runs every shell test through it).
 *
 * A test script stops its servers from an EXIT trap; a script killed with
 * SIGKILL (by hand, by the OOM killer) runs no trap, and its redis-server
 * and hb-server went on listening, re-parented to init.  hb-reap makes
 * itself the "child subreaper" (prctl PR_SET_CHILD_SUBREAPER): every orphan
 * below it is re-parented to it rather than to init.  When CMD has ended,
 * however it ended, whatever is left is its own child: SIGTERM (a
 * redis-server saves nothing, an hb-server syncs its journal), 3 s, then
 * SIGKILL, until it has no child at all; each one is named on stderr.
 *
 * Invariants: hb-reap exits with CMD's status (128 + signal if a signal
 * ended it), so ctest sees what it would have seen; orphans that end while
 * CMD is still running are reaped at once (a script waiting for a killed
 * server to disappear must not see a zombie); SIGTERM, SIGINT and SIGHUP go
 * on to CMD.  CMD is started through spawn.c, so it gets SIGKILL if hb-reap
 * itself is killed; the servers CMD started then do not (they are not
 * hb-reap's children yet, so they go to init): only ctest's own timeout,
 * which kills the test's whole process tree, covers that case. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "spawn.h"

static volatile sig_atomic_t cmd_pid;

static void forward(int sig)
{
    if (cmd_pid > 0)
        kill(cmd_pid, sig);
}

/* Signal every child of ours (after CMD ended: what CMD left); returns how
 * many there were.  Named on stderr when `say`. */
static int signal_children(int sig, int say)
{
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        char *name = strchr(buf, '('), *rparen = strrchr(buf, ')'); /* "PID (COMM) STATE PPID ..." */
        char state;
        int ppid;
        if (!name || !rparen || sscanf(rparen + 2, "%c %d", &state, &ppid) != 2 || ppid != getpid() || state == 'Z')
            continue;
        *rparen = 0;
        if (say)
            fprintf(stderr, "hb-reap: ending pid %ld (%s) left behind by the test (SIG%s)\n", pid, name + 1,
                    sig == SIGKILL ? "KILL" : "TERM");
        kill((pid_t)pid, sig);
        n++;
    }
    closedir(d);
    return n;
}

/* Reap whatever has ended; false once we have no child left. */
static int reap_some(void)
{
    int st;
    pid_t w;
    while ((w = waitpid(-1, &st, WNOHANG)) > 0)
        ;
    return !(w < 0 && errno == ECHILD);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: hb-reap CMD [ARG...]\n");
        return 2;
    }
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        perror("hb-reap: PR_SET_CHILD_SUBREAPER");
        return 2;
    }
    struct sigaction sa = {.sa_handler = forward};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    cmd_pid = spawn_fd((const char *const *)argv + 1, -1);

    int st = 0, rc;
    for (;;) {
        pid_t w = waitpid(-1, &st, 0);
        if (w == cmd_pid)
            break;
        if (w < 0 && errno != EINTR) {
            perror("hb-reap: waitpid");
            return 2;
        }
    }
    cmd_pid = 0;
    rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);

    /* What is left: TERM, up to 3 s, then KILL until nothing is. */
    if (reap_some() && signal_children(SIGTERM, 1) > 0) {
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do {
            usleep(20000);
            clock_gettime(CLOCK_MONOTONIC, &t);
        } while (reap_some() && t.tv_sec - t0.tv_sec < 3);
    }
    while (reap_some()) {
        signal_children(SIGKILL, 1);
        usleep(20000);
    }
    return rc;
}
