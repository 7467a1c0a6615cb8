/* addrlimit.h -- connections per source address (--addr-limit), shared by
 * all SETs.  Only used when the limit is on; off by default so a load test
 * with 60k connections per client host is not mistaken for a flood. */
#ifndef HB_ADDRLIMIT_H
#define HB_ADDRLIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct hb_addr_limit;
struct hb_addr_limit *hb_addr_new(void);
void hb_addr_free(struct hb_addr_limit *a);
/* Count one more connection from addr unless it already has `limit`. */
bool hb_addr_acquire(struct hb_addr_limit *a, uint32_t addr, uint32_t limit);
void hb_addr_release(struct hb_addr_limit *a, uint32_t addr);

#endif
