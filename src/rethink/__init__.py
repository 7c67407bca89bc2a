"""rethink: the randomization tests of Zhang et al., "Understanding deep learning requires
rethinking generalization" (ICLR 2017), and the experiments that grew out of them."""

from rethink.errors import RethinkError

__version__ = "0.1.0"

__all__ = ["RethinkError", "__version__"]
