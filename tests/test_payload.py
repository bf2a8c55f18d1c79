"""Tests for capture/payload.py: summaries are bounded, redacted, and run no user code."""

from __future__ import annotations

import datetime
import decimal
import enum
import http
import io
import json
import math
import uuid
from collections import OrderedDict
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.handlers.asgi import ASGIRequest
from django.core.signals import request_started
from django.db import connection, connections
from django.db.backends.signals import connection_created
from django.db.models import Model
from django.db.models.signals import m2m_changed, post_save, pre_init
from django.http import HttpRequest
from django.template import Context, Engine, RequestContext
from django.test import signals as test_signals
from django.test.signals import setting_changed, template_rendered
from django.utils.functional import SimpleLazyObject
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy

from signal_dashboard.capture import payload
from signal_dashboard.capture.payload import Limits, summarize, summarize_kwargs
from signal_dashboard.conf import DEFAULTS

SECRET = "s3cr3t-value-that-must-not-leak"
COOKIE = "cookie-value-that-must-not-leak"
MASK = DEFAULTS["MASK"]


@pytest.fixture
def limits() -> Limits:
    return Limits.from_config({**DEFAULTS, "SENSITIVE_KEYS": ("ssn", "Pin_Code")})


def dumped(summary: Any) -> str:
    """The summary as the broadcaster will send it; fails on anything that is not strict JSON."""
    return json.dumps(summary, allow_nan=False)


class Hostile:
    """Fails the test if anything but its type is looked at."""

    def __getattribute__(self, name: str) -> Any:
        raise AssertionError(f"attribute {name!r} read")

    def __repr__(self) -> str:
        raise AssertionError("repr() called")

    def __str__(self) -> str:
        raise AssertionError("str() called")

    def __iter__(self) -> Any:
        raise AssertionError("iterated")

    def __len__(self) -> int:
        raise AssertionError("len() called")

    def __eq__(self, other: object) -> bool:
        raise AssertionError("compared")

    __hash__ = object.__hash__


class HostileDict(dict):  # type: ignore[type-arg]
    """A dict subclass may iterate however it likes, so it is not walked."""

    def __iter__(self) -> Any:
        raise AssertionError("iterated")

    def items(self) -> Any:
        raise AssertionError("items() called")

    def __repr__(self) -> str:
        raise AssertionError("repr() called")


HOSTILE_NAME = f"<{Hostile.__module__}.Hostile>"


# Scalars, strings and containers


def test_primitives_are_returned_as_they_are(limits: Limits) -> None:
    for value in (None, True, False, 0, -7, 2**62, 1.5, "short"):
        assert summarize(value, limits) is value


def test_numbers_that_are_not_json_become_text(limits: Limits) -> None:
    summary = summarize([math.nan, math.inf, -math.inf, 10**5000, 1e305], limits)

    assert summary == ["nan", "inf", "-inf", f"<int: {(10**5000).bit_length()} bits>", 1e305]
    dumped(summary)


def test_long_strings_are_truncated(limits: Limits) -> None:
    assert summarize("a" * 250, limits) == "a" * 200 + "…(+50 chars)"
    assert summarize("a" * 200, limits) == "a" * 200


def test_str_subclass_is_copied_to_a_plain_truncated_str(limits: Limits) -> None:
    summary = summarize(mark_safe("<b>" + "x" * 300), limits)

    assert type(summary) is str
    assert summary == "<b>" + "x" * 197 + "…(+103 chars)"


def test_bytes_show_only_their_length(limits: Limits) -> None:
    assert summarize(SECRET.encode(), limits) == f"<bytes: {len(SECRET)}>"
    assert summarize(bytearray(b"abc"), limits) == "<bytearray: 3>"


def test_lists_tuples_and_sets_are_bounded(limits: Limits) -> None:
    assert summarize(list(range(25)), limits) == [*range(20), "…(+5 items)"]
    assert summarize(tuple(range(3)), limits) == [0, 1, 2]
    assert sorted(summarize(frozenset({1, 2, 3}), limits)) == [1, 2, 3]
    assert len(summarize(set(range(100)), limits)) == 21


def test_dicts_are_bounded(limits: Limits) -> None:
    summary = summarize({f"k{i}": i for i in range(25)}, limits)

    assert len(summary) == 21
    assert summary["k19"] == 19
    assert "k20" not in summary
    assert summary["…"] == "+5 items"


