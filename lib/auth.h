/* auth.h -- login tokens: token = HMAC-SHA256(server secret, uid).
 *
 * The server checks the token of every login in constant time; simulated
 * clients (which play every user) and `hb-token` compute the same value from
 * the same secret file.  uid is hashed as 4 bytes, big-endian. */
#ifndef HB_AUTH_H
#define HB_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HB_TOKEN_LEN 32
#define HB_SECRET_MAX 256

/* Read a secret file (its bytes, surrounding whitespace trimmed; at least 16
 * bytes).  0, or -1 with a message in err. */
int hb_secret_load(const char *path, uint8_t *out, size_t *len, char *err, size_t errlen);

void hb_token_make(const uint8_t *secret, size_t slen, uint32_t uid, uint8_t out[HB_TOKEN_LEN]);

/* Constant-time check of a presented token. */
bool hb_token_check(const uint8_t *secret, size_t slen, uint32_t uid, const uint8_t *tok, size_t toklen);

#endif
