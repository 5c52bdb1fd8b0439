#!/usr/bin/env bash
# Snakemake runs this once inside the freshly created conda environment (the pinned
# dependencies above are installed by then). It installs a `deepsnow` command that runs the
# deepsnow package of the workflow each job runs in (the job's working directory:
# ./workflow/deepsnow), not a copy or an editable link fixed when the environment was made:
# with a shared --conda-prefix, one environment serves every clone of the workflow, and each
# clone's jobs run that clone's code (the code its rules hash). docs/conda.md.
set -euo pipefail
: "${CONDA_PREFIX:?run inside the conda environment (Snakemake activates it for post-deploy scripts)}"
mkdir -p "$CONDA_PREFIX/bin"
cat > "$CONDA_PREFIX/bin/deepsnow" <<'LAUNCHER'
#!/usr/bin/env python
"""deepsnow in a Snakemake conda environment (written by envs/post-deploy.sh): runs the
deepsnow package of the workflow in the current directory, ./workflow/deepsnow."""
import os
import sys

here = os.getcwd()
package = os.path.join(here, "workflow")
if not os.path.isfile(os.path.join(package, "deepsnow", "cli.py")):
    sys.stderr.write(
        f"deepsnow: error: no workflow/deepsnow/ in {here}: this conda environment's deepsnow runs the "
        "package of the workflow in the current directory (Snakemake runs jobs from the workflow's folder)\n"
    )
    sys.exit(2)
sys.path.insert(0, package)
from deepsnow.cli import main  # noqa: E402

sys.exit(main())
LAUNCHER
chmod 0755 "$CONDA_PREFIX/bin/deepsnow"
