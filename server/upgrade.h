/* upgrade.h -- hot upgrade: a new hb-server process takes over the running
 * one's listeners, connections and journal without dropping a connection.
 * The protocol and its order are in proto/hongbao.proto ("hot upgrade");
 * the running side is upgrade.c, the new side sv_server_takeover (server.c),
 * each SET's part handover.c. */
#ifndef SV_UPGRADE_H
#define SV_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include "hongbao.pb-c.h"

#define SV_UPGRADE_VERSION 1
#define SV_UP_MAX_FDS 250          /* descriptors per message (SCM_MAX_FD is 253) */
#define SV_UP_MAX_MSG (256 * 1024) /* bytes per message; batches stay far below */

struct sv_server;

/* One Upgrade message per SOCK_SEQPACKET packet, descriptors beside it.
 * 0, or -1 with errno. */
int sv_up_send(int fd, const Hb__Upgrade *m, const int *fds, int nfds);
/* The next message within ms, its descriptors in fds[0..*nfds) (at most
 * SV_UP_MAX_FDS); NULL on timeout, end or garbage (err says which; any
 * descriptors that came are closed).  Free with sv_up_free. */
Hb__Upgrade *sv_up_recv(int fd, int ms, int *fds, int *nfds, char *err, size_t errlen);
void sv_up_free(Hb__Upgrade *m);
/* "@hb-upgrade-<pid>-<set>": where the new process's SET `set` listens. */
socklen_t sv_up_abstract(struct sockaddr_un *a, pid_t pid, int set);
/* The pid and uid of a Unix socket's peer; false if unknown. */
bool sv_up_peer(int fd, pid_t *pid, uid_t *uid);
/* Test hook: with HB_TAKEOVER_DIE_AT=stage in the environment, the process
 * kills itself (SIGKILL) when it reaches that stage. */
void sv_up_die_at(const char *stage);

/* Connections held by all SETs now (both sides count what is handed over). */
uint64_t sv_up_conns(struct sv_server *s);

/* Running side: listen on --upgrade-socket (mode 0600).  0, or -1 with err. */
int sv_upgrade_listen(struct sv_server *s, char *err, size_t errlen);
void sv_upgrade_unlisten(struct sv_server *s);
/* main, when a new process connects: run the whole handover.  true if the
 * new process has everything (this one must exit), false if it was refused
 * or failed (this one serves everything, as before). */
bool sv_upgrade_serve(struct sv_server *s);

/* New side: connect to the running server's socket, say hello.  The
 * socket, or -1 with err. */
int sv_up_connect(struct sv_server *s, const char *path, char *err, size_t errlen);
/* Continue the running producer's schedule where it stopped. */
void sv_up_restore_producer(struct sv_server *s, const Hb__UpgradeFrozen *f);

#endif
