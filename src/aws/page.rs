//! EC2 `DescribeInstances` whose successful pages are read by the caller's parser
//! instead of the SDK's shapes, everything else left to the SDK: signing, endpoints,
//! retries (and the throttle watch), timeouts, and every error response, which the
//! SDK's own deserializer still reads so the errors stay the typed ones.
//!
//! How: an operation interceptor swaps the operation's response deserializer for one
//! that hands a successful body to the parser and keeps the SDK's for the rest. The
//! parsed page waits in a slot; the SDK's output carries only the next token.

use std::sync::{Arc, Mutex};

use aws_sdk_ec2::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_ec2::config::{ConfigBag, Intercept};
use aws_sdk_ec2::error::SdkError;
use aws_sdk_ec2::operation::describe_instances::builders::DescribeInstancesFluentBuilder;
use aws_sdk_ec2::operation::describe_instances::{
    DescribeInstances, DescribeInstancesError, DescribeInstancesOutput,
};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{Error, Output, OutputOrError};
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, OrchestratorError};
use aws_smithy_runtime_api::client::runtime_plugin::RuntimePlugin;
use aws_smithy_runtime_api::client::ser_de::{DeserializeResponse, SharedResponseDeserializer};
use aws_smithy_types::config_bag::FrozenLayer;

/// Reads a successful body: the page and the token of the next one.
pub type Parse<T> = Arc<dyn Fn(&[u8]) -> Result<(T, Option<String>), BoxError> + Send + Sync>;

/// Sends `request` (every retry the SDK's), with a successful answer read by `parse`.
pub async fn describe_instances<T: Send + 'static>(
    request: DescribeInstancesFluentBuilder,
    parse: Parse<T>,
) -> Result<(T, Option<String>), SdkError<DescribeInstancesError, HttpResponse>> {
    let slot = Arc::new(Mutex::new(None));
    let hook = Hook {
        parse,
        slot: slot.clone(),
    };
    let out = request.customize().interceptor(hook).send().await?;
    let page = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    match page {
        Some(page) => Ok((page, out.next_token)),
        // Only if the SDK stopped calling response deserializers from the config bag.
        None => Err(SdkError::construction_failure(
            "DescribeInstances answered, but not through the page reader",
        )),
    }
}

/// Puts [`Deserializer`] in front of the operation's own, once per call.
struct Hook<T> {
    parse: Parse<T>,
    slot: Arc<Mutex<Option<T>>>,
}

impl<T> std::fmt::Debug for Hook<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("page::Hook")
    }
}

impl<T: Send + 'static> Intercept for Hook<T> {
    fn name(&self) -> &'static str {
        "ec2ssh page reader"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The SDK's own deserializer for this operation, from its own configuration.
        let sdk = DescribeInstances::new()
            .config()
            .ok_or("DescribeInstances has no configuration")?;
        if sdk.load::<SharedResponseDeserializer>().is_none() {
            return Err("DescribeInstances has no response deserializer".into());
        }
        cfg.interceptor_state()
            .store_put(SharedResponseDeserializer::new(Deserializer {
                sdk,
                parse: self.parse.clone(),
                slot: self.slot.clone(),
            }));
        Ok(())
    }
}

/// A successful body to `parse` (its page into `slot`); anything else to the SDK's.
struct Deserializer<T> {
    /// The operation's configuration: it holds the SDK's deserializer.
    sdk: FrozenLayer,
    parse: Parse<T>,
    slot: Arc<Mutex<Option<T>>>,
}

impl<T> std::fmt::Debug for Deserializer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("page::Deserializer")
    }
}

impl<T: Send + 'static> DeserializeResponse for Deserializer<T> {
    fn deserialize_nonstreaming_with_config(
        &self,
        response: &HttpResponse,
        cfg: &ConfigBag,
    ) -> OutputOrError {
        if !response.status().is_success() {
            return match self.sdk.load::<SharedResponseDeserializer>() {
                Some(sdk) => sdk.deserialize_nonstreaming_with_config(response, cfg),
                None => Err(OrchestratorError::other("no response deserializer")),
            };
        }
        let body = response.body().bytes().unwrap_or_default();
        match (self.parse)(body) {
            Ok((page, next_token)) => {
                *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(page);
                let out = DescribeInstancesOutput::builder()
                    .set_next_token(next_token)
                    .build();
                Ok(Output::erase(out))
            }
            // As the SDK reports a body it cannot read: an unhandled operation error.
            Err(e) => Err(OrchestratorError::operation(Error::erase(
                DescribeInstancesError::unhandled(e),
            ))),
        }
    }
}
