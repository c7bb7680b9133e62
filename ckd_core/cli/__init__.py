"""The `ckd` command. Each subcommand lives in `ckd_core/cli/<name>.py` and exposes
`add_arguments(parser)` and `run(args) -> int`; heavy imports happen inside `run`."""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> one-line help. Order is the order `ckd --help` lists them.
COMMANDS = {
    "train": "train a CKD model (stage 1 distillation or stage 2 MCE head fine-tune)",
    "eval": "run a checkpoint over a benchmark (one-pass, parallel, resumable) and score it",
    "score": "score result files against a benchmark's ground truth (toolkit-exact)",
    "track": "track one RGB + thermal video pair and write an overlay video",
    "profile": "parameters, MACs, FLOPs, kept tokens and latency of a preset",
    "inspect": "identify a checkpoint's format and report missing/unexpected keys",
    "export": "export the inference model (ONNX)",
    "synth": "generate synthetic RGB + thermal sequences in a benchmark layout",
    "bag": "rosbag2 tools: from-sequence, play, eval",
}


class CLIError(Exception):
    """A user-facing error: printed as `ckd <cmd>: error: ...`, exit status 2."""


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(prog="ckd", description="CKD RGB-thermal tracker tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name, help_text in COMMANDS.items():
        try:
            module = importlib.import_module(f"ckd_core.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"ckd_core.cli.{name}":
                raise
            continue  # subcommand not part of this build
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        modules[name] = module
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(modules[args.command].run(args) or 0)
    except (CLIError, FileNotFoundError, ValueError) as exc:
        print(f"ckd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ckd {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
