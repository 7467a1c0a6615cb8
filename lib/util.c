/* util.c -- messages, sleeping, seeds, whole writes, file locks. */
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

const char *hb_prog = "hongbao";
bool hb_log_quiet;

static void vlog(const char *fmt, va_list ap)
{
    if (hb_log_quiet)
        return;
    char line[1024];
    int n = snprintf(line, sizeof line, "%s: ", hb_prog);
    if (n < 0)
        return;
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    /* One write per line so lines from threads do not interleave. */
    (void)!write(2, line, len);
}

void hb_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(fmt, ap);
    va_end(ap);
}

void hb_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(fmt, ap);
    va_end(ap);
    exit(1);
}

void hb_sleep_until_mono(int64_t mono_us)
{
    struct timespec ts = {.tv_sec = mono_us / 1000000, .tv_nsec = (mono_us % 1000000) * 1000};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

int hb_thread_urgent(int rt, int nice, const char *who)
{
    if (rt > 0) {
        struct sched_param sp = {.sched_priority = rt};
        int e = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
        if (e == 0)
            return 1;
        hb_log("%s: cannot run as real-time (SCHED_FIFO %d: %s): falling back to nice %d", who, rt, strerror(e), nice);
    }
    if (nice == 0)
        return 0;
    /* Linux: PRIO_PROCESS with a thread id sets that thread alone. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice) < 0) {
        hb_log("%s: cannot run at nice %d (%s): it runs at the process's priority and may be late under load", who,
               nice, strerror(errno));
        return -1;
    }
    return 0;
}

/* The CPU for hb_thread_pin, or -1 with errno. */
static int pin_to(int index)
{
    cpu_set_t allowed, one;
    if (sched_getaffinity(0, sizeof allowed, &allowed) < 0)
        return -1;
    int n = CPU_COUNT(&allowed);
    if (n <= 0) {
        errno = ESRCH;
        return -1;
    }
    int want = index % n;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &allowed) || want-- > 0)
            continue;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        return sched_setaffinity(0, sizeof one, &one) < 0 ? -1 : cpu;
    }
    errno = ESRCH;
    return -1;
}

int hb_thread_pin(int index, const char *who)
{
    if (index < 0)
        return -1;
    int cpu = pin_to(index);
    if (cpu < 0)
        hb_log("%s: cannot pin to a CPU (%s): it runs where the kernel puts it", who, strerror(errno));
    return cpu;
}

uint64_t hb_seed(void)
{
    static _Atomic uint64_t calls;
    uint64_t s = (uint64_t)hb_now_us() ^ ((uint64_t)getpid() << 32) ^ (atomic_fetch_add(&calls, 1) * 0x9e3779b97f4a7c15ULL);
    return hb_rand64(&s);
}

int hb_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int hb_write_file_atomic(const char *path, const char *text, size_t n)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    if (hb_write_all(fd, text, n) < 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        errno = e;
        return -1;
    }
    close(fd);
    return rename(tmp, path);
}

/* The pid /proc/locks gives for a FLOCK on the file behind fd (0 if none). */
static long flock_holder(int fd)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return 0;
    FILE *f = fopen("/proc/locks", "re");
    if (!f)
        return 0;
    char line[256];
    long found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        /* "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; waiters have "->". */
        char kind[16];
        long pid;
        unsigned maj, min;
        unsigned long ino;
        if (strstr(line, "->") || sscanf(line, "%*d: %15s %*s %*s %ld %x:%x:%lu", kind, &pid, &maj, &min, &ino) != 5)
            continue;
        if (!strcmp(kind, "FLOCK") && ino == (unsigned long)st.st_ino && maj == major(st.st_dev) &&
            min == minor(st.st_dev))
            found = pid;
    }
    fclose(f);
    return found;
}

int hb_lock_exclusive(int fd, long *holder)
{
    *holder = 0;
    while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EINTR)
            continue;
        if (errno == EWOULDBLOCK) {
            *holder = flock_holder(fd);
            errno = EWOULDBLOCK;
        }
        return -1;
    }
    return 0;
}
