// metal_backend.mm — the Metal calls of the Metal backend, and nothing else.
// Built only on macOS (binding.gyp), with ARC, linked with Metal, Foundation
// and CoreGraphics. The interface and what callers guarantee: metal_c_api.h.
// Each call is walked through, with Apple's documentation, in
// docs/metal-backend.md.
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include <stdio.h>
#include <string.h>

#include <vector>

#include "metal_c_api.h"

static void set_err(char *err, size_t errlen, NSString *msg) {
  if (err == NULL || errlen == 0) return;
  const char *s = msg != nil ? [msg UTF8String] : NULL;
  snprintf(err, errlen, "%s", s != NULL ? s : "unknown Metal error");
}

// The system default device; a command-line process can get nil from
// MTLCreateSystemDefaultDevice (Apple: link CoreGraphics, which we do), so the
// first device of MTLCopyAllDevices is the fallback.
static id<MTLDevice> shared_device(void) {
  static id<MTLDevice> dev = nil;
  static dispatch_once_t once;
  dispatch_once(&once, ^{
    dev = MTLCreateSystemDefaultDevice();
    if (dev == nil) {
      NSArray<id<MTLDevice>> *all = MTLCopyAllDevices();
      if (all.count > 0) dev = all[0];
    }
  });
  return dev;
}

// The function logs of a failed command buffer (macOS 11: MTLCommandBuffer
// logs, MTLFunctionLog), one line each; shader validation reports its
// findings there (docs/metal-backend.md). "" when there are none.
static NSString *function_logs(id<MTLCommandBuffer> cb) {
  NSMutableString *out = [NSMutableString string];
  if (@available(macOS 11.0, *)) {
    for (id<MTLFunctionLog> log in cb.logs) {
      if (log.type != MTLFunctionLogTypeValidation) continue;
      id<MTLFunctionLogDebugLocation> at = log.debugLocation;
      NSString *fn = at != nil && at.functionName != nil ? at.functionName
                     : log.function != nil                ? log.function.name
                                                          : @"?";
      if (at != nil && at.URL != nil) {
        [out appendFormat:@"\nshader validation: %@ at %@:%lu:%lu: %@", fn, at.URL.lastPathComponent, (unsigned long)at.line,
                          (unsigned long)at.column, [log description]];
      } else {
        [out appendFormat:@"\nshader validation: %@: %@", fn, [log description]];
      }
    }
  }
  return out;
}

static id<MTLCommandQueue> shared_queue(void) {
  static id<MTLCommandQueue> q = nil;
  static dispatch_once_t once;
  dispatch_once(&once, ^{
    q = [shared_device() newCommandQueue];
  });
  return q;
}

// The MSL version to request: the newest that both this macOS and the SDK the
// addon was built with know (31 = 3.1, the first with bfloat).
static uint32_t pick_language(MTLLanguageVersion *v) {
#if __MAC_OS_X_VERSION_MAX_ALLOWED >= 140000
  if (@available(macOS 14.0, *)) {
    *v = MTLLanguageVersion3_1;
    return 31;
  }
#endif
#if __MAC_OS_X_VERSION_MAX_ALLOWED >= 130000
  if (@available(macOS 13.0, *)) {
    *v = MTLLanguageVersion3_0;
    return 30;
  }
#endif
  if (@available(macOS 12.0, *)) {
    *v = MTLLanguageVersion2_4;
    return 24;
  }
  *v = MTLLanguageVersion2_3;
  return 23;
}

int moe_metal_device_info(MoeMetalDeviceInfo *out, char *err, size_t errlen) {
  @autoreleasepool {
    id<MTLDevice> dev = shared_device();
    if (dev == nil) {
      set_err(err, errlen, @"no Metal device: MTLCreateSystemDefaultDevice and MTLCopyAllDevices found none");
      return 1;
    }
    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "%s", [dev.name UTF8String]);
    out->max_threads_per_threadgroup = (uint32_t)dev.maxThreadsPerThreadgroup.width;
    out->recommended_working_set = dev.recommendedMaxWorkingSetSize;
    out->unified_memory = dev.hasUnifiedMemory ? 1u : 0u;
    out->max_threadgroup_memory = (uint32_t)dev.maxThreadgroupMemoryLength;
    uint32_t f = 0;
    if ([dev supportsFamily:MTLGPUFamilyApple5]) f |= MOE_MTL_FAMILY_APPLE5;
    if ([dev supportsFamily:MTLGPUFamilyApple6]) f |= MOE_MTL_FAMILY_APPLE6;
    if ([dev supportsFamily:MTLGPUFamilyApple7]) f |= MOE_MTL_FAMILY_APPLE7;
    if ([dev supportsFamily:MTLGPUFamilyMac2]) f |= MOE_MTL_FAMILY_MAC2;
#if __MAC_OS_X_VERSION_MAX_ALLOWED >= 130000
    if (@available(macOS 13.0, *)) {
      if ([dev supportsFamily:MTLGPUFamilyApple8]) f |= MOE_MTL_FAMILY_APPLE8;
      if ([dev supportsFamily:MTLGPUFamilyMetal3]) f |= MOE_MTL_FAMILY_METAL3;
    }
#endif
#if __MAC_OS_X_VERSION_MAX_ALLOWED >= 140000
    if (@available(macOS 14.0, *)) {
      if ([dev supportsFamily:MTLGPUFamilyApple9]) f |= MOE_MTL_FAMILY_APPLE9;
    }
#endif
    out->families = f;
    MTLLanguageVersion unused_version;
    out->msl_version = pick_language(&unused_version);
    return 0;
  }
}

