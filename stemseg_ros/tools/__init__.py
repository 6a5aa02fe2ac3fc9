"""The bag tools beside the node: replay a bag through it (`stemseg bag eval`: bag_eval, replay,
replay_node, replay_collect), measure its peak rate (`stemseg bag bench`: bench_node) and its
memory over a long run (`stemseg bag soak`: soak). Registered as CLI commands by CMakeLists.txt
(entry point group stemseg.commands); the node itself never imports them."""
