// What Apple's Foundation brings in that GNUstep's Foundation headers do not,
// for the Linux syntax check of the Metal backend (scripts/test-mac-build.ts):
// libdispatch's dispatch_once and CoreFoundation's CFTimeInterval, with
// Apple's declarations. Force-included (-include) before the .mm.
#pragma once
#include <stdint.h>
typedef intptr_t dispatch_once_t;
typedef void (^dispatch_block_t)(void);
#ifdef __cplusplus
extern "C"
#endif
void dispatch_once(dispatch_once_t *predicate, dispatch_block_t block);
typedef double CFTimeInterval;
