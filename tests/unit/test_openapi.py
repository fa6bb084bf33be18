"""The OpenAPI document describes every route the worker serves, and the status list is the model's."""

from streams.api.openapi import STATUSES, openapi_document
from tables.status import OrderStatus


def test_status_enum_matches_the_model():
    assert set(STATUSES) == {v for k, v in vars(OrderStatus).items() if k.isupper()}


def test_every_registered_page_is_documented(tmp_path):
    from streams.app import create_app
    from streams.settings import load_settings

    app = create_app(load_settings(data_dir=tmp_path))
    assert set(app.web.views) == set(openapi_document()["paths"])
