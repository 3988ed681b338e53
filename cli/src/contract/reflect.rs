//! What a running provider really serves, read through gRPC server reflection
//! (`grpc.reflection.v1`, which every service serves through `pkg::reflection`): the files that
//! hold the symbols and files asked for, and everything they import, imports first.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message;
use prost_types::{FileDescriptorProto, FileDescriptorSet};
use tonic::transport::Channel;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

/// Why the provider's descriptors could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReflectionFailure(pub String);

/// Reads from the provider behind `channel` the files containing `symbols` (services, as
/// `user.v1.UserService`) and the files named `files`, then every file they import. A symbol or
/// file the provider does not know is left out: the comparison then reports what is missing.
pub async fn served_files(
    channel: Channel,
    symbols: &[String],
    files: &[String],
) -> Result<FileDescriptorSet, ReflectionFailure> {
    let mut client = ServerReflectionClient::new(channel);
    let mut found: BTreeMap<String, FileDescriptorProto> = BTreeMap::new();
    let requests = symbols
        .iter()
        .map(|symbol| MessageRequest::FileContainingSymbol(symbol.clone()))
        .chain(files.iter().map(|file| MessageRequest::FileByFilename(file.clone())));
    let mut pending: Vec<MessageRequest> = requests.collect();
    let mut asked: BTreeSet<String> = BTreeSet::new();
    while let Some(request) = pending.pop() {
        for file in ask(&mut client, request).await? {
            for dependency in &file.dependency {
                if !found.contains_key(dependency) && asked.insert(dependency.clone()) {
                    pending.push(MessageRequest::FileByFilename(dependency.clone()));
                }
            }
            found.entry(file.name().to_owned()).or_insert(file);
        }
    }
    Ok(FileDescriptorSet { file: imports_first(found) })
}

/// One request on its own stream; `NOT_FOUND` is an empty answer.
async fn ask(
    client: &mut ServerReflectionClient<Channel>,
    request: MessageRequest,
) -> Result<Vec<FileDescriptorProto>, ReflectionFailure> {
    let request = ServerReflectionRequest { host: String::new(), message_request: Some(request) };
    let answer = async {
        let mut stream = client.server_reflection_info(futures_util::stream::iter([request])).await?.into_inner();
        stream.message().await
    };
    let response: ServerReflectionResponse = match answer.await {
        Ok(Some(response)) => response,
        Ok(None) => return Err(ReflectionFailure("the reflection service closed the stream without an answer".into())),
        Err(status) if status.code() == tonic::Code::NotFound => return Ok(Vec::new()),
        Err(status) if status.code() == tonic::Code::Unimplemented => {
            return Err(ReflectionFailure(
                "it does not serve gRPC reflection (grpc.reflection.v1): add `pkg::reflection::service` to its \
                 server"
                    .into(),
            ));
        }
        Err(status) => {
            return Err(ReflectionFailure(format!("reflection: {:?}: {}", status.code(), status.message())));
        }
    };
    match response.message_response {
        Some(MessageResponse::FileDescriptorResponse(files)) => files
            .file_descriptor_proto
            .iter()
            .map(|bytes| FileDescriptorProto::decode(bytes.as_slice()))
            .collect::<Result<_, _>>()
            .map_err(|error| {
                ReflectionFailure(format!("reflection answered a descriptor that does not decode: {error}"))
            }),
        Some(MessageResponse::ErrorResponse(error)) if error.error_code == tonic::Code::NotFound as i32 => {
            Ok(Vec::new())
        }
        Some(MessageResponse::ErrorResponse(error)) => {
            Err(ReflectionFailure(format!("reflection: error {}: {}", error.error_code, error.error_message)))
        }
        _ => Err(ReflectionFailure("reflection answered something other than files".into())),
    }
}

/// The files with every file before those importing it; names break ties, so the order is stable.
fn imports_first(mut files: BTreeMap<String, FileDescriptorProto>) -> Vec<FileDescriptorProto> {
    fn visit(
        name: &str,
        files: &mut BTreeMap<String, FileDescriptorProto>,
        visiting: &mut BTreeSet<String>,
        out: &mut Vec<FileDescriptorProto>,
    ) {
        if !visiting.insert(name.to_owned()) {
            return;
        }
        let Some(file) = files.remove(name) else { return };
        for dependency in &file.dependency {
            visit(dependency, files, visiting, out);
        }
        out.push(file);
    }
    let names: Vec<String> = files.keys().cloned().collect();
    let mut out = Vec::new();
    let mut visiting = BTreeSet::new();
    for name in names {
        visit(&name, &mut files, &mut visiting, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, dependencies: &[&str]) -> FileDescriptorProto {
        FileDescriptorProto {
            name: Some(name.to_owned()),
            dependency: dependencies.iter().map(|d| (*d).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn imports_come_before_the_files_importing_them() {
        let files = BTreeMap::from([
            ("a.proto".to_owned(), file("a.proto", &["z.proto", "m.proto"])),
            ("m.proto".to_owned(), file("m.proto", &["z.proto"])),
            ("z.proto".to_owned(), file("z.proto", &[])),
        ]);
        let names: Vec<String> = imports_first(files).iter().map(|file| file.name().to_owned()).collect();
        assert_eq!(names, ["z.proto", "m.proto", "a.proto"]);
    }
}
