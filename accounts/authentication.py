"""REST authentication: simplejwt's, plus the revocation watermark and one 401 body shape."""

from __future__ import annotations

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework_simplejwt import authentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.settings import api_settings

from realtime.auth.revocation import access_token_revoked


class JWTAuthentication(authentication.JWTAuthentication):
    """Every refused token answers 401 `{"detail", "code"}`.

    simplejwt's own body for a bad token lists each token class it tried
    and why; one message is enough, and every refusal then has one shape.
    """

    def authenticate(self, request):
        try:
            return super().authenticate(request)
        except InvalidToken as refused:
            detail = refused.detail
            messages = detail.get("messages") if isinstance(detail, dict) else None
            message = messages[0]["message"] if messages else detail.get("detail", detail)
            raise AuthenticationFailed(str(message), code="token_not_valid") from None

    def get_validated_token(self, raw_token):
        token = super().get_validated_token(raw_token)
        if access_token_revoked(
            user_id=token.get(api_settings.USER_ID_CLAIM), issued_at=token.get("iat")
        ):
            raise AuthenticationFailed("Token is revoked", code="token_not_valid")
        return token


class JWTScheme(SimpleJWTScheme):
    """The OpenAPI security scheme of the class above: simplejwt's bearer JWT."""

    target_class = JWTAuthentication
