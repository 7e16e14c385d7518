/* The metrics scraper: every interval it asks each endpoint it is given
 * for /metrics (one request in flight per endpoint, on a kept-alive
 * connection of its own), publishes what it learns into the endpoint, and
 * takes endpoints whose scrapes keep failing out of rotation until they
 * answer again. Runs on one loop (the gateway's control thread). */
#ifndef IG_POOL_SCRAPE_H
#define IG_POOL_SCRAPE_H

#include <stddef.h>
#include <stdint.h>

#include "event/loop.h"
#include "pool/endpoint.h"

struct ig_scraper_config {
	uint64_t interval_ms; /* default 50 */
	/* One scrape, connect included (default 5000); checked at each tick,
	 * so a scrape fails at the first tick after it. */
	uint64_t timeout_ms;
	unsigned failures_out; /* failed scrapes in a row before out of rotation (default 3) */
	/* After falling back to the whole /metrics, how long until the
	 * filtered request is tried again (default 60000). */
	uint64_t refilter_ms;
};

struct ig_scraper;

struct ig_scraper *ig_scraper_new(struct ig_loop *loop, const struct ig_scraper_config *cfg);
/* The endpoints to scrape from now on; the scraper holds its own
 * references. Endpoints no longer given stop being scraped once their
 * scrape in flight ends. -1 when out of memory (the set is unchanged). */
int ig_scraper_set(struct ig_scraper *s, struct ig_endpoint *const *eps, size_t n);
void ig_scraper_start(struct ig_scraper *s);
void ig_scraper_free(struct ig_scraper *s);

#endif
