/* spawn.h -- the one way a C test starts another process (hb-server nodes
 * through peer.c, redis-server, hb-client, ...).
 *
 * Invariant: a process started here dies with the test.  The child asks the
 * kernel for SIGKILL when its parent goes (prctl PR_SET_PDEATHSIG) before it
 * execs, so a test binary that ends without its cleanup (a sanitizer's
 * abort, a crash, SIGKILL, a CHECK that exits) leaves no server listening on
 * loopback: atexit handlers and peer_abort() do not run in those cases.
 * Why a kernel setting rather than a cleanup list: nothing in a process that
 * is being killed can be relied on to run.
 *
 * The death signal is tied to the thread that forked, not to the process:
 * a child forked from a thread that later exits would be killed then.  So
 * spawn refuses (CHECK) to run on any thread but the main one; the tests are
 * single-threaded. */
#ifndef HB_SPAWN_H
#define HB_SPAWN_H

#include <sys/types.h>

/* Start argv[0] (searched in PATH) with argv, stdout and stderr appended to
 * the file `log` (created if needed); stdin is inherited.  Returns the pid. */
pid_t spawn(const char *const *argv, const char *log);
/* The same with stdout and stderr on the open descriptor `fd`; -1: the
 * test's own stdout and stderr. */
pid_t spawn_fd(const char *const *argv, int fd);
/* Stop *pid: send sig, wait up to ms for it to exit, then SIGKILL and reap
 * it; *pid becomes 0.  Nothing if *pid <= 0, so cleanup may call it on
 * what never started or was stopped already. */
void spawn_stop(pid_t *pid, int sig, int ms);

#endif
