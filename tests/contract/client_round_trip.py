"""Create, list, update and delete an instance through the client that
openapi-python-client generated from docs/openapi.json (tests/contract).

The instance points at 127.0.0.1 on a port nothing listens on; no controller
runs, so nothing dials it either way.
"""

import os
import sys

from dbfleet_client import AuthenticatedClient
from dbfleet_client.api.instances import (
    instances_create,
    instances_detail,
    instances_list,
    instances_soft_delete,
    instances_update,
)
from dbfleet_client.models import DbTypeInput, InstanceInput

client = AuthenticatedClient(
    base_url=os.environ["DBFLEET_URL"],
    token=os.environ["DBFLEET_TOKEN"],
    headers={"X-CSRFToken": os.environ["DBFLEET_CSRF"]},
    raise_on_unexpected_status=True,
)
port = int(os.environ["DBFLEET_PORT"])


def check(condition, what):
    if not condition:
        sys.exit(f"round trip: {what}")


body = InstanceInput(
    name="client-round-trip",
    db_type=DbTypeInput.POSTGRESQL,
    host="127.0.0.1",
    port=port,
    description="made by the generated client",
)
created = instances_create.sync_detailed(client=client, body=body)
check(created.status_code == 201, f"create answered {created.status_code}: {created.content!r}")
instance = created.parsed.data
check(instance.name == "client-round-trip" and instance.port == port, f"created {instance!r}")
check(created.parsed.success and created.parsed.code == "OK", f"envelope {created.parsed!r}")

listed = instances_list.sync(client=client, search="client-round", limit="100")
check([i.id for i in listed.data.items] == [instance.id], f"list gave {listed.data.items!r}")
check(listed.data.total == 1, f"list total {listed.data.total}")

body.description = "updated by the generated client"
updated = instances_update.sync(client=client, id=instance.id, body=body)
check(updated.data.description == "updated by the generated client", f"update gave {updated.data!r}")
fetched = instances_detail.sync(client=client, id=instance.id)
check(fetched.data.description == "updated by the generated client", f"detail gave {fetched.data!r}")

deleted = instances_soft_delete.sync(client=client, id=instance.id)
check(deleted.data.id == instance.id and deleted.data.retained_until, f"delete gave {deleted.data!r}")
gone = instances_detail.sync_detailed(client=client, id=instance.id)
check(gone.status_code == 404, f"detail after delete answered {gone.status_code}")
check(gone.parsed.code == "NOT_FOUND", f"404 envelope {gone.parsed!r}")
listed = instances_list.sync(client=client, search="client-round")
check(listed.data.total == 0, f"list after delete gave {listed.data.items!r}")

print("round trip: ok")
