/* auth.c -- HMAC-SHA256 login tokens with a signed expiry (OpenSSL libcrypto);
 * see auth.h for why the expiry is part of the MAC. */
#include "auth.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

int hb_secret_load(const char *path, uint8_t *out, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "secret file %s: %s", path, strerror(errno));
        return -1;
    }
    uint8_t buf[HB_SECRET_MAX + 2];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (n > HB_SECRET_MAX) {
        snprintf(err, errlen, "secret file %s: longer than %d bytes", path, HB_SECRET_MAX);
        return -1;
    }
    size_t a = 0;
    while (a < n && isspace(buf[a]))
        a++;
    while (n > a && isspace(buf[n - 1]))
        n--;
    if (n - a < 16) {
        snprintf(err, errlen, "secret file %s: need at least 16 bytes of secret (try: head -c 32 /dev/urandom | base64 > %s)",
                 path, path);
        return -1;
    }
    memcpy(out, buf + a, n - a);
    *len = n - a;
    return 0;
}

void hb_token_make(const uint8_t *secret, size_t slen, uint32_t uid, uint64_t expires, uint8_t out[HB_TOKEN_LEN])
{
    uint8_t msg[12];
    for (int i = 0; i < 4; i++)
        msg[i] = (uint8_t)(uid >> (24 - 8 * i));
    for (int i = 0; i < 8; i++)
        msg[4 + i] = (uint8_t)(expires >> (56 - 8 * i));
    unsigned int olen = HB_TOKEN_LEN;
    HMAC(EVP_sha256(), secret, (int)slen, msg, sizeof msg, out, &olen);
}

hb_token_verdict hb_token_check(const uint8_t *secret, size_t slen, uint32_t uid, uint64_t expires,
                                const uint8_t *tok, size_t toklen, uint64_t now)
{
    uint8_t want[HB_TOKEN_LEN];
    hb_token_make(secret, slen, uid, expires, want);
    /* The length is public; the bytes are compared in constant time. */
    if (toklen != HB_TOKEN_LEN || CRYPTO_memcmp(want, tok, HB_TOKEN_LEN) != 0)
        return HB_TOKEN_BAD;
    /* No expiry: a token that would never end is not one we issue. */
    if (expires == 0)
        return HB_TOKEN_BAD;
    /* written so that expires near UINT64_MAX cannot wrap */
    if (now > expires && now - expires > HB_TOKEN_SKEW)
        return HB_TOKEN_EXPIRED;
    return HB_TOKEN_OK;
}
