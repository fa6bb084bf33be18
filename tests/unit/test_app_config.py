"""The Faust app takes its configuration from Settings only, not from Faust's own env variables."""

from streams.app import create_app
from streams.settings import load_settings


def test_unprefixed_faust_variables_do_not_override_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("WEB_PORT", "tcp://10.0.0.1:80")  # what Kubernetes sets for a Service "web"
    monkeypatch.setenv("PROCESSING_GUARANTEE", "at_least_once")
    app = create_app(load_settings(data_dir=tmp_path, web_port=7123, session_timeout=8))
    assert app.conf.web_port == 7123
    assert app.conf.processing_guarantee.value == "exactly_once"
    assert app.conf.broker_session_timeout == 8
