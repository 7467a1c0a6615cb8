/* token.c -- hb-token: login tokens for a uid range, and new secrets.
 *
 * A token is HMAC-SHA256(secret, uid || expires) (lib/auth.h); whoever holds
 * it can log in as that uid until it expires, so tokens are handed to users
 * by the login service, never derived by them, and they end (--ttl) so a
 * leaked one does not work forever.  Output: one "uid<TAB>expires<TAB>
 * hex-token" line per uid; a client sends expires with the token (Login). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/rand.h>
#include "auth.h"
#include "conf.h"
#include "util.h"

int main(int argc, char **argv)
{
    hb_prog = "hb-token";
    char *secret_file = NULL, *new_secret = NULL;
    int64_t from = -1, to = -1, uid = -1, ttl = 86400;
    const hb_opt opts[] = {
        {"secret", HB_OPT_STR, &secret_file, "FILE", "the server's secret (as given to hb-server --secret)", 0, 0},
        {"uid", HB_OPT_INT, &uid, "UID", "print the token of one uid", 0, 4294967295.0},
        {"from", HB_OPT_INT, &from, "UID", "first uid of a range", 0, 4294967295.0},
        {"to", HB_OPT_INT, &to, "UID", "one past the last uid of the range", 0, 4294967296.0},
        {"ttl", HB_OPT_INT, &ttl, "SECONDS", "the tokens expire SECONDS from now (the server allows 60 s of clock skew)", 1, 1e9},
        {"new-secret", HB_OPT_STR, &new_secret, "FILE", "write a new random 32-byte secret (hex) to FILE (mode 0600)", 0, 0},
        {NULL, 0, NULL, NULL, NULL, 0, 0},
    };
    const hb_cli cli = {
        .synopsis = "hb-token --secret FILE [--ttl SECONDS] (--uid UID | --from A --to B) | hb-token --new-secret FILE",
        .description = "Issue login tokens (HMAC-SHA256 of uid and expiry under the server's secret), or create a secret.\n"
                       "Prints uid<TAB>expires<TAB>token per uid; expires (unix seconds) goes into Login.expires.",
        .epilog = "Examples:\n  hb-token --new-secret /etc/hongbao/secret\n"
                  "  hb-token --secret /etc/hongbao/secret --ttl 3600 --from 0 --to 1000 > tokens.tsv",
        .opts = opts,
    };
    hb_cli_parse(&cli, argc, argv);
    if (new_secret) {
        uint8_t raw[32];
        char hex[65];
        if (RAND_bytes(raw, sizeof raw) != 1)
            hb_die("no randomness available");
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", raw[i]);
        int fd = open(new_secret, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd < 0)
            hb_die("%s: %s (refusing to overwrite an existing secret)", new_secret, strerror(errno));
        if (hb_write_all(fd, hex, 64) < 0 || hb_write_all(fd, "\n", 1) < 0)
            hb_die("%s: %s", new_secret, strerror(errno));
        close(fd);
        fprintf(stderr, "hb-token: new secret in %s\n", new_secret);
        return 0;
    }
    if (!secret_file) {
        fprintf(stderr, "hb-token: --secret FILE is required\nhb-token: see 'hb-token --help'\n");
        return 2;
    }
    if (uid >= 0)
        from = uid, to = uid + 1;
    if (from < 0 || to <= from) {
        fprintf(stderr, "hb-token: give --uid UID or --from A --to B (B > A)\nhb-token: see 'hb-token --help'\n");
        return 2;
    }
    uint8_t secret[HB_SECRET_MAX];
    size_t slen;
    char err[512];
    if (hb_secret_load(secret_file, secret, &slen, err, sizeof err) < 0)
        hb_die("%s", err);
    uint8_t tok[HB_TOKEN_LEN];
    uint64_t expires = (uint64_t)time(NULL) + (uint64_t)ttl;
    for (int64_t u = from; u < to; u++) {
        hb_token_make(secret, slen, (uint32_t)u, expires, tok);
        printf("%lld\t%llu\t", (long long)u, (unsigned long long)expires);
        for (int i = 0; i < HB_TOKEN_LEN; i++)
            printf("%02x", tok[i]);
        putchar('\n');
    }
    return ferror(stdout) ? 1 : 0;
}
