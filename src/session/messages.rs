//! JSON documents carried inside frames (or, for `OpenDataChannelInput`, in the first
//! text frame), and the 4-byte flag payload. Field names follow the reference wire
//! format exactly; unknown fields are ignored and absent optional ones default, because
//! the service and newer agents add fields over time.

use serde::{Deserialize, Serialize};

/// The `MessageSchemaVersion` of `OpenDataChannelInput`.
pub const OPEN_DATA_CHANNEL_SCHEMA_VERSION: &str = "1.0";

/// First (text) frame on every websocket connection; authenticates with the token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OpenDataChannelInput {
    pub message_schema_version: String,
    pub request_id: String,
    pub token_value: String,
    pub client_id: String,
    #[serde(default)]
    pub client_version: String,
}

// Hand-written so the token can never reach a log through `{:?}`.
impl std::fmt::Debug for OpenDataChannelInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenDataChannelInput")
            .field("message_schema_version", &self.message_schema_version)
            .field("request_id", &self.request_id)
            .field("token_value", &"<redacted>")
            .field("client_id", &self.client_id)
            .field("client_version", &self.client_version)
            .finish()
    }
}

/// Payload of an `acknowledge` frame. Receivers match only on the sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcknowledgeContent {
    #[serde(rename = "AcknowledgedMessageType", default)]
    pub message_type: String,
    #[serde(rename = "AcknowledgedMessageId", default)]
    pub message_id: String,
    #[serde(rename = "AcknowledgedMessageSequenceNumber")]
    pub sequence_number: i64,
    #[serde(rename = "IsSequentialMessage", default = "default_true")]
    pub is_sequential_message: bool,
}

fn default_true() -> bool {
    true
}

/// Payload of a `channel_closed` frame sent by the service when the session ends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ChannelClosed {
    pub message_id: String,
    /// A timestamp string whose format nobody relies on.
    pub created_date: String,
    pub destination_id: String,
    pub session_id: String,
    pub message_type: String,
    pub schema_version: i64,
    /// Human-readable reason; may be empty.
    pub output: String,
}

impl ChannelClosed {
    /// Reads a `channel_closed` body leniently, since nobody documents the service's
    /// exact shape: every field may be missing or of another JSON type (a number, a
    /// boolean or an object is taken as its JSON text), and a body that is not a JSON
    /// object at all is kept whole as the reason. The text is untrusted: sanitise it
    /// before printing.
    pub fn from_payload(payload: &[u8]) -> Self {
        let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(payload) else {
            return ChannelClosed {
                output: String::from_utf8_lossy(payload).trim().to_string(),
                ..ChannelClosed::default()
            };
        };
        let text = |key: &str| match fields.get(key) {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        ChannelClosed {
            message_id: text("MessageId"),
            created_date: text("CreatedDate"),
            destination_id: text("DestinationId"),
            session_id: text("SessionId"),
            message_type: text("MessageType"),
            schema_version: match fields.get("SchemaVersion") {
                Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or_default(),
                Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or_default(),
                _ => 0,
            },
            output: text("Output"),
        }
    }
}

/// Action type asking the client to confirm the session type.
pub const ACTION_SESSION_TYPE: &str = "SessionType";
/// Action type asking the client to set up KMS encryption.
pub const ACTION_KMS_ENCRYPTION: &str = "KMSEncryption";

/// Agent → client, PayloadType 5.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HandshakeRequest {
    /// Four dotted integers, e.g. `3.3.987.0`; drives client feature decisions.
    pub agent_version: String,
    pub requested_client_actions: Vec<RequestedClientAction>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RequestedClientAction {
    pub action_type: String,
    /// Shape depends on `action_type`; see [`SessionTypeRequest`].
    pub action_parameters: serde_json::Value,
}

/// `ActionParameters` of a `SessionType` action.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SessionTypeRequest {
    /// `Port`, `Standard_Stream`, `InteractiveCommands` or `NonInteractiveCommands`.
    pub session_type: String,
    /// The session document's `properties` after parameter substitution.
    pub properties: serde_json::Value,
}

