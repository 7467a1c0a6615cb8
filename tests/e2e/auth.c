/* Authentication and anti-bot limits (issue 7): forged tokens, a token for
 * another uid, an empty token and a replayed login are refused and leave the
 * victim's session and money untouched; a second real login replaces the
 * first session cleanly; a bot shaking 100 times a second is rate-limited and
 * never wins more than its allowed share, and reconnecting does not reset
 * the limit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "auth.h"
#include "jfile.h"
#include "peer.h"

static uint8_t secret[] = "a-test-secret-of-32-bytes-length";

static void tok(uint32_t uid, uint8_t out[HB_TOKEN_LEN])
{
    hb_token_make(secret, sizeof secret - 1, uid, out);
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
    peer_server_start(&s, 1, flags);
    uint8_t t[HB_TOKEN_LEN];

    /* the victim logs in with its real token and wins something */
    const uint32_t V = 10;
    peer *victim = peer_connect(s.port);
    tok(V, t);
    peer_login_ok(victim, V, t, sizeof t);
    peer_shake(victim, 1, false);
    Hb__Frame *r = peer_expect(victim, HB__FRAME__BODY_SHAKE_REPLY, 3000);
    CHECK(r && r->shake_reply->result == HB__RESULT__RESULT_WIN, "victim's shake did not win");
    int victim_wins = 1;
    PASS("uid %u logged in with its token and won packet %llu", V, (unsigned long long)r->shake_reply->packet_id);

    /* forged token for the victim's uid */
    peer *att = peer_connect(s.port);
    uint8_t forged[HB_TOKEN_LEN];
    memset(forged, 0x5a, sizeof forged);
    peer_login(att, V, forged, sizeof forged);
    expect_refused(att, HB__ERROR_CODE__ERR_BAD_TOKEN, "forged token");
    peer_close(att);
    /* a real token, but for another uid */
    att = peer_connect(s.port);
    tok(11, t);
    peer_login(att, V, t, sizeof t);
    expect_refused(att, HB__ERROR_CODE__ERR_BAD_TOKEN, "token of uid 11 used for uid 10");
    peer_close(att);
    /* no token at all, and a truncated one */
    att = peer_connect(s.port);
    peer_login(att, V, NULL, 0);
    expect_refused(att, HB__ERROR_CODE__ERR_BAD_TOKEN, "empty token");
    peer_close(att);
    att = peer_connect(s.port);
    tok(V, t);
    peer_login(att, V, t, 16);
    expect_refused(att, HB__ERROR_CODE__ERR_BAD_TOKEN, "half a token");
    peer_close(att);
    CHECK(peer_stat(&s, "err_bad_token") == 4, "bad tokens not counted");
    /* the victim's session was not disturbed: still current, still served */
    sleep(1); /* next second: the rate limit allows one more shake */
    peer_shake(victim, 2, false);
    r = peer_expect(victim, HB__FRAME__BODY_SHAKE_REPLY, 3000);
    CHECK(r && r->shake_reply->seq == 2 && r->shake_reply->result == HB__RESULT__RESULT_WIN,
          "victim's session disturbed by the attempts");
    victim_wins++;
    CHECK(peer_stat(&s, "replaced") == 0, "a refused login replaced a session");
    CHECK(journal_wins(&s, V) == victim_wins, "journal has %d wins for the victim, want %d", journal_wins(&s, V),
          victim_wins);
    PASS("forged token, another uid's token, empty and half tokens: all ERR_BAD_TOKEN; the victim's session and "
         "its %d journaled wins untouched", victim_wins);

    /* a replayed login on the same connection */
    tok(V, t);
    peer_login(victim, V, t, sizeof t);
    expect_refused(victim, HB__ERROR_CODE__ERR_ALREADY_LOGGED_IN, "replayed login");
    peer_close(victim);
    PASS("a login replayed on a logged-in connection: ERR_ALREADY_LOGGED_IN, closed");

    /* a second real login replaces the first session: same SET and another SET */
    int seen_same = 0, seen_other = 0;
    for (uint32_t u = 20; u < 60 && !(seen_same && seen_other); u++) {
        tok(u, t);
        peer *first = peer_connect(s.port);
        int s1 = peer_login_ok(first, u, t, sizeof t);
        peer *second = peer_connect(s.port);
        int s2 = peer_login_ok(second, u, t, sizeof t);
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
    peer_login_ok(bot, BOT, t, sizeof t);
    uint64_t limited0 = peer_stat_now(&s, "rate_limited");
    int wins = 0, limited = 0, other = 0;
    uint32_t seq = 100;
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
    peer_login_ok(bot, BOT, t, sizeof t);
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
    /* about 3.3 s of shaking at 1 allowed per second: at most 5 allowed */
    CHECK(wins + other <= 5, "bot got %d shakes through in ~3 s at --shake-limit 1", wins + other);
    CHECK(limited >= 290, "only %d of 300 shakes rate-limited", limited);
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
