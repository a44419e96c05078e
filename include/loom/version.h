/* loom's version, in libuv's style: three numbers, a hex form for
 * preprocessor comparisons, and a runtime query for the linked library. */
#ifndef LOOM_VERSION_H
#define LOOM_VERSION_H

#define LOOM_VERSION_MAJOR 0
#define LOOM_VERSION_MINOR 2
#define LOOM_VERSION_PATCH 0

#define LOOM_VERSION_HEX \
  ((LOOM_VERSION_MAJOR << 16) | (LOOM_VERSION_MINOR << 8) | (LOOM_VERSION_PATCH))

#define LOOM_STRINGIFY_(x) #x
#define LOOM_STRINGIFY(x) LOOM_STRINGIFY_(x)
#define LOOM_VERSION_STRING          \
  LOOM_STRINGIFY(LOOM_VERSION_MAJOR) \
  "." LOOM_STRINGIFY(LOOM_VERSION_MINOR) "." LOOM_STRINGIFY(LOOM_VERSION_PATCH)

#endif /* LOOM_VERSION_H */
