/* container_of: from a pointer to a member back to the structure holding it.
 *
 * Intrusive lists, heaps and callbacks hand back a pointer to the embedded
 * node; this is the one way loom turns it into its owner. The conditional
 * expression never evaluates its false branch: it only makes the compiler
 * check that `ptr` really points to the type of `member`, so a wrong member
 * name or a pointer of another type is a compile error, not a silent
 * miscast.
 */
#ifndef LOOM_UTIL_CONTAINER_H
#define LOOM_UTIL_CONTAINER_H

#include <stddef.h>

#define loom__container_of(ptr, type, member) \
  ((type *)(void *)((char *)(1 ? (ptr) : &((type *)0)->member) - offsetof(type, member)))

/* For private views of public opaque storage (a scope, a lock: an array of
 * words the caller owns, read by the library as a struct): may_alias tells
 * the compiler the two types may be the same memory, so that even with
 * link-time optimisation the caller's writes and the library's reads are not
 * reordered across each other. */
#if defined(__GNUC__) || defined(__clang__)
#define LOOM__MAY_ALIAS __attribute__((__may_alias__))
#else
#define LOOM__MAY_ALIAS
#endif

#endif
