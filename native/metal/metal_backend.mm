// metal_backend.mm — the Metal calls of the Metal backend, and nothing else.
// Built only on macOS (binding.gyp), with ARC, linked with Metal and Foundation.
#import <Foundation/Foundation.h>
#import <Metal/Metal.h>

#include <stdio.h>
#include <string.h>

#include "moe_metal.h"

static void set_err(char *err, size_t errlen, NSString *msg) {
  if (err == NULL || errlen == 0) return;
  const char *s = msg ? [msg UTF8String] : "unknown Metal error";
  snprintf(err, errlen, "%s", s ? s : "unknown Metal error");
}

static id<MTLDevice> shared_device(void) {
  static id<MTLDevice> dev = nil;
  static dispatch_once_t once;
  dispatch_once(&once, ^{
    dev = MTLCreateSystemDefaultDevice();
  });
  return dev;
}

static id<MTLCommandQueue> shared_queue(void) {
  static id<MTLCommandQueue> q = nil;
  static dispatch_once_t once;
  dispatch_once(&once, ^{
    q = [shared_device() newCommandQueue];
  });
  return q;
}

int moe_metal_device_info(MoeMetalDeviceInfo *out, char *err, size_t errlen) {
  @autoreleasepool {
    id<MTLDevice> dev = shared_device();
    if (dev == nil) {
      set_err(err, errlen, @"MTLCreateSystemDefaultDevice returned no device");
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
    if (@available(macOS 13.0, *)) {
      if ([dev supportsFamily:MTLGPUFamilyApple8]) f |= MOE_MTL_FAMILY_APPLE8;
      if ([dev supportsFamily:MTLGPUFamilyMetal3]) f |= MOE_MTL_FAMILY_METAL3;
    }
    if (@available(macOS 14.0, *)) {
      if ([dev supportsFamily:MTLGPUFamilyApple9]) f |= MOE_MTL_FAMILY_APPLE9;
    }
    if ([dev supportsFamily:MTLGPUFamilyMac2]) f |= MOE_MTL_FAMILY_MAC2;
    out->families = f;
    if (@available(macOS 14.0, *)) {
      out->msl_version = 31;
    } else if (@available(macOS 13.0, *)) {
      out->msl_version = 30;
    } else {
      out->msl_version = 24;
    }
    return 0;
  }
}

int moe_metal_compile(const char *source, const char *entry, void **pipeline, uint32_t *exec_width,
                      uint32_t *max_threads, char *err, size_t errlen) {
  @autoreleasepool {
    id<MTLDevice> dev = shared_device();
    if (dev == nil) {
      set_err(err, errlen, @"no Metal device");
      return 1;
    }
    MTLCompileOptions *opts = [[MTLCompileOptions alloc] init];
    if (@available(macOS 14.0, *)) {
      opts.languageVersion = MTLLanguageVersion3_1;
    } else if (@available(macOS 13.0, *)) {
      opts.languageVersion = MTLLanguageVersion3_0;
    } else {
      opts.languageVersion = MTLLanguageVersion2_4;
    }
    NSError *e = nil;
    NSString *src = [NSString stringWithUTF8String:source];
    if (src == nil) {
      set_err(err, errlen, @"shader source is not valid UTF-8");
      return 1;
    }
    id<MTLLibrary> lib = [dev newLibraryWithSource:src options:opts error:&e];
    if (lib == nil) {
      set_err(err, errlen, e ? e.localizedDescription : @"newLibraryWithSource failed");
      return 1;
    }
    id<MTLFunction> fn = [lib newFunctionWithName:[NSString stringWithUTF8String:entry]];
    if (fn == nil) {
      set_err(err, errlen, [NSString stringWithFormat:@"no function named '%s' in the library", entry]);
      return 1;
    }
    id<MTLComputePipelineState> ps = [dev newComputePipelineStateWithFunction:fn error:&e];
    if (ps == nil) {
      set_err(err, errlen, e ? e.localizedDescription : @"newComputePipelineStateWithFunction failed");
      return 1;
    }
    *exec_width = (uint32_t)ps.threadExecutionWidth;
    *max_threads = (uint32_t)ps.maxTotalThreadsPerThreadgroup;
    *pipeline = (__bridge_retained void *)ps;
    return 0;
  }
}

void moe_metal_release(void *pipeline) {
  if (pipeline != NULL) {
    id<MTLComputePipelineState> ps = (__bridge_transfer id<MTLComputePipelineState>)pipeline;
    ps = nil;
  }
}

int moe_metal_dispatch(void *pipeline, const MoeMetalBinding *bindings, uint32_t n_bindings,
                       const MoeMetalLaunch *launch, uint32_t per_batch, uint32_t batches,
                       double *ns_per_batch, char *err, size_t errlen) {
  @autoreleasepool {
    id<MTLDevice> dev = shared_device();
    id<MTLCommandQueue> queue = shared_queue();
    id<MTLComputePipelineState> ps = (__bridge id<MTLComputePipelineState>)pipeline;
    if (dev == nil || queue == nil || ps == nil) {
      set_err(err, errlen, @"Metal device, queue or pipeline missing");
      return 1;
    }
    NSMutableArray<id<MTLBuffer>> *buffers = [NSMutableArray arrayWithCapacity:n_bindings];
    for (uint32_t i = 0; i < n_bindings; ++i) {
      const MoeMetalBinding *b = &bindings[i];
      if (b->is_bytes) {
        [buffers addObject:(id<MTLBuffer>)[NSNull null]];
        continue;
      }
      NSUInteger len = b->size > 0 ? (NSUInteger)b->size : 16;
      id<MTLBuffer> buf = b->size > 0
                              ? [dev newBufferWithBytes:b->data length:len options:MTLResourceStorageModeShared]
                              : [dev newBufferWithLength:len options:MTLResourceStorageModeShared];
      if (buf == nil) {
        set_err(err, errlen, [NSString stringWithFormat:@"could not allocate %llu bytes for buffer(%u)",
                                                        (unsigned long long)b->size, b->index]);
        return 1;
      }
      [buffers addObject:buf];
    }
    MTLSize grid = MTLSizeMake(launch->grid[0], launch->grid[1], launch->grid[2]);
    MTLSize tg = MTLSizeMake(launch->tg[0], launch->tg[1], launch->tg[2]);
    for (uint32_t batch = 0; batch < batches; ++batch) {
      id<MTLCommandBuffer> cb = [queue commandBuffer];
      id<MTLComputeCommandEncoder> enc = [cb computeCommandEncoder];
      [enc setComputePipelineState:ps];
      for (uint32_t i = 0; i < n_bindings; ++i) {
        const MoeMetalBinding *b = &bindings[i];
        if (b->is_bytes) {
          [enc setBytes:b->data length:(NSUInteger)b->size atIndex:b->index];
        } else {
          [enc setBuffer:buffers[i] offset:0 atIndex:b->index];
        }
      }
      for (uint32_t i = 0; i < launch->n_tg_mem; ++i) {
        if (launch->tg_mem[i] > 0) [enc setThreadgroupMemoryLength:launch->tg_mem[i] atIndex:i];
      }
      for (uint32_t r = 0; r < per_batch; ++r) {
        if (launch->mode == 0) {
          [enc dispatchThreads:grid threadsPerThreadgroup:tg];
        } else {
          [enc dispatchThreadgroups:grid threadsPerThreadgroup:tg];
        }
      }
      [enc endEncoding];
      [cb commit];
      [cb waitUntilCompleted];
      if (cb.status == MTLCommandBufferStatusError) {
        set_err(err, errlen, cb.error ? cb.error.localizedDescription : @"command buffer failed");
        return 1;
      }
      if (ns_per_batch != NULL) ns_per_batch[batch] = (cb.GPUEndTime - cb.GPUStartTime) * 1e9;
    }
    for (uint32_t i = 0; i < n_bindings; ++i) {
      const MoeMetalBinding *b = &bindings[i];
      if (b->is_bytes || b->size == 0) continue;
      memcpy(b->data, [buffers[i] contents], (size_t)b->size);
    }
    return 0;
  }
}
