/* shim.c -- libhb-powerloss.so, a test-only LD_PRELOAD library that makes
 * one file (the server's grant journal) behave like a file on a disk that
 * can lose power.
 *
 * SIGKILL keeps the page cache: whatever the process wrote is still there
 * for the next run, synced or not.  A power cut does not: only what an
 * fdatasync()/fsync() finished for is.  So for the journal, and only for it:
 *   - write() is held in this library's memory ("not yet on the platter")
 *     and reported as done;
 *   - fdatasync()/fsync() first waits HB_PL_SYNC_DELAY_US (a slow disk: it
 *     widens the window in which records are written but not durable), then
 *     writes the held bytes through and syncs them for real;
 *   - SIGUSR2 is the power cut: everything held is dropped and the process
 *     is killed (SIGKILL) at once; the bytes lost are reported on stderr as
 *     "hb-powerloss: power cut: N bytes written but never synced are lost".
 * A clean close() or exit writes held bytes through (a clean shutdown keeps
 * the page cache).
 *
 * Environment:
 *   HB_PL_JOURNAL=PATH        the file (matched by device and inode once opened
 *                             for writing); unset: the library does nothing
 *   HB_PL_HOLD=0|1            hold writes until a sync (default 1); 0 = write
 *                             through at once, only the sync delay applies
 *                             (a slow disk for SIGKILL tests, tests/e2e/crash.sh)
 *   HB_PL_SYNC_DELAY_US=N     extra time each sync of the journal takes (default 0)
 *
 * Intercepted: open/open64/openat/openat64 (to find the journal's descriptor),
 * write, fdatasync, fsync, close -- what server/journal.c uses (write through
 * hb_write_all).  pwrite, pwrite64, writev, lseek and ftruncate on the
 * journal while bytes are held are not modelled: they abort with a message,
 * so a change to journal.c cannot silently bypass the shim. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static const char *jpath;
static bool hold = true;
static long delay_us;
static atomic_int jfd = -1;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char *held;
static size_t held_len, held_cap;
static atomic_size_t held_now; /* for the signal handler's report */
static atomic_ullong synced_bytes, syncs;

static ssize_t (*real_write)(int, const void *, size_t);
static int (*real_fdatasync)(int);
static int (*real_fsync)(int);
static int (*real_close)(int);
static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static off_t (*real_lseek)(int, off_t, int);
static int (*real_ftruncate)(int, off_t);

