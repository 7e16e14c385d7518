/* AddressSanitizer's poisoning, for memory this program keeps for reuse
 * instead of giving it back to malloc: poisoned while kept, so that a use
 * after it was given up is still caught as free() would have it. Nothing
 * in other builds. */
#ifndef IG_CORE_ASAN_H
#define IG_CORE_ASAN_H

#if defined(__SANITIZE_ADDRESS__)
#define IG_HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define IG_HAVE_ASAN 1
#endif
#endif

#ifdef IG_HAVE_ASAN
#include <sanitizer/asan_interface.h>
#define IG_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define IG_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define IG_POISON(p, n) ((void)(p), (void)(n))
#define IG_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#endif
