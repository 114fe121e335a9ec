"""What an agent that did not stop cleanly (SIGKILL, a crash, the OOM killer)
left of its runs, removed by the next agent on the same home: each run's
cgroup with anything still in it, its scratch cache on /dev/shm (memory
nobody pays for any more) and the dead agent's runtime directory, which
holds the run's copy. The runs are the executions its store still calls
running; their names are the executor's (`x<execution id>`)."""

import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .cgroups import ScriptCgroup
from .sandbox import SCRATCH_ROOT


def remove_leftovers(execution_ids: Iterable[str]) -> None:
    for execution_id in execution_ids:
        name = f"x{execution_id}"
        group = ScriptCgroup.left(name)
        if group is not None:
            group.remove()
        for scratch in SCRATCH_ROOT.glob(f"coral-*-{name}"):
            shutil.rmtree(scratch, ignore_errors=True)
        for copy in Path(tempfile.gettempdir()).glob(f"coral-*/{name}"):
            shutil.rmtree(copy.parent, ignore_errors=True)
