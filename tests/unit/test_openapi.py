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


def test_every_operation_says_who_may_call_it():
    """Bearer tokens by default; the open paths say so; case actions need an operator (403)."""
    doc = openapi_document()
    assert doc["security"] == [{"bearer": []}]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    open_paths, needs = set(), {}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if operation.get("security") == []:
                open_paths.add(path)
                assert "401" not in operation["responses"]
            else:
                needs[(method, path)] = operation["x-o2c-role"]
                assert "401" in operation["responses"]
                assert ("403" in operation["responses"]) == (operation["x-o2c-role"] != "viewer")
    assert open_paths == {"/health", "/ready", "/openapi.json", "/", "/console/{name}"}  # the console asks itself
    assert {k for k, role in needs.items() if role != "viewer"} == {("post", "/cases/{case_id}/{verb}")}
    assert needs[("post", "/cases/{case_id}/{verb}")] == "operator"
    assert doc["paths"]["/metrics"]["get"]["security"] == [{}, {"bearer": []}]
