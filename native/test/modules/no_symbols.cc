// no_symbols.cc — a shared object that is not a kernel module.
extern "C" __attribute__((visibility("default"))) int not_a_kernel_module(void) { return 42; }