int moe_metal_compile(const char *source, const char *entry, uint32_t fast_math, void **pipeline,
                      MoeMetalPipelineInfo *info, char *err, size_t errlen) {
  @autoreleasepool {
    id<MTLDevice> dev = shared_device();
    if (dev == nil) {
      set_err(err, errlen, @"no Metal device");
      return 1;
    }
    MTLCompileOptions *opts = [[MTLCompileOptions alloc] init];
    // An explicit language version: the default is "the most recent", which
    // would make results depend on the SDK the addon was built with.
    MTLLanguageVersion version;
    pick_language(&version);
    opts.languageVersion = version;
    // Verification compares with an f64 reference: IEEE-safe math unless asked.
    bool math_set = false;
#if __MAC_OS_X_VERSION_MAX_ALLOWED >= 150000
    if (@available(macOS 15.0, *)) {
      opts.mathMode = fast_math ? MTLMathModeFast : MTLMathModeSafe;
      opts.mathFloatingPointFunctions =
          fast_math ? MTLMathFloatingPointFunctionsFast : MTLMathFloatingPointFunctionsPrecise;
      math_set = true;
    }
#endif
    if (!math_set) opts.fastMathEnabled = fast_math ? YES : NO;
    NSString *src = [NSString stringWithUTF8String:source];
    NSString *name = [NSString stringWithUTF8String:entry];
    if (src == nil || name == nil) {
      set_err(err, errlen, @"shader source or entry name is not valid UTF-8");
      return 1;
    }
    NSError *e = nil;
    id<MTLLibrary> lib = [dev newLibraryWithSource:src options:opts error:&e];
    if (lib == nil) {
      set_err(err, errlen, e != nil ? e.localizedDescription : @"newLibraryWithSource:options:error: failed");
      return 1;
    }
    id<MTLFunction> fn = [lib newFunctionWithName:name];
    if (fn == nil) {
      set_err(err, errlen, [NSString stringWithFormat:@"no function named '%@' in the compiled library", name]);
      return 1;
    }
    e = nil;
    id<MTLComputePipelineState> ps = [dev newComputePipelineStateWithFunction:fn error:&e];
    if (ps == nil) {
      set_err(err, errlen,
              e != nil ? e.localizedDescription : @"newComputePipelineStateWithFunction:error: failed");
      return 1;
    }
    info->exec_width = (uint32_t)ps.threadExecutionWidth;
    info->max_threads = (uint32_t)ps.maxTotalThreadsPerThreadgroup;
    info->static_threadgroup_memory = (uint32_t)ps.staticThreadgroupMemoryLength;
    *pipeline = (__bridge_retained void *)ps;
    return 0;
  }
}

void moe_metal_release(void *pipeline) {
  if (pipeline == NULL) return;
  // Takes back the +1 of __bridge_retained; ARC releases it at scope end.
  id<MTLComputePipelineState> ps = (__bridge_transfer id<MTLComputePipelineState>)pipeline;
  (void)ps;
}

