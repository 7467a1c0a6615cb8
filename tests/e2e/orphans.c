/* orphans: a test that dies leaves no services behind.
 *   1. a C test binary (this one, run again with --abort DIR) starts a
 *      redis-server and an hb-server cluster node on it, both through
 *      spawn.c (through tredis.c and peer.c), then abort()s as a
 *      sanitizer does: no atexit handler, no peer_abort() runs.  Both must
 *      be gone within 5 s (spawn.c's PR_SET_PDEATHSIG);
 *   2. a shell test (orphans_killed.sh, on tests/e2e/lib.sh) run under
 *      hb-reap starts the same two with `start`, then SIGKILLs itself: its
 *      EXIT trap never runs.  hb-reap must exit 137 and both must be gone
 *      within 5 s.
 * This driver is the child subreaper (PR_SET_CHILD_SUBREAPER) of what it
 * starts: an orphan comes back to it rather than to init, so "gone" is
 * exact (reaped here, not a zombie or a reused pid elsewhere), and a
 * survivor is killed before the test fails. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "peer.h"
#include "spawn.h"
#include "tredis.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool listening(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

/* ---- case 1's victim: --abort DIR ------------------------------------------------ */

static void victim(const char *dir)
{
    tredis redis;
    tredis_start(&redis, dir, NULL, false);
    const char *flags[] = {"--listen", "127.0.0.1", "--users", "40", "--cluster", redis.url, "--node", "orphan",
                           "--node-index", "0", "--nodes", "1", NULL};
    peer_server s;
    peer_server_start(&s, 1, flags);
    char pids[256];
    snprintf(pids, sizeof pids, "%s/pids", dir);
    FILE *f = fopen(pids, "w");
    CHECK(f, "%s", pids);
    fprintf(f, "%d %d %d %d %s\n", (int)redis.pid, redis.port, (int)s.pid, s.port, s.dir);
    fclose(f);
    abort(); /* as a sanitizer does: no atexit, no peer_abort() */
}

/* ---- the driver ------------------------------------------------------------------ */

/* Run argv (through spawn.c) to its end; its status as a shell shows it. */
static int run(const char *const *argv, const char *log)
{
    pid_t pid = spawn(argv, log);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        CHECK(errno == EINTR, "waitpid: %m");
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Wait up to 5 s for each of pid[0..n-1] to end (they are our children by
 * then: the subreaper); kill and name the ones that do not.  0 if all went. */
static int gone(const char *what, const pid_t *pid, const char *const *name, const int *port, int n)
{
    int left = n;
    bool done[8] = {0};
    int64_t t0 = now_ms(), last = 0;
    while (left && now_ms() - t0 < 5000) {
        for (int i = 0; i < n; i++) {
            int st;
            pid_t w = done[i] ? 0 : waitpid(pid[i], &st, WNOHANG);
            /* ECHILD: not (or no longer) ours, so reaped by us already or never
             * re-parented here: then it must not exist at all */
            if (!done[i] && (w == pid[i] || (w < 0 && kill(pid[i], 0) < 0 && errno == ESRCH))) {
                done[i] = true;
                left--;
                last = now_ms() - t0;
            }
        }
        usleep(20000);
    }
    for (int i = 0; i < n; i++)
        if (!done[i]) {
            fprintf(stderr, "%s: %s (pid %d) still running %.1f s after the test died%s\n", what, name[i],
                    (int)pid[i], (now_ms() - t0) / 1000.0,
                    listening(port[i]) ? ", still listening on loopback" : "");
            kill(pid[i], SIGKILL);
            waitpid(pid[i], NULL, 0);
        }
    if (!left)
        printf("   %s: all %d gone %lld ms after the test died\n", what, n, (long long)last);
    return left;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--abort")) {
        victim(argv[2]);
        return 1;
    }
    const char *bin = getenv("HB_BIN"), *tests = getenv("HB_TESTS");
    CHECK(bin && tests, "HB_BIN and HB_TESTS must be set");
    CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0, "PR_SET_CHILD_SUBREAPER: %m");
    char dir[] = "/tmp/hb-orphans.XXXXXX", log[256], path[256], self[512], reap[512], script[512];
    CHECK(mkdtemp(dir), "mkdtemp");
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    CHECK(n > 0, "readlink /proc/self/exe");
    self[n] = 0;
    int failed = 0;

    /* 1. a C test binary that aborts */
    snprintf(log, sizeof log, "%s/victim.log", dir);
    int rc = run((const char *const[]){self, "--abort", dir, NULL}, log);
    CHECK(rc == 128 + SIGABRT, "the victim binary exited %d, want %d (SIGABRT); see %s", rc, 128 + SIGABRT, log);
    snprintf(path, sizeof path, "%s/pids", dir);
    FILE *f = fopen(path, "r");
    int rpid = 0, rport = 0, spid = 0, sport = 0;
    char sdir[192] = "";
    CHECK(f && fscanf(f, "%d %d %d %d %191s", &rpid, &rport, &spid, &sport, sdir) == 5, "no pids in %s (see %s)",
          path, log);
    fclose(f);
    failed += gone("aborted C test", (pid_t[]){rpid, spid}, (const char *const[]){"redis-server", "hb-server"},
                   (int[]){rport, sport}, 2);
    if (!failed)
        PASS("a C test that aborts leaves neither its redis-server nor its hb-server (PR_SET_PDEATHSIG)");

    /* 2. a shell test SIGKILLed under hb-reap */
    snprintf(reap, sizeof reap, "%s/hb-reap", bin);
    snprintf(script, sizeof script, "%s/e2e/orphans_killed.sh", tests);
    snprintf(log, sizeof log, "%s/killed.log", dir);
    snprintf(path, sizeof path, "%s/killed.pids", dir);
    rc = run((const char *const[]){reap, "bash", script, path, NULL}, log);
    CHECK(rc == 128 + SIGKILL, "hb-reap bash orphans_killed.sh exited %d, want %d (the script's SIGKILL); see %s", rc,
          128 + SIGKILL, log);
    f = fopen(path, "r");
    char work[192] = "";
    CHECK(f && fscanf(f, "%d %d %d %d %191s", &rpid, &rport, &spid, &sport, work) == 5, "no pids in %s (see %s)",
          path, log);
    fclose(f);
    int k = gone("SIGKILLed shell test", (pid_t[]){rpid, spid}, (const char *const[]){"redis-server", "hb-server"},
                 (int[]){rport, sport}, 2);
    if (!k)
        PASS("a shell test SIGKILLed under hb-reap leaves neither its redis-server nor its hb-server");
    failed += k;

    if (failed) {
        fprintf(stderr, "FAIL: services outlived their test (files kept in %s)\n", dir);
        return 1;
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s'", dir, sdir, work);
    (void)!system(cmd);
    return 0;
}
