# vigil with its real content and the shipped scan policy as an agent of the
# shared on-access benchmark: tests/bench/vigil.sh with scan_on_open =
# "executable" (execs always scanned; plain opens scanned when the content is
# an ELF file or a #! script, data files let through after a 4-byte sniff and
# then ignored by the kernel until they change). The text probes (sig.txt,
# burst_sig) are data files, so this agent allows them by design.
#
#   sudo ./bench.sh --agents baseline,vigil-default --agent-file /path/to/vigil/tests/bench/vigil-default.sh
VIGIL_SCAN_ON_OPEN=executable
# shellcheck source=vigil.sh
source "$(dirname "${BASH_SOURCE[0]}")/vigil.sh"
