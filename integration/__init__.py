"""gossipmq containerised integration harness (testcontainers + Docker, no registry).

See integration/README.md. Modules:
  image      - build the node image (base via debootstrap, wheels via pip wheel)
  cluster    - DockerCluster: N gossipctl nodes on a user-defined network + faults
  scenarios  - scenarios as data (plain dataclasses) and a driver-agnostic runner
  matrix     - pairwise selection of configuration cells
  tomlw      - a tiny TOML writer for node configs
  waiting    - wait_until with bounded deadlines and per-node diagnostics
"""
