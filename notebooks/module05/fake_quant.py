"""Quantization-aware training in Keras 3: a Dense layer that trains with fake quantisation.

Notebook 05 §3 fine-tunes its edge model with :class:`FakeQuantDense` in place of ``Dense``.
In the forward pass the layer rounds its input, its kernel and its output to the 256 levels
int8 can hold (and turns them back into floats: *fake* quantisation), so the loss the model
trains on is the loss of the rounded model; the gradient passes the rounding as if it were not
there (the straight-through estimator). The scheme is the one tensorflow-model-optimization's
``quantize_model`` applies to a ``Dense`` layer (its default 8-bit scheme):

- the kernel: one symmetric range for the whole tensor, ``[-max|w|, max|w|]`` from the current
  weights, 255 levels (``narrow_range``: int8 without -128, so zero is exact);
- the input and the output (after the activation): one asymmetric range each, the moving
  average of the batches' minimum and maximum while training, always containing zero (an
  int8 zero point must be a level), fixed at inference.

``keras.quantizers.fake_quant_with_min_max_vars`` does the rounding: on TensorFlow it is
``tf.quantization.fake_quant_with_min_max_vars``, the op the TensorFlow Lite converter reads,
so the ranges learned here become the int8 model's scales and zero points. Why write the layer:
tensorflow-model-optimization 0.8 refuses Keras 3 models (it works on tf-keras only), and
Keras 3's own ``model.quantize("int8")`` quantises a trained model's weights after training
(its int8 kernels are frozen): Keras 3 has the fake-quant op but no layer that trains with it.
"""

import keras
from keras import ops

__all__ = ["FakeQuantDense", "fake_quant_range"]


def fake_quant_range(x, bounds, seen, decay: float, bits: int, training: bool):
    """Fake-quantise ``x`` to ``bits`` bits in the range ``bounds`` (a variable ``[low, high]``).

    While training, ``bounds`` first takes the batch's range (when ``seen`` is 0), then moves
    towards each batch's range by ``1 - decay``; both ends are stretched to include zero.
    """
    if training:
        batch = ops.stack([ops.minimum(ops.min(x), 0.0), ops.maximum(ops.max(x), 0.0)])
        keep = ops.where(seen > 0, decay, 0.0)
        bounds.assign(keep * bounds + (1.0 - keep) * batch)
    return keras.quantizers.fake_quant_with_min_max_vars(x, bounds[0], bounds[1], num_bits=bits)


class FakeQuantDense(keras.layers.Dense):
    """``keras.layers.Dense`` trained with fake quantisation of its input, kernel and output.

    ``bits``: the integer width simulated (8: int8, what TensorFlow Lite runs); ``decay``: how
    slowly the input and output ranges follow the batches. Takes a ``Dense`` layer's weights
    (``kernel``, ``bias``) as they are; its ranges are non-trainable weights.
    """

    def __init__(self, units, bits: int = 8, decay: float = 0.99, **kwargs):
        super().__init__(units, **kwargs)
        self.bits, self.decay = int(bits), float(decay)

    def build(self, input_shape):
        super().build(input_shape)
        zeros = {"shape": (2,), "initializer": "zeros", "trainable": False}
        self.input_range = self.add_weight(name="input_range", **zeros)
        self.output_range = self.add_weight(name="output_range", **zeros)
        self.seen = self.add_weight(name="seen", shape=(), initializer="zeros", trainable=False)

    def call(self, inputs, training=False):
        args = (self.seen, self.decay, self.bits, training)
        x = fake_quant_range(inputs, self.input_range, *args)
        bound = ops.max(ops.abs(self.kernel))
        kernel = keras.quantizers.fake_quant_with_min_max_vars(
            self.kernel, -bound, bound, num_bits=self.bits, narrow_range=True
        )
        y = ops.matmul(x, kernel) + self.bias if self.use_bias else ops.matmul(x, kernel)
        y = fake_quant_range(self.activation(y), self.output_range, *args)
        if training:
            self.seen.assign(self.seen + 1)
        return y

    def get_config(self):
        return {**super().get_config(), "bits": self.bits, "decay": self.decay}
