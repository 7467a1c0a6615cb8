/* auth.h -- login tokens: token = HMAC-SHA256(server secret, uid || expires).
 *
 * The server checks the token of every login in constant time; simulated
 * clients (which play every user) and `hb-token` compute the same value from
 * the same secret file.  uid is hashed as 4 bytes and expires (unix seconds)
 * as 8 bytes, both big-endian.
 *
 * The expiry is signed (issue 13.7) so that a token that leaks stops working
 * on its own: it cannot be moved to a later time, and a token with no expiry
 * (expires = 0, or the old HMAC of the uid alone) is never valid. */
#ifndef HB_AUTH_H
#define HB_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HB_TOKEN_LEN 32
#define HB_SECRET_MAX 256
/* A token is still accepted this many seconds after its expiry: the issuer's
 * clock and the server's may differ by that much without refusing logins
 * the issuer meant to allow. */
#define HB_TOKEN_SKEW 60

/* Read a secret file (its bytes, surrounding whitespace trimmed; at least 16
 * bytes).  0, or -1 with a message in err. */
int hb_secret_load(const char *path, uint8_t *out, size_t *len, char *err, size_t errlen);

void hb_token_make(const uint8_t *secret, size_t slen, uint32_t uid, uint64_t expires, uint8_t out[HB_TOKEN_LEN]);

typedef enum {
    HB_TOKEN_OK,
    HB_TOKEN_BAD,     /* not made with this secret for this (uid, expires), or expires = 0 */
    HB_TOKEN_EXPIRED, /* genuine, but now > expires + HB_TOKEN_SKEW */
} hb_token_verdict;

/* Check a presented token at time `now` (unix seconds).  The MAC is compared
 * in constant time and checked before the expiry, so EXPIRED is said only of
 * genuine tokens (a client can then fetch a new one) and tells a forger
 * nothing. */
hb_token_verdict hb_token_check(const uint8_t *secret, size_t slen, uint32_t uid, uint64_t expires,
                                const uint8_t *tok, size_t toklen, uint64_t now);

#endif
