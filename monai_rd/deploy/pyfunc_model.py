"""MLflow "model from code" for a served RD student: logged by :class:`monai_rd.deploy.PyfuncServing`.

MLflow copies this file into the logged model and runs it at load time, so it imports nothing of ``monai_rd``:
the serving folder (artifact ``serving``) and ``rd_runtime`` (shipped with ``code_paths``) do the work.
"""

import mlflow
from mlflow.pyfunc import PythonModel


class RDStudentModel(PythonModel):
    """``predict`` takes base64 strings of image files (DICOM, NIfTI, PNG, JPEG, BMP, TIFF), as a list or an
    ``image`` column, and returns one ``{"label", "probabilities": {class: p}}`` per image: each file is read by
    the training reader and preprocessed by the bundle's evaluation transforms, both shipped in the model."""

    def load_context(self, context):
        import rd_runtime

        self.model = rd_runtime.ServingModel(context.artifacts["serving"])

    def predict(self, context, model_input, params=None):
        return self.model.predict(model_input)


mlflow.models.set_model(RDStudentModel())
