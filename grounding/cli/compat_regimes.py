"""The compatibility claims over seeds and regimes: python tools/compat_regimes.py --config CONFIG --work-dir DIR
[--analyse-only] [key=value ...].

Trains each training regime of ``compat.regimes`` once per seed (skipping runs that finished), re-scores
every regime and writes regimes.md, regimes.json and regimes_nfr.png into DIR (docs/compatibility.md).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from grounding.errors import exit_cleanly_on_user_errors
from grounding.studies.compat_regimes import run_regimes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML config with compat.regimes (configs/compat/regimes.yaml)")
    parser.add_argument("--work-dir", required=True, help="one folder per regime and seed, and the regime map")
    parser.add_argument("--analyse-only", action="store_true", help="score the finished runs, train nothing")
    parser.add_argument("overrides", nargs="*", help="dotted config overrides applied to every run")
    return parser.parse_args(argv)


@exit_cleanly_on_user_errors
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python tools/compat_regimes.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    run_regimes(args.config, args.work_dir, args.overrides, args.analyse_only, command)
    print((Path(args.work_dir) / "regimes.md").read_text())
    return 0
