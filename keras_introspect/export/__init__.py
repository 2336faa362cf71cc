"""Export for serving."""

from keras_introspect.export.saved_model import export_saved_model

__all__ = ["export_saved_model"]
