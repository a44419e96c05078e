/* Thread offload (filled in by a later commit). */
#include "../core/internal.h"

void loom__offload_close(loom_t *rt) { (void)rt; }
