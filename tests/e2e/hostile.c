/* Hostile input and stuck peers (issue 7).  For every kind of bad frame and
 * every kind of slow or greedy peer: the error reply (where one can be
 * sent), the close, the counter, and a well-behaved client on the same
 * server that keeps getting served meanwhile.  Then the resource limits:
 * --max-conns, --addr-limit, the descriptor limit (EMFILE) and a connection
 * flood. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "peer.h"

static peer_server S;
static peer *good;
static uint32_t good_seq;

static void good_still_served(void)
{
    peer_shake(good, ++good_seq, false);
    Hb__Frame *f = peer_expect(good, HB__FRAME__BODY_SHAKE_REPLY, 3000);
    CHECK(f && f->shake_reply->seq == good_seq, "the well-behaved client was not answered");
}

static void expect_error_close(peer *p, Hb__ErrorCode code, int ms)
{
    Hb__Frame *f = peer_expect(p, HB__FRAME__BODY_ERROR, ms);
    CHECK(f, "no Error frame (want code %d)", code);
    CHECK(f->error->code == code, "error code %d (%s), want %d", f->error->code, f->error->detail, code);
    CHECK(peer_closed(p, 4000), "connection not closed after error %d", code);
}

/* Send bytes (after logging in when asked), expect the error and the close,
 * and the counter to go up by one. */
static void bad(const char *what, bool login_first, const void *bytes, size_t n, Hb__ErrorCode code,
                const char *counter)
{
    uint64_t before = peer_stat_now(&S, counter);
    peer *p = peer_connect(S.port);
    if (login_first)
        peer_login_ok(p, 500, NULL, 0);
    peer_send_raw(p, bytes, n);
    expect_error_close(p, code, 3000);
    CHECK(peer_wait_stat(&S, counter, before + 1, 3000) == before + 1, "%s not counted once", counter);
    good_still_served();
    peer_close(p);
    PASS("%s: error %d, closed, %s +1, the good client still served", what, code, counter);
}

static void bad_frame(const char *what, bool login_first, const Hb__Frame *f, Hb__ErrorCode code, const char *counter)
{
    uint8_t buf[HB_FRAME_DOWN_WIRE_MAX + 64];
    size_t n = hb_frame_pack(f, buf, sizeof buf);
    CHECK(n, "pack");
    bad(what, login_first, buf, n, code, counter);
}

/* f: a Login (uid 600) whose frame body is exactly `body` bytes, padded
 * with a token (no --secret: the token is not looked at). */
static void login_of(Hb__Frame *f, Hb__Login *l, uint8_t *tok, size_t body)
{
    hb__login__init(l);
    l->uid = 600;
    l->token.data = tok;
    *f = (Hb__Frame)HB__FRAME__INIT;
    f->body_case = HB__FRAME__BODY_LOGIN;
    f->login = l;
    for (l->token.len = 0; protobuf_c_message_get_packed_size(&f->base) < body; l->token.len++)
        ;
    CHECK(protobuf_c_message_get_packed_size(&f->base) == body, "no Login of %zu bytes", body);
}

/* What a node reads stays bounded by HB_FRAME_MAX, though what it sends a
 * client may be up to HB_FRAME_DOWN_MAX (proto/frame.h): a whole Login of
 * 512 bytes is served, one of 513 and one as long as a node's longest frame
 * are refused. */
