//! The Session Manager control plane: `StartSession`, `ResumeSession` and
//! `TerminateSession` over the AWS SDK. The data channel itself is the driver's job.

use aws_sdk_ssm::operation::start_session::builders::StartSessionFluentBuilder;
use aws_sdk_ssm::Client;

use crate::aws::AwsError;

/// The SSM document that opens a standard-stream port session to sshd.
pub const SSH_DOCUMENT: &str = "AWS-StartSSHSession";
/// Port forwarding to a port on the instance.
pub const PORT_FORWARDING_DOCUMENT: &str = "AWS-StartPortForwardingSession";
/// Port forwarding to a host the instance reaches.
pub const REMOTE_HOST_DOCUMENT: &str = "AWS-StartPortForwardingSessionToRemoteHost";

/// What `StartSession` (or `ResumeSession`) hands back: where and how to dial.
#[derive(Clone)]
pub struct Started {
    pub session_id: String,
    pub stream_url: String,
    /// Short-lived bearer token for the data channel; never log it.
    pub token: String,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("session_id", &self.session_id)
            .field("stream_url", &self.stream_url)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// One region's SSM client plus the session it drives.
#[derive(Debug, Clone)]
pub struct SessionApi {
    client: Client,
    region: String,
}

impl SessionApi {
    pub fn new(client: Client, region: impl Into<String>) -> Self {
        SessionApi {
            client,
            region: region.into(),
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// Opens an `AWS-StartSSHSession` session to `target` on `port`.
    pub async fn start_ssh(&self, target: &str, port: u16) -> Result<Started, AwsError> {
        self.start(
            self.client
                .start_session()
                .target(target)
                .document_name(SSH_DOCUMENT)
                .parameters("portNumber", vec![port.to_string()])
                .reason("ec2ssh"),
        )
        .await
    }

    /// Opens a shell session on `target`: the account's default shell document
    /// (`SSM-SessionManagerRunShell`) when `document` is `None`.
    pub async fn start_shell(
        &self,
        target: &str,
        document: Option<&str>,
    ) -> Result<Started, AwsError> {
        self.start(
            self.client
                .start_session()
                .target(target)
                .set_document_name(document.map(str::to_string))
                .reason("ec2ssh shell"),
        )
        .await
    }

    /// Opens a port-forwarding session to `port` on `target`
    /// (`AWS-StartPortForwardingSession`), or with `host` to `host:port` as the
    /// instance reaches it (`AWS-StartPortForwardingSessionToRemoteHost`).
    pub async fn start_port_forwarding(
        &self,
        target: &str,
        host: Option<&str>,
        port: u16,
        local_port: u16,
    ) -> Result<Started, AwsError> {
        let mut req = self
            .client
            .start_session()
            .target(target)
            .parameters("portNumber", vec![port.to_string()])
            .parameters("localPortNumber", vec![local_port.to_string()])
            .reason("ec2ssh forward");
        req = match host {
            Some(host) => req
                .document_name(REMOTE_HOST_DOCUMENT)
                .parameters("host", vec![host.to_string()]),
            None => req.document_name(PORT_FORWARDING_DOCUMENT),
        };
        self.start(req).await
    }

    /// Sends a StartSession request and reads what a session needs from the answer.
    async fn start(&self, req: StartSessionFluentBuilder) -> Result<Started, AwsError> {
        let out = req
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ssm:StartSession", &self.region, &e))?;
        let missing = |what: &str| AwsError {
            action: "ssm:StartSession".into(),
            region: self.region.clone(),
            kind: crate::aws::AwsErrorKind::NotImplemented,
            code: None,
            message: format!("the response has no {what}"),
            profile: None,
        };
        Ok(Started {
            session_id: out.session_id().ok_or_else(|| missing("SessionId"))?.into(),
            stream_url: out.stream_url().ok_or_else(|| missing("StreamUrl"))?.into(),
            token: out
                .token_value()
                .ok_or_else(|| missing("TokenValue"))?
                .into(),
        })
    }

    /// A fresh token for a session whose websocket broke. `None` means the service has
    /// ended the session (it timed out or was terminated).
    pub async fn resume(&self, session_id: &str) -> Result<Option<String>, AwsError> {
        let out = self
            .client
            .resume_session()
            .session_id(session_id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ssm:ResumeSession", &self.region, &e))?;
        Ok(out
            .token_value()
            .filter(|t| !t.is_empty())
            .map(str::to_string))
    }

    /// Ends the session service-side. Idempotent.
    pub async fn terminate(&self, session_id: &str) -> Result<(), AwsError> {
        self.client
            .terminate_session()
            .session_id(session_id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ssm:TerminateSession", &self.region, &e))?;
        Ok(())
    }
}

/// How long ending a session (TerminateSession) may take on the way out.
const TERMINATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A started session and the API that resumes and ends it: every command that opens
/// one (proxy, shell, forward) ends it the same way.
pub struct Session<'a> {
    pub api: &'a SessionApi,
    pub id: String,
}

impl Session<'_> {
    /// TerminateSession, bounded. A failure is for a warning (the session then ends
    /// at its idle timeout), never an error on the way out: the text says what failed.
    pub async fn terminate(&self) -> Result<(), String> {
        match tokio::time::timeout(TERMINATE_TIMEOUT, self.api.terminate(&self.id)).await {
            Ok(Ok(())) => {
                tracing::debug!(session = %self.id, "session terminated");
                Ok(())
            }
            Ok(Err(e)) => Err(format!(
                "could not terminate session {}: {}",
                self.id,
                e.summary()
            )),
            Err(_) => Err(format!(
                "TerminateSession for {} timed out; the session ends at its idle timeout",
                self.id
            )),
        }
    }

    /// [`terminate`](Self::terminate), telling the user when it failed.
    pub async fn end(&self, tell: fn(&str)) {
        if let Err(why) = self.terminate().await {
            tell(&format!("warning: {why}"));
        }
    }
}

impl super::driver::Resume for Session<'_> {
    async fn resume(&self) -> Result<Option<String>, AwsError> {
        self.api.resume(&self.id).await
    }
}
