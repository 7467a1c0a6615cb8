/* Authentication and anti-bot limits (issues 7 and 13.7).
 *
 * Safe by default (13.7): a server refuses to listen on a non-loopback
 * address without --secret unless told --insecure; tokens sign an expiry
 * (Login.expires), so an expired token, a token moved to another uid or
 * another expiry, and an old-style token without expiry are refused, while a
 * valid one and one from `hb-token --ttl` are accepted.  Those checks run
 * first and do not stop at the first failure, so a run on a server without
 * the feature lists every one that fails.
 *
 * Then (7): forged tokens, a token for another uid, an empty token and a
 * replayed login are refused and leave the victim's session and money
 * untouched; a second real login replaces the first session cleanly; a bot
 * shaking 100 times a second is rate-limited and never wins more than its
 * allowed share, and reconnecting does not reset the limit.
 *
 * Tokens are computed here with OpenSSL directly, not with lib/auth.c, so the
 * test pins the format (HMAC-SHA256(secret, uid be32 || expires be64)) rather
 * than agreeing with whatever the library does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "auth.h"
#include "jfile.h"
#include "peer.h"

static uint8_t secret[] = "a-test-secret-of-32-bytes-length";

/* the token of uid with expiry `expires` */
static void tok_exp(uint32_t uid, uint64_t expires, uint8_t out[HB_TOKEN_LEN])
{
    uint8_t msg[12];
    for (int i = 0; i < 4; i++)
        msg[i] = (uint8_t)(uid >> (24 - 8 * i));
    for (int i = 0; i < 8; i++)
        msg[4 + i] = (uint8_t)(expires >> (56 - 8 * i));
    unsigned int olen = HB_TOKEN_LEN;
    HMAC(EVP_sha256(), secret, (int)sizeof secret - 1, msg, sizeof msg, out, &olen);
}

/* Tokens of the issue-7 part of the test: valid for an hour. */
static uint64_t EXP;
static void tok(uint32_t uid, uint8_t out[HB_TOKEN_LEN])
{
    tok_exp(uid, EXP, out);
}

/* ---- checks that report and go on (see the header) ---------------------------- */

static int soft_failures;
#define SOFT(cond, ...)                                                         \
    do {                                                                        \
        if (cond) {                                                             \
            printf("ok: ");                                                     \
        } else {                                                                \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                         \
            soft_failures++;                                                    \
        }                                                                       \
        printf(__VA_ARGS__);                                                    \
        printf("\n");                                                           \
        fflush(stdout);                                                         \
    } while (0)

/* Run hb-server with `extra` flags on a free port for up to ms: its exit
 * status (-1: still running at the deadline, i.e. it started) and output. */
