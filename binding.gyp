{
  "targets": [
    {
      "target_name": "clonefd",
      "sources": [
        "native/addon.cc",
        "native/child.c",
        "native/spawn_vfork.c",
        "native/reap.c",
        "native/reaper.c"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_DISABLE_DEPRECATED"
      ],
      "conditions": [
        ["OS=='linux'", {
          "cflags": ["-fvisibility=hidden", "-Wall", "-Wextra", "-fstack-protector-strong"],
          "cflags_c": ["-std=gnu11"],
          "cflags_cc": ["-std=c++17"],
          "ldflags": ["-pthread", "-Wl,-z,nodelete"]
        }]
      ]
    }
  ]
}
