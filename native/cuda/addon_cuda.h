// addon_cuda.h — registers exports.cuda (addon_cuda.cc) on the addon.
#ifndef MOE_ADDON_CUDA_H
#define MOE_ADDON_CUDA_H

#include <napi.h>

void InitCuda(Napi::Env env, Napi::Object exports);

#endif  // MOE_ADDON_CUDA_H
