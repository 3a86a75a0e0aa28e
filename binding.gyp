{
  "target_defaults": {
    "defines": ["NAPI_VERSION=8"],
    "conditions": [
      ["OS=='linux'", {
        "cflags": ["-fvisibility=hidden", "-Wall", "-Wextra", "-fstack-protector-strong"],
        "cflags_c": ["-std=gnu11"],
        # Raw Node-API with checked statuses: no C++ exception can leave a
        # uv callback or a teardown hook, because there are none.
        "cflags_cc": ["-std=c++17", "-fno-exceptions"]
      }]
    ]
  },
  "targets": [
    {
      # The helper process (the default engine): a small C program, built
      # first, then embedded into the addon.
      "target_name": "clonefd-helper",
      "type": "executable",
      "sources": [
        "native/helper.c",
        "native/cgroup.c",
        "native/child.c",
        "native/spawn_vfork.c",
        "native/reap.c",
        "native/record.c",
        "native/protocol.c",
        "native/fdpass.c",
        "native/memfd.c"
      ],
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
      "dependencies": ["clonefd_helper_blob"],
      "sources": [
        "native/addon/addon.cc",
        "native/addon/env.cc",
        "native/addon/direct.cc",
        "native/addon/helper_client.cc",
        "native/addon/fds.cc",
        "native/addon/sync.cc",
        "native/addon/channel.cc",
        "native/addon/notify.cc",
        "native/child.c",
        "native/spawn_vfork.c",
        "native/reap.c",
        "native/record.c",
        "native/reaper.c",
        "native/cgroup.c",
        "native/helper_start.c",
        "native/protocol.c",
        "native/fdpass.c",
        "native/memfd.c",
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
