"""Run an experiment under a profile: `python -m pipelines.profile NAME [dvc exp run options and targets]`.

A profile (`profiles/<name>.yaml`) is a set of DVC parameter overrides, not an edit of params.yaml by this
project: each leaf it names becomes `-S ++<key>=<value>` of one `dvc exp run` (mappings merge key by key,
lists and scalars replace, an empty mapping changes nothing). DVC records the experiment with its params,
so `dvc exp show` lists the profile's values. Options after the name go to `dvc exp run` as they are:
`--temp` (or `--queue`) leaves the workspace and `git status` untouched, further `-S key=value` win over
the profile's, stage names limit the run.
"""

from __future__ import annotations

import shlex
import subprocess
import sys

from pipelines._common import run_stage
from whale_reid.common.profiles import PROFILES_DIR, exp_run_command


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        print("\nprofiles:", ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))))
        raise SystemExit(0 if len(sys.argv) >= 2 else 2)
    command = exp_run_command(sys.argv[1], sys.argv[2:])
    print("$", shlex.join(command), flush=True)
    raise SystemExit(subprocess.run(command, check=False).returncode)


if __name__ == "__main__":
    run_stage(main)()
