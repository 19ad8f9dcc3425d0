{
  "targets": [
    {
      "target_name": "moe_native",
      "sources": [
        "native/src/addon.cc",
        "native/src/runtime.cc",
        "native/src/fiber.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native/include",
        "native/src"
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
        # macOS. C++17 + exceptions for the runtime. The Metal backend's
        # sources (native/metal/*.mm, ARC, -framework Metal/Foundation) are
        # added here later.
        # ------------------------------------------------------------------
        ["OS=='mac'", {
          "xcode_settings": {
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
  ]
}
