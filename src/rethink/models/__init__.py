"""rethink's model zoo: every model is built by name for a dataset's input shape and classes.

    >>> from rethink import models
    >>> net = models.build("alexnet-small", input_shape=(3, 28, 28), num_classes=10, seed=0)
    >>> models.count_params(net)
    1387786
    >>> models.default_lr("inception-small")
    0.1

Names: `mlp-<D>x<W>` (e.g. mlp-1x512, mlp-3x512), `alexnet-small`, `inception-small`,
`inception-small-nobn`, `resnet18` and `resnet18-k<K>`. `names()` lists them, `describe()`
gives each one's parameter count for an input shape. See docs/models.md. A user's own model
is built the same way from a `module:function` reference or an entry point of group
`rethink.models` (docs/plugins.md).
"""

from rethink.models import alexnet, inception, mlp, resnet  # noqa: F401  (they register)
from rethink.models._layers import LocalResponseNorm
from rethink.models._optimize import compiler_available, keep_freed_memory, optimize_for_training
from rethink.models._registry import (
    build,
    count_params,
    default_lr,
    describe,
    is_builtin,
    names,
    register_model,
)

__all__ = [
    "LocalResponseNorm",
    "build",
    "compiler_available",
    "count_params",
    "default_lr",
    "describe",
    "is_builtin",
    "names",
    "keep_freed_memory",
    "optimize_for_training",
    "register_model",
]