static void too_long_logins(void)
{
    static uint8_t tok[HB_FRAME_DOWN_MAX];
    memset(tok, 'x', sizeof tok);
    Hb__Frame f;
    Hb__Login l;
    login_of(&f, &l, tok, HB_FRAME_MAX);
    peer *p = peer_connect(S.port);
    peer_send(p, &f);
    Hb__Frame *ok = peer_expect(p, HB__FRAME__BODY_LOGIN_OK, 3000);
    CHECK(ok && ok->login_ok->uid == 600, "a Login of exactly %d bytes was not served", HB_FRAME_MAX);
    peer_close(p);
    PASS("a whole Login of %d bytes (the bound): served", HB_FRAME_MAX);
    login_of(&f, &l, tok, HB_FRAME_MAX + 1);
    bad_frame("a whole Login of 513 bytes", false, &f, HB__ERROR_CODE__ERR_FRAME_TOO_LARGE, "err_frame_too_large");
    login_of(&f, &l, tok, HB_FRAME_DOWN_MAX);
    bad_frame("a whole Login as long as a node's longest frame (HB_FRAME_DOWN_MAX)", false, &f,
              HB__ERROR_CODE__ERR_FRAME_TOO_LARGE, "err_frame_too_large");
}

static void bad_input(void)
{
    const uint8_t too_large[] = {0x81, 0x04, 0x00};         /* length 513 */
    const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0x0f};  /* length 4 GB */
    const uint8_t empty[] = {0x00};
    const uint8_t truncated[] = {0x04, 0x1a, 0x05, 0x08, 0x01}; /* shake says 5 bytes, has 2 */
    const uint8_t garbage[] = {0x03, 0xff, 0xff, 0xff};
    const uint8_t unknown[] = {0x03, 0x98, 0x06, 0x01};     /* field 99 only */
    bad("length over the maximum", false, too_large, sizeof too_large, HB__ERROR_CODE__ERR_FRAME_TOO_LARGE,
        "err_frame_too_large");
    bad("a 4 GB length", true, huge, sizeof huge, HB__ERROR_CODE__ERR_FRAME_TOO_LARGE, "err_frame_too_large");
    bad("zero-length frame", true, empty, sizeof empty, HB__ERROR_CODE__ERR_FRAME_EMPTY, "err_frame_empty");
    bad("truncated protobuf", true, truncated, sizeof truncated, HB__ERROR_CODE__ERR_BAD_MESSAGE, "err_bad_message");
    bad("garbage bytes", false, garbage, sizeof garbage, HB__ERROR_CODE__ERR_BAD_MESSAGE, "err_bad_message");
    bad("unknown message type", true, unknown, sizeof unknown, HB__ERROR_CODE__ERR_UNKNOWN_TYPE, "err_unknown_type");

    Hb__Shake sh = HB__SHAKE__INIT;
    Hb__Frame f = HB__FRAME__INIT;
    f.body_case = HB__FRAME__BODY_SHAKE;
    f.shake = &sh;
    bad_frame("shake before login", false, &f, HB__ERROR_CODE__ERR_NOT_LOGGED_IN, "err_not_logged_in");
    Hb__Open op = HB__OPEN__INIT;
    f.body_case = HB__FRAME__BODY_OPEN;
    f.open = &op;
    bad_frame("open before login", false, &f, HB__ERROR_CODE__ERR_NOT_LOGGED_IN, "err_not_logged_in");
    Hb__ShakeReply sr = HB__SHAKE_REPLY__INIT;
    sr.result = HB__RESULT__RESULT_WIN;
    sr.amount = 100000;
    f.body_case = HB__FRAME__BODY_SHAKE_REPLY;
    f.shake_reply = &sr;
    bad_frame("a server message from a client", true, &f, HB__ERROR_CODE__ERR_NOT_ALLOWED, "err_not_allowed");
    Hb__Login l = HB__LOGIN__INIT;
    l.uid = 501;
    f.body_case = HB__FRAME__BODY_LOGIN;
    f.login = &l;
    bad_frame("a second login on one connection", true, &f, HB__ERROR_CODE__ERR_ALREADY_LOGGED_IN,
              "err_already_logged_in");
    l.uid = 1000; /* users are 0..999 */
    bad_frame("uid out of range", false, &f, HB__ERROR_CODE__ERR_BAD_UID, "err_bad_uid");
    char longtext[HB_CHAT_MAX + 50];
    memset(longtext, 'x', sizeof longtext - 1);
    longtext[sizeof longtext - 1] = 0;
    Hb__Chat ch = HB__CHAT__INIT;
    ch.to_uid = 1;
    ch.text = longtext;
    f.body_case = HB__FRAME__BODY_CHAT;
    f.chat = &ch;
    bad_frame("chat text over the limit", true, &f, HB__ERROR_CODE__ERR_CHAT_INVALID, "err_chat_invalid");
    ch.text = "hi";
    ch.to_uid = 5000;
    bad_frame("chat to a uid out of range", true, &f, HB__ERROR_CODE__ERR_CHAT_INVALID, "err_chat_invalid");
    too_long_logins();
}

