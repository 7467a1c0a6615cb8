/* util.h -- the few helpers every hongbao binary uses: messages, clocks,
 * single-writer counters. */
#ifndef HB_UTIL_H
#define HB_UTIL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Program name used as the prefix of every message ("hb-server: ..."). */
extern const char *hb_prog;
/* Fuzz harnesses silence messages: a hostile input may log on every run. */
extern bool hb_log_quiet;

/* Messages go to stderr, one line each, prefixed with the program name. */
void hb_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log and exit(1). */
void hb_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Wall clock (the clock clients schedule on) and a monotonic clock, in us. */
static inline int64_t hb_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t hb_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Sleep until a CLOCK_MONOTONIC instant (us); returns early on a signal. */
void hb_sleep_until_mono(int64_t mono_us);
/* Make the calling thread one that must run on time among hundreds of
 * runnable threads (a producer, a commit writer): SCHED_FIFO at priority
 * `rt` (1-99) if rt > 0, else nice value `nice` (0: leave it).  Why a
 * real-time class: nice only weighs a thread's share of CPU, and under
 * EEVDF a woken thread at nice -10 can still wait for a busy thread's slice
 * to end (a 1M run's overloaded stage made 168-233 packets in a second
 * where 200 were due); a FIFO thread preempts every normal thread at once.
 * Safe only for threads that sleep between short bursts (these block in
 * nanosleep, futex and fdatasync, never spin), and the kernel's RT
 * throttling (sched_rt_runtime_us) bounds even a runaway.  Needs
 * CAP_SYS_NICE: without it, logs once per `who` and falls back to `nice`,
 * then to the process's priority.  Returns 1 (real-time), 0 (nice or
 * unchanged), -1 (neither could be set). */
int hb_thread_urgent(int rt, int nice, const char *who);
/* Pin the calling thread to one CPU: the (index mod n)-th of the n CPUs the
 * thread may run on now (its inherited mask: taskset, cgroup cpusets).  For
 * threads that each carry an equal, steady share of the load (SETs over
 * hashed users, client workers over equal uid ranges), as nginx's
 * worker_cpu_affinity: the kernel's balancer then has nothing to move, and
 * a wake-up never finds its thread queued behind a CPU's backlog while the
 * other CPU idles.  On failure logs it once per call, naming `who` (the
 * thread then runs where the kernel puts it).  Returns the CPU, or -1
 * (index < 0: -1, nothing done). */
int hb_thread_pin(int index, const char *who);

/* Counters written by exactly one thread and read by others (the stats
 * reporter).  A relaxed load + store compiles to a plain add: no lock prefix
 * on the hot path, and readers still see whole values. */
typedef _Atomic uint64_t hb_counter;
#define HB_INC(c) HB_ADD(c, 1)
#define HB_ADD(c, n) \
    atomic_store_explicit(&(c), atomic_load_explicit(&(c), memory_order_relaxed) + (n), memory_order_relaxed)
#define HB_GET(c) atomic_load_explicit(&(c), memory_order_relaxed)
#define HB_STORE(c, v) atomic_store_explicit(&(c), (v), memory_order_relaxed)
#define HB_DEC(c) HB_STORE(c, HB_GET(c) - 1)

/* splitmix64's finaliser: every input bit affects every output bit (the
 * generator below, placement keys and scores, the member-list tag). */
static inline uint64_t hb_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* splitmix64 (Steele, Lea, Flood 2014): a counter-based generator, cheap,
 * seedable, one state word per thread; not for secrets. */
static inline uint64_t hb_rand64(uint64_t *s)
{
    return hb_mix64(*s += 0x9e3779b97f4a7c15ULL);
}

/* Uniform in [0, n) without modulo bias worth caring about (n < 2^32). */
static inline uint32_t hb_rand_below(uint64_t *s, uint32_t n)
{
    return (uint32_t)(((hb_rand64(s) >> 32) * (uint64_t)n) >> 32);
}

/* A seed that differs per process and per call. */
uint64_t hb_seed(void);

/* Write a whole buffer to a file descriptor (retrying short writes and
 * EINTR); 0 or -1 with errno. */
int hb_write_all(int fd, const void *buf, size_t n);

/* Write `text` to path atomically (temporary file + rename). */
int hb_write_file_atomic(const char *path, const char *text, size_t n);

/* An exclusive flock() on fd without waiting: 0, or -1 with errno
 * (EWOULDBLOCK: another open file holds it; *holder is then its process
 * id from /proc/locks, or 0 if not found).  The lock belongs to the open
 * file description: it outlives other descriptors of the same file being
 * closed, and goes with the descriptor if it is passed to another process. */
int hb_lock_exclusive(int fd, long *holder);

#define HB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define HB_CONTAINER_OF(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

#endif