static int run_server(const char *const *extra, int ms, char *out, size_t outlen)
{
    char port[16], journal[128];
    snprintf(port, sizeof port, "%d", peer_free_port());
    snprintf(journal, sizeof journal, "/tmp/hb-auth-journal-%d", getpid());
    unlink(journal);
    const char *argv[40] = {"--port", port, "--journal", journal, "--sets", "1", "--users", "10", "--total", "0",
                            "--no-fsync"};
    int n = 11;
    for (int i = 0; extra[i] && n < 39; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    int rc = peer_server_run(argv, ms, out, outlen);
    unlink(journal);
    return rc;
}

static void check_listen(const char *secret_path)
{
    char out[8192];
    const char *open_no_secret[] = {"--listen", "0.0.0.0", NULL};
    int rc = run_server(open_no_secret, 2000, out, sizeof out);
    SOFT(rc == 1 && strstr(out, "--secret") && strstr(out, "--insecure"),
         "--listen 0.0.0.0 without --secret: exit status %d (want 1, naming --secret and --insecure): %.300s", rc,
         out);
    const char *other_no_secret[] = {"--listen", "10.1.2.3", NULL};
    rc = run_server(other_no_secret, 2000, out, sizeof out);
    SOFT(rc == 1 && strstr(out, "--insecure"), "--listen 10.1.2.3 without --secret: exit status %d (want 1, naming --insecure): %.300s", rc, out);
    const char *open_insecure[] = {"--listen", "0.0.0.0", "--insecure", NULL};
    rc = run_server(open_insecure, 1500, out, sizeof out);
    SOFT(rc == -1 && strstr(out, "listening on 0.0.0.0"), "--listen 0.0.0.0 --insecure starts (status %d): %.300s",
         rc, out);
    const char *open_secret[] = {"--listen", "0.0.0.0", "--secret", secret_path, NULL};
    rc = run_server(open_secret, 1500, out, sizeof out);
    SOFT(rc == -1 && strstr(out, "listening on 0.0.0.0"), "--listen 0.0.0.0 --secret starts (status %d): %.300s", rc,
         out);
    const char *loop_no_secret[] = {"--listen", "127.0.0.5", NULL};
    rc = run_server(loop_no_secret, 1500, out, sizeof out);
    SOFT(rc == -1, "--listen 127.0.0.5 (loopback) without --secret starts (status %d): %.300s", rc, out);
    const char *defaults[] = {NULL};
    rc = run_server(defaults, 1500, out, sizeof out);
    SOFT(rc == -1 && strstr(out, "listening on 127.0.0.1"),
         "no --listen, no --secret: starts, on 127.0.0.1 (status %d): %.300s", rc, out);
}

/* Log in as uid with (token, expires) on a new connection: the ErrorCode the
 * server answers, 0 for LoginOk, -1 for nothing. */
static int try_login(peer_server *s, uint32_t uid, const uint8_t *t, size_t tlen, uint64_t expires)
{
    peer *p = peer_connect(s->port);
    peer_login_exp(p, uid, t, tlen, expires);
    int got = -1;
    for (Hb__Frame *f; got < 0 && (f = peer_next(p, 3000));)
        if (f->body_case == HB__FRAME__BODY_LOGIN_OK)
            got = 0;
        else if (f->body_case == HB__FRAME__BODY_ERROR)
            got = (int)f->error->code;
    peer_close(p);
    return got;
}

static void check_expiry(peer_server *s, const char *secret_path)
{
    const uint32_t U = 30;
    uint64_t now = (uint64_t)time(NULL);
    uint8_t t[HB_TOKEN_LEN];
    tok_exp(U, now + 600, t);
    int r = try_login(s, U, t, sizeof t, now + 600);
    SOFT(r == 0, "a token valid for 10 more minutes: got %d, want LoginOk", r);
    tok_exp(U, now - 10, t);
    r = try_login(s, U, t, sizeof t, now - 10);
    SOFT(r == 0, "a token expired 10 s ago (within the 60 s clock skew allowed): got %d, want LoginOk", r);
    tok_exp(U, now - 3600, t);
    r = try_login(s, U, t, sizeof t, now - 3600);
    SOFT(r == HB__ERROR_CODE__ERR_TOKEN_EXPIRED, "a token expired an hour ago: got %d, want ERR_TOKEN_EXPIRED", r);
    tok_exp(U + 1, now + 600, t);
    r = try_login(s, U, t, sizeof t, now + 600);
    SOFT(r == HB__ERROR_CODE__ERR_BAD_TOKEN, "another uid's valid token: got %d, want ERR_BAD_TOKEN", r);
    tok_exp(U, now - 3600, t);
    r = try_login(s, U, t, sizeof t, now + 3600);
    SOFT(r == HB__ERROR_CODE__ERR_BAD_TOKEN, "an expired token presented with a later expiry: got %d, want ERR_BAD_TOKEN",
         r);
    /* the old format: HMAC(secret, uid), no expiry */
    uint8_t msg[4] = {0, 0, 0, (uint8_t)U};
    unsigned int olen = HB_TOKEN_LEN;
    HMAC(EVP_sha256(), secret, (int)sizeof secret - 1, msg, sizeof msg, t, &olen);
    r = try_login(s, U, t, sizeof t, 0);
    SOFT(r == HB__ERROR_CODE__ERR_BAD_TOKEN, "an old-style token without expiry: got %d, want ERR_BAD_TOKEN", r);
    tok_exp(U, 0, t);
    r = try_login(s, U, t, sizeof t, 0);
    SOFT(r == HB__ERROR_CODE__ERR_BAD_TOKEN, "a token signing expires = 0 (no expiry): got %d, want ERR_BAD_TOKEN", r);

    /* hb-token --ttl: "uid<TAB>expires<TAB>hex-token" */
    char cmd[512], line[256] = "";
    snprintf(cmd, sizeof cmd, "%s/hb-token --secret %s --uid %u --ttl 600 2>&1", getenv("HB_BIN"), secret_path, U);
    FILE *f = popen(cmd, "r");
    if (f) {
        if (!fgets(line, sizeof line, f))
            line[0] = 0;
        pclose(f);
    }
    unsigned uid = 0;
    unsigned long long expires = 0;
    char hex[2 * HB_TOKEN_LEN + 1] = "";
    int fields = sscanf(line, "%u	%llu	%64s", &uid, &expires, hex);
    bool sane = fields == 3 && uid == U && strlen(hex) == 2 * HB_TOKEN_LEN && expires >= now + 590 &&
                expires <= (uint64_t)time(NULL) + 610;
    r = -1;
    if (sane) {
        for (int i = 0; i < HB_TOKEN_LEN; i++)
            sscanf(hex + 2 * i, "%2hhx", &t[i]);
        r = try_login(s, U, t, sizeof t, expires);
    }
    SOFT(sane && r == 0, "hb-token --ttl 600 prints uid, expiry (now+600) and a token the server accepts: %s -> %d",
         line, r);
}

static void expect_refused(peer *p, Hb__ErrorCode code, const char *what)
{
    Hb__Frame *f = peer_expect(p, HB__FRAME__BODY_ERROR, 3000);
    CHECK(f && f->error->code == code, "%s: want error %d", what, code);
    CHECK(peer_closed(p, 3000), "%s: not closed", what);
}

/* WIN records in the journal for uid */
static int journal_wins(peer_server *s, uint32_t uid)
{
    hb_jfile jf;
    char err[256];
    CHECK(hb_jfile_open(&jf, s->journal, err, sizeof err) == 0, "%s", err);
    Hb__Record *r;
    int n = 0;
    while (hb_jfile_next(&jf, &r))
        n += r->type == HB__RECORD_TYPE__REC_WIN && r->uid == uid;
    hb_jfile_close(&jf);
    return n;
}

int main(void)
{
    char path[128];
    snprintf(path, sizeof path, "/tmp/hb-auth-secret-%d", getpid());
    FILE *f = fopen(path, "w");
    fputs((char *)secret, f);
    fclose(f);
    peer_server s;
    const char *flags[] = {"--sets", "2", "--users", "100", "--rate", "1000", "--total", "1000000", "--secret", path,
                           "--shake-limit", "1", NULL};
    check_listen(path);
    peer_server_start(&s, 1, flags);
    check_expiry(&s, path);
    if (soft_failures) {
        fprintf(stderr, "FAIL: %d of the safe-by-default checks failed\n", soft_failures);
        peer_abort();
    }
    EXP = (uint64_t)time(NULL) + 3600;
    uint8_t t[HB_TOKEN_LEN];
    uint64_t bad0 = peer_stat(&s, "err_bad_token");
    /* The expiry checks above log uids in on fresh connections after closing
     * the last; on a loaded machine the server may see a close after the
     * next login of that uid (another SET), which is a replacement: count
     * from here. */
    uint64_t replaced0 = peer_stat(&s, "replaced");

    /* the victim logs in with its real token and wins something */
    const uint32_t V = 10;
    peer *victim = peer_connect(s.port);
    tok(V, t);
    peer_login_exp_ok(victim, V, t, sizeof t, EXP);
    peer_shake(victim, 1, false);
    Hb__Frame *r = peer_expect(victim, HB__FRAME__BODY_SHAKE_REPLY, 3000);
    CHECK(r && r->shake_reply->result == HB__RESULT__RESULT_WIN, "victim's shake did not win");
    int victim_wins = 1;
    PASS("uid %u logged in with its token and won packet %llu", V, (unsigned long long)r->shake_reply->packet_id);

    /* forged token for the victim's uid */
    peer *att = peer_connect(s.port);
    uint8_t forged[HB_TOKEN_LEN];
    memset(forged, 0x5a, sizeof forged);
    peer_login_exp(att, V, forged, sizeof forged, EXP);
    expect_refused(att, HB__ERROR_CODE__ERR_BAD_TOKEN, "forged token");
    peer_close(att);
    /* a real token, but for another uid */
    att = peer_connect(s.port);
    tok(11, t);
    peer_login_exp(att, V, t, sizeof t, EXP);
    expect_refused(att, HB__ERROR_CODE__ERR_BAD_TOKEN, "token of uid 11 used for uid 10");
    peer_close(att);
    /* no token at all, and a truncated one */
    att = peer_connect(s.port);
    peer_login_exp(att, V, NULL, 0, EXP);
    expect_refused(att, HB__ERROR_CODE__ERR_BAD_TOKEN, "empty token");
    peer_close(att);
    att = peer_connect(s.port);
    tok(V, t);
    peer_login_exp(att, V, t, 16, EXP);
    expect_refused(att, HB__ERROR_CODE__ERR_BAD_TOKEN, "half a token");
    peer_close(att);
    CHECK(peer_stat(&s, "err_bad_token") - bad0 == 4, "bad tokens not counted");
    /* the victim's session was not disturbed: still current, still served */
    sleep(1); /* next second: the rate limit allows one more shake */
    peer_shake(victim, 2, false);
    r = peer_expect(victim, HB__FRAME__BODY_SHAKE_REPLY, 3000);
    CHECK(r && r->shake_reply->seq == 2 && r->shake_reply->result == HB__RESULT__RESULT_WIN,
          "victim's session disturbed by the attempts");
    victim_wins++;
    CHECK(peer_stat(&s, "replaced") == replaced0, "a refused login replaced a session");
    CHECK(journal_wins(&s, V) == victim_wins, "journal has %d wins for the victim, want %d", journal_wins(&s, V),
          victim_wins);
    PASS("forged token, another uid's token, empty and half tokens: all ERR_BAD_TOKEN; the victim's session and "
         "its %d journaled wins untouched", victim_wins);

    /* a replayed login on the same connection */
    tok(V, t);
    peer_login_exp(victim, V, t, sizeof t, EXP);
    expect_refused(victim, HB__ERROR_CODE__ERR_ALREADY_LOGGED_IN, "replayed login");
    peer_close(victim);
    PASS("a login replayed on a logged-in connection: ERR_ALREADY_LOGGED_IN, closed");

    /* a second real login replaces the first session: same SET and another SET */
    int seen_same = 0, seen_other = 0;
    for (uint32_t u = 20; u < 60 && !(seen_same && seen_other); u++) {
        tok(u, t);
        peer *first = peer_connect(s.port);
        int s1 = peer_login_exp_ok(first, u, t, sizeof t, EXP);
        peer *second = peer_connect(s.port);
        int s2 = peer_login_exp_ok(second, u, t, sizeof t, EXP);
        if ((s1 == s2 && seen_same) || (s1 != s2 && seen_other)) {
            peer_close(first);
            peer_close(second);
            continue;
        }
        Hb__Frame *e = peer_expect(first, HB__FRAME__BODY_ERROR, 3000);
        CHECK(e && e->error->code == HB__ERROR_CODE__ERR_REPLACED, "old session not told it was replaced");
        CHECK(peer_closed(first, 3000), "old session not closed");
        sleep(1);
        peer_shake(second, 7, false);
        CHECK(peer_expect(second, HB__FRAME__BODY_SHAKE_REPLY, 3000), "new session not served");
        seen_same += s1 == s2;
        seen_other += s1 != s2;
        peer_close(first);
        peer_close(second);
    }
    CHECK(seen_same && seen_other, "did not see both a same-SET and a cross-SET replacement");
    PASS("a second login for a uid replaced the first session (same SET and across SETs): old one got "
         "ERR_REPLACED and was closed, new one served");

    /* a bot: 100 shakes a second for 3 seconds, then a reconnect */
    const uint32_t BOT = 70;
    tok(BOT, t);
    peer *bot = peer_connect(s.port);
    peer_login_exp_ok(bot, BOT, t, sizeof t, EXP);
    uint64_t limited0 = peer_stat_now(&s, "rate_limited");
    int wins = 0, limited = 0, other = 0;
    uint32_t seq = 100;
    time_t first_sec = time(NULL);
    for (int burst = 0; burst < 30; burst++) {
        for (int i = 0; i < 10; i++)
            peer_shake(bot, ++seq, false);
        for (int i = 0; i < 10; i++) {
            Hb__Frame *g = peer_expect(bot, HB__FRAME__BODY_SHAKE_REPLY, 3000);
            CHECK(g, "bot's shake not answered");
            if (g->shake_reply->result == HB__RESULT__RESULT_WIN)
                wins++;
            else if (g->shake_reply->result == HB__RESULT__RESULT_RATE_LIMITED) {
                limited++;
                CHECK(g->shake_reply->amount == 0 && g->shake_reply->packet_id == 0, "limited with money");
            } else
                other++;
        }
        usleep(100000);
    }
    /* reconnecting does not reset the limit */
    peer_close(bot);
    bot = peer_connect(s.port);
    peer_login_exp_ok(bot, BOT, t, sizeof t, EXP);
    for (int i = 0; i < 3; i++)
        peer_shake(bot, ++seq, false);
    int after = 0;
    for (int i = 0; i < 3; i++) {
        Hb__Frame *g = peer_expect(bot, HB__FRAME__BODY_SHAKE_REPLY, 3000);
        CHECK(g, "no reply after reconnect");
        after += g->shake_reply->result != HB__RESULT__RESULT_RATE_LIMITED;
        wins += g->shake_reply->result == HB__RESULT__RESULT_WIN;
    }
    CHECK(after <= 1, "reconnecting reset the rate limit (%d shakes allowed in one second)", after);
    /* one allowed per wall-clock second the burst touched (about 4; more
     * on a loaded machine, which stretches the burst) */
    int seconds = (int)(time(NULL) - first_sec) + 1;
    CHECK(wins + other <= seconds, "bot got %d shakes through in %d seconds at --shake-limit 1", wins + other,
          seconds);
    CHECK(limited >= 300 - seconds, "only %d of 300 shakes rate-limited in %d seconds", limited, seconds);
    CHECK(peer_stat(&s, "rate_limited") - limited0 >= (uint64_t)limited, "rate limiting not counted");
    CHECK(journal_wins(&s, BOT) == wins, "journal wins of the bot %d != %d", journal_wins(&s, BOT), wins);
    PASS("a bot shaking 100/s for 3 s: %d rate-limited (never paid), %d won, %d lost; a reconnect did not reset "
         "the limit",
         limited, wins, other);
    peer_server_stop(&s);
    unlink(path);
    printf("auth: all passed\n");
    return 0;
}
