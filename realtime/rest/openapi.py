"""The REST contract: the OpenAPI schema says what the API does, failures included (issue 20).

drf-spectacular reads a view's serializers; what it cannot see, this adds,
so that a client generated from `/api/schema/` is right and Schemathesis
(tests/test_openapi_conformance.py) finds nothing to disagree with:

- **Error answers, on every operation where they can happen.** 401 when the
  operation needs a signed-in user; 400 when it reads a body or query
  parameters (a field error, or `detail` for a body that is not JSON), and
  415 for a body it cannot parse; 404 when it has a path parameter (an
  object that is not there or not yours, or an id that is not a number) or
  a cursor (an invalid cursor); 503 everywhere (PostgreSQL or Redis
  unreachable, realtime.faults). Any other error a view answers is named in
  its `extend_schema` with the shared shapes::

      @extend_schema(request=S, responses={200: T, **error_responses(403, 409)})

- **Request strings as DRF validates them.** Every CharField refuses NUL
  characters, and one that may not be blank refuses a value that is only
  whitespace: a `pattern` states both.
- **A body on DELETE** when the view declares one with
  `extend_schema(request=…)` (`{"user_id"}` of the room members routes), and
  a PATCH body that is validated whole. DRF makes a body partial only when a
  view asks for it (its generic update views do), so the schema does too: a
  hand-written partial update declares `request=S(partial=True)`.
- **Exactly one of several fields** (a message's `receiver_id` or
  `room_id`): a serializer that names them in `exactly_one_of` gets a
  `oneOf` stating it.

And two fields for views, so that they do what the schema says:
`StrictCharField` (a number is not a string) and `QuerySerializer` (an
empty query value is a value).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiResponse
from rest_framework import mixins, serializers


class ErrorSerializer(serializers.Serializer):
    """DRF's body for a refused request that is not about a field."""

    detail = serializers.CharField()
    code = serializers.CharField(required=False, help_text="e.g. `token_not_valid`")


class ValidationErrorSerializer(serializers.Serializer):
    """DRF's field errors (SPEC §7); the schema is written by the extension below."""


class ValidationErrorExtension(OpenApiSerializerExtension):
    target_class = ValidationErrorSerializer

    def map_serializer(self, auto_schema, direction) -> dict[str, Any]:
        messages = {"type": "array", "items": {"type": "string"}}
        return {
            "type": "object",
            "description": (
                "Each refused field with its messages (an item of a list field under its "
                "index), `non_field_errors` for the body as a whole, or only `detail` when "
                "the body itself cannot be read (not JSON, too large, too many fields)."
            ),
            "properties": {"detail": {"type": "string"}, "non_field_errors": messages},
            "additionalProperties": {"oneOf": [messages, {"type": "object"}]},
        }


_ERRORS: dict[int, tuple[type[serializers.Serializer], str]] = {
    400: (ValidationErrorSerializer, "the request is not valid: the fields and why"),
    401: (ErrorSerializer, "not signed in, or the token is invalid, expired or revoked"),
    403: (ErrorSerializer, "your role does not allow this"),
    404: (ErrorSerializer, "no such object, or not yours (never a 403: no enumeration)"),
    409: (ErrorSerializer, "the object's state does not allow this now"),
    413: (ErrorSerializer, "the body is over the size limit"),
    415: (ErrorSerializer, "the body is not in a media type the operation reads"),
    429: (ErrorSerializer, "rate limited: retry after the `Retry-After` header's seconds"),
    503: (
        ErrorSerializer,
        "PostgreSQL or Redis unreachable for now: retry after the `Retry-After` header's seconds",
    ),
}


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """The answers for `codes` in the shared error shapes, for `extend_schema(responses=…)`.

    401, 400, 415, 404 and 503 are added by `AutoSchema` where they apply; name
    the others (403, 409, 413, 429), or one of those with a description of
    your own (a view's own entry wins).
    """
    return {code: OpenApiResponse(_ERRORS[code][0], description=_ERRORS[code][1]) for code in codes}


