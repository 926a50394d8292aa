"""Write the tiny TensorFlow checkpoints the transfer-learning tests read.

Run with the TensorFlow virtualenv (tensorflow-cpu 2.21)::

    /root/.cache/tfckpt/tfvenv/bin/python tests/golden_transfer/make_golden.py

It (re)creates, next to this script:

bert_tiny/
    A BERT checkpoint in the google-research/bert naming at tiny size
    (vocab 11, hidden 8, 2 layers, 2 heads, intermediate 12, 16 positions,
    2 token types), written by ``tf.compat.v1.train.Saver`` in graph mode
    (``save_relative_paths=True``) as ``model.ckpt-3``. Besides the model
    variables it holds, like a real pre-training checkpoint, ``<var>/adam_m``
    and ``<var>/adam_v`` for every model variable, the ``cls/...`` heads and an
    int64 ``global_step``. ``expected.json`` lists every tensor's shape.
keras_dense_conv/
    A Keras 3 ``Sequential`` (Input 6x6x2, ``Conv2D(3, 3)``, ``Flatten``,
    ``Dense(4)``) saved with ``tf.train.Checkpoint(model=model).save('ckpt')``
    (object-based keys ``model/_functional/_operations/N/_kernel/...``).
    ``io.json`` holds a fixed input batch and the conv and model outputs
    TensorFlow computed for it.
keras_subclassed_opt/
    A subclassed Keras 3 model whose Dense layers are attributes created in
    non-alphabetical order (``proj`` 5->6, then ``hidden`` 6->3 without bias),
    compiled and fitted one epoch (Adam), saved with ``tf.train.Checkpoint(model=model,
    optimizer=optimizer)``. ``io.json``: an input batch and the outputs.
keras_functional_opt/
    The same layers as a functional model, saved the same way: TensorFlow
    stores each weight once, under its shortest path, here the optimizer's
    (``optimizer/_trainable_variables/N``), and names the model's path
    (``model/_operations/N/_kernel``) only in the object graph.

``python make_golden.py NAME...`` rewrites only those.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
SEED = 20240505

BERT = {"vocab": 11, "hidden": 8, "layers": 2, "heads": 2, "intermediate": 12, "max_pos": 16, "type_vocab": 2}


def bert_tiny(d: Path) -> None:
    import numpy as np
    import tensorflow as tf

    tf1 = tf.compat.v1
    tf1.disable_eager_execution()
    rng = np.random.RandomState(SEED)
    h, i = BERT["hidden"], BERT["intermediate"]
    shapes: dict[str, list[int]] = {}

    def var(name: str, shape: list[int]) -> None:
        init = rng.standard_normal(shape).astype(np.float32)
        v = tf1.get_variable(name, initializer=init)
        shapes[v.op.name] = shape

    with tf.Graph().as_default():
        with tf1.variable_scope("bert"):
            with tf1.variable_scope("embeddings"):
                var("word_embeddings", [BERT["vocab"], h])
                var("token_type_embeddings", [BERT["type_vocab"], h])
                var("position_embeddings", [BERT["max_pos"], h])
                with tf1.variable_scope("LayerNorm"):
                    var("beta", [h])
                    var("gamma", [h])
            with tf1.variable_scope("encoder"):
                for n in range(BERT["layers"]):
                    with tf1.variable_scope(f"layer_{n}"):
                        with tf1.variable_scope("attention"):
                            with tf1.variable_scope("self"):
                                for part in ("query", "key", "value"):
                                    with tf1.variable_scope(part):
                                        var("kernel", [h, h])
                                        var("bias", [h])
                            with tf1.variable_scope("output"):
                                with tf1.variable_scope("dense"):
                                    var("kernel", [h, h])
                                    var("bias", [h])
                                with tf1.variable_scope("LayerNorm"):
                                    var("beta", [h])
                                    var("gamma", [h])
                        with tf1.variable_scope("intermediate/dense"):
                            var("kernel", [h, i])
                            var("bias", [i])
                        with tf1.variable_scope("output"):
                            with tf1.variable_scope("dense"):
                                var("kernel", [i, h])
                                var("bias", [h])
                            with tf1.variable_scope("LayerNorm"):
                                var("beta", [h])
                                var("gamma", [h])
            with tf1.variable_scope("pooler/dense"):
                var("kernel", [h, h])
                var("bias", [h])
        with tf1.variable_scope("cls"):
            with tf1.variable_scope("predictions"):
                with tf1.variable_scope("transform"):
                    with tf1.variable_scope("dense"):
                        var("kernel", [h, h])
                        var("bias", [h])
                    with tf1.variable_scope("LayerNorm"):
                        var("beta", [h])
                        var("gamma", [h])
                var("output_bias", [BERT["vocab"]])
            with tf1.variable_scope("seq_relationship"):
                var("output_weights", [2, h])
                var("output_bias", [2])
        for name, shape in list(shapes.items()):
            # BERT's AdamWeightDecayOptimizer: get_variable(name=param_name + "/adam_m"), non-trainable.
            for slot in ("adam_m", "adam_v"):
                var(f"{name}/{slot}", shape)
        step = tf1.train.get_or_create_global_step()
        shapes["global_step"] = []
        saver = tf1.train.Saver(save_relative_paths=True)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            sess.run(step.assign(3))
            saver.save(sess, str(d / "model.ckpt"), global_step=3, write_meta_graph=False)
    (d / "expected.json").write_text(json.dumps({"config": BERT, "shapes": dict(sorted(shapes.items()))}, indent=1))


def keras_dense_conv(d: Path) -> None:
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(SEED)
    conv = keras.layers.Conv2D(3, 3, name="conv")
    model = keras.Sequential([keras.Input((6, 6, 2)), conv, keras.layers.Flatten(), keras.layers.Dense(4, name="fc")])
    x = np.random.RandomState(SEED + 1).standard_normal((2, 6, 6, 2)).astype(np.float32)
    conv_out = np.asarray(conv(tf.constant(x)))
    out = np.asarray(model(tf.constant(x)))
    tf.train.Checkpoint(model=model).save(str(d / "ckpt"))
    io = {
        "x": x.tolist(),
        "conv_out": [float(v) for v in conv_out.reshape(-1)],
        "conv_out_shape": list(conv_out.shape),
        "out": [float(v) for v in out.reshape(-1)],
        "out_shape": list(out.shape),
        "keras_version": keras.__version__,
        "tf_version": tf.__version__,
    }
    (d / "io.json").write_text(json.dumps(io))


def keras_subclassed_opt(d: Path, functional: bool = False) -> None:
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(SEED)

    class Net(keras.Model):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.proj = keras.layers.Dense(6)
            self.hidden = keras.layers.Dense(3, use_bias=False)

        def call(self, x: object) -> object:
            return self.hidden(tf.nn.relu(self.proj(x)))

    model = Net() if not functional else None
    if functional:
        inp = keras.Input((5,))
        model = keras.Model(inp, keras.layers.Dense(3, use_bias=False)(keras.layers.ReLU()(keras.layers.Dense(6)(inp))))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    rng = np.random.RandomState(SEED + 2)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    model.fit(x, rng.standard_normal((4, 3)).astype(np.float32), epochs=1, verbose=0)
    out = np.asarray(model(x))
    tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(str(d / "ckpt"))
    io = {"x": x.tolist(), "out": [float(v) for v in out.reshape(-1)], "out_shape": list(out.shape),
          "keras_version": keras.__version__, "tf_version": tf.__version__}
    (d / "io.json").write_text(json.dumps(io))


def main() -> int:
    makers = {"keras_dense_conv": keras_dense_conv, "bert_tiny": bert_tiny,
              "keras_subclassed_opt": keras_subclassed_opt,
              "keras_functional_opt": lambda d: keras_subclassed_opt(d, functional=True)}
    for name in sys.argv[1:] or makers:
        fn = makers[name]
        d = HERE / name
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        fn(d)
        print("wrote", d, sorted(p.name for p in d.iterdir()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