def test_nesting_is_cut_at_max_depth(limits: Limits) -> None:
    assert summarize({"a": {"b": {"c": {"d": 1}}}}, limits) == {
        "a": {"b": {"c": "<dict: 1 items>"}}
    }
    assert summarize([[[[1, 2]]]], limits) == [[["<list: 2 items>"]]]


def test_non_string_keys_become_json_text(limits: Limits) -> None:
    summary = summarize({1: "a", None: "b", (1, "x"): "c", b"k": "d"}, limits)

    assert summary == {"1": "a", "null": "b", '[1, "x"]': "c", "<bytes: 1>": "d"}
    dumped(summary)


def test_ordered_dict_is_walked(limits: Limits) -> None:
    assert summarize(OrderedDict(a=1, password=SECRET), limits) == {"a": 1, "password": MASK}


def test_dict_subclass_is_not_walked(limits: Limits) -> None:
    summary = summarize(HostileDict(password=SECRET), limits)

    assert summary == f"<{HostileDict.__module__}.HostileDict>"


def test_unknown_objects_are_shown_by_type_name_only(limits: Limits) -> None:
    assert summarize(Hostile(), limits) == HOSTILE_NAME
    assert summarize(object(), limits) == "<object>"
    assert summarize(io.StringIO(SECRET), limits) == "<_io.StringIO>"
    summary = summarize_kwargs(post_save, {"thing": Hostile(), "things": [Hostile()]}, limits)
    assert summary == {"thing": HOSTILE_NAME, "things": [HOSTILE_NAME]}


def test_safe_stdlib_values_are_rendered(limits: Limits) -> None:
    moment = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC)
    value = uuid.UUID("12345678-1234-5678-1234-567812345678")
    summary = summarize(
        [
            moment,
            moment.date(),
            moment.time(),
            datetime.timedelta(seconds=90),
            value,
            decimal.Decimal("1.50"),
            decimal.Decimal("1" * 300),
        ],
        limits,
    )

    assert summary == [
        "2024-05-01T12:30:00+00:00",
        "2024-05-01",
        "12:30:00",
        "0:01:30",
        str(value),
        "1.50",
        "1" * 200 + "…(+100 chars)",
    ]


def test_classes_and_functions_are_named(limits: Limits) -> None:
    summary = summarize(
        [User, ContentType, Model, int, ValueError, json.dumps, len, [].append], limits
    )

    assert summary == [
        "auth.User",
        "contenttypes.ContentType",
        "django.db.models.base.Model",
        "int",
        "ValueError",
        "json.dumps",
        "len",
        "list.append",
    ]
    assert (
        summarize(limits.is_sensitive, limits)
        == "signal_dashboard.capture.payload.Limits.is_sensitive"
    )


def test_exceptions_are_named_without_their_message(limits: Limits) -> None:
    summary = summarize([ValueError(SECRET), ValidationError(SECRET)], limits)

    assert summary == [
        {"exception": "ValueError"},
        {"exception": "django.core.exceptions.ValidationError"},
    ]


def test_enum_members_are_named(limits: Limits) -> None:
    class Colour(enum.Enum):
        RED = SECRET

    assert summarize(http.HTTPStatus.OK, limits) == "http.HTTPStatus.OK"
    assert summarize(Colour.RED, limits) == f"{Colour.__module__}.{Colour.__qualname__}.RED"


def test_lazy_values_are_not_evaluated(limits: Limits) -> None:
    def evaluate() -> object:
        raise AssertionError("evaluated")

    assert summarize(gettext_lazy("Hello"), limits) == "<lazy str>"
    assert summarize(SimpleLazyObject(evaluate), limits) == "<lazy object>"


def test_evaluated_lazy_object_shows_what_it_wraps(limits: Limits) -> None:
    lazy_user = SimpleLazyObject(lambda: User(pk=4, username="alice"))
    lazy_user.username  # noqa: B018  (evaluates it, as the auth middleware's first use would)

    assert summarize(lazy_user, limits) == {"model": "auth.User", "pk": 4}


# Models, querysets, template contexts: never a query


