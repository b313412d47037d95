{
  "targets": [
    {
      "target_name": "vtier_native",
      "sources": [
        "native/src/addon.cc",
        "native/src/errors.cc",
        "native/src/bpf.cc",
        "native/src/socket.cc",
        "native/src/migrate.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native/src",
        "bpf",
        "build/bpf"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags!": ["-fexceptions"],
      "cflags_cc!": ["-fexceptions", "-std=gnu++1y", "-std=gnu++14"],
      "cflags_cc": ["-std=gnu++17", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "libraries": ["-lbpf", "-lelf", "-lz"]
    },
    {
      "target_name": "vtier-workload",
      "type": "executable",
      "sources": ["native/workload/workload.c"],
      "cflags": ["-O2", "-Wall", "-std=gnu11"],
      "defines": ["_GNU_SOURCE"]
    }
  ]
}
