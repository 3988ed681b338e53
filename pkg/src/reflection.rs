//! gRPC server reflection (`grpc.reflection.v1`) from the descriptors a service was generated
//! from, so that `plat test --contract` can read what a running service really serves and check
//! each consumer's own view of the contract against it.
//!
//! ```no_run
//! # fn f(descriptors: &'static [u8]) -> Result<(), Box<dyn std::error::Error>> {
//! // `crate::proto::FILE_DESCRIPTOR_SET` is written by `plat proto gen` beside the generated code.
//! let reflection = pkg::reflection::service(descriptors, &["user.v1.UserService"])?;
//! // Server::builder().add_service(reflection) ...
//! # Ok(()) }
//! ```
//!
//! Only the services named are listed: the recorded files also hold the packages the service
//! uses as a client, which it does not serve. Every file is still answered by name and symbol.

use tonic_reflection::server::v1::{ServerReflection, ServerReflectionServer};

/// Why the reflection service could not be built: the recorded descriptors do not decode, or a
/// file's imports are missing (`plat proto gen` writes them again).
pub type ReflectionError = tonic_reflection::server::Error;

/// The `grpc.reflection.v1.ServerReflection` service answering from `descriptors`, an encoded
/// `FileDescriptorSet` holding the files the service serves and uses and their imports, and
/// listing `served`, the full names of the gRPC services it serves (`user.v1.UserService`).
pub fn service(
    descriptors: &'static [u8],
    served: &[&str],
) -> Result<ServerReflectionServer<impl ServerReflection>, ReflectionError> {
    let builder = tonic_reflection::server::Builder::configure()
        .include_reflection_service(false)
        .register_encoded_file_descriptor_set(descriptors);
    served.iter().fold(builder, |builder, name| builder.with_service_name(*name)).build_v1()
}
