/* Symbol visibility for loom's public API.
 *
 * The library is built with -fvisibility=hidden; only declarations marked
 * LOOM_EXTERN are exported from the shared library. Consumers of the static
 * library see plain extern declarations.
 */
#ifndef LOOM_EXPORT_H
#define LOOM_EXPORT_H

#if defined(LOOM_BUILDING_SHARED) && (defined(__GNUC__) || defined(__clang__))
#define LOOM_EXTERN __attribute__((visibility("default"))) extern
#else
#define LOOM_EXTERN extern
#endif

#endif /* LOOM_EXPORT_H */
