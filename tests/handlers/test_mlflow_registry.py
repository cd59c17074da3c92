"""MLflowModelRegistryHandler and ResilientMLFlowHandler, against the embedded SQLite store and a real server."""

import logging
import os
import socket

import pytest
import torch
import torch.nn as nn

from monai_rd.handlers import MLflowLink, MLflowModelRegistryHandler, ResilientMLFlowHandler, assert_student_only
from monai_rd.networks import FeatureBackbone, RDNet, StudentClassifier

mlflow = pytest.importorskip("mlflow")


@pytest.fixture(autouse=True)
def _bounded_http(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield
    # tests set mlflow's global URIs to load models: leave none behind for the next test
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        os.environ.pop(key, None)


def tiny_student(seed: int) -> StudentClassifier:
    torch.manual_seed(seed)
    body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return StudentClassifier(FeatureBackbone(body, name="tiny"), num_classes=3)


@pytest.fixture(params=["sqlite", "server"])
def tracking_uri(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/mlruns.db"
    return request.getfixturevalue("mlflow_server")["uri"]


def _register(uri, tmp_path, name, seed, accuracy, tag):
    student = tiny_student(seed)
    ckpt = tmp_path / f"model_{tag}.pt"
    torch.save(student.state_dict(), ckpt)
    handler = MLflowModelRegistryHandler(
        tiny_student(99),
        str(ckpt),
        name,
        input_shape=(3, 16, 16),
        tags={"teacher": "t", "student": "tiny"},
        tracking_uri=uri,
        experiment_name="registry_test",
        run_name=f"run_{name}_{tag}",
    )
    version = handler.register({"val_accuracy": accuracy, "val_f1_macro": accuracy / 2})
    return handler, version, student


@pytest.mark.slow
def test_alias_moves_only_on_improvement_and_champion_predicts_like_checkpoint(tracking_uri, tmp_path):
    name = f"tiny_{tmp_path.name}"[:60]
    h1, v1, s1 = _register(tracking_uri, tmp_path, name, 1, 0.6, "a")
    h2, v2, _ = _register(tracking_uri, tmp_path, name, 2, 0.5, "b")  # worse
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    assert (v1, v2) == ("1", "2")
    assert h1.decision.startswith("promoted") and h2.decision.startswith("kept")
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    h3, v3, _ = _register(tracking_uri, tmp_path, name, 3, 0.6, "c")  # equal: not better
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1" and h3.decision.startswith("kept")
    h4, v4, s4 = _register(tracking_uri, tmp_path, name, 4, 0.7, "d")  # better
    champion = client.get_model_version_by_alias(name, "champion")
    assert str(champion.version) == v4 == "4" and h4.decision.startswith("promoted")
    assert champion.tags["val_accuracy"] == repr(0.7) and champion.tags["teacher"] == "t"
    assert champion.tags["key_metric"] == "val_accuracy" and "checkpoint_sha256" in champion.tags

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    loaded = mlflow.pytorch.load_model(f"models:/{name}@champion")
    assert isinstance(loaded, StudentClassifier)
    assert set(loaded.state_dict()) == set(s4.state_dict())
    x = torch.rand(5, 3, 16, 16)  # any batch size, not the example's 1
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), s4.eval()(x), rtol=0, atol=0)
    # the model has a signature and an input example
    info = mlflow.models.get_model_info(f"models:/{name}@champion")
    assert info.signature is not None and list(info.signature.inputs.inputs[0].shape) == [-1, 3, 16, 16]
    assert info.saved_input_example_info is not None


