"""Ready-made ports: a TF-written tiny BERT into a BertModel-shaped torch module; Keras Dense/Conv2D into torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tfckpt
from tfckpt.errors import InvalidArgumentError, TensorNotFoundError
from tfckpt.ports import bert, keras

torch = pytest.importorskip("torch")
nn = torch.nn

GOLDEN = Path(__file__).parent / "golden_transfer"
BERT_DIR = GOLDEN / "bert_tiny"
KERAS_DIR = GOLDEN / "keras_dense_conv"
CFG = json.loads((BERT_DIR / "expected.json").read_text())["config"]


# A module with exactly Hugging Face BertModel's parameter names and shapes (transformers is not a dependency).
class _Embeddings(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        h = CFG["hidden"]
        self.word_embeddings = nn.Embedding(CFG["vocab"], h)
        self.position_embeddings = nn.Embedding(CFG["max_pos"], h)
        self.token_type_embeddings = nn.Embedding(CFG["type_vocab"], h)
        self.LayerNorm = nn.LayerNorm(h)


class _SelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        h = CFG["hidden"]
        self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)


class _DenseNorm(nn.Module):
    def __init__(self, n_in: int) -> None:
        super().__init__()
        self.dense = nn.Linear(n_in, CFG["hidden"])
        self.LayerNorm = nn.LayerNorm(CFG["hidden"])


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.self = _SelfAttention()
        self.output = _DenseNorm(CFG["hidden"])


class _Dense(nn.Module):
    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.dense = nn.Linear(n_in, n_out)


class _Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = _Attention()
        self.intermediate = _Dense(CFG["hidden"], CFG["intermediate"])
        self.output = _DenseNorm(CFG["intermediate"])


class _Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.ModuleList([_Layer() for _ in range(CFG["layers"])])


class TinyBertModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embeddings = _Embeddings()
        self.encoder = _Encoder()
        self.pooler = _Dense(CFG["hidden"], CFG["hidden"])


class TinyBertForClassification(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bert = TinyBertModel()
        self.classifier = nn.Linear(CFG["hidden"], 3)


def _nan_fill(module: nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(float("nan"))


def test_bert_port_fills_every_parameter_and_leaves_nothing_over() -> None:
    model = TinyBertModel()
    assert len(model.state_dict()) == 5 + 16 * CFG["layers"] + 2
    _nan_fill(model)
    rep = bert.load(BERT_DIR, model)
    assert rep.ok
    assert rep.missing == []
    assert rep.unexpected == []
    assert sorted(rep.loaded) == sorted(model.state_dict())
    for name, p in model.state_dict().items():
        assert not torch.isnan(p).any(), name
    # Skipped: optimizer slots, global_step, the pre-training heads.
    assert "global_step" in rep.skipped
    assert "cls/seq_relationship/output_weights" in rep.skipped
    assert all(n.endswith(("/adam_m", "/adam_v")) or n.startswith("cls/") or n == "global_step" for n in rep.skipped)
    reader = tfckpt.load_checkpoint(BERT_DIR)
    sd = model.state_dict()
    q = reader.get_tensor("bert/encoder/layer_1/attention/self/query/kernel")
    np.testing.assert_array_equal(sd["encoder.layer.1.attention.self.query.weight"].numpy(), q.T)
    np.testing.assert_array_equal(sd["encoder.layer.0.intermediate.dense.weight"].numpy(),
                                  reader.get_tensor("bert/encoder/layer_0/intermediate/dense/kernel").T)
    np.testing.assert_array_equal(sd["embeddings.word_embeddings.weight"].numpy(),
                                  reader.get_tensor("bert/embeddings/word_embeddings"))
    np.testing.assert_array_equal(sd["encoder.layer.1.output.LayerNorm.bias"].numpy(),
                                  reader.get_tensor("bert/encoder/layer_1/output/LayerNorm/beta"))
    assert rep.renamed["bert/pooler/dense/kernel"] == "pooler.dense.weight"
    assert rep.transformed["pooler.dense.weight"] == ["transpose[1, 0]"]
    assert "embeddings.word_embeddings.weight" not in rep.transformed


def test_bert_port_round_trip_to_tensorflow_names(tmp_path: Path) -> None:
    model = TinyBertModel()
    bert.load(BERT_DIR, model)
    out = bert.save(model, str(tmp_path / "back"))
    reader = tfckpt.load_checkpoint(BERT_DIR)
    back = tfckpt.load_checkpoint(out)
    model_vars = [n for n in reader.get_variable_to_shape_map()
                  if n.startswith("bert/") and not n.endswith(("adam_m", "adam_v"))]
    assert sorted(back.get_variable_to_shape_map()) == sorted(model_vars)
    for n in model_vars:
        assert back.get_tensor(n).tobytes() == reader.get_tensor(n).tobytes(), n


def test_bert_port_with_prefix_into_a_classifier() -> None:
    model = TinyBertForClassification()
    with pytest.raises(TensorNotFoundError, match=r"classifier\.bias"):
        bert.load(BERT_DIR, model, prefix="bert.")
    rep = bert.load(BERT_DIR, model, prefix="bert.", strict=False)
    assert rep.missing == ["classifier.weight", "classifier.bias"]
    assert rep.unexpected == []
    assert len(rep.loaded) == len(model.bert.state_dict())


def test_bert_save_of_a_model_with_a_head(tmp_path: Path) -> None:
    model = TinyBertForClassification()
    bert.load(BERT_DIR, model, prefix="bert.", strict=False)
    with pytest.raises(InvalidArgumentError, match="classifier"):
        bert.save(model, str(tmp_path / "strict"), prefix="bert.")
    out = bert.save(model, str(tmp_path / "back"), prefix="bert.", strict=False)  # (no strict= before: unusable)
    back = tfckpt.load_checkpoint(out)
    assert len(back.get_variable_to_shape_map()) == len(model.bert.state_dict())
    assert all(n.startswith("bert/") for n in back.get_variable_to_shape_map())


def test_bert_rules_names() -> None:
    r = bert.rules()
    assert r.apply("bert/encoder/layer_10/attention/output/LayerNorm/gamma") == (
        "encoder.layer.10.attention.output.LayerNorm.weight")
    assert r.apply("bert/embeddings/token_type_embeddings") == "embeddings.token_type_embeddings.weight"
    assert r.apply("bert/encoder/layer_0/output/dense/bias") == "encoder.layer.0.output.dense.bias"
    assert r.apply("bert/encoder/layer_0/output/dense/bias/adam_v") is None
    for slot in ("AdamWeightDecayOptimizer", "AdamWeightDecayOptimizer_1", "Adam", "Adam_1", "LAMB", "Momentum"):
        assert r.apply(f"bert/encoder/layer_0/output/dense/kernel/{slot}") is None, slot  # (HF's loader skips them)
    assert r.apply("global_step") is None
    assert r.apply("cls/predictions/output_bias") is None
    assert bert.rules(prefix="bert.").apply("bert/pooler/dense/kernel") == "bert.pooler.dense.weight"


class KerasNet(nn.Module):
    """Conv2D(3, 3x3) -> Flatten -> Dense(4), the golden Keras model, in torch (NCHW inside)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)
        self.fc = nn.Linear(48, 4)

    def forward(self, x_nhwc):  # type: ignore[no-untyped-def]
        c = self.conv(x_nhwc.permute(0, 3, 1, 2))
        return self.fc(c.permute(0, 2, 3, 1).flatten(1)), c


