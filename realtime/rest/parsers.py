"""The REST JSON parser: orjson, the same parser the socket uses (SPEC §5, §7).

The stdlib parser behind DRF's JSONParser recurses once per nesting level
(a 4 KB body of 2,000 brackets raised RecursionError, a 500), turns 1e400
into `inf` (OverflowError in an integer lookup) and accepts lone surrogates
that no UTF-8 response or database can hold (UnicodeEncodeError). orjson
refuses all three as invalid JSON — nesting deeper than 1,024, numbers that
overflow a double, unpaired surrogates — so REST and socket answer the same
text the same way, and nothing downstream sees such values.
"""

from __future__ import annotations

import orjson
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils.mediatypes import _MediaType


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        # A subclass of DRF's parser: DRF then reads the body through
        # request.body, which enforces DATA_UPLOAD_MAX_MEMORY_SIZE.
        raw = stream.read()
        charset = _MediaType(media_type or "").params.get("charset", "utf-8").lower()
        try:
            if charset not in ("utf-8", "utf8"):
                raw = raw.decode(charset)
            return orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise ParseError(f"JSON parse error - {error}") from None
        except (LookupError, UnicodeDecodeError):
            raise ParseError(f"JSON parse error - cannot decode the body as {charset}") from None
