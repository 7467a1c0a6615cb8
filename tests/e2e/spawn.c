/* spawn.c -- start a test's child processes so they die with it (spawn.h). */
#include "spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "peer.h"

/* The child's output: the file log (opened in the child), else fd, else
 * the test's own. */
static pid_t start(const char *const *argv, const char *log, int fd)
{
    /* PDEATHSIG follows the forking thread (spawn.h): main thread only. */
    CHECK(syscall(SYS_gettid) == getpid(), "spawn %s from a thread other than the main one", argv[0]);
    pid_t parent = getpid();
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %m");
    if (pid > 0)
        return pid;
    /* The child.  The parent may already have died between fork() and
     * prctl(): then the death signal would never come, so look. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(127);
    if (log && (fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0)
        _exit(127);
    if (fd >= 0 && (dup2(fd, 1) < 0 || dup2(fd, 2) < 0))
        _exit(127);
    execvp(argv[0], (char **)argv);
    _exit(127);
}

pid_t spawn(const char *const *argv, const char *log)
{
    return start(argv, log, -1);
}

pid_t spawn_fd(const char *const *argv, int fd)
{
    return start(argv, NULL, fd);
}

void spawn_stop(pid_t *pid, int sig, int ms)
{
    if (*pid <= 0)
        return;
    kill(*pid, sig);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (waitpid(*pid, NULL, WNOHANG) == *pid) {
            *pid = 0;
            return;
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >= ms)
            break;
        usleep(20000);
    }
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = 0;
}
