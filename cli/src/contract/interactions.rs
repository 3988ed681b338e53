//! Consumer-declared interactions: the calls a consumer relies on, written down in its own
//! repository (`contracts/*.toml`) and replayed against the running providers with dynamic
//! messages built from the consumer's own view of the contract (`src/proto/descriptor.bin`) —
//! Pact's idea for gRPC, with no broker.
//!
//! A file is one interaction: ordered steps, each an rpc, a request (proto3 JSON, written as a
//! TOML table), the status expected (a gRPC code name, `OK` when left out) and, optionally, the
//! response fields expected (a subset: fields and array elements not written are not checked).
//! A step with a `name` can be referred to by the steps after it: `${steps.create.user.id}` is
//! the `user.id` of the response of the step named `create`; `${run}` is unique to the run (for
//! values that must be unique, like an email address).
//!
//! ```toml
//! description = "GetUser answers a user that exists"
//!
//! [[step]]
//! name = "create"
//! rpc = "user.v1.UserService/CreateUser"
//! request = { email = "ada-${run}@example.com", display_name = "Ada" }
//!
//! [[step]]
//! rpc = "user.v1.UserService/GetUser"
//! request = { id = "${steps.create.user.id}" }
//! response = { user = { id = "${steps.create.user.id}", email = "ada-${run}@example.com" } }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Buf;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, MethodDescriptor, SerializeOptions};
use serde_json::Value;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

/// The directory, in a consumer's repository, its interactions are in.
pub const DIR: &str = "contracts";

/// One interaction file, as written.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interaction {
    /// What the consumer relies on, in a sentence.
    #[serde(default)]
    pub description: String,
    /// The calls, in order.
    #[serde(rename = "step")]
    pub steps: Vec<Step>,
}

/// One call of an interaction.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// How later steps refer to its response.
    #[serde(default)]
    pub name: Option<String>,
    /// `package.Service/Method`.
    pub rpc: String,
    /// The request, proto3 JSON (field names as in the .proto or in lowerCamelCase).
    #[serde(default)]
    pub request: Option<Value>,
    /// The gRPC code name expected: `OK`, `NOT_FOUND`, `INVALID_ARGUMENT`, ...
    #[serde(default)]
    pub status: Option<String>,
    /// Fields the response must have, with their values (field names as in the .proto).
    #[serde(default)]
    pub response: Option<Value>,
}

impl Step {
    /// The rpc's package, service and method: `user.v1`, `user.v1.UserService`, `GetUser`.
    pub fn parts(&self) -> Option<(&str, &str, &str)> {
        let (service, method) = self.rpc.trim_start_matches('/').split_once('/')?;
        let (package, _) = service.rsplit_once('.')?;
        Some((package, service, method))
    }
}

/// A consumer's interaction files, sorted by name, each read or with why it cannot be.
pub fn read(consumer_dir: &Path) -> Vec<(PathBuf, Result<Interaction, String>)> {
    let Ok(entries) = fs_err::read_dir(consumer_dir.join(DIR)) else { return Vec::new() };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "toml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let read = fs_err::read_to_string(&path).map_err(|error| error.to_string()).and_then(|text| {
                toml::from_str::<Interaction>(&text).map_err(|error| error.to_string().trim().to_owned())
            });
            let read =
                read.and_then(|interaction| match interaction.steps.iter().find(|step| step.parts().is_none()) {
                    Some(step) => Err(format!("rpc `{}` is not `package.Service/Method`", step.rpc)),
                    None if interaction.steps.is_empty() => Err("no [[step]]".to_owned()),
                    None => Ok(interaction),
                });
            (path, read)
        })
        .collect()
}

/// Replays `interaction` with messages of the consumer's view `pool`; `channel` gives the
/// running provider of a package, or why there is none. `run` is `${run}`.
pub async fn replay(
    interaction: &Interaction,
    pool: &DescriptorPool,
    channel: impl Fn(&str) -> Result<Channel, String>,
    run: &str,
) -> Result<(), String> {
    let mut captured: BTreeMap<String, Value> = BTreeMap::new();
    for (index, step) in interaction.steps.iter().enumerate() {
        let label = format!("step {} ({})", step.name.clone().unwrap_or_else(|| (index + 1).to_string()), step.rpc);
        let fail = |why: String| format!("{label}: {why}");
        let (package, service, method) = step.parts().expect("checked when read");
        let method = find_method(pool, service, method).map_err(fail)?;
        let request = substitute(step.request.clone().unwrap_or(Value::Object(Default::default())), run, &captured)
            .map_err(fail)?;
        let request = DynamicMessage::deserialize(method.input(), request)
            .map_err(|error| fail(format!("the request does not fit {}: {error}", method.input().full_name())))?;
        let channel = channel(package).map_err(fail)?;
        let answer = call(channel, &method, request).await;
        let expected_status = step.status.as_deref().unwrap_or("OK");
        let (status, message) = match &answer {
            Ok(_) => ("OK", String::new()),
            Err(status) => (code_name(status.code()), status.message().to_owned()),
        };
        if status != expected_status {
            let said = if message.is_empty() { String::new() } else { format!(" ({message})") };
            return Err(fail(format!("expected status {expected_status}, got {status}{said}")));
        }
        let response = match answer {
            Ok(response) => {
                let options = SerializeOptions::new().use_proto_field_name(true).skip_default_fields(false);
                response
                    .serialize_with_options(serde_json::value::Serializer, &options)
                    .map_err(|error| fail(format!("the response does not convert to JSON: {error}")))?
            }
            Err(_) => Value::Null,
        };
        if let Some(expected) = &step.response {
            let expected = substitute(expected.clone(), run, &captured).map_err(fail)?;
            if let Some(mismatch) = mismatch(&expected, &response, "") {
                return Err(fail(format!("response {mismatch}")));
            }
        }
        if let Some(name) = &step.name {
            captured.insert(name.clone(), response);
        }
    }
    Ok(())
}

