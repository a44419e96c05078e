/* The internals the optional libraries call.
 *
 * TLS streams and the HTTP client are libraries of their own (libloom-tls,
 * libloom-http), so that a program loads OpenSSL or libcurl only if it uses
 * them. They are built from this tree, at this version, and need a few of
 * libloom's internals: waiting and waking, the I/O registry, handles, the
 * stream layer. Those, and only those, are exported from libloom.so with
 * LOOM__MODULE_API. They are not API: no header in include/ declares them,
 * and abi/loom.symbols lists them so that the set grows only on purpose.
 * The modules also read private structs (loom_t, tasks, I/O objects)
 * through inline helpers, so they must come from the same release as
 * libloom: the exports carry the symbol version LOOM_PRIVATE_<version>
 * (cmake/loom-private.map.in), and a module built against another libloom,
 * even a patch release with the same soname, fails to load.
 *
 * libloom's own calls to these stay direct although the names are
 * exported: it is compiled with -fno-semantic-interposition (calls within a
 * file may be inlined) and linked with -Bsymbolic-functions (calls across
 * files bind inside the library, not through the PLT). */
#ifndef LOOM_CORE_MODULE_API_H
#define LOOM_CORE_MODULE_API_H

#if defined(LOOM_BUILDING_SHARED) && (defined(__GNUC__) || defined(__clang__))
#define LOOM__MODULE_API __attribute__((visibility("default")))
#else
#define LOOM__MODULE_API
#endif

#endif /* LOOM_CORE_MODULE_API_H */
