"""``tfckpt convert``: between TensorFlow checkpoints, safetensors, ``.npz`` and PyTorch files."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tfckpt._cli_format import dump_json, human_bytes, print_line, progress
from tfckpt.convert import FORMATS, convert

__all__ = ["add_parser"]

EXAMPLES = """\
examples:
  tfckpt convert train/ model.safetensors          latest checkpoint of train/ to safetensors
  tfckpt convert model.safetensors tf_ckpt/model   safetensors to a TensorFlow checkpoint prefix
  tfckpt convert ckpt weights.npz
  tfckpt convert pytorch_model.bin ckpt --rules rename.json
  tfckpt convert ckpt out.weights --to safetensors

formats: tf (a checkpoint prefix, or a directory as source), safetensors (.safetensors),
npz (.npz), torch (.pt .pth .bin; read with torch.load(weights_only=True) only).
bfloat16: safetensors BF16, torch bfloat16; npz stores raw uint16 bits plus a
'__tfckpt_dtypes__' member that tfckpt reads back. Strings only in tf and npz.
--rules FILE: rename rules (JSON, see tfckpt.Rules); a rule that drops a name skips it.
  Rules that match no entry are named in a warning (the exit status stays 0).

PyTorch files are flattened as tfckpt.Saver names state: nested dicts, lists and tuples
joined with '/' (model/fc.weight, optimizer/state/0/exp_avg, optimizer/param_groups/0/lr);
a file holding only {"state_dict": sd} gives sd's names. Python ints, floats and bools
become 0-d int64/float64/bool tensors, strings string tensors (tf, npz). What cannot be
stored (None, a torch.dtype, a string for safetensors or torch, ...) is not written and
is listed in a warning, and under "not_stored" with --json: nothing is left out silently.
The parent directories of DST are created.
"""


def run(args: argparse.Namespace) -> int:
    def bar(items: Any, total: int) -> Any:
        return progress(items, total, "convert")

    rep = convert(args.src, args.dst, src_format=args.from_format, dst_format=args.to, rules=args.rules,
                  progress=bar)
    if args.json:
        dump_json({"src": args.src, "dst": args.dst, "from": rep.src_format, "to": rep.dst_format,
                   "tensors": rep.tensors, "bytes": rep.bytes, "skipped": rep.skipped, "renamed": rep.renamed,
                   "not_stored": rep.not_stored, "unused_rules": rep.unused_rules})
    else:
        by_rules = len(rep.skipped) - len(rep.not_stored)
        extra = f", {len(rep.renamed)} renamed" if rep.renamed else ""
        extra += f", {by_rules} skipped by the rules" if by_rules else ""
        extra += f", {len(rep.not_stored)} not stored" if rep.not_stored else ""
        print_line(f"{args.src} ({rep.src_format}) -> {args.dst} ({rep.dst_format}): {rep.tensors} tensors, "
                   f"{human_bytes(rep.bytes)}{extra}")
    if rep.not_stored:
        n = len(rep.not_stored)
        listed = [f"{k!r} ({why})" for k, why in list(rep.not_stored.items())[:_SHOW]]
        more = f", and {n - _SHOW} more (see --json)" if n > _SHOW else ""
        _warn(f"{n} entr{'y' if n == 1 else 'ies'} not stored: {', '.join(listed)}{more}")
    if rep.unused_rules:
        n = len(rep.unused_rules)
        _warn(f"{n} rule{' matched' if n == 1 else 's matched'} nothing: {'; '.join(rep.unused_rules)}")
    return 0


_SHOW = 20


def _warn(text: str) -> None:
    print(f"tfckpt: warning: {text}", file=sys.stderr)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "convert",
        help="convert between TF checkpoints, safetensors, .npz and PyTorch files",
        description="Copy every tensor from SRC to a new DST in another format, one tensor at a time.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("src", help="source: checkpoint prefix/directory, .safetensors, .npz, .pt/.pth/.bin")
    p.add_argument("dst", help="destination (replaced atomically)")
    p.add_argument("--to", choices=FORMATS, default=None, help="destination format (default: by extension)")
    p.add_argument("--from", dest="from_format", choices=FORMATS, default=None,
                   help="source format (default: by extension)")
    p.add_argument("--rules", metavar="FILE", default=None, help="rename rules JSON (tfckpt.Rules.from_file)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)