/// `Properties` of a `Port` session. All values are strings on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PortProperties {
    #[serde(rename = "portNumber", skip_serializing_if = "Option::is_none")]
    pub port_number: Option<String>,
    /// `LocalPortForwarding` for port-forwarding documents; absent for AWS-StartSSHSession.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(rename = "host", skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(rename = "localPortNumber", skip_serializing_if = "Option::is_none")]
    pub local_port_number: Option<String>,
}

/// Client → agent, PayloadType 6.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HandshakeResponse {
    pub client_version: String,
    pub processed_client_actions: Vec<ProcessedClientAction>,
    /// `null` when empty, as the reference plugin sends it.
    pub errors: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProcessedClientAction {
    pub action_type: String,
    pub action_status: ActionStatus,
    #[serde(default)]
    pub action_result: serde_json::Value,
    #[serde(default)]
    pub error: String,
}

/// `ActionStatus` of a processed action; the agent cancels the session on anything but
/// `Success`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "u32", into = "u32")]
pub enum ActionStatus {
    Success,
    Failed,
    Unsupported,
    Other(u32),
}

impl From<u32> for ActionStatus {
    fn from(v: u32) -> Self {
        match v {
            1 => Self::Success,
            2 => Self::Failed,
            3 => Self::Unsupported,
            other => Self::Other(other),
        }
    }
}

impl From<ActionStatus> for u32 {
    fn from(s: ActionStatus) -> u32 {
        match s {
            ActionStatus::Success => 1,
            ActionStatus::Failed => 2,
            ActionStatus::Unsupported => 3,
            ActionStatus::Other(v) => v,
        }
    }
}

/// Agent → client, PayloadType 7.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HandshakeComplete {
    /// Go `time.Duration`, i.e. nanoseconds.
    pub handshake_time_to_complete: i64,
    /// Shown to the user when non-empty.
    pub customer_message: String,
}

/// Client → agent, PayloadType 3 (terminal size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeData {
    pub cols: u32,
    pub rows: u32,
}

/// Values of PayloadType 10 messages (a 4-byte big-endian u32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flag {
    /// 1, client → agent: the local connection closed.
    DisconnectToPort,
    /// 2, client → agent: end the session now.
    TerminateSession,
    /// 3, agent → client: the agent could not dial the destination.
    ConnectToPortError,
    Unknown(u32),
}

impl Flag {
    pub fn from_u32(v: u32) -> Self {
        match v {
            1 => Self::DisconnectToPort,
            2 => Self::TerminateSession,
            3 => Self::ConnectToPortError,
            other => Self::Unknown(other),
        }
    }

    pub fn to_u32(self) -> u32 {
        match self {
            Self::DisconnectToPort => 1,
            Self::TerminateSession => 2,
            Self::ConnectToPortError => 3,
            Self::Unknown(v) => v,
        }
    }

    pub fn to_payload(self) -> [u8; 4] {
        self.to_u32().to_be_bytes()
    }

