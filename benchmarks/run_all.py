"""Run every benchmark script in this folder; each prints one JSON object as its last line.

Prints those lines (one per benchmark) and, last, a JSON summary of all of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["bench_decision.py", "bench_backtest.py", "bench_ingest.py", "bench_api.py"]


def main() -> int:
    scripts = [HERE / name for name in ORDER if (HERE / name).exists()]
    scripts += sorted(p for p in HERE.glob("bench_*.py") if p.name not in ORDER)
    results, failed = [], []
    for script in scripts:
        print(f"# {script.name}", file=sys.stderr, flush=True)
        proc = subprocess.run(
            [sys.executable, str(script)], cwd=HERE.parent, capture_output=True, text=True
        )
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        if proc.returncode != 0 or not lines:
            failed.append(script.name)
            sys.stderr.write(proc.stderr[-3000:])
            continue
        for line in lines:
            if line.lstrip().startswith("{"):
                print(line, flush=True)
        results.append(json.loads(lines[-1]))
    print(json.dumps({"name": "all", "results": results, "failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
