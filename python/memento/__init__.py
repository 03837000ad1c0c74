"""memento: an activation memory runtime for deep-learning training.

The engine is libmemento (C++); this package is a thin layer over its C API (memento.h),
loaded with ctypes, so that one build serves every PyTorch version. ``memento.torch`` gives
any ``nn.Module`` a byte budget for its saved activations.
"""

from memento._lib import MementoError, library_path
from memento.bytes import format_bytes, parse_bytes

__all__ = ["MementoError", "format_bytes", "library_path", "parse_bytes"]
__version__ = "0.1.0"
