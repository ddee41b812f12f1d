"""schemathesis hooks of the contract tests (tests/contract/main.rs).

Some request bodies name other objects: a credential id, tag codes,
instance and tag ids, and, on an update, the object's own name (which cannot
change). Such a body is well formed whatever it names, but the façade
answers 400 when the named object does not exist (or the name differs), and
no schema can say which objects exist. So before each request, every
reference the fuzzer drew well formed is pointed at an object that exists
right now (looked up through the façade, made through it when the fuzzer
has deleted them all); malformed ones are left alone, so a case meant to be
invalid stays invalid. schemathesis re-validates a case edited here, so its
checks judge what is actually sent.

And a guard: a request to an operation that would make the façade dial a
database (DBFLEET_DIALLING, which the run also excludes) is never sent.
"""

import os
import re

import requests
import schemathesis

BASE = os.environ["DBFLEET_URL"]
HEADERS = {
    "Authorization": f"Bearer {os.environ['DBFLEET_TOKEN']}",
    "X-CSRFToken": os.environ["DBFLEET_CSRF"],
}
CREDENTIAL_ID = int(os.environ["DBFLEET_SEED_CREDENTIAL_ID"])
CLOSED_PORT = int(os.environ["DBFLEET_CLOSED_PORT"])
DIALLING = re.compile(os.environ["DBFLEET_DIALLING"])

MAX_ID = 2**63 - 1
TAG_CODE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")

# (method, path) -> the body's reference fields: "credential" (one id),
# "instances"/"tags" (lists of ids), "tag_names" (a list of tag codes).
REFERENCES = {
    ("POST", "/api/v1/instances"): {"credential_id": "credential", "tag_names": "tag_names"},
    ("PUT", "/api/v1/instances/{id}"): {"credential_id": "credential", "tag_names": "tag_names"},
    ("POST", "/api/v1/instances/actions/validate-connection-params"): {"credential_id": "credential"},
    ("POST", "/api/v1/tags/bulk/actions/assign"): {"instance_ids": "instances", "tag_ids": "tags"},
    ("POST", "/api/v1/tags/bulk/actions/remove"): {"instance_ids": "instances", "tag_ids": "tags"},
    ("POST", "/api/v1/tags/bulk/actions/remove-all"): {"instance_ids": "instances"},
    ("POST", "/api/v1/tags/bulk/instance-tags"): {"instance_ids": "instances"},
}

# Updates: the body's `name` must be the object's own.
UPDATES = {
    ("PUT", "/api/v1/instances/{id}"): "/api/v1/instances/{}",
    ("PUT", "/api/v1/tags/{id}"): "/api/v1/tags/{}",
}


def _call(method, path, **kwargs):
    response = requests.request(method, BASE + path, headers=HEADERS, timeout=30, **kwargs)
    return response.status_code, response.json()


def _live_instance_id():
    status, answer = _call("GET", "/api/v1/tags/bulk/instances")
    assert status == 200, answer
    if answer["data"]:
        return answer["data"][0]["id"]
    body = {"name": "hook-instance", "db_type": "postgresql", "host": "127.0.0.1", "port": CLOSED_PORT}
    status, answer = _call("POST", "/api/v1/instances", json=body)
    if status == 409:  # its name is taken by one in the recycle bin
        status, answer = _call("GET", "/api/v1/instances?include_deleted=true&search=hook-instance")
        instance_id = answer["data"]["items"][0]["id"]
        status, answer = _call("POST", f"/api/v1/instances/{instance_id}/actions/restore")
    assert status in (200, 201), answer
    return answer["data"]["id"]


def _live_tag():
    status, answer = _call("GET", "/api/v1/tags?limit=1")
    assert status == 200, answer
    if answer["data"]["items"]:
        tag = answer["data"]["items"][0]
        return tag["id"], tag["name"]
    status, answer = _call("POST", "/api/v1/tags", json={"name": "hook-tag", "display_name": "Hook", "category": "test"})
    assert status == 201, answer
    return answer["data"]["id"], answer["data"]["name"]


def _well_formed_id(value):
    """A JSON number that is a positive integer (`5.0` counts, as JSON
    Schema says) fitting an int64."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, float) and not value.is_integer():
        return False
    return 1 <= value <= MAX_ID


def _path_id(value):
    """A path parameter as the positive integer it names, if it names one."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    return value if _well_formed_id(value) else None


def _existing(kind, value):
    if kind == "credential":
        return CREDENTIAL_ID if _well_formed_id(value) else value
    if not isinstance(value, list):
        return value
    if kind == "tag_names":
        if not any(isinstance(v, str) and TAG_CODE.fullmatch(v.strip()) for v in value):
            return value
        name = _live_tag()[1]
        return [name if isinstance(v, str) and TAG_CODE.fullmatch(v.strip()) else v for v in value]
    if not any(_well_formed_id(v) for v in value):
        return value
    live = _live_instance_id() if kind == "instances" else _live_tag()[0]
    return [live if _well_formed_id(v) else v for v in value]


@schemathesis.hook
def before_call(context, case, kwargs):
    """Runs before every request of every phase."""
    if DIALLING.match(case.path):
        raise RuntimeError(f"refusing to call {case.method} {case.path}: it would dial a database")
    key = (case.method.upper(), case.path)
    if not isinstance(case.body, dict):
        return
    for field, kind in REFERENCES.get(key, {}).items():
        if field in case.body:
            case.body[field] = _existing(kind, case.body[field])
    update = UPDATES.get(key)
    object_id = _path_id((case.path_parameters or {}).get("id"))
    if update and isinstance(case.body.get("name"), str) and object_id is not None:
        status, answer = _call("GET", update.format(int(object_id)))
        if status == 200:
            case.body["name"] = answer["data"]["name"]
