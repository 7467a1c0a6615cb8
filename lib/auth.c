/* auth.c -- HMAC-SHA256 login tokens (OpenSSL libcrypto). */
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

void hb_token_make(const uint8_t *secret, size_t slen, uint32_t uid, uint8_t out[HB_TOKEN_LEN])
{
    uint8_t msg[4] = {(uint8_t)(uid >> 24), (uint8_t)(uid >> 16), (uint8_t)(uid >> 8), (uint8_t)uid};
    unsigned int olen = HB_TOKEN_LEN;
    HMAC(EVP_sha256(), secret, (int)slen, msg, sizeof msg, out, &olen);
}

bool hb_token_check(const uint8_t *secret, size_t slen, uint32_t uid, const uint8_t *tok, size_t toklen)
{
    uint8_t want[HB_TOKEN_LEN];
    hb_token_make(secret, slen, uid, want);
    /* The length is public; the bytes are compared in constant time. */
    return toklen == HB_TOKEN_LEN && CRYPTO_memcmp(want, tok, HB_TOKEN_LEN) == 0;
}
