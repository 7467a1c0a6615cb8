/* addrlimit.h -- connections per source address (--addr-limit), shared by
 * all SETs.  Only used when the limit is on; off by default so a load test
 * with 60k connections per client host is not mistaken for a flood. */
#ifndef SV_ADDRLIMIT_H
#define SV_ADDRLIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct sv_addr_limit;
struct sv_addr_limit *sv_addr_new(void);
void sv_addr_free(struct sv_addr_limit *a);
/* Count one more connection from addr unless it already has `limit`. */
bool sv_addr_acquire(struct sv_addr_limit *a, uint32_t addr, uint32_t limit);
void sv_addr_release(struct sv_addr_limit *a, uint32_t addr);

#endif
