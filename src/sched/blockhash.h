/* Block hashes for the prefix index: a 64-bit hash of each of n
 * consecutive blocks of the same length, each block on its own (the chain
 * that makes a block's hash depend on the blocks before it is built on top,
 * in prefix.c).
 *
 * Two ways to compute them, chosen once per process:
 * - on x86-64 CPUs with AES-NI, AES rounds (four blocks at a time, each
 *   round keyed with the next 16 bytes of its block);
 * - elsewhere, XXH3-64 of each block.
 * The values differ between the two, so all the hashes an index ever sees
 * must come from one of them: the choice is made at the first call and
 * never changes while the process runs, except through
 * ig_block_hash_use_portable(), which is for tests and benchmarks and must
 * run before any index exists. */
#ifndef IG_SCHED_BLOCKHASH_H
#define IG_SCHED_BLOCKHASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* out[i] = hash of in[i * len, (i + 1) * len) for i < n; len > 0. */
void ig_block_hashes(const char *in, size_t len, size_t n, uint64_t *out);

/* true: XXH3-64 from now on; false: AES rounds where the CPU has them.
 * Returns whether the AES way is in use after the call. */
bool ig_block_hash_use_portable(bool portable);

#endif
