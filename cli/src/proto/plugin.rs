//! `plat proto plugin`: plat as a protoc/buf plugin. buf.gen.yaml names it, so `buf generate`
//! produces exactly the files plat's own engine does.
//!
//! The protocol: a `CodeGeneratorRequest` on stdin, a `CodeGeneratorResponse` on stdout; errors
//! go in the response, where buf shows them.

use prost::Message;
use prost_types::FileDescriptorSet;
use prost_types::compiler::code_generator_response::{Feature, File};
use prost_types::compiler::{CodeGeneratorRequest, CodeGeneratorResponse};

use super::codegen;
use crate::manifest::Workspace;

/// Answers one encoded request; `workspace` is what the files are generated for.
pub fn respond(workspace: Result<&Workspace, String>, request: &[u8]) -> Vec<u8> {
    let response = match answer(workspace, request) {
        Ok(files) => CodeGeneratorResponse {
            file: files,
            supported_features: Some(Feature::Proto3Optional as u64),
            ..Default::default()
        },
        Err(message) => CodeGeneratorResponse { error: Some(message), ..Default::default() },
    };
    response.encode_to_vec()
}

fn answer(workspace: Result<&Workspace, String>, request: &[u8]) -> Result<Vec<File>, String> {
    let workspace = workspace?;
    let request = CodeGeneratorRequest::decode(request).map_err(|error| format!("invalid plugin request: {error}"))?;
    let descriptors = FileDescriptorSet { file: request.proto_file };
    let files = codegen::generate(workspace, &descriptors).map_err(|error| error.to_string())?;
    Ok(files
        .into_iter()
        .map(|file| File {
            name: Some(file.path),
            content: Some(String::from_utf8_lossy(&file.content).into_owned()),
            ..Default::default()
        })
        .collect())
}
