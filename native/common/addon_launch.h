// addon_launch.h — a NativeLaunch as the runtime's moe::Launch, for the two
// surfaces that launch one (addon.cc: the CPU runtime; addon_cuda.cc: CUDA).
#ifndef MOE_ADDON_LAUNCH_H
#define MOE_ADDON_LAUNCH_H

#include <utility>

#include "addon_args.h"
#include "../cpu/runtime.h"

namespace moe_addon {

inline moe::Launch get_runtime_launch(Napi::Env env, Napi::Value v) {
  LaunchArgs a = get_launch(env, v, MOE_MAX_TG_BUFFERS, 9007199254740991.0, "threadgroup memory indices");
  moe::Launch l;
  l.mode = a.threadgroups ? moe::LaunchMode::Threadgroups : moe::LaunchMode::Threads;
  for (int i = 0; i < 3; ++i) {
    l.grid[i] = a.grid[i];
    l.threadgroup[i] = a.threadgroup[i];
  }
  l.tg_memory = std::move(a.tg_memory);
  return l;
}

}  // namespace moe_addon

#endif  // MOE_ADDON_LAUNCH_H
