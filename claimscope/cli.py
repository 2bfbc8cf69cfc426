"""The `claimscope` console script: one subcommand per stage, plus `run` that chains them.

Each stage folder has a `cli.py` with `register(subparsers)`; heavy imports happen inside the handlers so that
`claimscope --help` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from claimscope import __version__
from claimscope.errors import ClaimscopeError

logger = logging.getLogger("claimscope")

# Modules that contribute subcommands, in the order they appear in --help.
COMMAND_MODULES = [
    "claimscope.pipeline_cli",
    "claimscope.retrieve.cli",
    "claimscope.verify.cli",
    "claimscope.verify.extract_cli",
    "claimscope.verify.reverify_cli",
    "claimscope.verify.scifact_cli",
    "claimscope.verify.corpus.cli",
    "claimscope.report_templates.cli",
    "claimscope.replicate.cli",
]


def configure_logging(verbosity: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.INFO if verbosity <= 1 else logging.DEBUG)
    from rich.logging import RichHandler

    handler = RichHandler(show_time=False, show_path=verbosity >= 2, markup=False, rich_tracebacks=False)
    noisy = ("httpx", "urllib3", "sentence_transformers", "transformers", "faiss", "bm25s", "filelock")
    floor = logging.WARNING if verbosity < 2 else logging.INFO

    def third_party_floor(record: logging.LogRecord) -> bool:
        # a library may set its own logger's level when imported (bm25s sets DEBUG), after the setLevel below
        return record.levelno >= floor or record.name.split(".")[0] not in noisy

    handler.addFilter(third_party_floor)
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)
    for name in noisy:
        logging.getLogger(name).setLevel(floor)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="claimscope",
        description=(
            "Check what papers are claimed to say against what they actually say. "
            "Stages: retrieve papers -> verify claims -> (replicate) -> report. "
            "`claimscope run REPORT` does all of them."
        ),
    )
    parser.add_argument("--version", action="version", version=f"claimscope {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=1, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # a stage that is not written yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    try:
        rc = args.handler(args)
    except ClaimscopeError as e:
        print(f"claimscope: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # e.g. --out under a file, a full disk, no permission: one line naming the path
        where = e.filename if e.filename is not None else args.command
        print(f"claimscope: error: {where}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("claimscope: interrupted; finished files are kept, rerun to resume", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
