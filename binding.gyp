{
  # Every quoted #include in native/ names its file relative to the file that
  # includes it ("../cpu/runtime.h"), so no include-directory order can pick
  # the wrong one of two same-named headers; the only include directory is
  # node-addon-api's.
  "variables": {
    # The recording fake of the Metal C interface is built only where its
    # sources are: in the repository, for its own tests. The published
    # package leaves native/test out (package.json "files"), so a consumer's
    # install never builds it.
    "moe_fake_metal%": "<!(node -p \"require('fs').existsSync('native/test/metal/fake_addon.cc') ? 1 : 0\")"
  },
  "targets": [
    {
      "target_name": "moe_native",
      "sources": [
        "native/common/addon.cc",
        "native/common/redzone.cc",
        "native/cpu/buffers.cc",
        "native/cpu/scheduler.cc",
        "native/cpu/traps.cc",
        "native/cpu/kernel_abi.cc",
        "native/cpu/pool.cc",
        "native/cpu/module.cc",
        "native/cpu/fiber.cc",
        "native/cuda/addon_cuda.cc",
        "native/cuda/cuda_runtime.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS",
        "NODE_ADDON_API_CPP_EXCEPTIONS_ALL"
      ],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-fexceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "configurations": {
        "Release": {
          "cflags!": ["-O3"],
          "cflags": ["-O2"]
        }
      },
      "conditions": [
        ["OS=='linux'", {
          "libraries": ["-ldl", "-pthread"],
          "ldflags": ["-pthread"]
        }],
        # ------------------------------------------------------------------
        # macOS. C++17 + exceptions for the runtime; the Metal backend: its
        # Metal calls (Objective-C++ with ARC) and their Node glue, linked
        # with Metal, Foundation and CoreGraphics (without CoreGraphics a
        # command-line process may get no default Metal device). Other OSes
        # build no Metal code at all. `npm run test:mac-build` checks this
        # build on Linux.
        # ------------------------------------------------------------------
        ["OS=='mac'", {
          "sources": ["native/metal/metal_backend.mm", "native/metal/metal_glue.cc"],
          "defines": ["MOE_WITH_METAL"],
          "xcode_settings": {
            "CLANG_ENABLE_OBJC_ARC": "YES",
            "OTHER_LDFLAGS": ["-framework", "Metal", "-framework", "Foundation", "-framework", "CoreGraphics"],
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "CLANG_CXX_LIBRARY": "libc++",
            "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
            "MACOSX_DEPLOYMENT_TARGET": "11.0",
            "OTHER_CFLAGS": ["-Wall", "-Wextra", "-O2"],
            "OTHER_CPLUSPLUSFLAGS": ["-std=c++17", "-fexceptions"]
          }
        }]
      ]
    }
  ],
  "conditions": [
    # ----------------------------------------------------------------------
    # Tests only, never loaded unless MOE_METAL_ADDON names it: the Metal
    # glue over a recording fake of native/metal/metal_c_api.h
    # (native/test/metal), so that everything of the Metal backend but the
    # Metal calls runs on Linux. Built in the repository only (see
    # moe_fake_metal above).
    # ----------------------------------------------------------------------
    ["OS!='mac' and moe_fake_metal==1", {
      "targets": [
        {
          "target_name": "moe_metal_fake",
          "sources": [
            "native/metal/metal_glue.cc",
            "native/common/redzone.cc",
            "native/test/metal/fake_metal.cc",
            "native/test/metal/fake_addon.cc"
          ],
          "include_dirs": [
            "<!(node -p \"require('node-addon-api').include_dir\")"
          ],
          "defines": [
            "NAPI_VERSION=8",
            "NAPI_CPP_EXCEPTIONS",
            "NODE_ADDON_API_CPP_EXCEPTIONS_ALL"
          ],
          "cflags": ["-Wall", "-Wextra", "-O2"],
          "cflags!": ["-fno-exceptions"],
          "cflags_cc": ["-std=c++17", "-fexceptions"],
          "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
          "ldflags": ["-pthread"]
        }
      ]
    }]
  ]
}