fn find_method(pool: &DescriptorPool, service: &str, method: &str) -> Result<MethodDescriptor, String> {
    let found = pool.get_service_by_name(service).ok_or_else(|| {
        format!("the consumer's recorded contract has no service {service}: `plat proto gen` records it")
    })?;
    found
        .methods()
        .find(|candidate| candidate.name() == method)
        .ok_or_else(|| format!("the consumer's recorded contract has no rpc {method} on {service}"))
}

async fn call(channel: Channel, method: &MethodDescriptor, request: DynamicMessage) -> Result<DynamicMessage, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|error| Status::unavailable(error.to_string()))?;
    let path = PathAndQuery::try_from(format!("/{}/{}", method.parent_service().full_name(), method.name()))
        .map_err(|error| Status::internal(error.to_string()))?;
    let codec = DynamicCodec { response: method.output() };
    grpc.unary(tonic::Request::new(request), path, codec).await.map(tonic::Response::into_inner)
}

/// `${run}` and `${steps.NAME.field.field}` in every string of `value`. A string that is one
/// reference only takes the referred value as it is (a number stays a number).
fn substitute(value: Value, run: &str, captured: &BTreeMap<String, Value>) -> Result<Value, String> {
    Ok(match value {
        Value::String(text) => {
            let trimmed = text.trim();
            if trimmed.starts_with("${") && trimmed.ends_with('}') && trimmed.matches("${").count() == 1 {
                let resolved = resolve(&trimmed[2..trimmed.len() - 1], run, captured)?;
                return Ok(resolved);
            }
            let mut out = String::new();
            let mut rest = text.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let end = rest[start..].find('}').ok_or_else(|| format!("unclosed `${{` in {text:?}"))? + start;
                match resolve(&rest[start + 2..end], run, captured)? {
                    Value::String(resolved) => out.push_str(&resolved),
                    other => out.push_str(&other.to_string()),
                }
                rest = &rest[end + 1..];
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Array(items) => {
            Value::Array(items.into_iter().map(|item| substitute(item, run, captured)).collect::<Result<_, _>>()?)
        }
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(key, item)| Ok((key, substitute(item, run, captured)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other,
    })
}

fn resolve(reference: &str, run: &str, captured: &BTreeMap<String, Value>) -> Result<Value, String> {
    if reference == "run" {
        return Ok(Value::String(run.to_owned()));
    }
    let mut parts = reference.split('.');
    let (Some("steps"), Some(step)) = (parts.next(), parts.next()) else {
        return Err(format!("`${{{reference}}}` is neither `${{run}}` nor `${{steps.NAME.field}}`"));
    };
    let mut value = captured.get(step).ok_or_else(|| format!("`${{{reference}}}`: no earlier step is named {step}"))?;
    for part in parts {
        let next = match value {
            Value::Array(items) => part.parse::<usize>().ok().and_then(|index| items.get(index)),
            Value::Object(fields) => fields.get(part),
            _ => None,
        };
        value = next.ok_or_else(|| format!("`${{{reference}}}`: the response of {step} has no {part} there"))?;
    }
    Ok(value.clone())
}

/// Where `actual` differs from `expected`, which it must contain: objects by the fields
/// expected, arrays element by element (as many as expected, no more), numbers also as the
/// strings proto3 JSON writes 64-bit integers as.
fn mismatch(expected: &Value, actual: &Value, at: &str) -> Option<String> {
    let field = |key: &str| if at.is_empty() { key.to_owned() } else { format!("{at}.{key}") };
    match (expected, actual) {
        (Value::Object(expected), Value::Object(actual)) => {
            expected.iter().find_map(|(key, value)| match actual.get(key) {
                Some(found) => mismatch(value, found, &field(key)),
                None => Some(format!("{}: expected {value}, the response has no such field", field(key))),
            })
        }
        (Value::Array(expected), Value::Array(actual)) if expected.len() == actual.len() => expected
            .iter()
            .zip(actual)
            .enumerate()
            .find_map(|(index, (value, found))| mismatch(value, found, &format!("{at}[{index}]"))),
        (Value::Array(expected), Value::Array(actual)) => Some(format!(
            "{}: expected {} elements, got {}",
            if at.is_empty() { "(root)" } else { at },
            expected.len(),
            actual.len()
        )),
        (Value::Number(number), Value::String(text)) if number.to_string() == *text => None,
        (expected, actual) if expected == actual => None,
        (expected, actual) => {
            Some(format!("{}: expected {expected}, got {actual}", if at.is_empty() { "(root)" } else { at }))
        }
    }
}

/// A gRPC code as written in the interaction files (and the gRPC specification).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Encodes a dynamic request and decodes the response as `response`.
#[derive(Debug, Clone)]
struct DynamicCodec {
    response: MessageDescriptor,
}

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicCodec;
    type Decoder = DynamicCodec;

    fn encoder(&mut self) -> Self::Encoder {
        self.clone()
    }

    fn decoder(&mut self) -> Self::Decoder {
        self.clone()
    }
}

impl Encoder for DynamicCodec {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: DynamicMessage, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        prost::Message::encode(&item, dst).map_err(|error| Status::internal(error.to_string()))
    }
}

impl Decoder for DynamicCodec {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        DynamicMessage::decode(self.response.clone(), bytes)
            .map(Some)
            .map_err(|error| Status::internal(format!("the response does not decode as the consumer sees it: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_take_values_from_earlier_responses() {
        let captured =
            BTreeMap::from([("create".to_owned(), json!({"user": {"id": "u-1", "n": 3}, "items": [{"sku": "B"}]}))]);
        let value = json!({"id": "${steps.create.user.id}", "email": "a-${run}@x", "n": "${steps.create.user.n}", "s": "${steps.create.items.0.sku}"});
        assert_eq!(
            substitute(value, "r7", &captured).unwrap(),
            json!({"id": "u-1", "email": "a-r7@x", "n": 3, "s": "B"})
        );
        assert_eq!(
            substitute(json!("${steps.other.id}"), "r", &captured).unwrap_err(),
            "`${steps.other.id}`: no earlier step is named other"
        );
        assert!(substitute(json!("${steps.create.user.email}"), "r", &captured).unwrap_err().contains("has no email"));
    }

    #[test]
    fn a_response_matches_when_it_holds_every_field_expected() {
        let actual = json!({"user": {"id": "u-1", "email": "a@x", "tags": ["a", "b"]}, "total": "3750"});
        assert_eq!(mismatch(&json!({"user": {"email": "a@x"}}), &actual, ""), None);
        assert_eq!(mismatch(&json!({"total": 3750}), &actual, ""), None);
        assert_eq!(
            mismatch(&json!({"user": {"email": "b@x"}}), &actual, ""),
            Some("user.email: expected \"b@x\", got \"a@x\"".to_owned())
        );
        assert_eq!(
            mismatch(&json!({"user": {"name": "A"}}), &actual, ""),
            Some("user.name: expected \"A\", the response has no such field".to_owned())
        );
        assert_eq!(
            mismatch(&json!({"user": {"tags": ["a"]}}), &actual, ""),
            Some("user.tags: expected 1 elements, got 2".to_owned())
        );
    }

    #[test]
    fn files_are_read_in_order_and_bad_ones_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let contracts = dir.path().join(DIR);
        std::fs::create_dir_all(&contracts).unwrap();
        std::fs::write(
            contracts.join("b.toml"),
            "[[step]]\nrpc = \"user.v1.UserService/GetUser\"\nrequest = { id = \"x\" }\nstatus = \"NOT_FOUND\"\n",
        )
        .unwrap();
        std::fs::write(contracts.join("a.toml"), "[[step]]\nrpc = \"GetUser\"\n").unwrap();
        std::fs::write(contracts.join("notes.md"), "not an interaction").unwrap();
        let read = read(dir.path());
        let names: Vec<&str> = read.iter().map(|(path, _)| path.file_name().unwrap().to_str().unwrap()).collect();
        assert_eq!(names, ["a.toml", "b.toml"]);
        assert_eq!(read[0].1.as_ref().unwrap_err(), "rpc `GetUser` is not `package.Service/Method`");
        let step = &read[1].1.as_ref().unwrap().steps[0];
        assert_eq!(step.parts(), Some(("user.v1", "user.v1.UserService", "GetUser")));
        assert_eq!(step.status.as_deref(), Some("NOT_FOUND"));
    }
}
