# vigil with its real content, the shipped scan policy and the "server" exec
# profile (no exec from world-writable places, services may not spawn shells)
# as an agent of the shared on-access benchmark: what the exec rules cost. Its
# rules read the executing process from /proc, so a clean binary's kernel ignore
# mark cannot cover execs: every exec of the exec workload reaches vigil (rule
# check, then a verdict-cache hit), where the default profile sees only the first.
#
#   sudo ./bench.sh --agents baseline,vigil-default,vigil-server \
#        --agent-file /path/to/vigil/tests/bench/vigil-default.sh \
#        --agent-file /path/to/vigil/tests/bench/vigil-server.sh
VIGIL_SCAN_ON_OPEN=executable
VIGIL_PROFILE=server
# shellcheck source=vigil.sh
source "$(dirname "${BASH_SOURCE[0]}")/vigil.sh"