@pytest.mark.django_db
def test_deferred_instance_is_summarized_without_a_query(
    limits: Limits, django_assert_num_queries: Any
) -> None:
    created = User.objects.create(username="alice", email="alice@example.com", password=SECRET)
    user = User.objects.only("username").get(pk=created.pk)

    with django_assert_num_queries(0):
        summary = summarize_kwargs(post_save, {"instance": user, "created": False}, limits)

    assert summary == {"instance": {"model": "auth.User", "pk": created.pk}, "created": False}
    assert {"email", "password"} <= user.get_deferred_fields()
    assert SECRET not in dumped(summary)


def test_unsaved_instance_has_no_pk(limits: Limits) -> None:
    assert summarize(Group(name="staff"), limits) == {"model": "auth.Group", "pk": None}


@pytest.mark.django_db
def test_querysets_and_managers_are_not_evaluated(
    limits: Limits, django_assert_num_queries: Any
) -> None:
    user = User.objects.create(username="alice")
    users = User.objects.all()
    groups = Group.objects.filter(name__startswith="staff")
    raw = Permission.objects.raw("SELECT * FROM auth_permission")

    with django_assert_num_queries(0):
        summary = summarize_kwargs(
            m2m_changed,
            {
                "users": users,
                "groups": groups,
                "raw": raw,
                "manager": User.objects,
                "related": user.groups,
                "model": Group,
                "pk_set": {1, 2},
            },
            limits,
        )

    assert summary == {
        "users": {"queryset": "auth.User"},
        "groups": {"queryset": "auth.Group"},
        "raw": {"queryset": "auth.Permission"},
        "manager": {"manager": "auth.User"},
        "related": {"manager": "auth.Group"},
        "model": "auth.Group",
        "pk_set": [1, 2],
    }
    assert users._result_cache is None
    assert groups._result_cache is None
    dumped(summary)


@pytest.mark.django_db
def test_template_context_shows_variable_names_only(
    limits: Limits, django_assert_num_queries: Any
) -> None:
    User.objects.create(username="alice")
    users = User.objects.all()
    template = Engine().from_string("{{ users }}")
    template.name = "people.html"
    context = Context({"users": users, "title": SECRET})
    context.push(page=2)

    with django_assert_num_queries(0):
        summary = summarize_kwargs(
            template_rendered, {"template": template, "context": context}, limits
        )

    assert summary == {
        "template": {"template": "people.html"},
        "context": {"variables": ["page", "title", "users"]},
    }
    assert users._result_cache is None
    assert SECRET not in dumped(summary)


def test_request_context_names_are_bounded(limits: Limits, rf: Any) -> None:
    context = RequestContext(rf.get("/"), {f"v{i:02}": SECRET for i in range(25)})

    assert summarize(context, limits) == {
        "variables": [f"v{i:02}" for i in range(20)] + ["…(+5 items)"]
    }


# Redaction


def test_sensitive_keys_are_masked_at_every_depth(limits: Limits) -> None:
    deep = Limits(max_depth=10, sensitive=limits.sensitive)
    named = {
        "password": SECRET,
        "api_key": {"any": "type"},
        "Authorization": None,
        "data": {
            "token": SECRET,
            "items": [{"client_secret": SECRET}, {"profile": {"customer_ssn": SECRET}}],
            "a": {"b": {"c": {"d": {"PIN_CODE": SECRET, "shown": "yes"}}}},
        },
    }

    summary = summarize_kwargs(post_save, named, deep)

    assert SECRET not in dumped(summary)
    assert summary["password"] == summary["api_key"] == summary["Authorization"] == MASK
    assert summary["data"]["token"] == MASK
    assert summary["data"]["items"] == [
        {"client_secret": MASK},
        {"profile": {"customer_ssn": MASK}},
    ]
    assert summary["data"]["a"]["b"]["c"]["d"] == {"PIN_CODE": MASK, "shown": "yes"}


@pytest.mark.parametrize(
    "name",
    [
        "cookies",
        "COOKIES",
        "Set-Cookie",
        "sessionid",
        "session",
        "session_key",
        "SESSION_COOKIE_VALUE",
        "csrftoken",
        "csrf",
        "X-CSRF",
        "csrfmiddlewaretoken",
    ],
)
def test_session_cookie_and_csrf_keys_are_masked_by_default(name: str) -> None:
    limits = Limits.from_config(DEFAULTS)
    deep = Limits(max_depth=10)

    top = summarize_kwargs(post_save, {name: SECRET, "shown": "yes"}, limits)
    nested = summarize_kwargs(
        post_save,
        {"data": {"headers": [{"a": {"b": {name: {"any": SECRET}, "shown": "yes"}}}]}},
        deep,
    )

    assert top == {name: MASK, "shown": "yes"}
    assert nested == {"data": {"headers": [{"a": {"b": {name: MASK, "shown": "yes"}}}]}}


