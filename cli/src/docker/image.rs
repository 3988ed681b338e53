//! Images: built from a tar context through the Engine's classic builder, and looked up with
//! the hash of their inputs so that an unchanged build is skipped.

use std::collections::HashMap;

use bollard::errors::Error as ApiError;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::StreamExt;

use super::{DockerError, Engine, label};

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

/// What to build: a tar context and the options of `docker build`.
#[derive(Debug)]
pub struct BuildRequest<'a> {
    /// The image's name and tag, e.g. `platform/user-service:dev`.
    pub tag: &'a str,
    /// The build context as a tar archive, at its start: streamed to the Engine, never read whole.
    pub context: std::fs::File,
    /// The Dockerfile's path inside the context.
    pub dockerfile: &'a str,
    /// `--build-arg`s.
    pub args: HashMap<String, String>,
    /// Stage of a multi-stage Dockerfile.
    pub target: Option<&'a str>,
    /// Labels added to the image.
    pub labels: HashMap<String, String>,
}

/// A file as a stream of 256 KiB chunks.
fn tar_chunks(file: std::fs::File) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send {
    use tokio::io::AsyncReadExt;
    futures_util::stream::try_unfold(tokio::fs::File::from_std(file), |mut file| async move {
        let mut chunk = vec![0u8; 256 * 1024];
        let read = file.read(&mut chunk).await?;
        if read == 0 {
            return Ok(None);
        }
        chunk.truncate(read);
        Ok(Some((bytes::Bytes::from(chunk), file)))
    })
}

/// The error, then the last lines the builder printed before it, which usually say which step
/// failed.
fn last_lines(output: &str, error: String) -> String {
    format!("{error}{}", crate::text::tail(output, 5))
}

impl Engine {
    /// The image `reference` (a tag or an id); `None` when this machine does not have it.
    pub async fn find_image(&self, reference: &str) -> Result<Option<Image>, DockerError> {
        let docker = &self.docker;
        match docker.inspect_image(reference).await {
            Ok(image) => {
                let labels = image.config.and_then(|config| config.labels).unwrap_or_default();
                Ok(Some(Image { id: image.id.unwrap_or_default(), labels }))
            }
            Err(ApiError::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Builds the image and returns it. The Engine's output is kept only to explain a failure.
    pub async fn build_image(&self, request: BuildRequest<'_>) -> Result<Image, DockerError> {
        let docker = &self.docker;
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
        let body = bollard::body_try_stream(tar_chunks(request.context));
        let mut stream = docker.build_image(options.build(), None, Some(body));
        while let Some(item) = stream.next().await {
            let info = match item {
                Ok(info) => info,
                Err(ApiError::DockerStreamError { error }) => {
                    return Err(DockerError::Build(last_lines(&output, error)));
                }
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
        self.find_image(request.tag)
            .await?
            .ok_or_else(|| DockerError::Build(last_lines(&output, "no image was tagged".to_owned())))
    }
}
