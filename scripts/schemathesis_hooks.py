"""Hooks for scripts/schemathesis.sh.

An `Idempotency-Key` reused with another request is `400 invalid_request` by contract (docs/idempotency.md):
a key belongs to one request. Schemathesis draws header values from a small space and reuses
them across different bodies, which `positive_data_acceptance` would report as a schema-valid
request refused. Each valid key is therefore made unique (its generated text is kept as a
prefix); invalid keys, which negative tests aim at the header, are left as generated. Replays
of one key are tested in crates/otpgate-server/tests/idempotency.rs.
"""

import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"^[\x21-\x7E]([\x20-\x7E]*[\x21-\x7E])?$")


@schemathesis.hook
def map_headers(context, headers):
    if not headers:
        return headers
    for name in list(headers):
        value = headers[name]
        if name.lower() == "idempotency-key" and isinstance(value, str) and VALID_KEY.match(value) and len(value) <= 255:
            headers[name] = f"{value[:200]}.{uuid.uuid4().hex}"
    return headers
