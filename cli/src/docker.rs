//! The Docker Engine, through its API (bollard).
//!
//! Architecture invariant: only this module talks to the Engine.

use std::time::Duration;

use bollard::Docker;

/// How long to wait for the Engine to answer before calling it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the Engine says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineVersion {
    /// Engine version, e.g. `20.10.24`.
    pub version: String,
    /// Highest API version it speaks, e.g. `1.41`.
    pub api_version: String,
}

/// The Engine could not be reached or did not answer.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// Connecting or calling failed.
    #[error("{0}")]
    Api(#[from] bollard::errors::Error),
    /// No answer in time.
    #[error("the Docker Engine did not answer within {}s", CONNECT_TIMEOUT.as_secs())]
    Timeout,
}

/// Connects to the Engine named by `DOCKER_HOST` (default: the local socket), agreeing on an API
/// version both sides speak: engines older than this client refuse newer API versions.
pub async fn connect() -> Result<Docker, DockerError> {
    let docker = Docker::connect_with_defaults()?;
    tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version())
        .await
        .map_err(|_| DockerError::Timeout)?
        .map_err(DockerError::from)
}

/// The Engine's version and API version.
pub async fn engine_version() -> Result<EngineVersion, DockerError> {
    let docker = connect().await?;
    let version = tokio::time::timeout(CONNECT_TIMEOUT, docker.version()).await.map_err(|_| DockerError::Timeout)??;
    Ok(EngineVersion {
        version: version.version.unwrap_or_else(|| "unknown".to_owned()),
        api_version: version.api_version.unwrap_or_else(|| "unknown".to_owned()),
    })
}
