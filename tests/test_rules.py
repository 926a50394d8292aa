"""Rules: ordering, filters, renames, conflicts, inverse, file format."""

from __future__ import annotations

import json

import pytest

from tfckpt import Rules
from tfckpt.errors import InvalidArgumentError, NotFoundError

NAMES = [
    "bert/encoder/layer_0/attention/self/query/kernel",
    "bert/encoder/layer_0/attention/self/query/kernel/adam_m",
    "bert/encoder/layer_0/attention/self/query/kernel/adam_v",
    "bert/pooler/dense/bias",
    "cls/predictions/output_bias",
    "global_step",
]


def test_empty_rules_take_everything_unchanged() -> None:
    assert Rules().apply_all(NAMES) == {n: n for n in NAMES}
    assert len(Rules()) == 0


def test_include_glob_and_exclude_regex() -> None:
    r = Rules().include("bert/encoder/*").exclude(r"re:.*adam_[mv]$")
    assert r.apply_all(NAMES) == {NAMES[0]: NAMES[0]}


def test_glob_star_crosses_slashes_and_regex_must_match_whole_name() -> None:
    assert Rules().include("bert/*").apply("bert/a/b/c") == "bert/a/b/c"
    assert Rules().include("re:bert").apply("bert/a") is None
    assert Rules().include("re:bert.*").apply("bert/a") == "bert/a"
    assert Rules().include("a?c", "x[0-9]").apply_all(["abc", "x7", "x", "abcd"]) == {"abc": "abc", "x7": "x7"}


def test_steps_apply_in_order_filters_see_renamed_name() -> None:
    # The include runs after the prefix strip, so it sees "pooler/...".
    r = Rules().strip_prefix("bert/").include("pooler/*")
    assert r.apply("bert/pooler/dense/bias") == "pooler/dense/bias"
    # Reversed order: the include sees the original name and drops it.
    r2 = Rules().include("pooler/*").strip_prefix("bert/")
    assert r2.apply("bert/pooler/dense/bias") is None


def test_rewrites() -> None:
    r = (Rules().strip_prefix("bert/").sub(r"layer_(\d+)", r"layer.\1").sub("/", ".")
         .add_prefix("model.").strip_suffix(".kernel").add_suffix(".weight"))
    assert r.apply("bert/encoder/layer_11/attention/self/query/kernel") == (
        "model.encoder.layer.11.attention.self.query.weight")
    # strip_prefix leaves non-matching names alone
    assert Rules().strip_prefix("bert/").apply("cls/x") == "cls/x"
    assert Rules().strip_suffix("/x").apply("a/y") == "a/y"


def test_map_renames_exact_names_only() -> None:
    r = Rules().map({"w_h": "layer1/w", "w_h2": "layer2/w"})
    assert r.apply_all(["w_h", "w_h2", "w_h3", "w_h/RMSProp"]) == {
        "w_h": "layer1/w", "w_h2": "layer2/w", "w_h3": "w_h3", "w_h/RMSProp": "w_h/RMSProp"}


def test_conflict_names_both_sources() -> None:
    r = Rules().strip_prefix("a/").strip_prefix("b/")
    with pytest.raises(InvalidArgumentError) as e:
        r.apply_all(["a/w", "x", "b/w"])
    assert str(e.value) == "rules map both 'a/w' and 'b/w' to 'w'"
    assert e.value.key == "w"
    with pytest.raises(InvalidArgumentError, match="rules map both 'p' and 'q' to 'z'"):
        Rules().map({"p": "z", "q": "z"}).apply_all(["p", "q"])


def test_inverse_round_trips() -> None:
    r = (Rules().include("bert/*").exclude("re:.*adam_[mv]$").strip_prefix("bert/")
         .sub(r"layer_(\d+)", r"layer.\1", inverse=(r"layer\.(\d+)", r"layer_\1"))
         .map({"pooler/dense/bias": "pool_b"}).add_prefix("m:"))
    fwd = r.apply_all(NAMES)
    assert fwd == {NAMES[0]: "m:encoder/layer.0/attention/self/query/kernel", NAMES[3]: "m:pool_b"}
    assert r.invert_names(fwd.values()) == {v: k for k, v in fwd.items()}
    inv = r.inverse()
    assert inv.apply("m:pool_b") == "bert/pooler/dense/bias"
    # The inverse keeps the filters: a name the forward rules could not produce is dropped.
    assert inv.apply("m:encoder/x/adam_m") is None


def test_inverse_errors() -> None:
    with pytest.raises(InvalidArgumentError) as e:
        Rules().add_prefix("a").sub("x", "y").inverse()
    assert str(e.value) == "rule 1 (sub 'x' -> 'y') has no inverse: give sub(pattern, repl, inverse=(pattern, repl))"
    with pytest.raises(InvalidArgumentError, match="rule 0 \\(map\\) cannot be inverted: both 'a' and 'b' map to 'c'"):
        Rules().map({"a": "c", "b": "c"}).inverse()