    /// `None` unless the payload is exactly four bytes.
    pub fn from_payload(payload: &[u8]) -> Option<Self> {
        let bytes: [u8; 4] = payload.try_into().ok()?;
        Some(Self::from_u32(u32::from_be_bytes(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn open_data_channel_input_wire_names_and_redacted_debug() {
        let input = OpenDataChannelInput {
            message_schema_version: OPEN_DATA_CHANNEL_SCHEMA_VERSION.into(),
            request_id: "r".into(),
            token_value: "secret-token".into(),
            client_id: "c".into(),
            client_version: "1.1.61.0".into(),
        };
        assert_eq!(
            serde_json::to_value(&input).unwrap(),
            json!({"MessageSchemaVersion":"1.0","RequestId":"r","TokenValue":"secret-token",
                   "ClientId":"c","ClientVersion":"1.1.61.0"})
        );
        assert!(!format!("{input:?}").contains("secret-token"));
    }

    #[test]
    fn acknowledge_wire_names() {
        let ack = AcknowledgeContent {
            message_type: "output_stream_data".into(),
            message_id: "dd01e56b-ff48-483e-a508-b5f073f31b16".into(),
            sequence_number: 7,
            is_sequential_message: true,
        };
        assert_eq!(
            serde_json::to_value(&ack).unwrap(),
            json!({"AcknowledgedMessageType":"output_stream_data",
                   "AcknowledgedMessageId":"dd01e56b-ff48-483e-a508-b5f073f31b16",
                   "AcknowledgedMessageSequenceNumber":7,"IsSequentialMessage":true})
        );
        let parsed: AcknowledgeContent =
            serde_json::from_str(r#"{"AcknowledgedMessageSequenceNumber":3,"Extra":{"x":1}}"#)
                .unwrap();
        assert_eq!(parsed.sequence_number, 3);
        assert!(parsed.is_sequential_message);
    }

    #[test]
    fn channel_closed_parses_with_unknown_and_missing_fields() {
        let cc: ChannelClosed = serde_json::from_str(
            r#"{"MessageId":"m","CreatedDate":"2024-01-01T00:00:00Z","DestinationId":"i-0abc",
                "SessionId":"user-0123","MessageType":"channel_closed","SchemaVersion":1,
                "Output":"bye","NewField":true}"#,
        )
        .unwrap();
        assert_eq!(cc.output, "bye");
        assert_eq!(cc.session_id, "user-0123");
        let cc: ChannelClosed = serde_json::from_str("{}").unwrap();
        assert_eq!(cc.output, "");
    }

    #[test]
    fn golden_channel_closed_of_the_plugin_tests_parses() {
        // `channelClosedPayload` of the plugin's messageparser_test.go, as written there.
        let payload = br#"{
			"MessageType": "channel_closed",
			"MessageId": "dd01e56b-ff48-483e-a508-b5f073f31b16",
			"CreatedDate": "1503434274948",
			"SessionId": "sessionId_01234567890abcedf",
			"SchemaVersion": 1,
			"Output": "payload"
		}"#;
        let cc = ChannelClosed::from_payload(payload);
        assert_eq!(cc.message_type, "channel_closed");
        assert_eq!(cc.message_id, "dd01e56b-ff48-483e-a508-b5f073f31b16");
        assert_eq!(cc.created_date, "1503434274948");
        assert_eq!(cc.session_id, "sessionId_01234567890abcedf");
        assert_eq!(cc.schema_version, 1);
        assert_eq!(cc.output, "payload");
    }

    #[test]
    fn channel_closed_fields_of_other_types_are_read_as_text() {
        let cc = ChannelClosed::from_payload(
            br#"{"Output":42,"SessionId":null,"SchemaVersion":"2","CreatedDate":1503434274948}"#,
        );
        assert_eq!(cc.output, "42");
        assert_eq!(cc.session_id, "");
        assert_eq!(cc.schema_version, 2);
        assert_eq!(cc.created_date, "1503434274948");
        // The reason, not the raw JSON, when the rest does not fit the usual shape.
        let cc = ChannelClosed::from_payload(
            br#"{"Output":"Session idle timeout","SchemaVersion":{"v":1},"Extra":[1]}"#,
        );
        assert_eq!(cc.output, "Session idle timeout");
        // Not JSON at all: the text is the reason.
        assert_eq!(
            ChannelClosed::from_payload(b" the agent went away\n").output,
            "the agent went away"
        );
        assert_eq!(ChannelClosed::from_payload(b"[1,2]").output, "[1,2]");
        assert_eq!(ChannelClosed::from_payload(b"").output, "");
    }

    #[test]
    fn golden_acknowledge_of_the_plugin_tests_parses() {
        // SerializeClientMessageWithAcknowledgeContent's values in messageparser_test.go.
        let ack: AcknowledgeContent = serde_json::from_str(
            r#"{"AcknowledgedMessageType":"input_stream_data","AcknowledgedMessageId":"dd01e56b-ff48-483e-a508-b5f073f31b16","AcknowledgedMessageSequenceNumber":2,"IsSequentialMessage":true}"#,
        )
        .unwrap();
        assert_eq!(ack.message_type, "input_stream_data");
        assert_eq!(ack.message_id, "dd01e56b-ff48-483e-a508-b5f073f31b16");
        assert_eq!(ack.sequence_number, 2);
        assert!(ack.is_sequential_message);
    }

    #[test]
    fn golden_handshake_payloads_of_the_plugin_tests_parse() {
        // handshakeReqPayload and handshakeCompletePayload of messageparser_test.go.
        let req: HandshakeRequest = serde_json::from_str(
            r#"{
			"AgentVersion": "3.0",
			"RequestedClientActions": [
				{
					"ActionType": "start",
					"ActionParameters": {"name": "richard"}
				}
			]
		}"#,
        )
        .unwrap();
        assert_eq!(req.agent_version, "3.0");
        assert_eq!(req.requested_client_actions[0].action_type, "start");
        assert_eq!(
            req.requested_client_actions[0].action_parameters,
            json!({"name": "richard"})
        );
        let hc: HandshakeComplete = serde_json::from_str(
            r#"{
			"HandshakeTimeToComplete": 1000000,
			"CustomerMessage": "Handshake Complete"
		}"#,
        )
        .unwrap();
        assert_eq!(hc.handshake_time_to_complete, 1_000_000);
        assert_eq!(hc.customer_message, "Handshake Complete");
    }

    #[test]
    fn handshake_request_parses_session_type_and_kms() {
        let req: HandshakeRequest = serde_json::from_str(
            r#"{"AgentVersion":"3.3.987.0","RequestedClientActions":[
                {"ActionType":"SessionType","ActionParameters":{"SessionType":"Port",
                  "Properties":{"portNumber":"22"}}},
                {"ActionType":"KMSEncryption","ActionParameters":{"KMSKeyId":"k","Challenge":"AA=="}}],
                "Future":1}"#,
        )
        .unwrap();
        assert_eq!(req.agent_version, "3.3.987.0");
        assert_eq!(req.requested_client_actions.len(), 2);
        let st: SessionTypeRequest =
            serde_json::from_value(req.requested_client_actions[0].action_parameters.clone())
                .unwrap();
        assert_eq!(st.session_type, "Port");
        let props: PortProperties = serde_json::from_value(st.properties).unwrap();
        assert_eq!(props.port_number.as_deref(), Some("22"));
        assert_eq!(props.kind, None);
    }

    #[test]
    fn handshake_response_serialises_like_the_reference() {
        let resp = HandshakeResponse {
            client_version: "1.1.61.0".into(),
            processed_client_actions: vec![ProcessedClientAction {
                action_type: ACTION_SESSION_TYPE.into(),
                action_status: ActionStatus::Success,
                action_result: serde_json::Value::Null,
                error: String::new(),
            }],
            errors: None,
        };
        assert_eq!(
            serde_json::to_value(&resp).unwrap(),
            json!({"ClientVersion":"1.1.61.0","ProcessedClientActions":[
                {"ActionType":"SessionType","ActionStatus":1,"ActionResult":null,"Error":""}],
                "Errors":null})
        );
        let back: HandshakeResponse =
            serde_json::from_value(serde_json::to_value(&resp).unwrap()).unwrap();
        assert_eq!(back, resp);
    }

    #[test]
    fn handshake_complete_parses() {
        let hc: HandshakeComplete = serde_json::from_str(
            r#"{"HandshakeTimeToComplete":1500000000,"CustomerMessage":"hello"}"#,
        )
        .unwrap();
        assert_eq!(hc.handshake_time_to_complete, 1_500_000_000);
        assert_eq!(hc.customer_message, "hello");
    }

    #[test]
    fn size_data_is_lower_case() {
        assert_eq!(
            serde_json::to_string(&SizeData { cols: 80, rows: 24 }).unwrap(),
            r#"{"cols":80,"rows":24}"#
        );
    }

    #[test]
    fn flag_values() {
        assert_eq!(Flag::DisconnectToPort.to_payload(), [0, 0, 0, 1]);
        assert_eq!(Flag::TerminateSession.to_payload(), [0, 0, 0, 2]);
        assert_eq!(Flag::ConnectToPortError.to_payload(), [0, 0, 0, 3]);
        assert_eq!(
            Flag::from_payload(&[0, 0, 0, 3]),
            Some(Flag::ConnectToPortError)
        );
        assert_eq!(Flag::from_payload(&[0, 0, 1, 0]), Some(Flag::Unknown(256)));
        assert_eq!(Flag::from_payload(&[0, 0, 3]), None);
        assert_eq!(Flag::from_payload(&[0, 0, 0, 0, 3]), None);
    }
}