# DRF's CharField: no NUL anywhere (ProhibitNullCharactersValidator); and,
# unless blank is allowed, something besides whitespace (it trims first).
NO_NUL = r"^[^\x00]*$"
NOT_BLANK = r"^[^\x00]*[^\s\x00][^\x00]*$"


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's AutoSchema with the additions of the module docstring."""

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        responses = operation["responses"]
        for code, response in self._implied_errors(operation).items():
            # A view's own entry wins: it may describe the case better.
            responses.setdefault(str(code), self._get_response_for_code(response, str(code)))
        return operation

    def _implied_errors(self, operation: dict[str, Any]) -> dict[int, OpenApiResponse]:
        codes: list[int] = []
        parameters = operation.get("parameters", [])
        if "requestBody" in operation or any(p["in"] == "query" for p in parameters):
            codes.append(400)
        if "requestBody" in operation:
            codes.append(415)
        if any(requirement for requirement in operation.get("security", [{}])):
            codes.append(401)
        if any(p["in"] == "path" for p in parameters) or any(
            p["name"] == "cursor" for p in parameters
        ):
            codes.append(404)
        # Every operation reads the database (the signed-in user, at least):
        # during an outage it answers 503 (realtime.rest.errors).
        codes.append(503)
        return error_responses(*codes)

    # Which way the serializer being mapped goes: only requests are validated.
    _direction: str | None = None

    def _insert_field_validators(self, field, schema) -> None:
        super()._insert_field_validators(field, schema)
        if (
            self._direction == "request"
            and isinstance(field, serializers.CharField)
            and schema.get("type") == "string"
            and not {"pattern", "format", "enum"} & schema.keys()
            and not field.read_only
        ):
            blank_refused = not field.allow_blank and field.trim_whitespace
            schema["pattern"] = NOT_BLANK if blank_refused else NO_NUL
            if not field.allow_blank:
                schema.setdefault("minLength", 1)

    def _map_basic_serializer(self, serializer, direction):
        outer, self._direction = self._direction, direction
        try:
            schema = super()._map_basic_serializer(serializer, direction)
        finally:
            self._direction = outer
        names = getattr(serializer, "exactly_one_of", ())
        if names and direction == "request":
            # Null is the same as absent: each branch wants its field, not null.
            properties = schema["properties"]
            schema["oneOf"] = [
                {
                    "required": [name],
                    "properties": {
                        name: {k: v for k, v in properties[name].items() if k != "nullable"}
                    },
                }
                for name in names
            ]
        return schema

    # Set while asking whether a DELETE declared its body (see below).
    _declared_only = False

    def get_request_serializer(self):
        # Under `extend_schema(request=…)` this is only reached without a
        # declaration; the view's own serializer is not a DELETE's body.
        if self._declared_only:
            return None
        return super().get_request_serializer()

    def _get_request_body(self, direction="request"):
        if self.method != "DELETE":
            return super()._get_request_body(direction)
        self._declared_only = True
        try:
            declared = self.get_request_serializer()
        finally:
            self._declared_only = False
        if declared is None:
            return None
        # drf-spectacular documents bodies of POST, PUT and PATCH only.
        self.method = "POST"
        try:
            return super()._get_request_body(direction)
        finally:
            self.method = "DELETE"

    def _get_request_for_media_type(self, serializer, direction="request"):
        if (
            self.method != "PATCH"
            or getattr(serializer, "partial", False) is True
            or isinstance(self.view, mixins.UpdateModelMixin)  # DRF's partial_update
        ):
            return super()._get_request_for_media_type(serializer, direction)
        # drf-spectacular makes every PATCH body partial; ours are partial
        # only when declared so (see the module docstring).
        self.method = "PUT"
        try:
            return super()._get_request_for_media_type(serializer, direction)
        finally:
            self.method = "PATCH"


class StrictCharField(serializers.CharField):
    """A string field that refuses numbers instead of turning them into text.

    The schema says `string`; DRF's CharField stored `{"title": 0}` as "0".
    The socket refuses such frames too.
    """

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class QuerySerializer(serializers.Serializer):
    """Query parameters, validated as the schema states them.

    DRF reads a QueryDict as an HTML form, where an empty value means an
    absent one: `?status=` and `?project=` listed everything although the
    schema says a status or an integer. Read as plain values, they are the
    field errors the schema promises.
    """

    def __init__(self, *args, data=serializers.empty, **kwargs) -> None:
        if hasattr(data, "dict"):
            data = data.dict()
        super().__init__(*args, data=data, **kwargs)