def test_invert_names_checks_round_trip() -> None:
    r = Rules().strip_prefix("bert/")
    assert r.invert_names(["pooler/b"]) == {"pooler/b": "bert/pooler/b"}
    r2 = Rules().sub("a", "b", inverse=("b", "a"))
    with pytest.raises(InvalidArgumentError) as e:
        r2.invert_names(["bab"])  # inverse gives "aaa", which maps to "bbb"
    assert str(e.value) == ("cannot map 'bab' back to a checkpoint name: the inverse rules give 'aaa', "
                            "which maps to 'bbb'")


def test_to_dict_from_dict_and_file(tmp_path) -> None:
    r = (Rules().include("bert/*", "re:cls/.*").exclude("re:.*adam_[mv]$")
         .sub(r"layer_(\d+)", r"layer.\1", inverse=(r"layer\.(\d+)", r"layer_\1"))
         .strip_prefix("bert/").add_prefix("m.").strip_suffix("/k").add_suffix(".w").map({"a": "b"}))
    d = r.to_dict()
    assert d == {"rules": [
        {"include": ["bert/*", "re:cls/.*"]},
        {"exclude": ["re:.*adam_[mv]$"]},
        {"sub": [r"layer_(\d+)", r"layer.\1"], "inverse": [r"layer\.(\d+)", r"layer_\1"]},
        {"strip_prefix": "bert/"},
        {"add_prefix": "m."},
        {"strip_suffix": "/k"},
        {"add_suffix": ".w"},
        {"map": {"a": "b"}},
    ]}
    p = tmp_path / "rules.json"
    p.write_text(json.dumps(d))
    r2 = Rules.from_file(p)
    assert r2 == r
    assert r2.apply_all(NAMES) == r.apply_all(NAMES)
    # A bare list of steps and a single pattern string are accepted.
    p.write_text('[{"include": "bert/*"}, {"strip_prefix": "bert/"}]')
    assert Rules.from_file(str(p)).apply_all(NAMES[3:]) == {"bert/pooler/dense/bias": "pooler/dense/bias"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "is not JSON"),
        ('{"steps": []}', "rules must be {'rules': [...]}, got keys ['steps']"),
        ('[{"rename": "x"}]', "rule 0: expected exactly one of include, exclude, sub"),
        ('[{"include": "a", "exclude": "b"}]', "rule 0: expected exactly one of"),
        ('[{"strip_prefix": 3}]', "rule 0 (strip_prefix): 'strip_prefix' takes a string, got 3"),
        ('[{"sub": ["a"]}]', "rule 0 (sub): 'sub' takes [pattern, repl], got ['a']"),
        ('[{"include": ["re:("]}]', "rule 0 (include): bad pattern 're:('"),
        ('[{"add_prefix": "a", "inverse": ["x", "y"]}]', "rule 0: expected exactly one of"),
        ('"bert/*"', "rules must be a list of steps, got str"),
    ],
)
def test_bad_rule_files(tmp_path, text: str, message: str) -> None:
    p = tmp_path / "r.json"
    p.write_text(text)
    with pytest.raises(InvalidArgumentError) as e:
        Rules.from_file(p)
    assert message in str(e.value)
    assert str(e.value).startswith(f"rules file {p}")
    assert e.value.path == str(p)


def test_missing_rules_file(tmp_path) -> None:
    with pytest.raises(NotFoundError, match=r"rules file .*nope\.json not found"):
        Rules.from_file(tmp_path / "nope.json")


def test_bad_substitution_template_reported_when_built() -> None:
    # (checked when the rule is made, not when the first name matches)
    with pytest.raises(InvalidArgumentError, match=r"bad substitution 'a' -> '\\\\2'"):
        Rules().sub("a", r"\2")


def test_builder_argument_errors() -> None:
    with pytest.raises(InvalidArgumentError, match="include\\(\\) needs at least one pattern"):
        Rules().include()
    with pytest.raises(InvalidArgumentError, match="map\\(\\) takes a mapping, got list"):
        Rules().map([("a", "b")])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="inverse of sub 'a' must be \\(pattern, repl\\)"):
        Rules().sub("a", "b", inverse=("x",))  # type: ignore[arg-type]


def test_repr_and_steps() -> None:
    r = Rules().include("a/*").map({"a": "b"}).strip_prefix("a/")
    assert r.steps == ["include 'a/*'", "map of 1 names", "strip_prefix 'a/'"]
    assert repr(r) == "Rules(include 'a/*'; map of 1 names; strip_prefix 'a/')"