def test_cookies_and_sessions_are_masked_where_they_are_passed(limits: Limits, rf: Any) -> None:
    request = rf.get("/", HTTP_COOKIE=f"sessionid={COOKIE}")
    named = {
        "cookies": {"sessionid": COOKIE},
        "response_cookies": {"csrftoken": COOKIE},
        "request": request,
        "environ": request.environ,
        "extra": {"headers": {"Cookie": f"sessionid={COOKIE}", "Accept": "text/html"}},
        "state": ({"session": {"_auth_user_id": "1"}}, [{"session_key": COOKIE}]),
    }

    summary = summarize_kwargs(post_save, named, limits)

    assert COOKIE not in dumped(summary)
    assert summary["cookies"] == summary["response_cookies"] == MASK
    assert summary["extra"] == {"headers": {"Cookie": MASK, "Accept": "text/html"}}
    assert summary["state"] == [{"session": MASK}, [{"session_key": MASK}]]


def test_sensitive_keys_setting_adds_to_the_default_masks() -> None:
    limits = Limits.from_config({**DEFAULTS, "SENSITIVE_KEYS": ("iban",)})
    named = {"iban": SECRET, "cookies": {"sessionid": SECRET}, "data": {"csrf": SECRET}}

    summary = summarize_kwargs(post_save, named, limits)

    assert summary == {"iban": MASK, "cookies": MASK, "data": {"csrf": MASK}}
    assert summarize({"sessionid": SECRET, "iban": SECRET}, limits) == {
        "sessionid": MASK,
        "iban": MASK,
    }


def test_a_long_key_is_masked_even_when_truncated(limits: Limits) -> None:
    summary = summarize({"x" * 300 + "_password": SECRET}, limits)

    assert list(summary.values()) == [MASK]


def test_pre_init_kwargs_mask_the_password(limits: Limits) -> None:
    named = {"args": (), "kwargs": {"username": "alice", "password": SECRET}}

    summary = summarize_kwargs(pre_init, named, limits)

    assert summary == {"args": [], "kwargs": {"username": "alice", "password": MASK}}


def test_extra_sensitive_keys_come_from_config() -> None:
    assert not Limits.from_config(DEFAULTS).is_sensitive("ssn")
    assert Limits.from_config({**DEFAULTS, "SENSITIVE_KEYS": "ssn"}).is_sensitive("Customer_SSN")
    # An empty name must not turn into a pattern that masks everything.
    assert not Limits.from_config({**DEFAULTS, "SENSITIVE_KEYS": ("", "ssn")}).is_sensitive("id")
    assert Limits().is_sensitive("HTTP_COOKIE")


def test_setting_changed_value_is_always_masked(limits: Limits) -> None:
    named = {"setting": "DATABASES", "value": {"default": {"NAME": SECRET}}, "enter": True}

    summary = summarize_kwargs(setting_changed, named, limits)

    assert test_signals.setting_changed is setting_changed
    assert summary == {"setting": "DATABASES", "value": MASK, "enter": True}


def test_value_kwarg_of_other_signals_is_shown(limits: Limits) -> None:
    assert summarize_kwargs(post_save, {"value": 3}, limits) == {"value": 3}