def test_keras_port_gives_tensorflow_outputs() -> None:
    io = json.loads((KERAS_DIR / "io.json").read_text())
    net = KerasNet()
    rep = keras.load_into_torch(KERAS_DIR, net)
    assert rep.ok
    assert rep.renamed == {
        "model/_functional/_operations/1/_kernel/.ATTRIBUTES/VARIABLE_VALUE": "conv.weight",
        "model/_functional/_operations/1/bias/.ATTRIBUTES/VARIABLE_VALUE": "conv.bias",
        "model/_functional/_operations/3/_kernel/.ATTRIBUTES/VARIABLE_VALUE": "fc.weight",
        "model/_functional/_operations/3/bias/.ATTRIBUTES/VARIABLE_VALUE": "fc.bias",
    }
    assert rep.skipped == ["_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE"]
    with torch.no_grad():
        out, conv = net(torch.tensor(np.asarray(io["x"], np.float32)))
    conv_nhwc = conv.permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(conv_nhwc.reshape(-1), io["conv_out"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(out.numpy().reshape(-1), io["out"], atol=1e-5, rtol=0)


def test_keras_port_explicit_map_and_errors() -> None:
    layers = keras.weight_layers(KERAS_DIR)
    assert list(layers) == ["model/_functional/_operations/1", "model/_functional/_operations/3"]
    net = KerasNet()
    rep = keras.load_into_torch(KERAS_DIR, net, {"model/_functional/_operations/1": "conv"}, strict=False)
    assert rep.loaded == ["conv.weight", "conv.bias"]
    assert rep.missing == ["fc.weight", "fc.bias"]
    with pytest.raises(InvalidArgumentError, match=r"cannot pair 2 Keras layers with kernels .* with 1 torch layers"):
        keras.load_into_torch(KERAS_DIR, nn.Sequential(nn.Linear(48, 4)))
    r, ts = keras.rules({"model/layer_with_weights-0": "fc"})
    assert r.apply("model/layer_with_weights-0/bias/.ATTRIBUTES/VARIABLE_VALUE") == "fc.bias"
    assert r.apply("model/layer_with_weights-0/kernel/.OPTIMIZER_SLOT/optimizer/m/.ATTRIBUTES/VARIABLE_VALUE") is None
    assert [t.describe() for t in ts.for_name("fc.weight")] == ["torch_kernel"]


class _ProjHidden(nn.Module):
    """The torch twin of keras_subclassed_opt's model: proj (5->6), relu, hidden (6->3, no bias)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(5, 6)
        self.hidden = nn.Linear(6, 3, bias=False)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.hidden(torch.relu(self.proj(x)))


@pytest.mark.parametrize("case", ["keras_subclassed_opt", "keras_functional_opt"])
def test_keras_port_pairs_layers_in_model_order_and_finds_weights_under_the_optimizer(case: str) -> None:
    # Subclassed: layer paths are attribute names (model/proj, model/hidden), which sorted by name
    # paired hidden with proj (same shapes: no error, wrong outputs). Functional with the optimizer
    # in the checkpoint: TensorFlow stored every weight under optimizer/_trainable_variables/N only.
    d = GOLDEN / case
    io = json.loads((d / "io.json").read_text())
    layers = keras.weight_layers(d)
    if case == "keras_subclassed_opt":
        assert list(layers) == ["model/proj", "model/hidden"]
    else:
        assert list(layers) == ["model/_operations/1", "model/_operations/3"]
        assert all(k.startswith("optimizer/_trainable_variables/") for k in layers.values())
    net = _ProjHidden()
    rep = keras.load_into_torch(d, net)
    assert rep.ok
    assert sorted(rep.loaded) == ["hidden.weight", "proj.bias", "proj.weight"]
    assert rep.unused_rules == []  # (a layer without bias: no rule for a bias the port made up)
    with torch.no_grad():
        out = net(torch.tensor(np.asarray(io["x"], np.float32)))
    np.testing.assert_allclose(out.numpy().reshape(-1), io["out"], atol=1e-5, rtol=0)
    net2 = _ProjHidden()  # explicit map by the model's path, though the keys are the optimizer's
    first = next(iter(layers))
    rep = keras.load_into_torch(d, net2, {first: "proj"}, strict=False)
    assert sorted(rep.loaded) == ["proj.bias", "proj.weight"]
    assert torch.equal(net2.proj.weight, net.proj.weight)


def test_keras_port_of_a_state_dict_needs_a_layer_map() -> None:
    sd = KerasNet().state_dict()
    with pytest.raises(tfckpt.errors.InvalidTypeError, match="pass layer_map"):
        keras.load_into_torch(KERAS_DIR, sd)  # (was AttributeError: no named_modules)
    rep = keras.load_into_torch(KERAS_DIR, sd, {"model/_functional/_operations/1": "conv",
                                                "model/_functional/_operations/3": "fc"})
    assert rep.ok