static void slow_peers(void)
{
    /* login timeout: connect, say nothing */
    uint64_t before = peer_stat_now(&S, "err_login_timeout");
    peer *p = peer_connect(S.port);
    expect_error_close(p, HB__ERROR_CODE__ERR_LOGIN_TIMEOUT, 3500);
    CHECK(peer_stat(&S, "err_login_timeout") == before + 1, "login timeout not counted");
    good_still_served();
    peer_close(p);
    PASS("silent connection: ERR_LOGIN_TIMEOUT after --login-timeout, counted");

    /* slowloris: a frame header promising 40 bytes, then a byte every 300 ms;
     * the deadline runs from the start of the frame, the trickle does not
     * extend it */
    before = peer_stat_now(&S, "err_frame_timeout");
    p = peer_connect(S.port);
    peer_login_ok(p, 502, NULL, 0);
    uint8_t head = 40;
    peer_send_raw(p, &head, 1);
    int sent = 0;
    Hb__Frame *f = NULL;
    for (int i = 0; i < 12 && !f; i++) {
        uint8_t b = 0x08;
        peer_send_raw(p, &b, 1);
        sent++;
        f = peer_expect(p, HB__FRAME__BODY_ERROR, 300);
    }
    CHECK(f && f->error->code == HB__ERROR_CODE__ERR_FRAME_TIMEOUT, "slowloris not cut");
    CHECK(sent <= 8, "slowloris kept alive for %d trickled bytes", sent);
    CHECK(peer_closed(p, 3000), "slowloris not closed");
    CHECK(peer_stat(&S, "err_frame_timeout") == before + 1, "frame timeout not counted");
    good_still_served();
    peer_close(p);
    PASS("slowloris trickling a byte per 300 ms: ERR_FRAME_TIMEOUT after %d bytes, closed, counted", sent);

    /* a client that never reads: its output is bounded and it is closed */
    before = peer_stat_now(&S, "err_output_overflow");
    p = peer_connect(S.port);
    int small = 4096;
    setsockopt(p->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    peer_login_ok(p, 503, NULL, 0);
    static uint8_t burst[65536];
    size_t n = 0;
    for (uint32_t seq = 1; n + 16 < sizeof burst; seq++) {
        Hb__Shake sh = HB__SHAKE__INIT;
        sh.seq = seq;
        Hb__Frame g = HB__FRAME__INIT;
        g.body_case = HB__FRAME__BODY_SHAKE;
        g.shake = &sh;
        n += hb_frame_pack(&g, burst + n, sizeof burst - n);
    }
    int rounds = 0;
    for (; rounds < 400; rounds++) { /* up to 26 MB of shakes, never reading a reply */
        if (send(p->fd, burst, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno != EAGAIN)
            break; /* closed on us */
        if (peer_wait_stat(&S, "err_output_overflow", before + 1, 20) > before)
            break;
    }
    CHECK(peer_wait_stat(&S, "err_output_overflow", before + 1, 5000) == before + 1,
          "a client that never reads was not closed");
    good_still_served();
    peer_close(p);
    PASS("a client that never reads its replies: closed after %d x 64 KiB of requests, counted", rounds);
}

/* `n` shake frames from seq `from` into buf; returns the bytes. */
static size_t shakes(uint8_t *buf, size_t cap, uint32_t from, int n)
{
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        Hb__Shake sh = HB__SHAKE__INIT;
        sh.seq = from + (uint32_t)i;
        Hb__Frame g = HB__FRAME__INIT;
        g.body_case = HB__FRAME__BODY_SHAKE;
        g.shake = &sh;
        len += hb_frame_pack(&g, buf + len, cap - len);
    }
    return len;
}

/* Input progress must not keep stuck output alive (issue 13.3): a peer that
 * never reads, whose replies wait in a pool chunk, sends a chat to an
 * offline uid (no reply) more often than --frame-timeout.  Before the fix
 * each whole frame restarted the output deadline and the chunk was held as
 * long as the peer liked (enough such peers exhaust the SET's pool). */
static void stuck_output_kept_alive(void)
{
    uint64_t overflow = peer_stat_now(&S, "err_output_overflow");
    peer *p = peer_connect_rcvbuf(S.port, 4096);
    peer_login_ok(p, 504, NULL, 0);
    uint8_t buf[8192];
    uint32_t seq = 1;
    int batches = 0;
    bool stuck = false;
    /* Small batches (a few hundred bytes of replies each), so the chunk
     * (2 KiB) is seen held before it overflows. */
    for (; batches < 400 && !stuck; batches++) {
        size_t n = shakes(buf, sizeof buf, seq, 10);
        seq += 10;
        CHECK(send(p->fd, buf, n, MSG_NOSIGNAL) == (ssize_t)n, "send: %s", strerror(errno));
        usleep(30000);
        stuck = peer_stat_now(&S, "pool_chunks") > 0;
    }
    CHECK(stuck, "output never got stuck after %d batches of 10 shakes", batches);
    CHECK(peer_stat_now(&S, "err_output_overflow") == overflow, "overflowed before the test began (batches too big)");
    /* Keep it alive with input, never reading: a chat to an offline uid
     * every 300 ms, with --frame-timeout 1.  Usually closed after 3 chats;
     * the loop allows 12 s because on a loaded box (the ASan suite beside
     * other work) the stats file that shows the close can lag by seconds
     * (seen failing once at 3.6 s so), and a server whose chats restart the
     * deadline never closes it however long the chats go on. */
    int chats = 0;
    bool closed = false;
    for (; chats < 40 && !closed; chats++) {
        peer_chat(p, 999, "still here");
        usleep(300000);
        closed = peer_wait_stat(&S, "err_output_overflow", overflow + 1, 1) > overflow;
    }
    CHECK(closed, "stuck output kept alive by %d chats over %.1f s (--frame-timeout 1)", chats, chats * 0.3);
    good_still_served();
    peer_close(p);
    PASS("stuck output with input still arriving: closed after %d chats (%.1f s), counted; reached after %d batches",
         chats, chats * 0.3, batches);
}

static void flood(void)
{
    /* 3,000 connections that each start a 400-byte frame and stop: bounded
     * memory, all closed by the deadline, counted */
    uint64_t rss0 = peer_server_rss_kb(&S);
    uint64_t conns0 = peer_stat(&S, "conns");
    static peer *ps[3000];
    uint8_t partial[200] = {0x90, 0x03}; /* a 400-byte frame, 200 bytes of it */
    for (int i = 0; i < 3000; i++) {
        ps[i] = peer_connect(S.port);
        peer_send_raw(ps[i], partial, sizeof partial);
    }
    CHECK(peer_wait_stat(&S, "conns", conns0 + 3000, 5000) >= conns0 + 3000, "flood connections not all held");
    uint64_t rss1 = peer_server_rss_kb(&S);
    good_still_served();
    /* every one of them is closed by the login deadline */
    int64_t waited = 0;
    while (peer_stat(&S, "conns") > conns0 && waited < 8000)
        waited += 100, usleep(100000);
    CHECK(peer_stat(&S, "conns") == conns0, "flood connections still held");
    uint64_t rss2 = peer_server_rss_kb(&S);
    for (int i = 0; i < 3000; i++)
        peer_close(ps[i]);
    CHECK(rss1 - rss0 < 32 * 1024, "RSS grew by %llu kB under a 3,000-connection flood",
          (unsigned long long)(rss1 - rss0));
    good_still_served();
    PASS("flood of 3,000 half-frames: RSS %llu -> %llu kB (+%llu kB, %.0f bytes per connection incl. 2 KiB spill "
         "buffers), all closed by the deadline (RSS after %llu kB)",
         (unsigned long long)rss0, (unsigned long long)rss1, (unsigned long long)(rss1 - rss0),
         (double)(rss1 - rss0) * 1024 / 3000, (unsigned long long)rss2);
}

static void max_conns(void)
{
    peer_server s;
    const char *flags[] = {"--sets", "1", "--max-conns", "3", "--users", "100", "--total", "0", NULL};
    peer_server_start(&s, 1, flags);
    peer *p[3];
    for (int i = 0; i < 3; i++) {
        p[i] = peer_connect(s.port);
        peer_login_ok(p[i], (uint32_t)i, NULL, 0);
    }
    peer *x = peer_connect(s.port);
    expect_error_close(x, HB__ERROR_CODE__ERR_SERVER_FULL, 3000);
    CHECK(peer_stat(&s, "refused_full") == 1, "refusal not counted");
    peer_close(x);
    peer_close(p[0]);
    usleep(200000);
    x = peer_connect(s.port);
    peer_login_ok(x, 50, NULL, 0); /* a freed place is usable again */
    peer_server_stop(&s);
    PASS("--max-conns 3: the 4th connection got ERR_SERVER_FULL and a close; after one left, a new one got in");
}

static void addr_limit(void)
{
    peer_server s;
    const char *flags[] = {"--sets", "2", "--addr-limit", "2", "--users", "100", "--total", "0", NULL};
    peer_server_start(&s, 1, flags);
    peer *a = peer_connect(s.port), *b = peer_connect(s.port);
    peer_login_ok(a, 1, NULL, 0);
    peer_login_ok(b, 2, NULL, 0);
    peer *x = peer_connect(s.port);
    expect_error_close(x, HB__ERROR_CODE__ERR_TOO_MANY_CONNS_FROM_ADDR, 3000);
    peer *y = peer_connect_from(s.port, "127.0.0.2");
    CHECK(y, "connect from 127.0.0.2");
    peer_login_ok(y, 3, NULL, 0);
    CHECK(peer_stat(&s, "refused_addr") == 1, "refusal not counted");
    peer_server_stop(&s);
    PASS("--addr-limit 2: a 3rd connection from 127.0.0.1 refused; 127.0.0.2 still served");
}

static void emfile(void)
{
    /* a descriptor table of 80: accept() hits EMFILE long before --max-conns */
    peer_server s;
    const char *wrap[] = {"prlimit", "--nofile=80:80", "--", NULL};
    const char *flags[] = {"--sets", "1", "--max-conns", "1000", "--users", "1000", "--total", "0", "--login-timeout",
                           "30", NULL};
    peer_server_start_wrapped(&s, 1, wrap, flags);
    peer *g = peer_connect(s.port);
    peer_login_ok(g, 999, NULL, 0);
    static peer *ps[200];
    int n = 0;
    for (; n < 200; n++) {
        ps[n] = peer_connect_from(s.port, NULL);
        if (!ps[n])
            break;
    }
    /* every connection beyond what the table holds is accepted and closed
     * at once: none is left waiting in the backlog */
    uint64_t held = peer_wait_stat(&s, "conns", 1, 3000);
    uint64_t hits = peer_wait_stat(&s, "emfile", (uint64_t)n + 1 - held, 5000);
    held = peer_stat(&s, "conns");
    CHECK(hits > 0, "EMFILE never hit with 200 connections and 80 descriptors");
    CHECK(held + hits == (uint64_t)n + 1, "%llu held + %llu refused != %d connections: some are stuck in the backlog",
          (unsigned long long)held, (unsigned long long)hits, n + 1);
    int closed = 0;
    for (int i = 0; i < n; i++)
        closed += peer_closed(ps[i], 1);
    CHECK((uint64_t)closed == hits, "%d connections saw a close, %llu were refused", closed, (unsigned long long)hits);
    /* The excess connections were accepted and closed (the spare descriptor
     * trick), so nothing is left pending that could make the loop spin:
     * measure the server's CPU over 2 s with the table still full. */
    uint64_t cpu0 = peer_server_cpu_ms(&s);
    sleep(2);
    uint64_t cpu1 = peer_server_cpu_ms(&s);
    CHECK(cpu1 - cpu0 < 300, "server used %llu ms of CPU in 2 s at EMFILE: spinning",
          (unsigned long long)(cpu1 - cpu0));
    peer_shake(g, 1, false);
    CHECK(peer_expect(g, HB__FRAME__BODY_SHAKE_REPLY, 3000), "existing client not served at EMFILE");
    for (int i = 0; i < n; i++)
        peer_close(ps[i]);
    sleep(1);
    peer *later = peer_connect(s.port);
    peer_login_ok(later, 5, NULL, 0);
    PASS("EMFILE: %llu accepts refused via the spare descriptor, %llu ms CPU in 2 s (no spin), existing client "
         "served, new connections accepted once descriptors were free",
         (unsigned long long)peer_stat(&s, "emfile"), (unsigned long long)(cpu1 - cpu0));
    peer_server_stop(&s);
}

static double mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* An idle SET ticks once a second (set.h, SV_TICK_IDLE); a deadline that
 * starts there must switch it back to 100 ms ticks, or a 0.1 s login
 * timeout fires up to a second late.  Five tries, each after the SET has
 * been idle for 1.2 s: with the switch broken, all five come in under
 * 0.6 s only by chance (about 1 in 30). */
static void idle_set_deadlines(void)
{
    peer_server s;
    const char *flags[] = {"--sets", "1", "--users", "1000", "--total", "0", "--login-timeout", "0.1", NULL};
    peer_server_start(&s, 1, flags);
    double worst = 0;
    for (int i = 0; i < 5; i++) {
        usleep(1200000);
        double t0 = mono_s();
        peer *p = peer_connect(s.port);
        expect_error_close(p, HB__ERROR_CODE__ERR_LOGIN_TIMEOUT, 3000);
        double dt = mono_s() - t0;
        worst = dt > worst ? dt : worst;
        peer_close(p);
    }
    CHECK(worst < 0.6, "a 0.1 s login timeout on an idle SET took %.2f s", worst);
    PASS("deadline on an idle SET (1 s ticks): a 0.1 s login timeout fired within %.2f s in 5 of 5", worst);
    peer_server_stop(&s);
}

int main(void)
{
    const char *flags[] = {"--sets", "2", "--users", "1000", "--rate", "1000", "--total", "1000000", "--login-timeout",
                           "1.5", "--frame-timeout", "1", "--linger", "1", "--shake-limit", "0", "--stats-every", "50",
                           "--sndbuf", "4096", NULL};
    peer_server_start(&S, 1, flags);
    good = peer_connect(S.port);
    peer_login_ok(good, 1, NULL, 0);
    bad_input();
    slow_peers();
    stuck_output_kept_alive();
    flood();
    CHECK(peer_stat(&S, "conns") == 1, "leftover connections");
    peer_server_stop(&S);
    max_conns();
    addr_limit();
    emfile();
    idle_set_deadlines();
    printf("hostile: all passed\n");
    return 0;
}
