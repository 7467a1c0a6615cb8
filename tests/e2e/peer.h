/* peer.h -- a scriptable protocol peer for end-to-end tests written in C:
 * start an hb-server, open raw connections, send frames or arbitrary bytes,
 * wait for frames or for the close, read the server's counters.  Blocking
 * sockets with timeouts: tests read top to bottom like the scenario. */
#ifndef HB_PEER_H
#define HB_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "frame.h"
#include "statsfile.h"

typedef struct peer_server {
    pid_t pid;
    int port;         /* first port */
    char dir[128];    /* working directory (journal, stats) */
    char stats[192];
    char journal[192];
    char log[192];
} peer_server;

/* Start hb-server (from $HB_BIN) with the given extra flags (NULL-terminated)
 * on a free port range of `nports`; waits until it listens. */
void peer_server_start(peer_server *s, int nports, const char *const *flags);
/* The same, run under a wrapper command (e.g. {"prlimit", "--nofile=100:100", "--", NULL}). */
void peer_server_start_wrapped(peer_server *s, int nports, const char *const *wrap, const char *const *flags);
/* The same on the given ports (port..port+nports-1), e.g. a node restarted
 * where it was (a cluster node's description includes its address). */
void peer_server_start_at(peer_server *s, int port, int nports, const char *const *flags);
/* A port nothing listens on (for a server that is expected not to start). */
int peer_free_port(void);
/* Run hb-server with `flags` (NULL-terminated) to its end, at most ms; its
 * output (stdout and stderr) into out.  The exit status, 128+signal if a
 * signal ended it, or -1 if it was still running at the deadline (then it
 * is killed). */
int peer_server_run(const char *const *flags, int ms, char *out, size_t outlen);
/* Resident memory (kB) and CPU time used so far (ms) of the running server. */
uint64_t peer_server_rss_kb(peer_server *s);
uint64_t peer_server_cpu_ms(peer_server *s);
/* SIGTERM and wait (the stats file then holds the final counters). */
void peer_server_stop(peer_server *s);
void peer_server_kill(peer_server *s); /* SIGKILL */
/* Counter `name` from the server's stats file (waits up to 3 s for the next
 * rewrite so values are fresh). */
uint64_t peer_stat(peer_server *s, const char *name);
/* The same without waiting for a rewrite (for values taken before an action). */
uint64_t peer_stat_now(peer_server *s, const char *name);
/* Wait until counter `name` >= want, up to `ms`; returns the last value. */
uint64_t peer_wait_stat(peer_server *s, const char *name, uint64_t want, int ms);

typedef struct peer {
    int fd;
    hb_stream in;
    hb_arena arena;
    uint8_t mem[16384];
    /* frames received but not yet asked for */
    uint8_t queued[64][HB_FRAME_DOWN_MAX]; /* a node's frames: up to HB_FRAME_DOWN_MAX */
    size_t qlen[64];
    int nq;
} peer;

peer *peer_connect(int port);
/* Connect from a given local address (e.g. "127.0.0.2"); NULL if refused. */
peer *peer_connect_from(int port, const char *src);
/* Connect with a small receive buffer (set before connect) to play a peer
 * that reads slowly or never. */
peer *peer_connect_rcvbuf(int port, int rcvbuf);
void peer_close(peer *p);
void peer_send_raw(peer *p, const void *data, size_t n);
void peer_send(peer *p, const Hb__Frame *f);
void peer_login(peer *p, uint32_t uid, const uint8_t *token, size_t toklen);
/* Login with a token expiry (unix seconds; Login.expires). */
void peer_login_exp(peer *p, uint32_t uid, const uint8_t *token, size_t toklen, uint64_t expires);
void peer_shake(peer *p, uint32_t seq, bool retry);
void peer_open(peer *p, uint64_t packet_id);
void peer_chat(peer *p, uint32_t to, const char *text);
/* Next frame of the given body kind (others are skipped), or NULL after ms. */
Hb__Frame *peer_expect(peer *p, Hb__Frame__BodyCase kind, int ms);
/* Next frame of any kind, or NULL (timeout or closed). */
Hb__Frame *peer_next(peer *p, int ms);
/* True if the server closes the connection within ms. */
bool peer_closed(peer *p, int ms);
/* Log in and wait for LoginOk; returns the SET that owns the connection. */
int peer_login_ok(peer *p, uint32_t uid, const uint8_t *token, size_t toklen);
/* The same with a token expiry. */
int peer_login_exp_ok(peer *p, uint32_t uid, const uint8_t *token, size_t toklen, uint64_t expires);

/* Test bookkeeping */
#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                       \
            fprintf(stderr, "\n");                                              \
            peer_abort();                                                       \
        }                                                                       \
    } while (0)
#define PASS(...)                                                               \
    do {                                                                        \
        printf("ok: ");                                                         \
        printf(__VA_ARGS__);                                                    \
        printf("\n");                                                           \
        fflush(stdout);                                                         \
    } while (0)
void peer_abort(void) __attribute__((noreturn));

#endif
