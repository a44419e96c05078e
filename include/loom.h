/* loom: Python's asyncio for C. Stackful fibers run as tasks on one libuv
 * event loop, on one thread. This umbrella header is all a user includes. */
#ifndef LOOM_H
#define LOOM_H

#include "loom/export.h"
#include "loom/version.h"
#include "loom/errno.h"
#include "loom/core.h"
#include "loom/scope.h"
#include "loom/combinators.h"
#include "loom/sync.h"
#include "loom/future.h"
#include "loom/channel.h"
#include "loom/thread.h"
#include "loom/net.h"
#include "loom/signal.h"
#include "loom/fd.h"
#include "loom/process.h"
#include "loom/fs.h"
#include "loom/debug.h"

#endif /* LOOM_H */
