// GCC's objc/runtime.h (which Debian's GNUstep is built on) reads
// id->class_pointer in an inline function; clang's builtin `id` is opaque.
// For the syntax check only, that header is read with `id` spelled as GCC
// means it.
#pragma once
#include <objc/objc.h>
#pragma push_macro("id")
#define id struct objc_object *
#include_next <objc/runtime.h>
#pragma pop_macro("id")
