{
  "target_defaults": {
    "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
    "conditions": [
      ["OS=='linux'", {
        "cflags": ["-fvisibility=hidden", "-Wall", "-Wextra", "-fstack-protector-strong"],
        "cflags_c": ["-std=gnu11"],
        "cflags_cc": ["-std=c++17"]
      }]
    ]
  },
  "targets": [
    {
      # The helper process (the default engine): a small C program, built
      # first, then embedded into the addon.
      "target_name": "clonefd-helper",
      "type": "executable",
      "sources": ["native/helper.c", "native/child.c", "native/spawn_vfork.c", "native/reap.c", "native/fdpass.c"],
      "ldflags": ["-s"]
    },
    {
      "target_name": "clonefd_helper_blob",
      "type": "none",
      "dependencies": ["clonefd-helper"],
      "actions": [{
        "action_name": "embed_helper",
        "inputs": ["native/embed-helper.js", "<(PRODUCT_DIR)/clonefd-helper"],
        "outputs": ["<(SHARED_INTERMEDIATE_DIR)/clonefd_helper_blob.c"],
        "action": ["node", "native/embed-helper.js", "<(PRODUCT_DIR)/clonefd-helper", "<(SHARED_INTERMEDIATE_DIR)/clonefd_helper_blob.c"]
      }]
    },
    {
      "target_name": "clonefd",
      "dependencies": [
        "clonefd_helper_blob",
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "sources": [
        "native/addon.cc",
        "native/child.c",
        "native/spawn_vfork.c",
        "native/reap.c",
        "native/reaper.c",
        "native/helper_start.c",
        "native/fdpass.c",
        "<(SHARED_INTERMEDIATE_DIR)/clonefd_helper_blob.c"
      ],
      "conditions": [
        ["OS=='linux'", {
          "ldflags": ["-pthread", "-Wl,-z,nodelete"]
        }]
      ]
    }
  ]
}
