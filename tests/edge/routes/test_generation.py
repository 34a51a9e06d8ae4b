"""The serving flow's naming of a refused parameter: an API translated at the door (Responses, the
Messages API's structured outputs) gets the router's refusal in its own words."""

from __future__ import annotations

from services.common.errors import InvalidRequest, UnsupportedByBackend
from services.edge.convert_anthropic import messages_param
from services.edge.convert_responses_api import responses_param
from services.edge.routes.anthropic import MESSAGES
from services.edge.routes.openai import CHAT, RESPONSES


def test_a_refusal_names_the_parameter_as_the_client_sent_it_in_param_and_message() -> None:
    exc = RESPONSES.for_client(UnsupportedByBackend(
        "parameters not supported by this self-hosted model: reasoning_effort, top_logprobs", param="reasoning_effort"))
    assert exc.param == "reasoning.effort"
    assert exc.message == "parameters not supported by this self-hosted model: reasoning.effort, top_logprobs"
    said = MESSAGES.for_client(UnsupportedByBackend("'response_format' is not supported", param="response_format"))
    assert (said.param, said.to_anthropic()["error"]["message"]) == (
        "output_config.format", "'output_config.format' is not supported")
    # a plain word is renamed in the message only where it is quoted: the prose around it stays
    prose = RESPONSES.for_client(UnsupportedByBackend(
        "images in a tool result are not supported (OpenAI's tool messages take text only)", param="messages"))
    assert prose.param == "input" and "tool messages take text only" in prose.message
    quoted = RESPONSES.for_client(UnsupportedByBackend("'logprobs' is not supported", param="logprobs"))
    assert (quoted.param, quoted.message) == ("include", "'include' is not supported")


def test_names_the_apis_share_and_apis_without_a_translation_are_left_alone() -> None:
    for name in ("tools", "tool_choice", "temperature", "top_logprobs"):
        assert responses_param(name) == messages_param(name) == name
    assert (responses_param("reasoning_effort"), responses_param("response_format")) == (
        "reasoning.effort", "text.format")
    plain = InvalidRequest("response_format is not supported", param="response_format")
    assert CHAT.for_client(plain) is plain and plain.param == "response_format"
    assert RESPONSES.for_client(InvalidRequest("no param")).param is None
