/* libFuzzer target for the stream readers: each input is a script of chunks
 * written to one end of a socketpair and of read calls on a loom stream over
 * the other (see stream-driver.h for the encoding and the model). A call
 * that does not return what the model says aborts with the mismatch, so
 * libFuzzer saves the input; crashes and sanitizer reports do the same.
 *
 *   CC=clang cmake -S . -B build-fuzz -DLOOM_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz-stream
 *   mkdir -p corpus && build-fuzz/tests/fuzz/fuzz-stream corpus tests/fuzz/corpus
 */
#include <stdio.h>
#include <stdlib.h>

#include "stream-driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char msg[512];
  if (sd_run(data, size, msg, sizeof(msg)) != 0) {
    fprintf(stderr, "stream model mismatch: %s\n", msg);
    abort();
  }
  return 0;
}