int moe_metal_dispatch(void *pipeline, const MoeMetalBinding *bindings, uint32_t n_bindings,
                       const MoeMetalLaunch *launch, uint32_t warmup, uint32_t per_batch, uint32_t batches,
                       double *ns_per_batch, char *err, size_t errlen) {
  @autoreleasepool {
    id<MTLDevice> dev = shared_device();
    id<MTLCommandQueue> queue = shared_queue();
    id<MTLComputePipelineState> ps = (__bridge id<MTLComputePipelineState>)pipeline;
    if (dev == nil || queue == nil || ps == nil) {
      set_err(err, errlen, @"Metal device, command queue or pipeline missing");
      return 1;
    }
    std::vector<id<MTLBuffer>> buffers(n_bindings, nil);
    for (uint32_t i = 0; i < n_bindings; ++i) {
      const MoeMetalBinding *b = &bindings[i];
      if (b->is_bytes) continue;
      if (b->alias >= 0) {
        buffers[i] = buffers[(uint32_t)b->alias];
        continue;
      }
      // The guards (if any) and the buffer, one shared-storage MTLBuffer; a
      // zero-length MTLBuffer cannot be made: an empty binding gets 16 bytes.
      const uint64_t total = b->size + 2 * b->guard;
      buffers[i] = total > 0 ? [dev newBufferWithBytes:b->data
                                                length:(NSUInteger)total
                                               options:MTLResourceStorageModeShared]
                             : [dev newBufferWithLength:16 options:MTLResourceStorageModeShared];
      if (buffers[i] == nil) {
        set_err(err, errlen, [NSString stringWithFormat:@"could not allocate %llu bytes for buffer(%u)",
                                                        (unsigned long long)b->size, b->index]);
        return 1;
      }
    }
    MTLSize grid = MTLSizeMake(launch->grid[0], launch->grid[1], launch->grid[2]);
    MTLSize tg = MTLSizeMake(launch->tg[0], launch->tg[1], launch->tg[2]);
    int rc = 0;
    const uint32_t rounds = batches + (warmup > 0 ? 1u : 0u);
    for (uint32_t round = 0; round < rounds && rc == 0; ++round) {
      const bool is_warmup = warmup > 0 && round == 0;
      const uint32_t count = is_warmup ? warmup : per_batch;
      id<MTLCommandBuffer> cb = [queue commandBuffer];
      id<MTLComputeCommandEncoder> enc = cb != nil ? [cb computeCommandEncoder] : nil;
      if (enc == nil) {
        set_err(err, errlen, @"could not create a command buffer or compute command encoder");
        rc = 1;
        break;
      }
      [enc setComputePipelineState:ps];
      for (uint32_t i = 0; i < n_bindings; ++i) {
        const MoeMetalBinding *b = &bindings[i];
        if (b->is_bytes) {
          [enc setBytes:b->data length:(NSUInteger)b->size atIndex:b->index];
        } else {
          // Past the guard before it (a multiple of 256 bytes: the
          // alignment Metal asks of buffer offsets on macOS).
          const MoeMetalBinding *owner = b->alias >= 0 ? &bindings[(uint32_t)b->alias] : b;
          [enc setBuffer:buffers[i] offset:(NSUInteger)owner->guard atIndex:b->index];
        }
      }
      for (uint32_t i = 0; i < launch->n_tg_mem; ++i) {
        if (launch->tg_mem[i] > 0) [enc setThreadgroupMemoryLength:launch->tg_mem[i] atIndex:i];
      }
      for (uint32_t r = 0; r < count; ++r) {
        if (launch->mode == 0) {
          [enc dispatchThreads:grid threadsPerThreadgroup:tg];
        } else {
          [enc dispatchThreadgroups:grid threadsPerThreadgroup:tg];
        }
      }
      [enc endEncoding];
      [cb commit];
      [cb waitUntilCompleted];
      if (cb.status != MTLCommandBufferStatusCompleted) {
        NSString *why = cb.error != nil ? cb.error.localizedDescription
                                        : [NSString stringWithFormat:@"status %ld", (long)cb.status];
        set_err(err, errlen, [NSString stringWithFormat:@"command buffer failed: %@%@", why, function_logs(cb)]);
        rc = 1;
        break;
      }
      // A command buffer that completed may still carry validation logs.
      NSString *logs = function_logs(cb);
      if (logs.length > 0) {
        set_err(err, errlen, [NSString stringWithFormat:@"the command buffer completed with validation reports:%@", logs]);
        rc = 1;
        break;
      }
      if (!is_warmup && ns_per_batch != NULL) {
        ns_per_batch[round - (warmup > 0 ? 1u : 0u)] = (cb.GPUEndTime - cb.GPUStartTime) * 1e9;
      }
    }
    for (uint32_t i = 0; i < n_bindings; ++i) {
      const MoeMetalBinding *b = &bindings[i];
      const uint64_t total = b->size + 2 * b->guard;
      if (b->is_bytes || b->alias >= 0 || total == 0) continue;
      memcpy(b->data, [buffers[i] contents], (size_t)total);
    }
    return rc;
  }
}