static void say(const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t w = real_write(2, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void u64str(char *out, unsigned long long v)
{
    char t[24];
    int i = 0;
    do
        t[i++] = (char)('0' + v % 10);
    while ((v /= 10));
    while (i)
        *out++ = t[--i];
    *out = 0;
}

static void power_cut(int sig)
{
    (void)sig;
    char n[24], m[24], k[24];
    u64str(n, atomic_load(&held_now));
    u64str(m, atomic_load(&synced_bytes));
    u64str(k, atomic_load(&syncs));
    say("hb-powerloss: power cut: ");
    say(n);
    say(" bytes written but never synced are lost (");
    say(m);
    say(" bytes made durable by ");
    say(k);
    say(" syncs)\n");
    kill(getpid(), SIGKILL); /* held bytes die with the process */
    _exit(137);
}

#define REAL(name) real_##name = (__typeof__(real_##name))dlsym(RTLD_NEXT, #name)

static void resolve(void)
{
    REAL(write);
    REAL(fdatasync);
    REAL(fsync);
    REAL(close);
    REAL(open);
    REAL(open64);
    REAL(openat);
    REAL(openat64);
    REAL(pwrite);
    REAL(pwrite64);
    REAL(writev);
    REAL(lseek);
    REAL(ftruncate);
}

/* Every wrapper may run before the constructor (another library's). */
#define READY()                                                                                                        \
    do {                                                                                                               \
        if (!real_ftruncate)                                                                                           \
            resolve();                                                                                                 \
    } while (0)

__attribute__((constructor)) static void init(void)
{
    READY();
    jpath = getenv("HB_PL_JOURNAL");
    if (!jpath || !*jpath) {
        jpath = NULL;
        return;
    }
    const char *h = getenv("HB_PL_HOLD");
    hold = !h || strcmp(h, "0") != 0;
    const char *d = getenv("HB_PL_SYNC_DELAY_US");
    delay_us = d ? atol(d) : 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = power_cut;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, NULL);
}

static void not_modelled(const char *what)
{
    say("hb-powerloss: ");
    say(what);
    say(" on the journal is not modelled by the shim (tests/powerloss/shim.c): aborting\n");
    abort();
}

/* After a successful open for writing: is it the journal? */
static void opened(int fd, int flags)
{
    if (!jpath || fd < 0 || (flags & O_ACCMODE) == O_RDONLY)
        return;
    struct stat a, b;
    if (fstat(fd, &a) == 0 && stat(jpath, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
        pthread_mutex_lock(&mu);
        if (atomic_load(&jfd) >= 0)
            not_modelled("a second open for writing");
        atomic_store(&jfd, fd);
        pthread_mutex_unlock(&mu);
    }
}

static bool is_j(int fd)
{
    return fd >= 0 && fd == atomic_load(&jfd);
}

static int write_through(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = real_write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Write the held bytes through (mu held). */
static int flush_held(int fd)
{
    int rc = write_through(fd, held, held_len);
    if (rc == 0) {
        held_len = 0;
        atomic_store(&held_now, 0);
    }
    return rc;
}

#define OPEN_MODE(flags, mode)                                                                                         \
    mode_t mode = 0;                                                                                                   \
    if ((flags) & (O_CREAT | O_TMPFILE)) {                                                                             \
        va_list ap;                                                                                                    \
        va_start(ap, flags);                                                                                           \
        mode = va_arg(ap, mode_t);                                                                                     \
        va_end(ap);                                                                                                    \
    }

int open(const char *path, int flags, ...)
{
    READY();
    OPEN_MODE(flags, mode);
    int fd = real_open(path, flags, mode);
    opened(fd, flags);
    return fd;
}

int open64(const char *path, int flags, ...)
{
    READY();
    OPEN_MODE(flags, mode);
    int fd = real_open64(path, flags, mode);
    opened(fd, flags);
    return fd;
}

int openat(int dir, const char *path, int flags, ...)
{
    READY();
    OPEN_MODE(flags, mode);
    int fd = real_openat(dir, path, flags, mode);
    opened(fd, flags);
    return fd;
}

int openat64(int dir, const char *path, int flags, ...)
{
    READY();
    OPEN_MODE(flags, mode);
    int fd = real_openat64(dir, path, flags, mode);
    opened(fd, flags);
    return fd;
}

ssize_t write(int fd, const void *buf, size_t n)
{
    READY();
    if (!is_j(fd) || !hold)
        return real_write(fd, buf, n);
    pthread_mutex_lock(&mu);
    if (held_len + n > held_cap) {
        size_t cap = held_cap ? held_cap : 1 << 20;
        while (cap < held_len + n)
            cap *= 2;
        char *p = realloc(held, cap);
        if (!p) {
            pthread_mutex_unlock(&mu);
            errno = ENOMEM;
            return -1;
        }
        held = p;
        held_cap = cap;
    }
    memcpy(held + held_len, buf, n);
    held_len += n;
    atomic_store(&held_now, held_len);
    pthread_mutex_unlock(&mu);
    return (ssize_t)n;
}

static int sync_j(int fd, int (*real)(int))
{
    if (delay_us > 0)
        usleep((useconds_t)delay_us); /* the slow disk: written, not yet durable */
    pthread_mutex_lock(&mu);
    size_t n = held_len;
    int rc = flush_held(fd);
    if (rc == 0)
        rc = real(fd);
    if (rc == 0) {
        atomic_fetch_add(&synced_bytes, n);
        atomic_fetch_add(&syncs, 1);
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

int fdatasync(int fd)
{
    READY();
    return is_j(fd) ? sync_j(fd, real_fdatasync) : real_fdatasync(fd);
}

int fsync(int fd)
{
    READY();
    return is_j(fd) ? sync_j(fd, real_fsync) : real_fsync(fd);
}

int close(int fd)
{
    READY();
    if (is_j(fd)) {
        pthread_mutex_lock(&mu);
        flush_held(fd); /* a clean close: the page cache keeps them */
        atomic_store(&jfd, -1);
        pthread_mutex_unlock(&mu);
    }
    return real_close(fd);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    READY();
    if (is_j(fd))
        not_modelled("pwrite");
    return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    READY();
    if (is_j(fd))
        not_modelled("pwrite64");
    return real_pwrite64(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
    READY();
    if (is_j(fd))
        not_modelled("writev");
    return real_writev(fd, iov, n);
}

off_t lseek(int fd, off_t off, int whence)
{
    READY();
    if (is_j(fd) && atomic_load(&held_now))
        not_modelled("lseek with writes held");
    return real_lseek(fd, off, whence);
}

int ftruncate(int fd, off_t len)
{
    READY();
    if (is_j(fd) && atomic_load(&held_now))
        not_modelled("ftruncate with writes held");
    return real_ftruncate(fd, len);
}

__attribute__((destructor)) static void fini(void)
{
    int fd = atomic_load(&jfd);
    if (fd >= 0) {
        pthread_mutex_lock(&mu);
        flush_held(fd); /* a clean exit: the page cache keeps them */
        pthread_mutex_unlock(&mu);
    }
}
