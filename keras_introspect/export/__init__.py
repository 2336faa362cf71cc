"""Export for serving: SavedModels with `serving_default` and `explain`, in TF Serving's layout."""

from keras_introspect.export.saved_model import export_saved_model
from keras_introspect.export.serving import (
    call_like_serving,
    export_for_serving,
    rest_request,
    versions,
    write_rest_example,
)

__all__ = ["export_saved_model", "export_for_serving", "versions", "rest_request", "call_like_serving",
           "write_rest_example"]
