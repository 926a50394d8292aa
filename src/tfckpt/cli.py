"""The ``tfckpt`` command line: a thin layer over the public API.

``main(argv) -> int`` never raises for a user mistake: tfckpt errors become a
one-line message on stderr (``tfckpt: error: ...``) and a non-zero exit code.

Exit status: 0 success; 1 a tfckpt error (bad path, corrupt file, ...) or, for
``verify``, problems found; 2 a usage error (argparse). ``diff`` follows
``diff(1)``/``cmp(1)``: 0 equal, 1 different, 2 usage error or unreadable
checkpoint. ``stats --nan`` exits 3 when a tensor holds NaN or Inf.

Shell completion: none built in (argcomplete is not a dependency); ``tfckpt
--help`` and ``tfckpt COMMAND --help`` list every option with examples.

Example:
    >>> import numpy as np, tempfile, os, tfckpt
    >>> p = tfckpt.write({"w": np.ones((2, 3), np.float32)}, os.path.join(tempfile.mkdtemp(), "ckpt"))
    >>> main(["inspect", p, "--all-tensor-names"])
    tensor: w (float32) [2, 3]
    # Total number of params: 6
    0
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from tfckpt import _cli_format
from tfckpt.errors import CheckpointError

__all__ = ["build_parser", "main"]

EPILOG = """\
examples:
  tfckpt inspect train/                   what is in the latest checkpoint of train/
  tfckpt ls train/                        which checkpoints train/ holds
  tfckpt stats ckpt --nan                 per-tensor statistics; exit 3 on NaN/Inf
  tfckpt diff run1/ run2/ --atol 1e-6     compare two checkpoints
  tfckpt verify ckpt                      check every CRC-32C and the structure
  tfckpt convert ckpt model.safetensors   convert (TF, .safetensors, .npz, .pt)
  tfckpt plot train/ -o norms.png         how tensor norms moved across checkpoints
  tfckpt cleanup train/ --dry-run         leftovers of killed saves that would be removed

A directory argument means the latest checkpoint named by its 'checkpoint' file.
Every command takes --json. Colours and tables appear only on a terminal
(--color always|never to override; NO_COLOR is honoured).

exit status: 0 ok, 1 error (or differences / problems found), 2 usage
(diff: 0 equal, 1 different, 2 error); stats --nan: 3 on NaN/Inf.
"""


def _cmd_cleanup(args: argparse.Namespace) -> int:
    from tfckpt.cleanup import cleanup

    recovered: list[str] = []
    removed = cleanup(args.directory, dry_run=args.dry_run, recovered=recovered)
    if args.dry_run:  # (a real run takes the writer lock: say now if it would be refused)
        from tfckpt._lock import DirectoryLock
        from tfckpt.errors import AlreadyExistsError

        try:
            with DirectoryLock(args.directory):
                pass
        except AlreadyExistsError as e:
            print(f"tfckpt: warning: a real cleanup would be refused now: {_one_line(e.message)}", file=sys.stderr)
    if args.json:
        _cli_format.dump_json({"directory": args.directory, "dry_run": args.dry_run, "recovered": recovered,
                               "removed": removed})
        return 0
    for line in recovered:
        print(f"would {line}" if args.dry_run else line)
    verb = "would remove" if args.dry_run else "removed"
    for path in removed:
        print(f"{verb} {path}")
    if not removed and not recovered:
        print(f"nothing to clean in {args.directory}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from tfckpt import demo

    return demo.main(args.demo_args)


def build_parser() -> argparse.ArgumentParser:
    from tfckpt import _cli_convert, _cli_diff, _cli_inspect, _cli_ls, _cli_plot, _cli_stats, _cli_verify

    p = argparse.ArgumentParser(
        prog="tfckpt",
        description="TensorFlow checkpoints without TensorFlow.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="rich tables and colours: auto (on a terminal), always, never")
    from tfckpt import __version__

    p.add_argument("--version", action="version", version=f"tfckpt {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _cli_inspect.add_parser(sub)
    _cli_ls.add_parser(sub)
    _cli_stats.add_parser(sub)
    _cli_diff.add_parser(sub)
    _cli_verify.add_parser(sub)
    _cli_convert.add_parser(sub)
    _cli_plot.add_parser(sub)
    clean = sub.add_parser(
        "cleanup",
        help="remove leftovers of interrupted saves (temp files, data files without an index)",
        description="Remove what killed saves left behind in DIR: *.tempstate<N>, checkpoint.tmp<hex>, "
        "<prefix>_temp/ part directories and data files whose index is missing. Never touches a "
        "checkpoint the state file names, nor anything outside DIR. Refuses while a writer holds DIR.",
        epilog="example: tfckpt cleanup train/ --dry-run",
    )
    clean.add_argument("directory", help="checkpoint directory")
    clean.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    clean.add_argument("--json", action="store_true", help="machine-readable output")
    clean.set_defaults(func=_cmd_cleanup)
    demo = sub.add_parser("demo", help="train the tutorial MLP in numpy, saving and resuming checkpoints")
    demo.add_argument("demo_args", nargs=argparse.REMAINDER)
    demo.set_defaults(func=_cmd_demo)
    for name, cmd in sub.choices.items():  # (--color after the command too; its default stays the global one)
        if name != "demo":
            cmd.add_argument("--color", choices=("auto", "always", "never"), default=argparse.SUPPRESS,
                             help="as before the command: auto, always, never")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:  # the demo parses its own options (argparse.REMAINDER drops leading --flags)
        from tfckpt import demo

        return demo.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    _cli_format.COLOR_MODE = args.color
    error_exit = int(getattr(args, "error_exit", 1))
    try:
        return int(args.func(args))
    except CheckpointError as e:
        print(f"tfckpt: error: {_one_line(str(e))}", file=sys.stderr)
        return error_exit
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        return _cli_format.after_broken_pipe()
    except UnicodeEncodeError as e:  # a name the terminal's encoding cannot show (PYTHONIOENCODING=ascii, ...)
        print(f"tfckpt: error: the output encoding cannot show a name ({e.reason}: {e.object[e.start:e.end]!r}); "
              "set PYTHONIOENCODING=utf-8", file=sys.stderr)
        return error_exit
    except OSError as e:  # e.g. an output directory that does not exist
        print(f"tfckpt: error: {e}", file=sys.stderr)
        return error_exit
    except re.error as e:
        print(f"tfckpt: error: bad regular expression: {e}", file=sys.stderr)
        return error_exit
    except KeyboardInterrupt:
        print("tfckpt: interrupted", file=sys.stderr)
        return 130
    finally:
        _cli_format.COLOR_MODE = "auto"


def _one_line(msg: str) -> str:
    return " ".join(msg.split()) if "\n" in msg else msg


if __name__ == "__main__":
    sys.exit(main())
