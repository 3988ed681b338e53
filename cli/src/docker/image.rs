//! Images: built from a tar context through the Engine's classic builder, and looked up with
//! the hash of their inputs so that an unchanged build is skipped.

use std::collections::HashMap;

use bollard::errors::Error as ApiError;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::StreamExt;

use super::{DockerError, connect, label};

/// An image on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Its id, `sha256:...`.
    pub id: String,
    /// Its labels.
    pub labels: HashMap<String, String>,
}

impl Image {
    /// The hash of its inputs ([`label::INPUTS`]), when plat built it.
    pub fn inputs(&self) -> Option<&str> {
        self.labels.get(label::INPUTS).map(String::as_str)
    }
}

/// The image `reference` (a tag or an id); `None` when this machine does not have it.
pub async fn find(reference: &str) -> Result<Option<Image>, DockerError> {
    let docker = connect().await?;
    match docker.inspect_image(reference).await {
        Ok(image) => {
            let labels = image.config.and_then(|config| config.labels).unwrap_or_default();
            Ok(Some(Image { id: image.id.unwrap_or_default(), labels }))
        }
        Err(ApiError::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// What to build: a tar context and the options of `docker build`.
#[derive(Debug, Default)]
pub struct BuildRequest<'a> {
    /// The image's name and tag, e.g. `platform/user-service:dev`.
    pub tag: &'a str,
    /// The build context as a tar archive.
    pub context: Vec<u8>,
    /// The Dockerfile's path inside the context.
    pub dockerfile: &'a str,
    /// `--build-arg`s.
    pub args: HashMap<String, String>,
    /// Stage of a multi-stage Dockerfile.
    pub target: Option<&'a str>,
    /// Labels added to the image.
    pub labels: HashMap<String, String>,
}

/// Builds the image and returns it. The Engine's output is kept only to explain a failure.
pub async fn build(request: BuildRequest<'_>) -> Result<Image, DockerError> {
    let docker = connect().await?;
    let mut options = BuildImageOptionsBuilder::new()
        .t(request.tag)
        .dockerfile(request.dockerfile)
        .buildargs(&request.args)
        .labels(&request.labels)
        .rm(true)
        .forcerm(true);
    if let Some(target) = request.target {
        options = options.target(target);
    }
    let mut output = String::new();
    let mut stream = docker.build_image(options.build(), None, Some(bollard::body_full(request.context.into())));
    while let Some(item) = stream.next().await {
        let info = match item {
            Ok(info) => info,
            Err(ApiError::DockerStreamError { error }) => return Err(DockerError::Build(last_lines(&output, error))),
            Err(error) => return Err(error.into()),
        };
        if let Some(detail) = info.error_detail {
            let message = detail.message.unwrap_or_else(|| "unknown error".to_owned());
            return Err(DockerError::Build(last_lines(&output, message)));
        }
        if let Some(text) = info.stream {
            output.push_str(&text);
        }
    }
    find(request.tag).await?.ok_or_else(|| DockerError::Build(last_lines(&output, "no image was tagged".to_owned())))
}

/// The error, then the last lines the builder printed before it, which usually say which step
/// failed.
fn last_lines(output: &str, error: String) -> String {
    format!("{error}{}", crate::text::tail(output, 5))
}
