// apps/braid/tools/launch.h — `braid train --nproc N`: a local launcher for data-parallel jobs.
#pragma once

#include <string>
#include <vector>

namespace braid::tools {

// Launch `nproc` local copies of this executable (`args`: its argv without the launcher's own
// flags), as ranks 0..nproc-1 of one job on 127.0.0.1:`port` (0 = pick a free port). Rank 0
// writes to this terminal; rank k's output goes to the run directory's rank<k>.log (run::RunDir::rank_log). When a rank exits
// non-zero the others are stopped (SIGTERM, SIGKILL after a grace period), and the failing
// rank is reported on stderr with its last error line (the lowest rank whose failure is not a
// consequence: not PeerLost's exit code 3, nor the launcher's own signals). Ctrl-C is
// forwarded. Returns that rank's exit code (0 when all succeed).
int launch_local(const std::vector<std::string>& args, int nproc, int port, const std::string& run_dir);

}  // namespace braid::tools
