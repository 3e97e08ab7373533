"""Compare finished suite runs case by case (docs/results.md's ablation tables):

    python tools/compare_suites.py default=outputs/suite_cpu method=outputs/suite_cpu_method ...

Each argument is LABEL=DIR, DIR a suite's output directory (its suite.json); prints a markdown table
(:func:`ngdjax.suite_report.comparison_table`), the first variant's cases in its order.
"""

from __future__ import annotations

import argparse
import json
import os

from ngdjax.suite_report import comparison_table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+", help="LABEL=DIR, a suite's output directory")
    args = parser.parse_args(argv)
    variants = []
    for text in args.variants:
        label, sep, directory = text.partition("=")
        if not sep:
            parser.error(f"{text!r}: expected LABEL=DIR")
        with open(os.path.join(directory, "suite.json")) as file:
            variants.append((label, json.load(file)))
    print(comparison_table(variants), end="")


if __name__ == "__main__":
    main()