@pytest.mark.slow
def test_lower_is_better_and_missing_key_metric(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    ckpt = tmp_path / "m.pt"
    torch.save(tiny_student(0).state_dict(), ckpt)
    h = MLflowModelRegistryHandler(
        tiny_student(0),
        str(ckpt),
        "lower",
        key_metric="val_loss",
        higher_is_better=False,
        input_shape=(3, 8, 8),
        tracking_uri=uri,
        experiment_name="e",
        run_name="r",
    )
    assert h.register({"val_loss": 1.0}) == "1"
    assert h.register({"val_loss": 2.0}) == "2" and h.decision.startswith("kept")
    assert h.register({"val_loss": 0.5}) == "3" and h.decision.startswith("promoted")
    with pytest.raises(KeyError, match="val_loss"):
        h.register({"val_accuracy": 1.0})


def test_teacher_parts_are_refused():
    student = tiny_student(0)
    net = RDNet(None, student, num_blocks=1, teacher_feature_shape=(8,))
    with pytest.raises(ValueError, match="teacher"):
        assert_student_only(net)
    assert_student_only(net.deployable())


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    h = MLflowModelRegistryHandler(
        tiny_student(0), str(tmp_path / "none.pt"), "x", tracking_uri=f"sqlite:///{tmp_path}/db.db"
    )
    with pytest.raises(FileNotFoundError, match="no best checkpoint"):
        h.register({"val_accuracy": 1.0})


def test_unreachable_server_degrades_to_a_list_of_what_was_not_logged(tmp_path, caplog):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    uri = f"http://127.0.0.1:{port}"
    ckpt = tmp_path / "m.pt"
    torch.save(tiny_student(0).state_dict(), ckpt)
    handler = ResilientMLFlowHandler(
        tracking_uri=uri,
        experiment_name="e",
        run_name="r",
        experiment_param={"a": 1},
        artifacts=[str(ckpt)],
        not_logged_file=str(tmp_path / "not_logged.json"),
    )
    from ignite.engine import Engine

    engine = Engine(lambda e, b: {"loss": 1.0})
    handler.attach(engine)
    registry = MLflowModelRegistryHandler(
        tiny_student(0), str(ckpt), "never", input_shape=(3, 8, 8), tracking_uri=uri, experiment_name="e", run_name="r"
    )
    engine.add_event_handler(
        __import__("ignite").engine.Events.COMPLETED, lambda e: registry.register({"val_accuracy": 1.0})
    )
    handler.output_transform = lambda out: out
    with caplog.at_level(logging.WARNING, logger="monai_rd.mlflow"):
        engine.run([0, 1, 2], max_epochs=2)
        handler.close()
    assert engine.state.iteration == 6  # training went to the end
    assert registry.version is None
    text = caplog.text
    assert "failed" in text and "NOT logged" in text and "never" in text and "m.pt" in text
    import json

    report = json.loads((tmp_path / "not_logged.json").read_text())
    assert report["tracking_uri"] == uri and "Connection" in report["failure"] or "connect" in report["failure"].lower()
    assert any(k.startswith("model: best student") for k in report["not_logged"])
    assert report["not_logged"]["artifacts"]["names"] == ["m.pt"]
    assert MLflowLink.for_uri(uri).failure is None  # reset for the next run


def test_an_engine_that_starts_first_with_no_tracking_params_leaves_them_to_the_trainer(tmp_path):
    """A stage 1's evaluator (``max_epochs`` 1) opens the run before the main trainer (``max_epochs`` 3). MLflow
    refuses to change a logged parameter: with MONAI's default tracking params the trainer's would be refused and
    the link would go offline, losing every later metric; with ``tracking_params=[]`` the run holds the trainer's."""
    from ignite.engine import Engine, Events
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlruns.db"

    def run(first_params):
        name = f"r{first_params}"
        first = ResilientMLFlowHandler(
            tracking_uri=uri,
            experiment_name="e",
            run_name=name,
            iteration_log=False,
            **({} if first_params is None else {"tracking_params": first_params}),
        )
        # as in the bundles: the trainer's handler logs the run's settings (max_epochs among them) as parameters
        trainer_handler = ResilientMLFlowHandler(
            tracking_uri=uri,
            experiment_name="e",
            run_name=name,
            experiment_param={"max_epochs": 3},
            iteration_log=False,
            epoch_logger=lambda e: None,
        )
        evaluator = Engine(lambda e, b: None)
        first.attach(evaluator)
        evaluator.add_event_handler(
            Events.COMPLETED, lambda e: first._log_metrics({"stage1_val_accuracy": 0.5}, step=1)
        )
        evaluator.run([0], max_epochs=1)
        trainer = Engine(lambda e, b: None)
        trainer_handler.attach(trainer)
        trainer.add_event_handler(
            Events.EPOCH_COMPLETED, lambda e: trainer_handler._log_metrics({"val_accuracy": 0.7}, step=e.state.epoch)
        )
        trainer.run([0, 1], max_epochs=3)
        failure = trainer_handler.link.failure
        trainer_handler.close()
        client = MlflowClient(tracking_uri=uri)
        found = client.search_runs(
            [client.get_experiment_by_name("e").experiment_id], filter_string=f"attributes.run_name = '{name}'"
        )[0]
        return failure, found.data.params.get("max_epochs"), sorted(found.data.metrics)

    failure, max_epochs, metrics = run([])
    assert failure is None and max_epochs == "3" and metrics == ["stage1_val_accuracy", "val_accuracy"]
    failure, max_epochs, metrics = run(None)  # MONAI's default: the defect this option exists for
    assert "Changing param values is not allowed" in failure and max_epochs == "1" and "val_accuracy" not in metrics