def test_connection_shows_alias_and_vendor_only(
    limits: Limits, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(connection.settings_dict, "PASSWORD", SECRET)

    wrapper = connections["default"]

    summary = summarize_kwargs(connection_created, {"connection": wrapper}, limits)
    proxied = summarize(connection, limits)  # django.db.connection stands for the wrapper

    assert summary == {"connection": {"alias": "default", "vendor": wrapper.vendor}}
    assert proxied == summary["connection"]
    assert SECRET not in dumped(summary)


# Request data


def test_environ_is_reduced_to_safe_keys(limits: Limits, rf: Any) -> None:
    environ = rf.get(f"/pizzas/?token={SECRET}", HTTP_COOKIE=f"sessionid={COOKIE}").environ

    by_name = summarize_kwargs(request_started, {"environ": environ}, limits)
    by_content = summarize({"request": environ}, limits)

    assert by_name == {
        "environ": {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/pizzas/",
            "SERVER_NAME": "testserver",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http",
        }
    }
    assert by_content == {"request": by_name["environ"]}
    for text in (dumped(by_name), dumped(by_content)):
        assert SECRET not in text
        assert COOKIE not in text


def test_environ_named_kwarg_is_reduced_without_wsgi_keys(limits: Limits) -> None:
    environ = {"REQUEST_METHOD": "POST", "HTTP_COOKIE": COOKIE, "QUERY_STRING": SECRET}

    summary = summarize_kwargs(request_started, {"environ": environ}, limits)

    assert summary == {"environ": {"REQUEST_METHOD": "POST"}}


@pytest.mark.parametrize("kind", ["http", "websocket"])
def test_scope_is_reduced_to_safe_keys(limits: Limits, kind: str) -> None:
    scope = {
        "type": kind,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": "/pizzas/",
        "query_string": f"token={SECRET}".encode(),
        "headers": [(b"cookie", f"sessionid={COOKIE}".encode())],
        "cookies": {"sessionid": COOKIE},
        "client": ("10.0.0.1", 5000),
    }
    reduced = {
        "type": kind,
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": "/pizzas/",
    }

    by_name = summarize_kwargs(request_started, {"scope": scope}, limits)
    by_content = summarize([scope], limits)

    assert by_name == {"scope": reduced}
    assert by_content == [reduced]
    for text in (dumped(by_name), dumped(by_content)):
        assert SECRET not in text
        assert COOKIE not in text


def test_sensitive_keys_also_mask_the_safe_request_keys(rf: Any) -> None:
    limits = Limits.from_config({**DEFAULTS, "SENSITIVE_KEYS": ("path",)})
    scope = {"type": "http", "asgi": {"version": "3.0"}, "method": "GET", "path": "/a/"}

    summary = summarize_kwargs(
        request_started, {"environ": rf.get("/a/").environ, "scope": scope}, limits
    )

    assert summary["environ"]["PATH_INFO"] == MASK
    assert summary["scope"] == {"type": "http", "method": "GET", "path": MASK}


def test_request_shows_method_and_path_only(limits: Limits, rf: Any, async_rf: Any) -> None:
    wsgi_request = rf.post(
        f"/pizzas/?token={SECRET}", {"password": SECRET}, HTTP_COOKIE=f"sessionid={COOKIE}"
    )
    asgi_request = ASGIRequest(
        {
            "type": "http",
            "method": "GET",
            "path": "/pizzas/",
            "query_string": f"token={SECRET}".encode(),
            "headers": [(b"cookie", f"sessionid={COOKIE}".encode())],
        },
        io.BytesIO(),
    )

    summary = summarize_kwargs(
        request_started,
        {"wsgi": wsgi_request, "asgi": asgi_request, "async_rf": async_rf.get("/x/")},
        limits,
    )

    assert summary == {
        "wsgi": {"method": "POST", "path": "/pizzas/"},
        "asgi": {"method": "GET", "path": "/pizzas/"},
        "async_rf": {"method": "GET", "path": "/x/"},
    }
    assert SECRET not in dumped(summary)
    assert COOKIE not in dumped(summary)


# Failures


class _RaisingDescriptor:
    def __get__(self, instance: object, owner: type) -> Any:
        raise RuntimeError("broken _meta")


def test_failure_is_reported_and_counted(limits: Limits) -> None:
    user = User(pk=1, username="alice")
    before = payload.failures

    with mock.patch.object(User, "_meta", _RaisingDescriptor()):
        summary = summarize_kwargs(post_save, {"instance": user, "created": True}, limits)

    assert summary == {"instance": "<unrepresentable: User>", "created": True}
    assert payload.failures == before + 1


def test_failure_inside_a_container_marks_that_kwarg(limits: Limits) -> None:
    half_built = HttpRequest.__new__(HttpRequest)  # no __init__: no method, no path
    before = payload.failures

    summary = summarize_kwargs(post_save, {"requests": [half_built], "n": 1}, limits)

    assert summary == {"requests": "<unrepresentable: list>", "n": 1}
    assert payload.failures == before + 1
