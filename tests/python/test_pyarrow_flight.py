"""Raw Flight with pyarrow.flight: actions, sessions and negative cases."""

import pyarrow as pa
import pyarrow.flight as flight
import pytest


@pytest.fixture()
def client(server):
    c = flight.connect(server.uri)
    yield c
    c.close()


def test_list_actions_describes_every_action(client):
    actions = {a.type: a.description for a in client.list_actions()}
    for name in ["CreatePreparedStatement", "ClosePreparedStatement", "SetSessionOptions",
                 "GetSessionOptions", "CloseSession", "CancelFlightInfo"]:
        assert name in actions
        assert actions[name]


def test_unknown_action_is_unimplemented(client):
    with pytest.raises(pa.ArrowNotImplementedError) as err:
        list(client.do_action(flight.Action("lakehouse.nope", b"")))
    assert "unknown action" in str(err.value)
    assert "SetSessionOptions" in str(err.value)


def test_malformed_ticket_is_invalid_argument(client):
    with pytest.raises(pa.ArrowInvalid):
        client.do_get(flight.Ticket(b"\x00\x01garbage")).read_all()


def test_handshake_with_basic_auth_returns_a_bearer_token(client):
    token = client.authenticate_basic_token("user", "pass")
    assert token[0] == b"authorization"
    assert token[1].startswith(b"Bearer ")


def test_close_session_answers(client):
    results = list(client.do_action(flight.Action("CloseSession", b"")))
    # CloseSessionResult { status: CLOSED (1) }: field 1, varint 1.
    assert results[0].body.to_pybytes() == b"\x08\x01"


def test_get_schema_plans_only(client):
    # A raw CommandStatementQuery in an Any, as Flight SQL clients send it.
    query = b"SELECT r_name FROM region"
    command = b"\x0a" + bytes([len(query)]) + query
    type_url = b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"
    any_message = b"\x0a" + bytes([len(type_url)]) + type_url + b"\x12" + bytes([len(command)]) + command
    descriptor = flight.FlightDescriptor.for_command(any_message)
    schema = client.get_schema(descriptor).schema
    assert schema.names == ["r_name"]
    with pytest.raises(pa.ArrowInvalid):
        client.get_schema(flight.FlightDescriptor.for_command(b"not a command"))
