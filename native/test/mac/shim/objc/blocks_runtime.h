// GNUstep's Foundation headers include this libobjc2 header when the compiler
// has blocks; Debian's GNUstep is built on GCC's libobjc, which lacks it.
// The syntax check of the Metal backend needs only its two declarations.
#pragma once
#ifdef __cplusplus
extern "C" {
#endif
void *_Block_copy(const void *block);
void _Block_release(const void *block);
#ifdef __cplusplus
}
#endif
