"""A client in another language: Python, with stubs protoc generated from the published
sources (proto/, with proto/protovalidate.binpb), Debian's grpcio and confluent-kafka (librdkafka).

    client.py <stubs dir> <gRPC address> <token> <Kafka brokers> <configuration events topic>

Prints one JSON object: what each call answered and the event read back from the topic.
"""
import json
import sys
import uuid

sys.path.insert(0, sys.argv[1])
import grpc  # noqa: E402
from confluent_kafka import Consumer  # noqa: E402
from google.protobuf import symbol_database  # noqa: E402
from google.rpc import error_details_pb2, status_pb2  # noqa: E402
from rdm.configuration.v1 import configuration_pb2 as model  # noqa: E402
from rdm.configuration.v1 import configuration_service_pb2 as api  # noqa: E402
from rdm.configuration.v1 import configuration_service_pb2_grpc as api_grpc  # noqa: E402
from rdm.configuration.v1 import events_pb2  # noqa: E402,F401  (registers the event types)

stubs, address, token, brokers, topic = sys.argv[1:6]
out = {}
service = api_grpc.ConfigurationServiceStub(grpc.insecure_channel(address))
auth = [("authorization", f"Bearer {token}")]

register = api.RegisterConfigurationItemRequest(
    request_id=str(uuid.uuid4()), name="from-python", type=model.CI_TYPE_SERVICE, owner="outside"
)
item = service.RegisterConfigurationItem(register, metadata=auth).item
out["ciId"] = item.ci_id
out["retriedCiId"] = service.RegisterConfigurationItem(register, metadata=auth).item.ci_id
read = service.GetConfigurationItem(api.GetConfigurationItemRequest(ci_id=item.ci_id), metadata=auth).item
out["readBack"] = {"name": read.name, "type": model.CiType.Name(read.type), "owner": read.owner}

try:
    service.RegisterConfigurationItem(
        api.RegisterConfigurationItemRequest(request_id="not-a-uuid", name="", type=model.CI_TYPE_SERVICE),
        metadata=auth,
    )
except grpc.RpcError as refusal:
    violations = []
    for key, value in refusal.trailing_metadata():
        if key == "grpc-status-details-bin":
            for detail in status_pb2.Status.FromString(value).details:
                bad_request = error_details_pb2.BadRequest()
                if detail.Unpack(bad_request):
                    violations += [v.field for v in bad_request.field_violations]
    out["invalid"] = {"code": refusal.code().name, "fields": sorted(violations)}

try:
    service.GetConfigurationItem(api.GetConfigurationItemRequest(ci_id=item.ci_id))
except grpc.RpcError as refusal:
    out["withoutToken"] = refusal.code().name

# The event, as any subscriber reads it: the value is the message its ce_type header names.
consumer = Consumer(
    {"bootstrap.servers": brokers, "group.id": f"python-{uuid.uuid4()}", "auto.offset.reset": "earliest"}
)
consumer.subscribe([topic])
for _ in range(600):
    message = consumer.poll(0.1)
    if message is None or message.error():
        continue
    headers = {k: v.decode() for k, v in (message.headers() or [])}
    if headers.get("ce_subject") != item.ci_id:
        continue
    event = symbol_database.Default().GetSymbol(headers["ce_type"]).FromString(message.value())
    out["event"] = {"type": headers["ce_type"], "key": message.key().decode(), "name": event.name}
    break
consumer.close()
print(json.dumps(out))
