//! Artefacts sent with or alongside documents: the invoice PDF attachment and CSV exports.
//! Rendering is CPU-bound and synchronous; callers run it off the async runtime threads.

pub mod csv;
pub mod pdf;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("pdf rendering failed: {0}")]
    Pdf(String),
    #[error("csv rendering failed: {0}")]
    Csv(String),
}

impl RenderError {
    pub fn kind(&self) -> &'static str {
        match self {
            RenderError::Pdf(_) => "pdf",
            RenderError::Csv(_) => "csv",
        }
    }
}
