"""MLflow "model from code" for a served RD student: logged by :class:`monai_rd.deploy.PyfuncServing`.

MLflow copies this file into the logged model and runs it at load time, so it imports nothing of ``monai_rd``:
the serving folder (artifact ``serving``) and ``rd_runtime`` (shipped with ``code_paths``) do the work.
"""

import mlflow
from mlflow.pyfunc import PythonModel


class RDStudentModel(PythonModel):
    """``predict`` takes an image batch ``[B, C, H, W]`` / ``[B, H, W]`` (decoded pixel values) or base64
    strings of image files (PNG, JPEG, DICOM...), as an array, a list or an ``image`` column, and returns one
    ``{"label", "probabilities": {class: p}}`` per image; the bundle's evaluation preprocessing runs inside."""

    def load_context(self, context):
        import rd_runtime

        self.model = rd_runtime.ServingModel(context.artifacts["serving"])

    def predict(self, context, model_input, params=None):
        return self.model.predict(model_input)


mlflow.models.set_model(RDStudentModel())
